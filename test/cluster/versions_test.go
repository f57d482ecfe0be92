package cluster

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
)

// On a cluster whose EventType CRD is installed as shipped but with conversion strategy None
// (no webhook) and default pruning, a v1beta2 EventType read at v1beta3 loses its type and
// schema. The source reads EventTypes at the version the CRD stores (v1beta2), so the mesh
// keeps them.
func TestEventTypesReadAtTheStoredVersion(t *testing.T) {
	cfg := testkube.Start(t, testkube.AsShipped())
	c := newCluster(t, cfg)
	c.ensureNamespace("shop")
	et := eventType("shop", "created", "com.example.order.created", "orders", "an order was created")
	spec := et["spec"].(map[string]any)
	spec["schema"] = "https://example.com/schemas/order-created.json"
	spec["schemaData"] = `{"type":"object"}`
	c.mustApply(broker("shop", "orders"), et)

	// The setting is what it should be: the same object read at v1beta3 has lost all three.
	v1beta3 := schema.GroupVersionResource{Group: mesh.GroupEventing, Version: "v1beta3", Resource: "eventtypes"}
	u, err := c.client.Resource(v1beta3).Namespace("shop").Get(context.Background(), "created", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"type", "schema", "schemaData"} {
		if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", field); found {
			t.Fatalf("read at v1beta3, spec.%s survived: this API server does not prune, so the test shows nothing", field)
		}
	}

	r := startSource(t, cfg)
	m, err := r.hub.Snapshot().EventMesh()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.EventTypes) != 1 {
		t.Fatalf("event types %+v, want one", m.EventTypes)
	}
	got := m.EventTypes[0]
	if got.Type != "com.example.order.created" || got.SchemaURL == nil || *got.SchemaURL != spec["schema"] ||
		got.SchemaData == nil || *got.SchemaData != spec["schemaData"] || got.Reference == nil || got.Reference.Name != "orders" {
		t.Errorf("event type %+v: type, schema and reference should survive", got)
	}
}
