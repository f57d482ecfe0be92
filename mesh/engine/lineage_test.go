package engine

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
)

// TestLineageGraphEntitiesOnly: the lineage speaks of the mesh's entities. An object the mesh
// holds no entity for sends nothing and is no EventType's Broker or channel; a sink entity
// passes nothing on, whatever its spec says (testdata/lineage/entities-only.yaml).
func TestLineageGraphEntitiesOnly(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/lineage/entities-only.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var objects []map[string]any
	if err := yaml.Unmarshal(data, &objects); err != nil {
		t.Fatal(err)
	}
	e := New("lineage")
	for _, o := range objects {
		if _, err := e.upsert(&unstructured.Unstructured{Object: o}); err != nil {
			t.Fatal(err)
		}
	}
	g := e.LineageGraph()
	for _, k := range []string{"sources.example.dev/TestSource/a/lone", "messaging.example.dev/TestChannel/a/c"} {
		if _, ok := g.Node(mesh.MustParseKey(k)); ok {
			t.Errorf("%s has no entity, but the lineage graph holds it", k)
		}
	}
	if n, ok := g.Node(mesh.MustParseKey("sources.example.dev/TestSource/a/named")); !ok || n.Kind != mesh.KindSink || len(n.Graph.Edges) > 0 {
		t.Errorf("the named TestSource: %+v (found %v), want a sink without edges", n, ok)
	}

	broker := mesh.MustParseKey("eventing.knative.dev/Broker/a/b")
	who, err := lineage.Ask(g, lineage.Query{Target: &broker}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(who.Senders) > 0 {
		t.Errorf("senders of the Broker: %+v, want none (neither TestSource is an entity that sends)", who.Senders)
	}

	ends := func(name string) []string {
		et := mesh.Key{Group: mesh.GroupEventing, Kind: "EventType", Namespace: "a", Name: name}
		ans, err := lineage.Ask(g, lineage.Query{EventType: &et}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ans.Paths {
			out = append(out, p.End+" at "+p.Keys[len(p.Keys)-1])
		}
		return out
	}
	if got, want := ends("to-nothing"), []string{"dangling at messaging.example.dev/TestChannel/a/c"}; !slices.Equal(got, want) {
		t.Errorf("to-nothing: %q, want %q", got, want)
	}
	if got, want := ends("to-b"), []string{"sink at sources.example.dev/TestSource/a/named"}; !slices.Equal(got, want) {
		t.Errorf("to-b: %q, want %q", got, want)
	}
}

// The unmatched EventTypes lineage's broken query names are kept incrementally: after any
// change (objects, deletes, relists, restarts) they equal a computation from scratch.
func TestMatchingFollowsChanges(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		g := &generator{rnd: newRand(100 + seed)}
		e := New("m")
		objects := map[ObjectRef]*unstructured.Unstructured{}
		for step := range 400 {
			switch r := g.rnd.IntN(20); {
			case r == 0 && len(objects) > 0:
				ref := g.pick(objects)
				delete(objects, ref)
				e.remove(ref)
			case r == 1:
				var keep []*unstructured.Unstructured
				for ref, u := range objects {
					if g.rnd.IntN(3) == 0 {
						delete(objects, ref)
					} else {
						keep = append(keep, u)
					}
				}
				listing := Upserts(keep...)
				listing.Replace = true
				e.Apply(listing)
			case r == 2:
				e.Restart(fmt.Sprintf("m-%d", step))
			default:
				u := g.object()
				objects[RefOf(u)] = u
				e.upsert(u)
			}
			if g.rnd.IntN(3) > 0 {
				continue // marks pile up between asks, as they do between a page's questions
			}
			e.matching.refresh(e)
			want := map[ObjectRef]bool{}
			for ref, et := range e.eventTypes {
				if et.reference != nil && !e.takes(*et.reference, et) {
					want[ref] = true
				}
			}
			got := map[ObjectRef]bool{}
			for ref := range e.matching.unmatched {
				got[ref] = true
			}
			if !maps.Equal(got, want) {
				t.Fatalf("seed %d step %d: unmatched %v, from scratch %v", seed, step, got, want)
			}
		}
	}
}
