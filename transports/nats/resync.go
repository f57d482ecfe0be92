package nats

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/nats-io/nats.go"
)

// ServeResync answers requests on ResyncSubject(prefix) with the current snapshot, as
// {"epoch","sequence","mesh"} JSON split into chunks that fit the server's max payload
// (chunk > 0 overrides the size). Until ready reports true the reply is one message with a
// Mesh-Error header, never a partial mesh. Replicas share the requests through a queue group.
// It returns when ctx ends.
func (p *Publisher) ServeResync(ctx context.Context, snapshot func() engine.Snapshot, ready func() bool, chunk int) error {
	if chunk <= 0 {
		chunk = int(p.nc.MaxPayload()) - 4096
	}
	if chunk < 1024 {
		return fmt.Errorf("nats resync: chunk size %d too small", chunk)
	}
	sub, err := p.nc.QueueSubscribe(mesh.NATSResyncSubject(p.prefix), "event-mesh-broadcaster", func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		if !ready() {
			e := nats.NewMsg(m.Reply)
			e.Header.Set(mesh.HeaderError, "the mesh is still loading")
			_ = p.nc.PublishMsg(e)
			return
		}
		if err := p.reply(m.Reply, snapshot(), chunk); err != nil {
			p.log.Warn("nats resync: reply failed", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("nats resync: %w", err)
	}
	p.log.Info("serving snapshots over NATS", "subject", mesh.NATSResyncSubject(p.prefix))
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}

func (p *Publisher) reply(to string, s engine.Snapshot, chunk int) error {
	var body bytes.Buffer
	head, tail := mesh.SnapshotEnvelope(s.Epoch, s.Sequence)
	body.WriteString(head)
	if err := s.WriteEventMesh(&body); err != nil {
		return err
	}
	body.WriteString(tail)
	data := body.Bytes()
	n := max(1, (len(data)+chunk-1)/chunk)
	for i := range n {
		m := nats.NewMsg(to)
		m.Header.Set(mesh.HeaderEpoch, s.Epoch)
		m.Header.Set(mesh.HeaderSequence, strconv.FormatUint(s.Sequence, 10))
		m.Header.Set(mesh.HeaderChunk, fmt.Sprintf("%d/%d", i+1, n))
		m.Data = data[i*chunk : min(len(data), (i+1)*chunk)]
		if err := p.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return p.nc.Flush()
}
