package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

// Brokers and channels provide the EventTypes that reference them, and Triggers and
// Subscriptions consume from them: a provider is either.

// isProvider reports whether ref is an existing Broker or channel.
func (e *Engine) isProvider(ref ObjectRef) bool {
	if ref.groupKind() == gkBroker {
		return e.brokers[ref] != nil
	}
	return e.isChannel(ref)
}

func (e *Engine) markProvider(ref ObjectRef) {
	if ref.groupKind() == gkBroker {
		e.mark(mesh.KindBroker, ref)
	} else {
		e.mark(mesh.KindSubscribable, ref)
	}
}
