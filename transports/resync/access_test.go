package resync

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

// oneNamespace lets token "a" see namespace a, "all" everything, and nobody else in.
type oneNamespace struct{}

func (oneNamespace) Authorize(_ context.Context, token string, _ func() []string) (auth.Access, error) {
	switch token {
	case "a":
		return auth.Access{Subject: "a", Namespaces: map[string]bool{"a": true}}, nil
	case "all":
		return auth.Access{Subject: "all", All: true}, nil
	}
	return auth.Access{}, auth.ErrUnauthenticated
}

func brokerIn(ns, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": name, "namespace": ns}}}
}

// A caller who may see one namespace watches only it: the snapshot and the deltas are cut to
// it, and position events account for every change cut out, so the stream's ids stay gap-free
// and a replica following it ends up equal to its view of the mesh, resuming included.
func TestWatchOfOneNamespace(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	deltaLog, _ := changelog.New("ep", changelog.WithMaxChanges(1000))
	enc, _ := codec.NewEncoder("")
	watchers, _ := NewWatchers(enc, WithWatchBuffer(100))
	h.Listen(deltaLog.Append)
	h.Listen(watchers.Publish)
	handler, err := New(h, WithAuthorizer(oneNamespace{}), WithDeltaLog(deltaLog, enc), WithWatch(watchers, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	h.Apply(engine.Listing(brokerIn("a", "x"), brokerIn("b", "x")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids []uint64
	var deltaAt []bool // ids[i] is a delta's
	var views []string
	replica := consumer.NewReplica(consumer.HTTPSnapshots(srv.URL, "a", nil))
	done := make(chan error, 1)
	go func() {
		done <- consumer.Follow(ctx, srv.URL, "a", nil, consumer.Stream{
			Snapshot: func(s mesh.Snapshot) error {
				replica.Load(s)
				ids, deltaAt = append(ids, s.Sequence), append(deltaAt, false)
				return nil
			},
			Delta: func(p []byte) error {
				c, err := codec.DecodeStructured(p)
				if err != nil {
					return err
				}
				ids, deltaAt = append(ids, c.Sequence), append(deltaAt, true)
				views = append(views, c.Key.String())
				return replica.Apply(ctx, c)
			},
			Position: func(epoch string, seq uint64) error {
				ids, deltaAt = append(ids, seq), append(deltaAt, false)
				replica.Advance(epoch, seq)
				return nil
			},
			OnError: func(err error) bool { t.Errorf("watch: %v", err); return false },
		})
	}()
	select { // the changes below reach the stream as deltas
	case <-replica.Loaded():
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot")
	}
	// Changes in b (invisible), then a, then b again: positions fill the gaps.
	for i, ns := range []string{"b", "b", "a", "b", "a", "b", "b"} {
		h.Apply(engine.Upserts(brokerIn(ns, "n"+strconv.Itoa(i))))
	}
	// An EventType of b provided by a's Broker: the Broker's update goes out, without it.
	h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
		"metadata": map[string]any{"name": "leak", "namespace": "b"},
		"spec": map[string]any{"type": "t", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"name": "x", "namespace": "a"}}}}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, seq := replica.Position(); seq == h.Snapshot().Position().Sequence {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica at %v, mesh at %d; ids %v", seqOf(replica), h.Snapshot().Position().Sequence, ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	for _, key := range views {
		if ref, _ := mesh.ParseKey(key); ref.Namespace != "a" {
			t.Errorf("the caller saw %s", key)
		}
	}
	got, err := replica.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	var want mesh.EventMesh
	_, body := get(t, srv.URL+"/v1/getEventMesh", "a")
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(want.Brokers) != 3 {
		t.Errorf("replica %+v\nwant %+v", got, want)
	}
	for _, b := range got.Brokers {
		if len(b.ProvidedEventTypes) > 0 {
			t.Errorf("broker %s/%s shows %v of another namespace", b.Namespace, b.Name, b.ProvidedEventTypes)
		}
	}
	// Every delta's id is the previous event's + 1, and a position's is larger: no hidden gap,
	// and a position event accounts for the changes cut out before the next delta.
	for i := 1; i < len(ids); i++ {
		if deltaAt[i] && ids[i] != ids[i-1]+1 || !deltaAt[i] && ids[i] <= ids[i-1] {
			t.Errorf("ids %v (deltas at %v) leave a gap", ids, deltaAt)
			break
		}
	}
	// Resuming from the log (Last-Event-ID) is cut to the view the same way.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/watch?epoch=ep", nil)
	req.Header.Set("Authorization", "Bearer a")
	req.Header.Set("Last-Event-ID", "3")
	rctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	resp, err := http.DefaultClient.Do(req.WithContext(rctx))
	if err != nil {
		t.Fatal(err)
	}
	var resumed []string
	last := h.Snapshot().Position().Sequence
	_ = consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error {
		resumed = append(resumed, ev.Type+" "+ev.ID)
		if strings.Contains(string(ev.Data), "b/leak") {
			t.Errorf("resumed event %s shows b's EventType: %s", ev.ID, ev.Data)
		}
		if ev.ID == mesh.StreamID("ep", last) {
			return io.EOF
		}
		return nil
	})
	resp.Body.Close()
	// Changes 4..9 are b, a, b, a, b, b: a is shown, b only as positions; then b's EventType
	// (10) and a's Broker providing it (11).
	if want := []string{"position ep-4", "delta ep-5", "position ep-6", "delta ep-7", "position ep-10", "delta ep-11"}; !reflect.DeepEqual(resumed, want) {
		t.Errorf("resumed stream %q, want %q", resumed, want)
	}

	// The delta log numbers every change: a partial view is refused there.
	if resp, _ = get(t, srv.URL+"/v1/deltas?epoch=ep&since=0", "a"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/deltas with a partial view: %d, want 403", resp.StatusCode)
	}
}

