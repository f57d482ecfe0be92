package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

// A channel is an object of any namespaced kind whose CRD is labelled
// messaging.knative.dev/subscribable=true: it provides the EventTypes that reference it, and
// Subscriptions consume from it. Its objects are read as every undeclared kind's are
// (kind_subscriber.go).
var channelRole = Kind{
	Name:      "channel",
	Find:      FindByCRDLabel,
	CRDLabel:  LabelSubscribable,
	Verbs:     readVerbs,
	Entity:    mesh.KindSubscribable,
	HasEntity: true,
	render: func(e *Engine, ref ObjectRef) (any, bool) {
		if !e.isChannel(ref) {
			return nil, false
		}
		g := e.generics[ref]
		return &mesh.Subscribable{Namespace: ref.Namespace, Name: ref.Name, UID: g.uid, Labels: e.scratchMap(0, g.labels),
			Annotations: e.scratchMap(1, g.annotations), Group: ref.Group, Kind: ref.Kind,
			ProvidedEventTypes: namesOf(e.eventTypesByProvider[ref]), Graph: e.graphOf(ref)}, true
	},
}

func (e *Engine) isChannel(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.subscribable && e.generics[ref] != nil
}
