package nats_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// A snapshot far larger than one message comes back whole over request-reply.
func TestResyncOverRequestReply(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	eng := engine.New("ep")
	for i := range 2000 {
		eng.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
			"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("broker-", i), "namespace": "ns"}}}))
	}
	n := unique()
	enc, _ := codec.NewEncoder("")
	p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithCoreOnly(), natspub.WithSubjectPrefix(n.prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready atomic.Bool
	go p.ServeResync(ctx, func() mesh.State { return eng.Snapshot() }, ready.Load, 16*1024) // the mesh is ~250 KB: about 16 chunks

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	snapshots := natsconsumer.Snapshots(nc, mesh.NATSResyncSubject(n.prefix))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = snapshots.Snapshot(ctx)
		if err != nil && strings.Contains(err.Error(), "still loading") {
			break // not ready: an error, never a partial mesh
		}
		if time.Now().After(deadline) {
			t.Fatalf("before ready: %v", err)
		}
	}
	ready.Store(true)
	var got mesh.Snapshot
	for {
		got, err = snapshots.Snapshot(ctx) // the responder may not be subscribed yet
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	want, _ := eng.Snapshot().Mesh()
	if got.Epoch != "ep" || got.Sequence != eng.Sequence() || !reflect.DeepEqual(got.Mesh, want) {
		t.Fatalf("snapshot at %s-%d with %d brokers, want ep-%d with %d", got.Epoch, got.Sequence, len(got.Mesh.Brokers), eng.Sequence(), len(want.Brokers))
	}
	// No reply claims to be a CloudEvent: a chunk is a piece of one JSON document.
	inbox := nats.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(mesh.NATSResyncSubject(n.prefix), inbox, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		m, err := replies.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i+1, err)
		}
		if ct := m.Header.Get("Content-Type"); ct != "" {
			t.Errorf("reply chunk %s has Content-Type %q", m.Header.Get(mesh.HeaderChunk), ct)
		}
		if c := m.Header.Get(mesh.HeaderChunk); strings.HasPrefix(c, fmt.Sprint(i+1, "/")) && strings.HasSuffix(c, fmt.Sprint("/", i+1)) {
			break // the last chunk
		}
	}
}
