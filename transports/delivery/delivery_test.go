package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/delivery"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
)

func change(seq uint64) mesh.Change {
	name := fmt.Sprintf("b%d", seq)
	return mesh.Change{Epoch: "ep", Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
		Key:    mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name),
		Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)}
}

func changes(from, to uint64) []mesh.Change {
	var out []mesh.Change
	for seq := from; seq <= to; seq++ {
		out = append(out, change(seq))
	}
	return out
}

// A sink that never answers holds up neither another transport nor the hub, and costs no
// memory of its own: both read the one log.
func TestSlowSinkIsolated(t *testing.T) {
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
	log := testkit.Must(changelog.New("ep", changelog.WithMaxChanges(50)))
	slow := testkit.Must(delivery.New("slow", log, slowSink))
	quick := testkit.Must(delivery.New("fast", log, fastSink))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range []*delivery.Worker{slow, quick} {
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}

	const n = 1000
	log.Append(mesh.Batch{Changes: changes(1, 1), Opens: true})
	for seq := uint64(2); seq <= n; seq++ {
		log.Append(mesh.Batch{Changes: changes(seq, seq)}) // never blocks, however stuck the sink is
		if seq%40 == 0 {                                   // the fast sink keeps up with the log's 50 changes
			testkit.Eventually(t, "the fast sink to keep up", 20*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return uint64(len(got)) >= seq-10
			})
		}
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
	if delivered, missed, _ := slow.Stats(); delivered != 0 || missed != 0 {
		t.Fatalf("hanging transport: delivered %d, missed %d before it was released", delivered, missed)
	}

	cancel()
	wg.Wait()
	flushCtx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := slow.Flush(flushCtx); err == nil || !strings.Contains(err.Error(), "not delivered before the deadline") {
		t.Fatalf("flush of a dead transport: %v", err)
	}
	if err := quick.Flush(context.Background()); err != nil {
		t.Fatalf("flush of a transport that kept up: %v", err)
	}
}

// recorder is a Reconciler that records what reaches it; block, when set, holds Publish.
type recorder struct {
	mu    sync.Mutex
	calls []string
	block chan struct{}
	fail  int // reconciles that fail before one succeeds
}

func (r *recorder) Publish(ctx context.Context, cs []mesh.Change) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		r.calls = append(r.calls, fmt.Sprint(c.Sequence))
	}
	return nil
}

func (r *recorder) Reconcile(_ context.Context, republish bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := map[bool]string{false: "reconcile", true: "reconcile+republish"}[republish]
	if r.fail > 0 {
		r.fail--
		r.calls = append(r.calls, call+" failed")
		return errors.New("the broker dropped retained messages")
	}
	r.calls = append(r.calls, call)
	return nil
}

func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, ",")
}

// What is in the log when the run stops is delivered by Flush, in order; a state carrier
// reconciles after the opening, and after a gap it also republishes its state.
func TestFlushReconcileAndGaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		batches []mesh.Batch
		want    string
		missed  uint64
	}{
		{name: "opening then more", size: 10,
			batches: []mesh.Batch{{Changes: changes(1, 2), Opens: true}, {Changes: changes(3, 4)}},
			want:    "1,2,reconcile,3,4"},
		{name: "an opening larger than a batch is delivered whole before the reconcile", size: 10,
			batches: []mesh.Batch{{Changes: changes(1, 5), Opens: true}, {Changes: changes(6, 6)}},
			want:    "1,2,3,4,5,6,reconcile"},
		{name: "fell behind", size: 2,
			batches: []mesh.Batch{{Changes: changes(1, 2), Opens: true}, {Changes: changes(3, 7)}},
			want:    "1,2,reconcile,6,7,reconcile+republish", missed: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := testkit.Must(changelog.New("ep", changelog.WithMaxChanges(tt.size)))
			r := &recorder{}
			w := testkit.Must(delivery.New("r", log, r, delivery.WithBatch(2)))
			for _, b := range tt.batches {
				log.Append(b)
			}
			if err := w.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := r.String(); got != tt.want {
				t.Fatalf("calls %s, want %s", got, tt.want)
			}
			if _, missed, _ := w.Stats(); missed != tt.missed {
				t.Fatalf("missed %d, want %d", missed, tt.missed)
			}
		})
	}
}

// A worker that falls further behind than the log holds declares one gap, counted, and goes
// on in order from the oldest change kept.
func TestDeclaredGapWhileRunning(t *testing.T) {
	t.Parallel()
	log := testkit.Must(changelog.New("ep", changelog.WithMaxChanges(5)))
	r := &recorder{block: make(chan struct{})}
	w := testkit.Must(delivery.New("r", log, r, delivery.WithBatch(100)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	log.Append(mesh.Batch{Changes: changes(1, 1), Opens: true})
	log.Append(mesh.Batch{Changes: changes(2, 20)}) // the worker is stuck on #1; 2..15 roll out
	close(r.block)
	testkit.Eventually(t, "the worker to catch up", 20*time.Second, func() bool { return strings.HasSuffix(r.String(), "20,reconcile+republish") })
	cancel()
	<-done
	if got, want := r.String(), "1,reconcile,16,17,18,19,20,reconcile+republish"; got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	if _, missed, _ := w.Stats(); missed != 14 {
		t.Fatalf("missed %d, want 14", missed)
	}
}

// A new leader's worker starts where its predecessor stopped (From): it delivers only what
// follows, and a state carrier reconciles first: dropping stale keys after a clean handover,
// also republishing after a crash (the predecessor may have published changes never seen).
func TestWorkerFromAPredecessorsPosition(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			t.Parallel()
			log := testkit.Must(changelog.New("ep"))
			log.Append(mesh.Batch{Changes: changes(1, 5), Opens: true}) // what the predecessor published
			r := &recorder{}
			w := testkit.Must(delivery.New("r", log, r, delivery.From(mesh.Position{Epoch: "ep", Sequence: 5}, crash)))
			log.Append(mesh.Batch{Changes: changes(6, 7)})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			want := "reconcile,6,7"
			if crash {
				want = "reconcile+republish,6,7"
			}
			testkit.Eventually(t, "the changes after the predecessor's", 5*time.Second, func() bool { return r.String() == want })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A reconcile that fails is tried again later, with no change needed to wake it, clearing only
// (what was republished stays), and less often while it keeps failing.
func TestFailedReconcileIsTriedAgain(t *testing.T) {
	t.Parallel()
	log := testkit.Must(changelog.New("ep", changelog.WithMaxChanges(2)))
	r := &recorder{fail: 2}
	w := testkit.Must(delivery.New("r", log, r, delivery.WithReconcileRetry(20*time.Millisecond)))
	log.Append(mesh.Batch{Changes: changes(1, 2), Opens: true})
	log.Append(mesh.Batch{Changes: changes(3, 7)}) // a gap: republish owed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// The opening's reconcile fails, the gap's too (a new reason: tried at once), and the
	// retry, with nothing new to deliver, clears only.
	want := "1,2,reconcile failed,6,7,reconcile+republish failed,reconcile"
	testkit.Eventually(t, "the reconcile to be tried again", 5*time.Second, func() bool { return r.String() == want })
	time.Sleep(100 * time.Millisecond)
	if got := r.String(); got != want {
		t.Errorf("calls %s, want %s and nothing more once it succeeded", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
