package cluster

import (
	"slices"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
)

// --namespaces and --label-selector: objects outside the scope are not in the mesh and their
// changes emit nothing; a subscriber is found whatever its labels beyond its Backstage id.
func TestScopeByNamespaceAndLabel(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	red := func(o map[string]any) map[string]any {
		o["metadata"].(map[string]any)["labels"] = map[string]any{"team": "red"}
		return o
	}
	c.mustApply(red(broker("a", "orders")), broker("a", "unlabelled"), red(broker("b", "orders")),
		red(eventType("a", "created", "order.created", "orders", "")), service("a", "svc", "billing"),
		red(trigger("a", "bill", "orders", "svc")))
	r := startSource(t, cfg, kube.WithNamespaces("a"), kube.WithLabelSelector("team=red"))
	got := keysOf(entitiesOf(r.hub.Snapshot()))
	// The Service is not labelled team=red but the Trigger names it: kinds named by edges are
	// not filtered (they only describe the selected objects), so it is there, as a sink.
	want := []string{"broker eventing.knative.dev/Broker/a/orders", "eventtype eventing.knative.dev/EventType/a/created",
		"sink /Service/a/svc", "trigger eventing.knative.dev/Trigger/a/bill"}
	if !slices.Equal(got, want) {
		t.Fatalf("entities %q, want %q", got, want)
	}
	if ids := consumedBy(t, r, "a", "created"); !slices.Equal(ids, []string{"billing"}) {
		t.Errorf("consumedBy %q: the subscriber needs only its Backstage label", ids)
	}
	r.takeChanges()

	// Out of scope: another namespace, or no team=red. Then one write in scope as a barrier.
	c.mustApply(red(eventType("b", "created", "order.created", "orders", "")), broker("a", "second"))
	u, err := c.apply(red(eventType("a", "paid", "order.paid", "orders", "")))
	if err != nil {
		t.Fatal(err)
	}
	r.waitSeen(u)
	r.settle(2)
	if got, want := r.takeChanges(), []string{
		"eventtype added eventing.knative.dev/EventType/a/paid", "broker updated eventing.knative.dev/Broker/a/orders",
	}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	// Losing the label leaves the scope: a deletion as far as the mesh is concerned.
	c.mustApply(eventType("a", "paid", "order.paid", "orders", ""))
	r.settle(2)
	if got, want := r.takeChanges(), []string{
		"eventtype deleted eventing.knative.dev/EventType/a/paid", "broker updated eventing.knative.dev/Broker/a/orders",
	}; !slices.Equal(got, want) {
		t.Errorf("changes on unlabelling %q, want %q", got, want)
	}
}

// A source kind whose CRD is installed after start-up: its informer starts when the CRD
// appears (no restart, no discovery lag) and stops when it is deleted, taking its entities.
func TestSourceCRDInstalledAfterStart(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	c.mustApply(eventType("shop", "tick", "dev.example.widget.tick", "none", ""))
	r := startSource(t, cfg)
	r.takeChanges()

	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.example.dev",
			"labels":      map[string]any{engine.LabelSource: "true"},
			"annotations": map[string]any{engine.AnnotationEventType: `[{"type":"dev.example.widget.tick"}]`}},
		"spec": map[string]any{"group": "example.dev", "scope": "Namespaced",
			"names": map[string]any{"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
			"versions": []any{
				map[string]any{"name": "v1alpha1", "served": true, "storage": false, "schema": openSchema()},
				map[string]any{"name": "v1", "served": true, "storage": true, "schema": openSchema()},
			}},
	}
	stored, err := c.apply(crd)
	if err != nil {
		t.Fatal(err)
	}
	c.waitServed(stored)
	c.mustApply(map[string]any{"apiVersion": "example.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": "shop"},
		"spec":     map[string]any{"sink": map[string]any{"ref": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"}}}})
	r.settle(1)
	if got, want := r.takeChanges(), []string{"source added example.dev/Widget/shop/w"}; !slices.Equal(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
	m, err := r.hub.Snapshot().EventMesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Sources) != 1 || !slices.Equal(m.Sources[0].ProvidedEventTypes, []string{"shop/tick"}) || m.Sources[0].Sink == nil {
		t.Errorf("sources %+v", m.Sources)
	}
	c.remove(engine.ObjectRef{Group: engine.GroupCRD, Kind: engine.KindCRDObject, Name: "widgets.example.dev"})
	r.settle(1)
	if got, want := r.takeChanges(), []string{"source deleted example.dev/Widget/shop/w"}; !slices.Equal(got, want) {
		t.Errorf("changes on CRD deletion %q, want %q", got, want)
	}
}

func openSchema() map[string]any {
	return map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
}
