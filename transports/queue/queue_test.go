package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/queue"
)

func change(seq uint64) mesh.Change {
	name := fmt.Sprintf("b%d", seq)
	return mesh.Change{Epoch: "ep", Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
		Key:    mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name),
		Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)}
}

// A sink that never answers must not hold up another transport, nor the caller of Enqueue,
// nor grow without bound; what it drops is counted.
func TestHangingSinkDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release)

	var mu sync.Mutex
	var got []string
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Ce-Meshseq"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer fast.Close()

	enc, _ := codec.NewEncoder("")
	slowSink, _ := httpsink.New(hanging.URL, enc, httpsink.WithTimeout(time.Hour))
	fastSink, _ := httpsink.New(fast.URL, enc)
	slowQ, _ := queue.New("slow", slowSink, queue.WithCapacity(50))
	fastQ, _ := queue.New("fast", fastSink, queue.WithCapacity(2000))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, q := range []*queue.Queue{slowQ, fastQ} {
		wg.Add(1)
		go func() { defer wg.Done(); q.Run(ctx) }()
	}

	const n = 1000
	for seq := uint64(1); seq <= n; seq++ {
		batch := []mesh.Change{change(seq)}
		slowQ.Enqueue(hub.Batch{Changes: batch}) // never blocks, however stuck the sink is
		fastQ.Enqueue(hub.Batch{Changes: batch})
	}
	testkit.Eventually(t, "the fast sink to get everything", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	for i, seq := range got {
		if seq != fmt.Sprint(i+1) {
			t.Fatalf("fast sink got meshseq %s at position %d: out of order", seq, i)
		}
	}
	if l := slowQ.Len(); l > 50 {
		t.Fatalf("the hanging transport's queue holds %d, beyond its capacity 50", l)
	}
	delivered, dropped, _ := slowQ.Stats()
	// Held at most: a full queue plus the batch stuck in flight.
	if delivered != 0 || dropped < n-2*50 || dropped+uint64(slowQ.Len()) > n {
		t.Fatalf("hanging transport: delivered %d, dropped %d, queued %d", delivered, dropped, slowQ.Len())
	}

	cancel()
	wg.Wait()
	flushCtx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := slowQ.Flush(flushCtx); err == nil || !strings.Contains(err.Error(), "not delivered before the deadline") {
		t.Fatalf("flush of a dead transport: %v", err)
	}
	if err := fastQ.Flush(context.Background()); err != nil {
		t.Fatalf("flush of an empty queue: %v", err)
	}
}

// What is queued when the run stops is delivered by Flush, in order.
func TestFlushDeliversTheRest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Ce-Meshseq"))
		mu.Unlock()
	}))
	defer srv.Close()
	enc, _ := codec.NewEncoder("")
	sink, _ := httpsink.New(srv.URL, enc)
	q, _ := queue.New("q", sink, queue.WithCapacity(10))
	for seq := uint64(1); seq <= 5; seq++ {
		q.Enqueue(hub.Batch{Changes: []mesh.Change{change(seq)}})
	}
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1,2,3,4,5" {
		t.Fatalf("got %v", got)
	}
	if d, _, _ := q.Stats(); d != 5 {
		t.Fatalf("delivered %d", d)
	}
	if _, err := queue.New("bad", sink, queue.WithCapacity(0)); err == nil {
		t.Error("capacity 0 accepted")
	}
}

// recorder is a Reconciler that records what reaches it.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Publish(_ context.Context, changes []mesh.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range changes {
		r.calls = append(r.calls, fmt.Sprint(c.Sequence))
	}
	return nil
}

func (r *recorder) Reconcile(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "reconcile")
	return nil
}

func (r *recorder) Close(context.Context) error { return nil }

// A state carrier reconciles once after the batch that opens an epoch has gone out, and also
// when the queue had to drop that batch's changes: reconciling never depends on meshseq 1
// getting through.
func TestQueueReconcilesAfterAnOpeningBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		capacity int
		batches  []hub.Batch
		want     string
	}{
		{name: "opening then more", capacity: 10,
			batches: []hub.Batch{{Changes: []mesh.Change{change(1), change(2)}, Opens: true}, {Changes: []mesh.Change{change(3)}}},
			want:    "1,2,3,reconcile"},
		{name: "no opening", capacity: 10,
			batches: []hub.Batch{{Changes: []mesh.Change{change(4)}}},
			want:    "4"},
		{name: "opening dropped", capacity: 1,
			batches: []hub.Batch{{Changes: []mesh.Change{change(1), change(2)}, Opens: true}, {Changes: []mesh.Change{change(3)}}},
			want:    "3,reconcile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &recorder{}
			q, err := queue.New("q", r, queue.WithCapacity(tt.capacity))
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range tt.batches {
				q.Enqueue(b)
			}
			if err := q.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.calls, ","); got != tt.want {
				t.Fatalf("calls %s, want %s", got, tt.want)
			}
		})
	}
}
