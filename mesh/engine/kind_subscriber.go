package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A subscriber is the object a Trigger or Subscription delivers to (spec.subscriber.ref), of
// any kind: its backstage.io/kubernetes-id label is the id that consumes. Objects of every
// undeclared kind are read this way, whatever roles their kind plays (channel, source,
// subscriber): their metadata and spec.sink.ref.
var subscriberRole = Kind{
	Name:  "subscriber",
	Find:  FindByReference,
	Verbs: readVerbs,
	read: func(u *unstructured.Unstructured) (any, error) {
		g := parseGeneric(u)
		return &g, nil
	},
	edges: func(u *unstructured.Unstructured) []edgeSpec {
		if sink, ok := destination(u.Object, u.GetNamespace(), mesh.RoleSink, -1, "spec", "sink"); ok {
			return []edgeSpec{sink}
		}
		return nil
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertGeneric(ref, obj.(*genericObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteGeneric(ref) },
}

// genericObject is an object of an undeclared kind: a possible channel, source or subscriber.
type genericObject struct {
	objectMeta
	sink *ObjectRef
}

func parseGeneric(u *unstructured.Unstructured) genericObject {
	g := genericObject{objectMeta: metaOf(u)}
	if s, ok := kref(u.Object, u.GetNamespace(), "spec", "sink", "ref"); ok {
		g.sink = &s
	}
	return g
}

func (e *Engine) upsertGeneric(ref ObjectRef, g *genericObject) {
	_, existed := e.generics[ref]
	e.generics[ref] = g
	if !existed {
		addRef(e.genericsByKind, ref.groupKind(), ref)
		if k := e.kinds[ref.groupKind()]; k != nil && k.source {
			e.indexSource(ref, k.eventTypes)
		}
		e.refreshConsumersOf(ref)
	}
	e.mark(mesh.KindSubscribable, ref)
	e.mark(mesh.KindSource, ref)
}

func (e *Engine) deleteGeneric(ref ObjectRef) {
	if _, ok := e.generics[ref]; !ok {
		return
	}
	if k := e.kinds[ref.groupKind()]; k != nil && k.source {
		e.unindexSource(ref, k.eventTypes)
	}
	delete(e.generics, ref)
	removeRef(e.genericsByKind, ref.groupKind(), ref)
	e.refreshConsumersOf(ref)
	e.mark(mesh.KindSubscribable, ref)
	e.mark(mesh.KindSource, ref)
}
