package consumer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func inCluster(cluster string, s mesh.Snapshot) mesh.Snapshot { s.Cluster = cluster; return s }

func ofCluster(cluster string, c mesh.Change) mesh.Change { c.Cluster = cluster; return c }

// Each cluster's changes go to its own replica, which resyncs from its own cluster's
// snapshots; the same key in two clusters is two entities; a cluster without snapshots, or a
// snapshot of another cluster, is refused.
func TestFleetKeepsClustersApart(t *testing.T) {
	t.Parallel()
	snaps := map[string]*scriptedSnapshots{
		"east": {answers: []mesh.Snapshot{inCluster("east", snapshot("e1", 2, "orders", "east-only"))}},
		"west": {answers: []mesh.Snapshot{inCluster("west", snapshot("w1", 5, "orders"))}},
		"liar": {answers: []mesh.Snapshot{inCluster("east", snapshot("e1", 2, "orders"))}},
	}
	f := NewFleet(func(cluster string) (Snapshotter, error) {
		s, ok := snaps[cluster]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownCluster, cluster)
		}
		return s, nil
	})
	ctx := context.Background()
	for _, c := range []mesh.Change{
		ofCluster("east", change("e1", 3, mesh.OpAdded, "new")),      // a gap: east's snapshot first
		ofCluster("west", change("w1", 6, mesh.OpDeleted, "orders")), // west's own
		ofCluster("east", change("e1", 3, mesh.OpAdded, "new")),      // a duplicate
	} {
		if err := f.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Apply(ctx, ofCluster("north", change("n1", 1, mesh.OpAdded, "x"))); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("a change of an unknown cluster: %v", err)
	}
	if err := f.Apply(ctx, ofCluster("liar", change("e1", 3, mesh.OpAdded, "x"))); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("a snapshot of another cluster: %v", err)
	}
	if got := f.Clusters(); !reflect.DeepEqual(got, []string{"east", "liar", "west"}) {
		t.Fatalf("clusters %v", got)
	}
	want := map[string]mesh.Position{"east": {Epoch: "e1", Sequence: 3}, "liar": {}, "west": {Epoch: "w1", Sequence: 6}}
	if got := f.Positions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("positions %v", got)
	}
	got := map[string]bool{}
	for id := range f.Entities() {
		got[id.Cluster+"|"+id.Key.Name] = true
	}
	if want := map[string]bool{"east|orders": true, "east|east-only": true, "east|new": true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("entities %v", got)
	}
	if snaps["west"].calls != 1 || snaps["east"].calls != 1 {
		t.Fatalf("snapshots taken: east %d, west %d", snaps["east"].calls, snaps["west"].calls)
	}
}

// A fleet's listing goes to each cluster's replica, and each one is placed on its own.
func TestFleetPlacesAListingPerCluster(t *testing.T) {
	t.Parallel()
	f := NewFleet(func(cluster string) (Snapshotter, error) {
		return &scriptedSnapshots{answers: []mesh.Snapshot{inCluster(cluster, snapshot("s", 1))}}, nil
	})
	for _, c := range []mesh.Change{
		ofCluster("east", change("e1", 4, mesh.OpAdded, "orders")),
		ofCluster("west", change("w1", 2, mesh.OpAdded, "orders")),
		ofCluster("east", change("e1", 6, mesh.OpAdded, "returns")),
	} {
		if err := f.Hold(c); err != nil {
			t.Fatal(err)
		}
	}
	f.Listed()
	want := map[string]mesh.Position{"east": {Epoch: "e1", Sequence: 6}, "west": {Epoch: "w1", Sequence: 2}}
	if got := f.Positions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	if n := len(f.Entities()); n != 3 {
		t.Fatalf("%d entities, want 3", n)
	}
}
