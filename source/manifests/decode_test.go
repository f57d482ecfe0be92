package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
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
		{"alias bomb", bomb(), "expands to more than 1048576 values"},
		{"name MQTT cannot carry", "apiVersion: v1\nkind: S\nmetadata: {name: 'wild#card+name'}\n", `line 1: S "wild#card+name": metadata.name: a lowercase RFC 1123 subdomain`},
		{"name with capitals", "apiVersion: v1\nkind: S\nmetadata: {name: Orders}\n", `S "Orders": metadata.name`},
		{"namespace with a dot", "apiVersion: v1\nkind: S\nmetadata: {name: a, namespace: a.b}\n", `S a: metadata.namespace "a.b": must not contain dots`},
		// Kinds, groups and versions as the API server judges them: a kind with control
		// characters would reach entity keys, event types and terminals.
		{"kind with escapes", "apiVersion: v1\nkind: \"Src\\e]0;owned\\a\\e[2J\"\nmetadata: {name: a}\n", `kind "Src\x1b]0;owned\a\x1b[2J": may have mixed case`},
		{"kind with a newline", "apiVersion: v1\nkind: \"A\\nforged\"\nmetadata: {name: a}\n", `kind "A\nforged"`},
		{"group with a space", "apiVersion: a b/v1\nkind: S\nmetadata: {name: a}\n", `apiVersion "a b/v1": the group`},
		{"version not a label", "apiVersion: example.com/V_1\nkind: S\nmetadata: {name: a}\n", `apiVersion "example.com/V_1": the version`},
		{"CRD kind with escapes", crd("sources.example.com", "\"Ping\\e[2J\"", "pings", "v1"), `spec.names.kind "Ping\x1b[2J"`},
		{"CRD kind with C1", crd("sources.example.com", "\"Ping\\u009b2J\"", "pings", "v1"), `spec.names.kind "Ping\u009b2J"`},
		{"CRD group without a dot", crd("sources", "Ping", "pings", "v1"), `spec.group "sources": should be a domain with at least one dot`},
		{"CRD plural with capitals", crd("sources.example.com", "Ping", "Pings", "v1"), `spec.names.plural "Pings"`},
		{"CRD version not a label", crd("sources.example.com", "Ping", "pings", "1.0"), `spec.versions[0].name "1.0"`},
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

