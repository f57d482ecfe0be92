package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Brokers provide the EventTypes that reference them; Triggers consume from them.
var brokerKind = Kind{
	Name:      "Broker",
	GroupKind: gkBroker,
	Find:      FindAlways,
	Verbs:     readVerbs,
	Entity:    mesh.KindBroker,
	HasEntity: true,
	read: func(u *unstructured.Unstructured) (any, error) {
		m := metaOf(u)
		return &m, nil
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertBroker(ref, obj.(*objectMeta)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteBroker(ref) },
	render: func(e *Engine, ref ObjectRef) (any, bool) {
		m := e.brokers[ref]
		if m == nil {
			return nil, false
		}
		return &mesh.Broker{Namespace: ref.Namespace, Name: ref.Name, UID: m.uid, Labels: e.scratchMap(0, m.labels),
			Annotations: e.scratchMap(1, m.annotations), ProvidedEventTypes: namesOf(e.eventTypesByProvider[ref]), Graph: e.graphOf(ref)}, true
	},
}

func (e *Engine) upsertBroker(ref ObjectRef, m *objectMeta) {
	_, existed := e.brokers[ref]
	e.brokers[ref] = m
	e.mark(mesh.KindBroker, ref)
	if !existed {
		e.refreshConsumersOf(ref)
	}
}

func (e *Engine) deleteBroker(ref ObjectRef) {
	if _, ok := e.brokers[ref]; !ok {
		return
	}
	delete(e.brokers, ref)
	e.mark(mesh.KindBroker, ref)
	e.refreshConsumersOf(ref)
}
