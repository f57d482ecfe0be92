package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestRules(t *testing.T) {
	t.Parallel()
	for _, c := range testkit.RuleCases(t, "testdata/rules/*.yaml") {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			runRuleCase(t, c)
		})
	}
}

func runRuleCase(t *testing.T, c testkit.RuleCase) {
	e := New("test")
	var problems []string
	upsert := func(objs []map[string]any) []mesh.Change {
		var all []mesh.Change
		for _, o := range objs {
			changes, err := e.upsert(&unstructured.Unstructured{Object: o})
			if err != nil {
				problems = append(problems, err.Error())
			}
			all = append(all, changes...)
		}
		return all
	}
	upsert(c.Objects)
	checkEntities(t, "initial objects", e.Snapshot(), c.Want, c.Absent, c.Shows)
	for i, s := range c.Steps {
		changes := upsert(s.Apply)
		for _, key := range s.Delete {
			ref, err := mesh.ParseKey(key)
			if err != nil {
				t.Fatal(err)
			}
			changes = append(changes, e.remove(ObjectRef(ref))...)
		}
		if s.Changes != nil {
			got := []string{}
			for _, ch := range changes {
				if c.Shows(ch.Kind) {
					got = append(got, ch.Kind.String()+" "+ch.Op.String()+" "+ch.Key.String())
				}
			}
			if !reflect.DeepEqual(got, s.Changes) && !(len(got) == 0 && len(s.Changes) == 0) {
				t.Errorf("step %d: changes\n got %q\nwant %q", i, got, s.Changes)
			}
		}
		checkEntities(t, fmt.Sprintf("step %d", i), e.Snapshot(), s.Want, s.Absent, c.Shows)
		// Every step must also agree with a from-scratch build.
		if got, _ := e.Snapshot().EventMesh(); !reflect.DeepEqual(got, rebuildFromEngine(t, c, i)) {
			t.Errorf("step %d: engine differs from rebuild", i)
		}
	}
	for _, want := range c.Problems {
		if !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Errorf("problems %q do not mention %q", problems, want)
		}
	}
	if c.Problems == nil && len(problems) > 0 {
		t.Errorf("unexpected problems: %q", problems)
	}
}

// rebuildFromEngine replays the case's objects up to step i into the oracle.
func rebuildFromEngine(t *testing.T, c testkit.RuleCase, step int) mesh.EventMesh {
	objs := map[ObjectRef]*unstructured.Unstructured{}
	add := func(list []map[string]any) {
		for _, o := range list {
			u := &unstructured.Unstructured{Object: o}
			objs[RefOf(u)] = u
		}
	}
	add(c.Objects)
	for _, s := range c.Steps[:step+1] {
		add(s.Apply)
		for _, key := range s.Delete {
			ref, _ := mesh.ParseKey(key)
			delete(objs, ObjectRef(ref))
		}
	}
	list := make([]*unstructured.Unstructured, 0, len(objs))
	for _, u := range objs {
		list = append(list, u)
	}
	return rebuild(list)
}

func checkEntities(t *testing.T, when string, snap Snapshot, want map[string]map[string]string, absent []string,
	shows func(mesh.EntityKind) bool) {
	t.Helper()
	entities := map[string]json.RawMessage{}
	snap.Each(func(en Entity) bool {
		if shows(en.Kind) {
			entities[en.Key.String()] = en.JSON
		}
		return true
	})
	testkit.CheckEntities(t, when, entities, want, absent, false)
}
