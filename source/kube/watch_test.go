package kube

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func crd(t testing.TB, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseCRD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want crdInfo
	}{
		{"the storage version, labels", `
metadata: {name: pingsources.sources.knative.dev, labels: {duck.knative.dev/source: "true"}}
spec: {group: sources.knative.dev, scope: Namespaced, names: {kind: PingSource, plural: pingsources},
  versions: [{name: v1beta2, served: true}, {name: v1, served: true, storage: true}, {name: v2alpha1, served: true}, {name: v2, served: false}]}`,
			crdInfo{gk: engine.GroupKind{Group: "sources.knative.dev", Kind: "PingSource"},
				resource:   schema.GroupVersionResource{Group: "sources.knative.dev", Version: "v1", Resource: "pingsources"},
				namespaced: true, roleLabelled: true}},
		{"EventType: stored at v1beta2, v1beta3 newer", `
metadata: {name: eventtypes.eventing.knative.dev}
spec: {group: eventing.knative.dev, scope: Namespaced, names: {kind: EventType, plural: eventtypes},
  versions: [{name: v1beta3, served: true, storage: false}, {name: v1beta2, served: true, storage: true}, {name: v1beta1, served: true}]}`,
			crdInfo{gk: engine.GroupKind{Group: "eventing.knative.dev", Kind: "EventType"},
				resource:   schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1beta2", Resource: "eventtypes"},
				namespaced: true}},
		{"storage version not served: the newest served", `
spec: {group: example.dev, scope: Namespaced, names: {kind: X, plural: xs},
  versions: [{name: v1, served: false, storage: true}, {name: v1beta1, served: true}, {name: v2alpha1, served: true}]}`,
			crdInfo{gk: engine.GroupKind{Group: "example.dev", Kind: "X"},
				resource: schema.GroupVersionResource{Group: "example.dev", Version: "v1beta1", Resource: "xs"}, namespaced: true}}, // Kubernetes' order: beta before alpha
		{"channel, cluster-scoped", `
metadata: {name: x.example.dev, labels: {messaging.knative.dev/subscribable: "true"}}
spec: {group: example.dev, scope: Cluster, names: {kind: X, plural: xs}, versions: [{name: v1, served: true}]}`,
			crdInfo{gk: engine.GroupKind{Group: "example.dev", Kind: "X"},
				resource: schema.GroupVersionResource{Group: "example.dev", Version: "v1", Resource: "xs"}, roleLabelled: true}},
		{"nothing served", `
spec: {group: example.dev, scope: Namespaced, names: {kind: X, plural: xs}, versions: [{name: v1, served: false}]}`, crdInfo{}},
		{"no plural", `
spec: {group: example.dev, names: {kind: X}, versions: [{name: v1, served: true}]}`, crdInfo{}},
		{"wrong types", `
spec: {group: 1, names: [], versions: "v1"}`, crdInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCRD(crd(t, tt.doc)); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The transform keeps what the mesh and the source read, and drops the bulk.
func TestTransform(t *testing.T) {
	t.Parallel()
	w := &kindWatch{gk: gkCRD}
	full := crd(t, `
metadata: {name: a.b, labels: {l: "1"}, annotations: {x: "y", kubectl.kubernetes.io/last-applied-configuration: "{}"}, managedFields: [{manager: kubectl}]}
spec: {group: b, scope: Namespaced, names: {kind: A, plural: as}, conversion: {strategy: None},
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]}
status: {conditions: [{type: Established}]}`)
	out, err := w.transform(full)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out.(*unstructured.Unstructured).Object)
	want := `{"metadata":{"annotations":{"x":"y"},"labels":{"l":"1"},"name":"a.b"},"spec":{"group":"b","names":{"kind":"A","plural":"as"},"scope":"Namespaced","versions":[{"name":"v1","served":true,"storage":true}]}}`
	if string(got) != want {
		t.Errorf("CRD\n got %s\nwant %s", got, want)
	}

	// Any other object is kept as the engine reads it: the decoded object is let go.
	trigger := &kindWatch{gk: engine.GroupKind{Group: "eventing.knative.dev", Kind: "Trigger"}}
	obj := crd(t, `
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t, namespace: n, resourceVersion: "9", managedFields: [{manager: kubectl}]}
spec: {broker: b, subscriber: {ref: {apiVersion: v1, kind: Service, name: s}}, delivery: {retry: 3}}
status: {conditions: [{type: Ready}]}`)
	out, err = trigger.transform(obj)
	if p, ok := out.(*engine.Parsed); err != nil || !ok || !reflect.DeepEqual(p, engine.Parse(obj)) {
		t.Errorf("trigger read as %#v (%v), want %#v", out, err, engine.Parse(obj))
	}
	if again, _ := trigger.transform(out); again != out {
		t.Error("an object already read is not passed through as it is")
	}
}

// FuzzParseCRD: whatever a CRD object holds, reading and trimming it never panics, and a
// usable result names a kind, a plural and a served version.
func FuzzParseCRD(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"a.b","labels":{"duck.knative.dev/source":"true"}},"spec":{"group":"b","scope":"Namespaced","names":{"kind":"A","plural":"as"},"versions":[{"name":"v1","served":true}]}}`))
	f.Add([]byte(`{"spec":{"versions":[1,"x",{"name":2,"served":"yes"}],"names":null}}`))
	f.Add([]byte(`{"spec":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if json.Unmarshal(data, &u.Object) != nil || u.Object == nil {
			return
		}
		info := parseCRD(u)
		if info != (crdInfo{}) && (info.gk.Kind == "" || info.resource.Resource == "" || info.resource.Version == "") {
			t.Fatalf("half-usable %+v", info)
		}
		w := &kindWatch{gk: gkCRD}
		if _, err := w.transform(u); err != nil {
			t.Fatal(err)
		}
	})
}
