package manifests

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

func TestDecodeFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		want  []string // "key@line"
		check func(t *testing.T, objs []Object)
	}{
		{"multi.yaml", []string{
			"eventing.knative.dev/Broker/shop/orders@2",
			"/Service/default/a@12", // namespace defaults like kubectl's
			"/Service/other/b@15",
			"apiextensions.k8s.io/CustomResourceDefinition//pingsources.sources.knative.dev@19", // cluster-scoped
		}, func(t *testing.T, objs []Object) {
			if got := objs[2].GetAnnotations()["created"]; got != "2024-01-01" {
				t.Errorf("timestamps stay strings: got %q", got)
			}
			spec := objs[3].Object["spec"].(map[string]any)
			if !reflect.DeepEqual(spec["versions"], spec["copy"]) {
				t.Errorf("alias not resolved: %v vs %v", spec["versions"], spec["copy"])
			}
		}},
		{"object.json", []string{"eventing.knative.dev/Trigger/shop/t@1"}, func(t *testing.T, objs []Object) {
			spec := objs[0].Object["spec"].(map[string]any)
			if spec["retries"] != int64(3) || spec["ratio"] != 0.5 || spec["on"] != true {
				t.Errorf("scalars: %#v", spec)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/decode/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, engine.RefOf(o.Unstructured).String()+"@"+itoa(o.Line))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("objects\n got %q\nwant %q", got, tt.want)
			}
			tt.check(t, objs)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, input, want string }{
		{"unclosed flow mapping", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n", "line 3:"},
		{"unclosed flow list", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nbad: [\n", "line 6: did not find expected node content"},
		{"stray colon", "apiVersion: v1\nkind: Service\nmetadata: a: b\n", "line 3: mapping values are not allowed"},
		{"tab indentation", "apiVersion: v1\nkind: X\nmetadata:\n\tname: a\n", "line 4:"},
		{"not a mapping", "- a\n- b\n", "line 1: a manifest must be a mapping, not a list"},
		{"no apiVersion", "kind: Service\nmetadata: {name: a}\n", "line 1: apiVersion is required"},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", "kind is required"},
		{"no name", "---\napiVersion: v1\nkind: Service\nmetadata: {}\n", "line 2: Service: metadata.name is required"},
		{"second document", "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\n", "line 5: B: metadata.name is required"},
		{"label not a string", "apiVersion: v1\nkind: S\nmetadata: {name: a, labels: {n: 1}}\n", "metadata.labels: n: want a string, got int64 (quote it)"},
		{"duplicate key", "apiVersion: v1\nkind: S\nkind: T\nmetadata: {name: a}\n", "line 3: key \"kind\" appears twice"},
		{"non-string key", "apiVersion: v1\nkind: S\nmetadata: {name: a}\nspec: {[1]: x}\n", "line 4: mapping keys must be strings"},
		{"list items", "apiVersion: v1\nkind: List\nitems: {a: b}\n", "List: items must be a list"},
		{"bad list item", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: S\n", "line 4: S: metadata.name is required"},
		{"alias bomb", bomb(), "too many values"},
		{"name MQTT cannot carry", "apiVersion: v1\nkind: S\nmetadata: {name: 'wild#card+name'}\n", `line 1: S "wild#card+name": metadata.name: a lowercase RFC 1123 subdomain`},
		{"name with capitals", "apiVersion: v1\nkind: S\nmetadata: {name: Orders}\n", `S "Orders": metadata.name`},
		{"namespace with a dot", "apiVersion: v1\nkind: S\nmetadata: {name: a, namespace: a.b}\n", `S a: metadata.namespace "a.b": must not contain dots`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func bomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: S\nmetadata: {name: a}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzDecode: any input either fails with an error or yields valid objects that survive a
// JSON round trip unchanged (so the engine and the source's change detection see stable data).
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"multi.yaml", "object.json"} {
		data, err := os.ReadFile("testdata/decode/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: S, metadata: {name: a}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" || o.Line < 1 {
				t.Fatalf("invalid object accepted: %v line %d", o.Object, o.Line)
			}
			raw, err := json.Marshal(o.Object)
			if err != nil {
				t.Fatalf("decoded object does not encode: %v", err)
			}
			var back map[string]any
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := json.Marshal(back)
			if string(again) != string(raw) {
				t.Fatalf("JSON round trip changed the object:\n%s\n%s", raw, again)
			}
		}
	})
}