func seqOf(r *consumer.Replica) uint64 { _, s := r.Position(); return s }

// revocable grants token "t" what grant holds, changeable while a stream lasts.
type revocable struct{ grant atomic.Pointer[auth.Access] }

func (r *revocable) Authorize(_ context.Context, token string, _ func() []string) (auth.Access, error) {
	if g := r.grant.Load(); token == "t" && g != nil {
		return *g, nil
	}
	return auth.Access{}, auth.ErrUnauthenticated
}

// A watch stream is authorised again while it lasts: a widened view ends it with an `access`
// event, after which the consumer starts over with a snapshot of the new view; a revoked
// token ends it for good.
func TestWatchReauthorised(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	enc, _ := codec.NewEncoder("")
	watchers, _ := NewWatchers(enc, WithWatchBuffer(100))
	deltaLog, _ := changelog.New("ep", changelog.WithMaxChanges(1000))
	h.Listen(deltaLog.Append, watchers.Publish)
	authz := &revocable{}
	authz.grant.Store(&auth.Access{Subject: "t", Namespaces: map[string]bool{"a": true}})
	handler := testkit.Must(New(h, WithAuthorizer(authz), WithDeltaLog(deltaLog, enc), WithWatch(watchers, time.Second),
		WithReauthorize(50*time.Millisecond)))
	srv := httptest.NewServer(handler)
	defer srv.Close()
	h.Apply(engine.Listing(brokerIn("a", "x"), brokerIn("b", "x")))

	snapshots := make(chan mesh.Snapshot, 10)
	ends := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go consumer.Follow(ctx, srv.URL, "t", nil, consumer.Stream{
		Snapshot: func(s mesh.Snapshot) error { snapshots <- s; return nil },
		Delta:    func([]byte) error { return nil },
		OnError:  func(err error) bool { ends <- err; return false },
	})
	brokersOf := func(s mesh.Snapshot) int { return len(s.Mesh.Brokers) }
	if s := <-snapshots; brokersOf(s) != 1 {
		t.Fatalf("first view: %d brokers, want the one in a", brokersOf(s))
	}
	authz.grant.Store(&auth.Access{Subject: "t", All: true})
	select {
	case s := <-snapshots:
		if brokersOf(s) != 2 {
			t.Fatalf("widened view: %d brokers, want both", brokersOf(s))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the widened view never came")
	}
	authz.grant.Store(nil)
	select {
	case err := <-ends:
		var status consumer.ErrStatus
		if !errors.As(err, &status) || status.Code != http.StatusUnauthorized {
			t.Fatalf("after revocation: %v, want 401 on reconnecting", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the revocation")
	}
}
