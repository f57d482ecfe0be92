package consumer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// The SSE mode: a cold replica starts from the stream's snapshot, follows the deltas, and after
// a dropped connection resumes with Last-Event-ID, without a second snapshot.
func TestWatchFollowsAndResumes(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	deltaLog, _ := changelog.New("ep", changelog.WithMaxChanges(1000))
	enc, _ := codec.NewEncoder("")
	watchers, _ := resync.NewWatchers(enc, resync.WithWatchBuffer(1000))
	h.Listen(deltaLog.Append)
	h.Listen(watchers.Publish)
	handler, err := resync.New(h, resync.WithDeltaLog(deltaLog, enc), resync.WithWatch(watchers, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var watches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/watch" {
			watches.Add(1)
		}
		handler.ServeHTTP(w, req)
	}))
	defer srv.Close()
	add := func(from, to int) {
		for i := from; i <= to; i++ {
			h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
				"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "ns"}}}))
		}
	}
	add(1, 5)
	r := NewReplica(HTTPSnapshots(srv.URL, "", nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Watch(ctx, srv.URL, "", nil) }()
	caughtUp := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			want, _ := h.Snapshot().EventMesh()
			got, _ := r.Mesh()
			_, seq := r.Position()
			if reflect.DeepEqual(got, want) && seq == h.Snapshot().Position().Sequence {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replica at %d never caught up with %d", what, seq, h.Snapshot().Position().Sequence)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	caughtUp("cold start")
	add(6, 10)
	caughtUp("live deltas")
	srv.CloseClientConnections()
	add(11, 20) // while the replica reconnects
	caughtUp("after the dropped connection")
	if n := watches.Load(); n < 2 {
		t.Errorf("%d watch connections: the drop did not happen", n)
	}
	if n := r.Resyncs(); n != 1 {
		t.Errorf("%d snapshots, want only the first: the reconnect resumes from the log", n)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v", err)
	}
}
