package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

// A sink is an object of a kind the mesh has no declaration for (a Knative Service, a core
// Service, any Addressable) that an edge names and that is neither a channel nor a source: its
// entity says where it receives events and whether it is ready, nothing of its spec. Its
// objects are read as every undeclared kind's are (kind_subscriber.go).
var sinkRole = Kind{
	Name:      "sink",
	Find:      FindByReference,
	Verbs:     readVerbs,
	Entity:    mesh.KindSink,
	HasEntity: true,
	render: func(e *Engine, ref ObjectRef) (any, bool) {
		if !e.isSink(ref) {
			return nil, false
		}
		el := e.renderElement(ref, &e.generics[ref].objectMeta)
		el.Edges = nil
		return el, true
	},
}

// isSink reports whether ref is a sink: an undeclared kind's object that an edge names and
// that is neither a channel nor a source.
func (e *Engine) isSink(ref ObjectRef) bool {
	return e.generics[ref] != nil && e.referrers[ref].Len() > 0 && !e.isChannel(ref) && !e.isSource(ref)
}
