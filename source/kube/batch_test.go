package kube

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A burst keeps each object's latest change, in the order objects first appeared: an object
// deleted and created again is an update, one created and deleted again a delete.
func TestChangeBatchKeepsEachObjectsLatest(t *testing.T) {
	t.Parallel()
	obj := func(kind, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("eventing.knative.dev/v1")
		u.SetKind(kind)
		u.SetNamespace("ns")
		u.SetName(name)
		return u
	}
	var b changeBatch
	b.put(obj("Trigger", "t"), true)
	b.put(obj("EventType", "e"), false)
	b.put(obj("Trigger", "t"), false) // re-created
	b.put(obj("Broker", "b"), false)
	b.put(obj("Broker", "b"), true) // created and gone again
	b.put(obj("EventType", "gone"), true)
	names := func(us []*unstructured.Unstructured) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.GetKind()+"/"+u.GetName())
		}
		return out
	}
	upserts, deletes := b.take()
	if got, want := names(upserts), []string{"Trigger/t", "EventType/e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("upserts %q, want %q", got, want)
	}
	if got, want := names(deletes), []string{"Broker/b", "EventType/gone"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deletes %q, want %q", got, want)
	}
	if u, d := b.take(); len(u)+len(d) > 0 {
		t.Errorf("taken twice: %d %d", len(u), len(d))
	}
}
