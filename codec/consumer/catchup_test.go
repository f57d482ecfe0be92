package consumer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// broadcaster is a hub, a delta log of 5 changes and the real resync endpoints.
type broadcaster struct {
	hub     *hub.Hub
	handler http.Handler
	changes []mesh.Change
}

func newBroadcaster(t *testing.T, epoch string) *broadcaster {
	b := &broadcaster{hub: testkit.Must(hub.New(engine.New(epoch), func() bool { return true }))}
	deltaLog, _ := changelog.New(epoch, changelog.WithMaxChanges(5))
	b.hub.Listen(deltaLog.Append)
	b.hub.Listen(func(batch mesh.Batch) {
		cs := batch.Changes
		b.changes = append(b.changes, cs...)
	})
	enc, _ := codec.NewEncoder("")
	h, err := resync.New(b.hub, resync.WithDeltaLog(deltaLog, enc))
	if err != nil {
		t.Fatal(err)
	}
	b.handler = h
	return b
}

func (b *broadcaster) addBrokers(from, to int) {
	for i := from; i <= to; i++ {
		b.hub.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
			"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "ns"}}}))
	}
}

// TestCatchUpAndResync: a small gap is filled from /v1/deltas, a gap older than the log and a
// new epoch (a restarted broadcaster) take a snapshot; the replica always ends exact.
func TestCatchUpAndResync(t *testing.T) {
	t.Parallel()
	var current atomic.Pointer[broadcaster]
	current.Store(newBroadcaster(t, "ep1"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	r := NewReplica(HTTPSnapshots(srv.URL, "", nil))
	ctx := context.Background()
	check := func(step string, resyncs, catchUps int) {
		t.Helper()
		want, _ := current.Load().hub.Snapshot().EventMesh()
		got, err := r.Mesh()
		if err != nil || !reflect.DeepEqual(got, want) || r.Resyncs() != resyncs || r.CatchUps() != catchUps {
			t.Fatalf("%s: replica equal %v (%v), %d resyncs and %d catch-ups; want %d and %d",
				step, reflect.DeepEqual(got, want), err, r.Resyncs(), r.CatchUps(), resyncs, catchUps)
		}
	}
	b := current.Load()
	b.addBrokers(1, 3)
	for _, c := range b.changes {
		if err := r.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	check("in order", 1, 0) // the first event of a cold replica takes a snapshot

	b.addBrokers(4, 6) // the replica misses 4 and 5
	if err := r.Apply(ctx, b.changes[5]); err != nil {
		t.Fatal(err)
	}
	check("small gap", 1, 1)

	b.addBrokers(7, 16) // 7..15 missed; the log keeps only 12..16
	if err := r.Apply(ctx, b.changes[15]); err != nil {
		t.Fatal(err)
	}
	check("gap older than the log", 2, 1)

	restarted := newBroadcaster(t, "ep2") // a new epoch opens with the whole mesh again
	current.Store(restarted)
	restarted.addBrokers(1, 20)
	if err := r.Apply(ctx, restarted.changes[len(restarted.changes)-1]); err != nil {
		t.Fatal(err)
	}
	check("new epoch", 3, 1)
}
