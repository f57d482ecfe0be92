package natsconsumer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Snapshots asks a broadcaster for snapshots over NATS request-reply on subject (the
// broadcaster's <prefix>-resync, mesh.NATSResyncSubject: "knative.eventmesh-resync" by
// default), reassembling chunked replies. The connection stays the caller's.
func Snapshots(nc *nats.Conn, subject string) consumer.Snapshotter {
	return snapshots{nc: nc, subject: subject}
}

// ClusterSnapshots gives consumer.NewFleet the snapshots of each cluster's broadcaster over
// NATS request-reply (mesh.NATSClusterResyncSubject of prefix, the broadcasters' shared
// --nats-subject-prefix), so a fleet of replicas needs nothing but the connection.
func ClusterSnapshots(nc *nats.Conn, prefix string) func(cluster string) (consumer.Snapshotter, error) {
	return func(cluster string) (consumer.Snapshotter, error) {
		return Snapshots(nc, mesh.NATSClusterResyncSubject(prefix, cluster)), nil
	}
}

type snapshots struct {
	nc      *nats.Conn
	subject string
}

var _ consumer.Snapshotter = snapshots{}

func (n snapshots) Snapshot(ctx context.Context) (mesh.Snapshot, error) {
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return mesh.Snapshot{}, fmt.Errorf("nats snapshot: %w", err)
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest(n.subject, inbox, nil); err != nil {
		return mesh.Snapshot{}, fmt.Errorf("nats snapshot: %w", err)
	}
	var body bytes.Buffer
	var epoch, seq string
	for want := 1; ; want++ {
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := sub.NextMsgWithContext(wait)
		cancel()
		if err != nil {
			return mesh.Snapshot{}, fmt.Errorf("nats snapshot: chunk %d: %w", want, err)
		}
		if reason := m.Header.Get(mesh.HeaderError); reason != "" {
			return mesh.Snapshot{}, fmt.Errorf("nats snapshot: %s", reason)
		}
		if m.Header.Get("Status") == "503" {
			return mesh.Snapshot{}, fmt.Errorf("nats snapshot: no broadcaster answers on %s", n.subject)
		}
		i, total, ok := parseChunk(m.Header.Get(mesh.HeaderChunk))
		switch {
		case !ok || i != want:
			return mesh.Snapshot{}, fmt.Errorf("nats snapshot: chunk %q, want %d", m.Header.Get(mesh.HeaderChunk), want)
		case want == 1:
			epoch, seq = m.Header.Get(mesh.HeaderEpoch), m.Header.Get(mesh.HeaderSequence)
		case epoch != m.Header.Get(mesh.HeaderEpoch) || seq != m.Header.Get(mesh.HeaderSequence):
			return mesh.Snapshot{}, fmt.Errorf("nats snapshot: chunks of two snapshots mixed")
		}
		body.Write(m.Data)
		if i == total {
			break
		}
	}
	var s mesh.Snapshot
	if err := json.Unmarshal(body.Bytes(), &s); err != nil {
		return mesh.Snapshot{}, fmt.Errorf("nats snapshot: %w", err)
	}
	return s, nil
}

func parseChunk(h string) (i, n int, ok bool) {
	a, b, found := strings.Cut(h, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, found && err1 == nil && err2 == nil && i >= 1 && i <= n
}
