package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// For random meshes whose references cross namespaces, a caller who sees namespace "a" only
// gets entities of "a" and nothing in them that names "b": no event type of "b" in
// providedEventTypes, no sink or reference in "b", no Backstage id that only objects of "b"
// carry. Everything else is as in the whole view, and a follower (a mirror of the leader's
// stream, scoped with its own engine's ids) renders the same view byte for byte.
func TestNamespacedViewShowsNothingOfOtherNamespaces(t *testing.T) {
	t.Parallel()
	sees := func(ns string) bool { return ns == "a" }
	for seed := range uint64(60) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g := &generator{rnd: newRand(seed)}
			e := New("v")
			objects := map[ObjectRef]*unstructured.Unstructured{}
			for range 40 + g.rnd.IntN(80) {
				u := g.object()
				if labels := u.GetLabels(); labels[LabelBackstageID] != "" && u.GetNamespace() == "b" {
					labels[LabelBackstageID] = "b-" + labels[LabelBackstageID] // ids only b's objects carry
					u.SetLabels(labels)
				}
				objects[RefOf(u)] = u
				e.upsert(u)
			}
			idsInA := map[string]bool{}
			for _, u := range objects {
				if id := u.GetLabels()[LabelBackstageID]; id != "" && u.GetNamespace() == "a" {
					idsInA[id] = true
				}
			}
			snap := e.Snapshot()
			view := viewOf(t, snap, sees)
			whole := viewOf(t, snap, nil)

			for _, b := range view.Brokers {
				checkNames(t, "broker "+b.Name, b.Namespace, b.ProvidedEventTypes)
			}
			for _, s := range view.Subscribables {
				checkNames(t, "channel "+s.Name, s.Namespace, s.ProvidedEventTypes)
			}
			for _, s := range view.Sources {
				checkNames(t, "source "+s.Name, s.Namespace, s.ProvidedEventTypes)
				if s.Sink != nil && s.Sink.Namespace != "a" {
					t.Errorf("source %s: sink in %s", s.Name, s.Sink.Namespace)
				}
			}
			for _, et := range view.EventTypes {
				if et.Namespace != "a" {
					t.Errorf("event type %s/%s in the view", et.Namespace, et.Name)
				}
				if et.Reference != nil && et.Reference.Namespace != "a" {
					t.Errorf("event type %s: reference in %s", et.Name, et.Reference.Namespace)
				}
				for _, id := range et.ConsumedBy {
					if !idsInA[id] {
						t.Errorf("event type %s: consumer id %q carried by no object of a", et.Name, id)
					}
				}
			}
			// Nothing more is hidden than that.
			for _, et := range whole.EventTypes {
				if et.Namespace != "a" {
					continue
				}
				i := slices.IndexFunc(view.EventTypes, func(v mesh.EventType) bool { return v.Name == et.Name })
				var want []string
				for _, id := range et.ConsumedBy {
					if idsInA[id] {
						want = append(want, id)
					}
				}
				if i < 0 || !slices.Equal(view.EventTypes[i].ConsumedBy, orEmpty(want)) {
					t.Errorf("event type %s: view %v, want consumers %v", et.Name, view.EventTypes, want)
				}
			}

			follower := New("follower-own")
			for _, u := range objects {
				follower.upsert(u)
			}
			mirrored := mirrorOfJSON(t, snap).Snapshot().WithIDsOf(follower.Snapshot())
			var fromLeader, fromFollower bytes.Buffer
			_ = snap.WriteEventMeshOf(&fromLeader, sees)
			_ = mirrored.WriteEventMeshOf(&fromFollower, sees)
			if !bytes.Equal(fromLeader.Bytes(), fromFollower.Bytes()) {
				t.Errorf("the follower's view differs:\n%s\n%s", fromLeader.Bytes(), fromFollower.Bytes())
			}
		})
	}
}

func checkNames(t *testing.T, what, namespace string, names []string) {
	t.Helper()
	if namespace != "a" {
		t.Errorf("%s of namespace %s in the view", what, namespace)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "a/") {
			t.Errorf("%s provides %s", what, n)
		}
	}
}

func viewOf(t *testing.T, s Snapshot, sees func(string) bool) mesh.EventMesh {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteEventMeshOf(&buf, sees); err != nil {
		t.Fatal(err)
	}
	var m mesh.EventMesh
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	return m
}
