package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// scriptedSnapshots answers snapshots from a list, repeating the last.
type scriptedSnapshots struct {
	answers []mesh.Snapshot
	calls   int
}

func (s *scriptedSnapshots) Snapshot(context.Context) (mesh.Snapshot, error) {
	a := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	return a, nil
}

func broker(name string) mesh.Broker {
	return mesh.Broker{Namespace: "ns", Name: name, ProvidedEventTypes: []string{}}
}

func snapshot(epoch string, seq uint64, names ...string) mesh.Snapshot {
	m := mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}}
	for _, n := range names {
		m.Brokers = append(m.Brokers, broker(n))
	}
	return mesh.Snapshot{Epoch: epoch, Sequence: seq, Mesh: mesh.Mesh{EventMesh: m}}
}

func change(epoch string, seq uint64, op mesh.Op, name string) mesh.Change {
	data, _ := json.Marshal(broker(name))
	return mesh.Change{Epoch: epoch, Sequence: seq, Kind: mesh.KindBroker, Op: op,
		Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: data}
}

// unknownKind is a change of a kind this version does not know, as codec.Decode returns it.
func unknownKind(epoch string, seq uint64) mesh.Change {
	c := change(epoch, seq, mesh.OpAdded, "gizmo")
	c.Kind, c.Key = mesh.KindUnknown, mesh.MustParseKey("example.dev/Gizmo/ns/gizmo")
	return c
}

func names(t *testing.T, r *Replica) []string {
	t.Helper()
	m, err := r.Mesh()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, b := range m.Brokers {
		out = append(out, b.Name)
	}
	return out
}

func TestReplicaOrdering(t *testing.T) {
	t.Parallel()
	snaps := &scriptedSnapshots{answers: []mesh.Snapshot{
		snapshot("A", 5, "a", "b"),                             // cold start
		snapshot("A", 8, "b", "c", "e"),                        // after the gap before 9
		snapshot("B", 0),                                       // the new epoch, before its first event
		snapshot("B", 1, "x"), snapshot("B", 3, "x", "y", "z"), // lagging, then caught up
	}}
	r := NewReplica(snaps)
	ctx := context.Background()
	steps := []struct {
		c       mesh.Change
		want    []string
		seq     uint64
		resyncs int
	}{
		{change("A", 4, mesh.OpAdded, "b"), []string{"a", "b"}, 5, 1},      // cold: snapshot includes it
		{change("A", 6, mesh.OpAdded, "c"), []string{"a", "b", "c"}, 6, 1}, // in order
		{change("A", 6, mesh.OpAdded, "c"), []string{"a", "b", "c"}, 6, 1}, // duplicate dropped
		{change("A", 7, mesh.OpDeleted, "a"), []string{"b", "c"}, 7, 1},
		{change("A", 9, mesh.OpAdded, "d"), []string{"b", "c", "d", "e"}, 9, 2}, // gap: snapshot at 8, then 9
		{unknownKind("A", 10), []string{"b", "c", "d", "e"}, 10, 2},             // a newer kind: skipped, counted
		{change("A", 11, mesh.OpDeleted, "d"), []string{"b", "c", "e"}, 11, 2},  // so no gap here
		{change("B", 1, mesh.OpAdded, "x"), []string{"x"}, 1, 3},                // new epoch
		{change("B", 4, mesh.OpAdded, "w"), []string{"w", "x", "y", "z"}, 4, 4}, // gap, snapshot lags once
	}
	for i, s := range steps {
		if err := r.Apply(ctx, s.c); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		epoch, seq := r.Position()
		if got := names(t, r); !reflect.DeepEqual(got, s.want) || seq != s.seq || epoch != s.c.Epoch || r.Resyncs() != s.resyncs {
			t.Fatalf("step %d (%s-%d): replica %v at %s-%d after %d resyncs; want %v at %d after %d",
				i, s.c.Epoch, s.c.Sequence, got, epoch, seq, r.Resyncs(), s.want, s.seq, s.resyncs)
		}
	}
}

func TestHTTPSnapshots(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/mesh" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(snapshot("E", 3, "a"))
	}))
	defer srv.Close()
	s, err := HTTPSnapshots(srv.URL+"/", "tok", nil).Snapshot(context.Background())
	if err != nil || s.Epoch != "E" || s.Sequence != 3 || len(s.Mesh.Brokers) != 1 {
		t.Fatalf("snapshot %+v, %v", s, err)
	}
	if _, err := HTTPSnapshots(srv.URL, "", nil).Snapshot(context.Background()); err == nil {
		t.Fatal("a 401 was taken for a snapshot")
	} else if want := fmt.Sprint(http.StatusUnauthorized); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not say %s", err, want)
	}
}

