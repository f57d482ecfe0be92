package testkit

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// RuleCase is one entry of the relation-rule tables (mesh/engine/testdata/rules/*.yaml):
// objects to start from, then steps. Want maps an entity key to the fields it must have, as
// JSON text (fields not listed are not checked; an omitted field reads as null); Absent lists
// keys that must not exist; a step's Changes lists every change it must emit, in order, as
// "kind op key". The engine's tests and the cluster tests replay the same tables.
type RuleCase struct {
	Name     string                       `json:"name"`
	Objects  []map[string]any             `json:"objects"`
	Want     map[string]map[string]string `json:"want"`
	Absent   []string                     `json:"absent"`
	Steps    []RuleStep                   `json:"steps"`
	Problems []string                     `json:"problems"` // substrings the problems reported for objects must contain
	// Graph: the case is about the whole event graph, so the entities and changes of every
	// kind count; otherwise only the upstream kinds' (the relation rules of the upstream model).
	Graph bool `json:"graph"`
}

// Shows reports whether the case looks at entities of kind.
func (c RuleCase) Shows(kind mesh.EntityKind) bool { return c.Graph || kind.Upstream() }

// RuleStep is one step of a RuleCase.
type RuleStep struct {
	Apply   []map[string]any             `json:"apply"`
	Delete  []string                     `json:"delete"`
	Changes []string                     `json:"changes"`
	Want    map[string]map[string]string `json:"want"`
	Absent  []string                     `json:"absent"`
}

// RuleCases reads every table matching glob, in file and table order; each case's Name
// becomes file/case.
func RuleCases(t testing.TB, glob string) []RuleCase {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files at %s: %v", glob, err)
	}
	var out []RuleCase
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cases []RuleCase
		if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, c := range cases {
			c.Name = strings.TrimSuffix(filepath.Base(file), ".yaml") + "/" + c.Name
			out = append(out, c)
		}
	}
	return out
}

// CheckEntities asserts that entities (key → entity JSON) have the fields want lists and none
// of the keys in absent. With uidAssigned, a wanted uid is only checked to be present (an API
// server assigns its own).
func CheckEntities(t testing.TB, when string, entities map[string]json.RawMessage, want map[string]map[string]string, absent []string, uidAssigned bool) {
	t.Helper()
	got := map[string]map[string]json.RawMessage{}
	for key, raw := range entities {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatalf("%s: entity %s: %v", when, key, err)
		}
		got[key] = fields
	}
	for key, fields := range want {
		entity, ok := got[key]
		if !ok {
			t.Errorf("%s: entity %s missing; have %v", when, key, slices.Sorted(maps.Keys(got)))
			continue
		}
		for name, w := range fields {
			if name == "uid" && uidAssigned {
				if string(entity[name]) == `""` || entity[name] == nil {
					t.Errorf("%s: %s has no uid", when, key)
				}
				continue
			}
			if !JSONEqual(entity[name], json.RawMessage(w)) {
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

// JSONEqual compares two JSON texts by value; a nil a reads as null.
func JSONEqual(a, b json.RawMessage) bool {
	var x, y any
	if a == nil {
		a = json.RawMessage("null")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
