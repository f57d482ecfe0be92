package engine

import (
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A source is an object of any namespaced kind whose CRD is labelled
// duck.knative.dev/source=true: it provides the EventTypes of its namespace whose type its
// CRD's registry.knative.dev/eventTypes annotation lists, and sends to its spec.sink. Its
// objects are read as every undeclared kind's are (kind_subscriber.go).
var sourceRole = Kind{
	Name:      "source",
	Find:      FindByCRDLabel,
	CRDLabel:  LabelSource,
	Verbs:     readVerbs,
	Entity:    mesh.KindSource,
	HasEntity: true,
	render: func(e *Engine, ref ObjectRef) (any, bool) {
		if !e.isSource(ref) {
			return nil, false
		}
		g, types := e.generics[ref], e.kinds[ref.groupKind()].eventTypes
		provided := make([]string, 0)
		for _, t := range types {
			for et := range e.eventTypesByNsType[nsType{ref.Namespace, t}].Keys() {
				provided = append(provided, et.ref.NamespacedName())
			}
		}
		slices.Sort(provided)
		return &mesh.Source{Namespace: ref.Namespace, Name: ref.Name, UID: g.uid, Labels: e.scratchMap(0, g.labels),
			Annotations: e.scratchMap(1, g.annotations), Group: ref.Group, Kind: ref.Kind,
			ProvidedEventTypeTypes: orEmpty(types), ProvidedEventTypes: slices.Compact(provided),
			Sink: gknn(g.sink), Graph: e.graphOf(ref)}, true
	},
}

func (e *Engine) isSource(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.source && e.generics[ref] != nil
}

func (e *Engine) indexSource(ref ObjectRef, types []string) {
	for _, t := range types {
		addRef(e.sourcesByNsType, nsType{ref.Namespace, t}, ref)
	}
}

func (e *Engine) unindexSource(ref ObjectRef, types []string) {
	for _, t := range types {
		removeRef(e.sourcesByNsType, nsType{ref.Namespace, t}, ref)
	}
}
