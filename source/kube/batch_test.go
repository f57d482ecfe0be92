package kube

import (
	"reflect"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
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
	put := func(u *unstructured.Unstructured, deleted bool) {
		if deleted {
			b.put(engine.RefOf(u), nil)
		} else {
			b.put(engine.RefOf(u), engine.Parse(u))
		}
	}
	put(obj("Trigger", "t"), true)
	put(obj("EventType", "e"), false)
	put(obj("Trigger", "t"), false) // re-created
	put(obj("Broker", "b"), false)
	put(obj("Broker", "b"), true) // created and gone again
	put(obj("EventType", "gone"), true)
	var upsertNames, deleteNames []string
	taken := b.take()
	for _, p := range taken.Upserts {
		upsertNames = append(upsertNames, p.Ref().Kind+"/"+p.Ref().Name)
	}
	for _, r := range taken.Deletes {
		deleteNames = append(deleteNames, r.Kind+"/"+r.Name)
	}
	if got, want := upsertNames, []string{"Trigger/t", "EventType/e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("upserts %q, want %q", got, want)
	}
	if got, want := deleteNames, []string{"Broker/b", "EventType/gone"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deletes %q, want %q", got, want)
	}
	if again := b.take(); again.Len() > 0 {
		t.Errorf("taken twice: %d %d", len(again.Upserts), len(again.Deletes))
	}
}
