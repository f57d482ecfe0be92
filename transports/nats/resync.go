package nats

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/nats-io/nats.go"
)

// ServeResync answers requests on mesh.NATSClusterResyncSubject(prefix, cluster) with the current snapshot, as
// {"epoch","sequence","mesh"} JSON split into chunks that fit the server's max payload
// (chunk > 0 overrides the size). Until ready reports true the reply is one message with a
// Mesh-Error header, never a partial mesh. Replicas share the requests through a queue group.
// It returns when ctx ends.
func (p *Publisher) ServeResync(ctx context.Context, snapshot func() mesh.State, ready func() bool, chunk int) error {
	if chunk != 0 && chunk < 1024 {
		return fmt.Errorf("nats resync: chunk size %d too small", chunk)
	}
	var rendered renderedSnapshot
	sub, err := p.nc.QueueSubscribe(mesh.NATSClusterResyncSubject(p.prefix, p.cluster), "event-mesh-broadcaster", func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		if !ready() {
			e := nats.NewMsg(m.Reply)
			e.Header.Set(mesh.HeaderError, "the mesh is still loading")
			_ = p.nc.PublishMsg(e)
			return
		}
		size := chunk
		if size == 0 { // the server's limit, known once connected
			size = max(1024, int(p.nc.MaxPayload())-4096)
		}
		if err := p.reply(m.Reply, rendered.of(snapshot(), p.cluster), size); err != nil {
			p.log.Warn("nats resync: reply failed", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("nats resync: %w", err)
	}
	if err := limitResyncQueue(sub); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("nats resync: %w", err)
	}
	p.log.Info("serving snapshots over NATS", "subject", mesh.NATSClusterResyncSubject(p.prefix, p.cluster))
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}

// Bounds of the requests waiting for a reply: requests are answered one at a time, from one
// rendering of the snapshot shared by all, so what a crowd of requesters costs is their queue.
// Beyond the bounds requests are dropped (the requester times out and asks again), instead of
// the client library queueing up to 64 MiB of them.
const (
	resyncQueueMessages = 256
	resyncQueueBytes    = 1 << 20
)

// limitResyncQueue bounds the requests sub queues while a reply is written.
func limitResyncQueue(sub *nats.Subscription) error {
	return sub.SetPendingLimits(resyncQueueMessages, resyncQueueBytes)
}

// renderedSnapshot keeps the last snapshot's reply body, so a crowd of requests for one
// sequence costs one serialisation.
type renderedSnapshot struct {
	mu   sync.Mutex
	last *snapshotBody
}

type snapshotBody struct {
	epoch string
	seq   uint64
	data  []byte
}

func (r *renderedSnapshot) of(s mesh.State, cluster string) *snapshotBody {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos := s.Position()
	if r.last != nil && r.last.epoch == pos.Epoch && r.last.seq == pos.Sequence {
		return r.last
	}
	var body bytes.Buffer
	head, tail := mesh.ClusterSnapshotEnvelope(cluster, pos.Epoch, pos.Sequence)
	body.WriteString(head)
	_ = s.WriteMeshOf(&body, nil) // a bytes.Buffer does not fail
	body.WriteString(tail)
	r.last = &snapshotBody{epoch: pos.Epoch, seq: pos.Sequence, data: body.Bytes()}
	return r.last
}

func (p *Publisher) reply(to string, s *snapshotBody, chunk int) error {
	data := s.data
	n := max(1, (len(data)+chunk-1)/chunk)
	for i := range n {
		m := nats.NewMsg(to)
		m.Header.Set(mesh.HeaderEpoch, s.epoch)
		m.Header.Set(mesh.HeaderSequence, strconv.FormatUint(s.seq, 10))
		m.Header.Set(mesh.HeaderChunk, fmt.Sprintf("%d/%d", i+1, n))
		if p.cluster != "" {
			m.Header.Set(mesh.HeaderCluster, p.cluster)
		}
		m.Data = data[i*chunk : min(len(data), (i+1)*chunk)]
		if err := p.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return p.nc.Flush()
}
