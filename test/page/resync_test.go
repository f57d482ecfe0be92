package page_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page"
)

// scripted is a broadcaster whose answers the test decides: the snapshot GET /v1/getEventMesh
// serves, what GET /v1/deltas answers, and each event of each GET /v1/watch stream.
type scripted struct {
	t   *testing.T
	enc *codec.Encoder

	mu        sync.Mutex
	snap      mesh.Snapshot
	snapshots int
	refuse    []int         // statuses GET /v1/getEventMesh answers first, one per request
	bearers   []string      // the Authorization headers GET /v1/getEventMesh saw
	deltas    []mesh.Change // nil: 410 Gone
	asked     []string      // the deltas requests' queries
	streams   chan *stream
}

type stream struct {
	lastEventID, epoch string
	events             chan string
}

func newScripted(t *testing.T) (*scripted, string) {
	enc, err := codec.NewEncoder("/scripted")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{t: t, enc: enc, streams: make(chan *stream, 16)}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page.Handler())
	mux.HandleFunc("GET "+mesh.PathGetEventMesh, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		snap := s.snap
		s.bearers = append(s.bearers, r.Header.Get("Authorization"))
		if len(s.refuse) > 0 {
			status := s.refuse[0]
			s.refuse = s.refuse[1:]
			s.mu.Unlock()
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(mesh.Problem{Error: http.StatusText(status)})
			return
		}
		s.snapshots++
		s.mu.Unlock()
		w.Header().Set(mesh.HeaderEpoch, snap.Epoch)
		w.Header().Set(mesh.HeaderSequence, strconv.FormatUint(snap.Sequence, 10))
		json.NewEncoder(w).Encode(snap.Mesh)
	})
	mux.HandleFunc("GET "+mesh.PathDeltas, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.asked = append(s.asked, r.URL.RawQuery)
		if s.deltas == nil {
			w.WriteHeader(http.StatusGone)
			json.NewEncoder(w).Encode(mesh.Problem{Error: "gone", Reason: mesh.GoneExpired})
			return
		}
		var batch []json.RawMessage
		for _, c := range s.deltas {
			batch = append(batch, s.event(c))
		}
		json.NewEncoder(w).Encode(batch)
	})
	mux.HandleFunc("GET "+mesh.PathWatch, func(w http.ResponseWriter, r *http.Request) {
		st := &stream{lastEventID: r.Header.Get(mesh.HeaderLastEventID), epoch: r.URL.Query().Get(mesh.ParamEpoch), events: make(chan string, 16)}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		s.streams <- st
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-st.events:
				fmt.Fprint(w, ev)
				w.(http.Flusher).Flush()
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *scripted) event(c mesh.Change) []byte {
	data, err := s.enc.Structured(c)
	if err != nil {
		s.t.Fatal(err)
	}
	return data
}

func (s *scripted) serve(snap mesh.Snapshot, deltas []mesh.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap, s.deltas = snap, deltas
}

// next is the page's next watch stream, which must resume where the page should be.
func (s *scripted) next(lastEventID, epoch string) *stream {
	s.t.Helper()
	select {
	case st := <-s.streams:
		if st.lastEventID != lastEventID || st.epoch != epoch {
			s.t.Fatalf("the page resumed with Last-Event-ID %q, ?epoch=%q; want %q, %q", st.lastEventID, st.epoch, lastEventID, epoch)
		}
		return st
	case <-time.After(30 * time.Second):
		s.t.Fatalf("the page opened no watch stream (want Last-Event-ID %s, epoch %s)", lastEventID, epoch)
		return nil
	}
}

func (s *scripted) send(st *stream, c mesh.Change) {
	st.events <- fmt.Sprintf("event: %s\nid: %s\ndata: %s\n\n", mesh.SSEDelta, mesh.StreamID(c.Epoch, c.Sequence), s.event(c))
}

func eventType(ns, name string, consumers ...string) mesh.EventType {
	return mesh.EventType{Namespace: ns, Name: name, Type: "com.example." + name, ConsumedBy: consumers,
		Reference: &mesh.GroupKindNamespacedName{Group: mesh.GroupEventing, Kind: "Broker", Namespace: ns, Name: "orders"}}
}

func added(epoch string, seq uint64, v any) mesh.Change {
	raw, _ := json.Marshal(v)
	c := mesh.Change{Epoch: epoch, Sequence: seq, Op: mesh.OpAdded, Entity: raw}
	switch e := v.(type) {
	case mesh.EventType:
		c.Kind, c.Key = mesh.KindEventType, e.Key()
	case mesh.Broker:
		c.Kind, c.Key = mesh.KindBroker, e.Key()
	case mesh.Element:
		c.Kind, c.Key = mesh.KindTrigger, e.Key()
	}
	return c
}

func has(id string) string {
	return fmt.Sprintf(`!!document.querySelector('#graph .node[data-id=%q]')`, id)
}

func stat(t *testing.T, ctx context.Context, name string) int {
	return eval[int](t, ctx, "window.meshPage.stats."+name)
}

// TestPageResyncs scripts a broadcaster through every path of the resync algorithm and
// checks what the page asks and draws: resuming the watch from its snapshot, a gap that
// GET /v1/deltas fills, one it cannot (410: a new snapshot), an `access` event (a new
// snapshot, the stream opened again from it), a new epoch opening mid-stream (rebuilt from the
// stream alone), and a delta of an unknown epoch past its start (a new snapshot).
func TestPageResyncs(t *testing.T) {
	t.Parallel()
	s, base := newScripted(t)
	orders := func(provided ...string) mesh.Broker {
		return mesh.Broker{Namespace: "shop", Name: "orders", ProvidedEventTypes: provided}
	}
	s.serve(mesh.Snapshot{Epoch: "e1", Sequence: 2, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{orders("shop/a")},
		EventTypes: []mesh.EventType{eventType("shop", "a", "x")}}}}, nil)
	ctx := browser(t)
	navigate(t, ctx, base+"/")
	st := s.next("e1-2", "e1")
	waitFor(t, ctx, "the snapshot drawn", 30*time.Second, has("consumer:x"))

	// In order: applied.
	s.send(st, added("e1", 3, eventType("shop", "b", "y")))
	s.send(st, added("e1", 4, orders("shop/a", "shop/b")))
	waitFor(t, ctx, "deltas 3 and 4 drawn", 30*time.Second, has("consumer:y")+` && !!document.querySelector('path[data-from="broker:eventing.knative.dev/Broker/shop/orders"][data-to="eventtype:eventing.knative.dev/EventType/shop/b"]')`)

	// A gap the log no longer holds (410): a new snapshot, and the stream resumed from it.
	s.serve(mesh.Snapshot{Epoch: "e1", Sequence: 6, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{orders("shop/a", "shop/c")},
		EventTypes: []mesh.EventType{eventType("shop", "a", "x"), eventType("shop", "c", "z")}}}}, nil)
	s.send(st, added("e1", 6, eventType("shop", "c", "z")))
	st = s.next("e1-6", "e1")
	waitFor(t, ctx, "the snapshot after the 410", 30*time.Second, has("consumer:z")+" && !"+has("consumer:y"))
	if got := stat(t, ctx, "resyncs"); got != 1 {
		t.Errorf("%d resyncs after the 410, want 1", got)
	}

	// A gap the log fills: the missing delta from GET /v1/deltas, no snapshot.
	snapshots := stat(t, ctx, "snapshots")
	s.serve(mesh.Snapshot{}, []mesh.Change{added("e1", 7, eventType("shop", "d", "w"))})
	s.send(st, added("e1", 8, eventType("shop", "e", "v")))
	waitFor(t, ctx, "the gap filled", 30*time.Second, has("consumer:w")+" && "+has("consumer:v"))
	if got := stat(t, ctx, "catchUps"); got != 1 || stat(t, ctx, "snapshots") != snapshots {
		t.Errorf("catch-ups %d (want 1), snapshots %d (want %d)", got, stat(t, ctx, "snapshots"), snapshots)
	}
	s.mu.Lock()
	asked := strings.Join(s.asked, " ")
	s.mu.Unlock()
	if asked != "epoch=e1&since=4 epoch=e1&since=6" {
		t.Errorf("the page asked GET /v1/deltas?%s", asked)
	}

	// access: the view changed; a snapshot of the new view, the stream opened again from it.
	s.serve(mesh.Snapshot{Epoch: "e2", Sequence: 1, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{EventTypes: []mesh.EventType{eventType("ops", "only", "u")}}}}, nil)
	st.events <- "event: access\ndata: {\"reason\":\"access changed\"}\n\n"
	st = s.next("e2-1", "e2")
	waitFor(t, ctx, "the new view", 30*time.Second, has("consumer:u")+" && !"+has("consumer:x"))

	// A new epoch opening mid-stream: rebuilt from its deltas, no snapshot.
	snapshots = stat(t, ctx, "snapshots")
	s.send(st, added("e3", 1, mesh.Broker{Namespace: "fresh", Name: "start"}))
	waitFor(t, ctx, "the new epoch rebuilt from the stream", 30*time.Second, has("broker:eventing.knative.dev/Broker/fresh/start")+" && !"+has("consumer:u"))
	if got := stat(t, ctx, "snapshots"); got != snapshots {
		t.Errorf("%d snapshots, want %d: the epoch opening is enough", got, snapshots)
	}

	// Kinds the page does not draw (a Trigger) or does not know (a newer broadcaster's) are
	// skipped, their sequence counted: the next delta applies without a resync.
	trigger := mesh.Element{Namespace: "fresh", Name: "t", Group: mesh.GroupEventing, Kind: "Trigger"}
	s.send(st, added("e3", 2, trigger))
	unknown := added("e3", 3, trigger)
	unknown.Kind = mesh.KindUnknown
	s.send(st, unknown)
	s.send(st, added("e3", 4, mesh.Broker{Namespace: "fresh", Name: "next"}))
	waitFor(t, ctx, "the delta after the skipped kinds", 30*time.Second, has("broker:eventing.knative.dev/Broker/fresh/next"))
	if got := stat(t, ctx, "snapshots"); got != snapshots {
		t.Errorf("%d snapshots, want %d: kinds the page skips are no gap", got, snapshots)
	}

	// A delta of an epoch the page does not know, past its start: a new snapshot.
	s.serve(mesh.Snapshot{Epoch: "e4", Sequence: 9, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{{Namespace: "late", Name: "joiner"}}}}}, nil)
	s.send(st, added("e4", 9, mesh.Broker{Namespace: "late", Name: "joiner"}))
	s.next("e4-9", "e4")
	waitFor(t, ctx, "the snapshot of the unknown epoch", 30*time.Second, has("broker:eventing.knative.dev/Broker/late/joiner")+" && !"+has("broker:eventing.knative.dev/Broker/fresh/start"))
	if got := eval[string](t, ctx, "document.body.dataset.epoch + '/' + document.body.dataset.seq"); got != "e4/9" {
		t.Errorf("the page is at %s, want e4/9", got)
	}
}

// TestPageAsksForAnotherToken: a 403 (the token may see no namespace) asks for another token,
// which the page then presents; a 503 (still loading) is waited out without asking.
func TestPageAsksForAnotherToken(t *testing.T) {
	t.Parallel()
	s, base := newScripted(t)
	s.serve(mesh.Snapshot{Epoch: "e1", Sequence: 1, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{{Namespace: "shop", Name: "orders"}}}}}, nil)
	s.mu.Lock()
	s.refuse = []int{http.StatusServiceUnavailable, http.StatusForbidden}
	s.mu.Unlock()
	ctx := browser(t)
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the token form saying 403", 30*time.Second, `!document.getElementById('login').hidden && document.getElementById('login-why').textContent.includes('403')`)
	eval[bool](t, ctx, `(() => { document.getElementById('token').value = 'another'; document.getElementById('login').requestSubmit(); return true; })()`)
	s.next("e1-1", "e1")
	waitFor(t, ctx, "the mesh with the other token", 30*time.Second, has("broker:eventing.knative.dev/Broker/shop/orders"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := strings.Join(s.bearers, ","); got != ",,Bearer another" {
		t.Errorf("GET /v1/getEventMesh saw Authorization %q, want none, none, then the token given", got)
	}
}
