package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// ruleCase is one table entry of testdata/rules/*.yaml: objects to start from, then steps.
// want maps an entity key to the fields it must have, as JSON text (fields not listed are not
// checked; an omitted field reads as null);
// absent lists keys that must not exist; changes lists every change a step must emit, in order,
// as "kind op key".
type ruleCase struct {
	Name    string                       `json:"name"`
	Objects []map[string]any             `json:"objects"`
	Want    map[string]map[string]string `json:"want"`
	Absent  []string                     `json:"absent"`
	Steps   []struct {
		Apply   []map[string]any             `json:"apply"`
		Delete  []string                     `json:"delete"`
		Changes []string                     `json:"changes"`
		Want    map[string]map[string]string `json:"want"`
		Absent  []string                     `json:"absent"`
	} `json:"steps"`
	Problems []string `json:"problems"` // substrings the problems reported for objects must contain
}

func TestRules(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cases []ruleCase
		if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, c := range cases {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml")+"/"+c.Name, func(t *testing.T) {
				t.Parallel()
				runRuleCase(t, c)
			})
		}
	}
}

func runRuleCase(t *testing.T, c ruleCase) {
	e := New("test")
	var problems []string
	upsert := func(objs []map[string]any) []mesh.Change {
		var all []mesh.Change
		for _, o := range objs {
			changes, err := e.Upsert(&unstructured.Unstructured{Object: o})
			if err != nil {
				problems = append(problems, err.Error())
			}
			all = append(all, changes...)
		}
		return all
	}
	upsert(c.Objects)
	checkEntities(t, "initial objects", e.Snapshot(), c.Want, c.Absent)
	for i, s := range c.Steps {
		changes := upsert(s.Apply)
		for _, key := range s.Delete {
			ref, err := mesh.ParseKey(key)
			if err != nil {
				t.Fatal(err)
			}
			changes = append(changes, e.Delete(ObjectRef(ref))...)
		}
		if s.Changes != nil {
			got := make([]string, len(changes))
			for j, ch := range changes {
				got[j] = ch.Kind.String() + " " + ch.Op.String() + " " + ch.Key.String()
			}
			if !reflect.DeepEqual(got, s.Changes) && !(len(got) == 0 && len(s.Changes) == 0) {
				t.Errorf("step %d: changes\n got %q\nwant %q", i, got, s.Changes)
			}
		}
		checkEntities(t, fmt.Sprintf("step %d", i), e.Snapshot(), s.Want, s.Absent)
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
func rebuildFromEngine(t *testing.T, c ruleCase, step int) mesh.EventMesh {
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

func checkEntities(t *testing.T, when string, snap Snapshot, want map[string]map[string]string, absent []string) {
	t.Helper()
	got := map[string]map[string]json.RawMessage{}
	snap.Each(func(en Entity) bool {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(en.JSON, &fields); err != nil {
			t.Fatal(err)
		}
		got[en.Key.String()] = fields
		return true
	})
	for key, fields := range want {
		entity, ok := got[key]
		if !ok {
			t.Errorf("%s: entity %s missing; have %v", when, key, keys(got))
			continue
		}
		for name, w := range fields {
			if !jsonEqual(entity[name], json.RawMessage(w)) {
				t.Errorf("%s: %s.%s = %s, want %s", when, key, name, entity[name], w)
			}
		}
	}
	for _, key := range absent {
		if _, ok := got[key]; ok {
			t.Errorf("%s: entity %s exists, want absent", when, key)
		}
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if a == nil {
		a = json.RawMessage("null")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
