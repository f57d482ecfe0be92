package kube

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// The harness serves the Knative kinds: a Broker and an EventType written through the API read
// back, and the channel and source CRDs carry the labels the mesh discovers them by.
func TestKnativeAPIServer(t *testing.T) {
	cfg := Start(t)
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	brokers := client.Resource(schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"})
	if _, err := brokers.Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": map[string]any{"name": "orders"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventTypes := client.Resource(schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1beta2", Resource: "eventtypes"})
	if _, err := eventTypes.Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType", "metadata": map[string]any{"name": "created"},
		"spec": map[string]any{"type": "order.created", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := eventTypes.Namespace("default").Get(ctx, "created", metav1.GetOptions{})
	if err != nil || got.Object["spec"].(map[string]any)["type"] != "order.created" {
		t.Fatalf("event type %v: %v", got, err)
	}
	crds := client.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for selector, want := range map[string]string{
		"messaging.knative.dev/subscribable=true": "inmemorychannels.messaging.knative.dev",
		"duck.knative.dev/source=true":            "pingsources.sources.knative.dev",
	} {
		list, err := crds.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, crd := range list.Items {
			found = found || crd.GetName() == want
		}
		if !found {
			t.Errorf("no CRD %s labelled %s", want, selector)
		}
	}
}
