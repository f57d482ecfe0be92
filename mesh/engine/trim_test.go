package engine

import (
	"encoding/json"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Trimmed objects make exactly the changes whole ones make: two engines, one fed the
// property test's random objects (with the bulk a cluster adds), one their trimmed copies.
func TestTrimmedObjectsMakeTheSameMesh(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			g := &generator{rnd: newRand(seed)}
			whole, trimmed := New("trim"), New("trim")
			for step := range 400 {
				u := g.object()
				addBulk(u)
				c := u.DeepCopy()
				Trim(c)
				want, errW := whole.Apply([]*unstructured.Unstructured{u}, nil)
				got, errT := trimmed.Apply([]*unstructured.Unstructured{c}, nil)
				if fmt.Sprint(errW) != fmt.Sprint(errT) {
					t.Fatalf("step %d: errors %v / %v", step, errW, errT)
				}
				if a, b := changesJSON(t, want), changesJSON(t, got); a != b {
					t.Fatalf("step %d, %s:\nwhole   %s\ntrimmed %s", step, RefOf(u), a, b)
				}
			}
		})
	}
}

// Trim keeps what the engine reads and nothing else.
func TestTrim(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"trigger", `{"apiVersion":"eventing.knative.dev/v1","kind":"Trigger",
			"metadata":{"name":"t","namespace":"n","uid":"u","resourceVersion":"7","generation":3,"labels":{"a":"b"},
				"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","x":"y"},"managedFields":[{}],"ownerReferences":[{}]},
			"spec":{"broker":"b","filter":{"attributes":{"type":"t"}},"subscriber":{"ref":{"kind":"Service","name":"s"},"uri":"/x"},"delivery":{"retry":3}},
			"status":{"conditions":[]}}`,
			`{"apiVersion":"eventing.knative.dev/v1","kind":"Trigger","metadata":{"annotations":{"x":"y"},"labels":{"a":"b"},"name":"t","namespace":"n","resourceVersion":"7","uid":"u"},"spec":{"broker":"b","filter":{"attributes":{"type":"t"}},"subscriber":{"ref":{"kind":"Service","name":"s"}}}}`},
		{"broker: metadata only", `{"apiVersion":"eventing.knative.dev/v1","kind":"Broker","metadata":{"name":"b","namespace":"n","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},"spec":{"config":{"kind":"ConfigMap"}}}`,
			`{"apiVersion":"eventing.knative.dev/v1","kind":"Broker","metadata":{"name":"b","namespace":"n"}}`},
		{"a source: its sink", `{"apiVersion":"sources.knative.dev/v1","kind":"PingSource","metadata":{"name":"p","namespace":"n"},"spec":{"schedule":"* * * * *","data":"x","sink":{"ref":{"kind":"Broker","name":"b"},"uri":"/u"}}}`,
			`{"apiVersion":"sources.knative.dev/v1","kind":"PingSource","metadata":{"name":"p","namespace":"n"},"spec":{"sink":{"ref":{"kind":"Broker","name":"b"}}}}`},
		{"wrong types kept as they are", `{"apiVersion":"eventing.knative.dev/v1beta2","kind":"EventType","metadata":{"name":"e","namespace":"n"},"spec":{"type":7,"reference":"no","extra":1}}`,
			`{"apiVersion":"eventing.knative.dev/v1beta2","kind":"EventType","metadata":{"name":"e","namespace":"n"},"spec":{"reference":"no","type":7}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := json.Unmarshal([]byte(tt.in), &u.Object); err != nil {
				t.Fatal(err)
			}
			Trim(u)
			if got, _ := json.Marshal(u.Object); string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// addBulk adds what a cluster adds to objects and the mesh never reads.
func addBulk(u *unstructured.Unstructured) {
	u.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
	meta, _ := u.Object["metadata"].(map[string]any)
	if meta != nil {
		meta["managedFields"] = []any{map[string]any{"manager": "kubectl"}}
		meta["generation"] = int64(4)
	}
	if spec, ok := u.Object["spec"].(map[string]any); ok {
		spec["delivery"] = map[string]any{"retry": int64(3)}
	}
}

func changesJSON(t *testing.T, changes []mesh.Change) string {
	t.Helper()
	for i := range changes {
		changes[i].Epoch = "" // the two engines share it anyway
	}
	b, err := json.Marshal(changes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