// A cold replica holds a listing of latest states and, once it is listed, stands at the
// highest sequence of their epoch: the next change applies in order. A listing of two epochs
// has no position (the first change resyncs); a replica with a position ignores states.
func TestReplicaPlacesAListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		before    *mesh.Change // applied before the listing
		states    []mesh.Change
		wantEpoch string
		wantSeq   uint64
		wantNames []string // after the listing
		next      mesh.Change
		wantAfter []string // after next
		resyncs   int
		snap      *mesh.Snapshot // what a resync gets (default B-2 with x)
	}{
		{name: "one epoch",
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("A", 7, mesh.OpUpdated, "b"), unknownKind("A", 9), change("A", 5, mesh.OpAdded, "c")},
			wantEpoch: "A", wantSeq: 9, wantNames: []string{"a", "b", "c"},
			next: change("A", 10, mesh.OpDeleted, "a"), wantAfter: []string{"b", "c"}},
		{name: "a deleted state is no entity",
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("A", 4, mesh.OpDeleted, "b")},
			wantEpoch: "A", wantSeq: 3, wantNames: []string{"a"},
			next: change("A", 4, mesh.OpDeleted, "b"), wantAfter: []string{"a"}},
		{name: "two epochs: no position",
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("B", 1, mesh.OpAdded, "b")},
			wantNames: []string{"a", "b"},
			next:      change("B", 2, mesh.OpAdded, "c"), wantAfter: []string{"x"}, resyncs: 1},
		{name: "a duplicate of a listed state is dropped",
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("A", 9, mesh.OpAdded, "b")},
			wantEpoch: "A", wantSeq: 9, wantNames: []string{"a", "b"},
			next: change("A", 9, mesh.OpAdded, "b"), wantAfter: []string{"a", "b"}},
		{name: "a state the listing lacked takes a snapshot", // c-8's write retried after b-9's
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("A", 9, mesh.OpAdded, "b")},
			wantEpoch: "A", wantSeq: 9, wantNames: []string{"a", "b"},
			next: change("A", 8, mesh.OpAdded, "c"), wantAfter: []string{"a", "b", "c"}, resyncs: 1,
			snap: ptr(snapshot("A", 9, "a", "b", "c"))},
		{name: "a delete the listing lacked takes a snapshot",
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a"), change("A", 9, mesh.OpAdded, "b")},
			wantEpoch: "A", wantSeq: 9, wantNames: []string{"a", "b"},
			next: change("A", 5, mesh.OpDeleted, "a"), wantAfter: []string{"b"}, resyncs: 1,
			snap: ptr(snapshot("A", 9, "b"))},
		{name: "a replica with a position ignores states",
			before:    ptr(change("B", 1, mesh.OpAdded, "c")),
			states:    []mesh.Change{change("A", 3, mesh.OpAdded, "a")},
			wantEpoch: "B", wantSeq: 2, wantNames: []string{"x"}, // the snapshot taken for the change
			next: change("B", 3, mesh.OpAdded, "y"), wantAfter: []string{"x", "y"}, resyncs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshot("B", 2, "x")
			if tc.snap != nil {
				snap = *tc.snap
			}
			r := NewReplica(&scriptedSnapshots{answers: []mesh.Snapshot{snap}})
			if tc.before != nil {
				if err := r.Apply(ctx, *tc.before); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range tc.states {
				r.Hold(c)
			}
			r.Listed()
			if epoch, seq := r.Position(); epoch != tc.wantEpoch || seq != tc.wantSeq {
				t.Fatalf("listed at %s-%d, want %s-%d", epoch, seq, tc.wantEpoch, tc.wantSeq)
			}
			select {
			case <-r.Loaded():
				if tc.wantEpoch == "" {
					t.Fatal("loaded without a position")
				}
			default:
				if tc.wantEpoch != "" {
					t.Fatal("not loaded at a position")
				}
			}
			if got := names(t, r); !reflect.DeepEqual(got, tc.wantNames) {
				t.Fatalf("listed %v, want %v", got, tc.wantNames)
			}
			if err := r.Apply(ctx, tc.next); err != nil {
				t.Fatal(err)
			}
			if got := names(t, r); !reflect.DeepEqual(got, tc.wantAfter) || r.Resyncs() != tc.resyncs {
				t.Fatalf("after %s-%d: %v after %d resyncs, want %v after %d", tc.next.Epoch, tc.next.Sequence, got, r.Resyncs(), tc.wantAfter, tc.resyncs)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