// crd is a CustomResourceDefinition manifest with these group, kind (YAML), plural and version.
func crd(group, kind, plural, version string) string {
	return "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: " + strings.ToLower(plural) + "." + group + "}\n" +
		"spec:\n  group: " + group + "\n  names: {kind: " + kind + ", plural: " + plural + "}\n  scope: Namespaced\n" +
		"  versions: [{name: '" + version + "', served: true, storage: true}]\n"
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
		var invalid InvalidObjects
		if err != nil && !errors.As(err, &invalid) {
			if objs != nil {
				t.Fatalf("objects returned with a stream error: %v", err)
			}
			return
		}
		for _, e := range invalid {
			if e.Line < 1 {
				t.Fatalf("an invalid object without its line: %v", e)
			}
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

// A file's invalid objects are left out, each reported with its line and every problem it
// has, while its valid objects are read.
func TestInvalidObjectsAreLeftOutAndAllReported(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxStringBytes+1)
	input := `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: good, namespace: shop}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: no-broker, namespace: shop}
spec: {subscriber: {uri: "http://x"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: spec-text, namespace: shop}
spec: "hello"
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: UPPER_case, namespace: shop}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: labelled, namespace: shop, labels: {team: "not a label value!"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: huge, namespace: shop, annotations: {a: "` + long + `"}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: bad-filter, namespace: shop}
spec: {broker: b, subscriber: {uri: "http://x"}, filters: [{cesql: "type = "}]}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: no-channel, namespace: shop}
spec: {}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: good, namespace: shop}
spec: {broker: good, subscriber: {uri: "http://x"}}
`
	objs, err := Decode([]byte(input))
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if want := []string{"Broker/good", "Trigger/good"}; !reflect.DeepEqual(got, want) {
		t.Errorf("valid objects %q, want %q", got, want)
	}
	var invalid InvalidObjects
	if !errors.As(err, &invalid) {
		t.Fatalf("error %v, want InvalidObjects", err)
	}
	want := []string{
		"line 5: Trigger no-broker: spec.broker: Required value",
		"line 10: Broker spec-text: spec: Invalid value: \"hello\": must be an object",
		"line 15: Broker \"UPPER_case\": metadata.name",
		"line 19: Broker labelled: metadata.labels: Invalid value: \"not a label value!\"",
		"line 25: a string of 1048577 bytes",
		"line 27: Trigger bad-filter: spec: Invalid value: \"filters\"",
		"line 32: Subscription no-channel: spec.channel: Required value",
	}
	if len(invalid) != len(want) {
		t.Fatalf("%d invalid objects, want %d: %v", len(invalid), len(want), invalid)
	}
	for i, w := range want {
		if !strings.Contains(invalid[i].Error(), w) {
			t.Errorf("invalid object %d: %q, want it to contain %q", i, invalid[i].Error(), w)
		}
	}
}

// The expansion budget is the file's, not each document's: many documents each under a
// document's share cannot add up to gigabytes. Aliases of a long string count their bytes.
func TestExpansionBoundedPerFile(t *testing.T) {
	t.Parallel()
	doc := func(i int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: v1\nkind: S\nmetadata: {name: a%d}\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n", i)
		for j := 1; j < 5; j++ { // 10^5 values per document
			fmt.Fprintf(&b, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", j, j, j-1, j-1, j-1, j-1, j-1, j-1, j-1, j-1, j-1, j-1)
		}
		return b.String()
	}
	var many []string
	for i := range 60 {
		many = append(many, doc(i))
	}
	longString := "apiVersion: v1\nkind: S\nmetadata: {name: a}\ns: &s " + strings.Repeat("y", 1<<20) +
		"\nl: [" + strings.Repeat("*s, ", 100) + "*s]\n"
	for name, input := range map[string]string{"60 documents of 100,000 values": strings.Join(many, "---\n"),
		"a 1 MiB string aliased 100 times": longString} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		objs, err := Decode([]byte(input))
		runtime.ReadMemStats(&after)
		var se *SyntaxError
		if objs != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "the file expands to more than") {
			t.Errorf("%s: %d objects, error %v; want the file refused", name, len(objs), err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 100<<20 {
			t.Errorf("%s: decoding allocated %d MiB, want under 100", name, grew>>20)
		}
	}
}

// A file is measured before it is decoded: one flow sequence of 15.9 MB ("[0,0,…]", under the
// 16 MiB file limit) is refused by the pre-scan having allocated next to nothing (before: the
// parser's nodes took 1.6 GiB before the values were counted), and the largest file the
// pre-scan lets through costs the parser a bounded amount (the bound docs/operations.md states).
func TestFileMeasuredBeforeDecoding(t *testing.T) { // not parallel: it measures the allocations of the process
	sequence := func(values int) []byte {
		b := make([]byte, 0, 2*values+2)
		b = append(b, '[')
		for range values - 1 {
			b = append(b, '0', ',')
		}
		return append(b, '0', ']', '\n')
	}
	decode := func(data []byte) (uint64, error) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(data)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	huge := sequence(15_900_000 / 2)
	allocated, err := decode(huge)
	if err == nil || !strings.Contains(err.Error(), "split it into smaller") {
		t.Errorf("a %d-byte sequence: %v, want it refused before decoding", len(huge), err)
	}
	if allocated > 1<<20 {
		t.Errorf("refusing a %d-byte sequence allocated %d KiB, want under 1 MiB", len(huge), allocated>>10)
	}
	largest := sequence(maxStructure - 4) // '[', the commas, the line ends and a "---" line count
	// Many documents each within the bound are fine: the parser holds one at a time.
	many := append(append(append([]byte{}, largest...), "---\n"...), largest...)
	if _, err := Decode(many); err == nil || strings.Contains(err.Error(), "split it") {
		t.Errorf("two documents within the bound: %v, want them decoded (and refused as no mapping)", err)
	}
	allocated, err = decode(largest)
	if err == nil || strings.Contains(err.Error(), "split it") {
		t.Errorf("the largest sequence the pre-scan admits: %v, want it decoded (and refused as no mapping)", err)
	}
	t.Logf("decoding %d values (%d bytes) allocated %d MiB in all", maxStructure-4, len(largest), allocated>>20)
	if allocated > maxDecodeBytes {
		t.Errorf("decoding the largest document the pre-scan admits allocated %d MiB, want at most %d", allocated>>20, maxDecodeBytes>>20)
	}
}
