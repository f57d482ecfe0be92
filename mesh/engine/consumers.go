package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

// Triggers and Subscriptions put their subscriber's Backstage id in the consumedBy of the
// EventTypes they can receive.

func (e *Engine) setID(ref ObjectRef, id string) {
	old := e.ids[ref]
	if old == id {
		return
	}
	if old != "" {
		e.countID(old, ref.Namespace, -1)
	}
	if id != "" {
		e.countID(id, ref.Namespace, 1)
	}
	if id == "" {
		delete(e.ids, ref)
	} else {
		e.ids[ref] = id
	}
	for c := range e.consumersBySubscriber[ref] {
		e.refreshConsumer(e.consumers[c])
	}
}

func (e *Engine) upsertConsumer(ref ObjectRef, obj consumerObject) {
	c, existed := e.consumers[ref]
	if existed {
		e.unindexConsumer(c)
	} else {
		c = &consumerState{ref: ref, targets: refSet{}}
		e.consumers[ref] = c
	}
	c.consumerObject = obj
	addRef(e.consumersByProvider, c.provider, ref)
	if c.subscriber != nil {
		addRef(e.consumersBySubscriber, *c.subscriber, ref)
	}
	e.refreshConsumer(c)
}

func (e *Engine) deleteConsumer(ref ObjectRef) {
	c, ok := e.consumers[ref]
	if !ok {
		return
	}
	for t := range c.targets {
		e.withdraw(c, e.eventTypes[t])
	}
	e.unindexConsumer(c)
	delete(e.consumers, ref)
}

func (e *Engine) unindexConsumer(c *consumerState) {
	removeRef(e.consumersByProvider, c.provider, c.ref)
	if c.subscriber != nil {
		removeRef(e.consumersBySubscriber, *c.subscriber, c.ref)
	}
}

func (e *Engine) refreshConsumersOf(provider ObjectRef) {
	for c := range e.consumersByProvider[provider] {
		e.refreshConsumer(e.consumers[c])
	}
}

func (e *Engine) subscriberID(c *consumerState) string {
	if c.subscriber == nil {
		return ""
	}
	return e.ids[*c.subscriber]
}

// refreshConsumer recomputes every EventType a consumer contributes to.
func (e *Engine) refreshConsumer(c *consumerState) {
	id, live := e.subscriberID(c), e.isProvider(c.provider)
	for t := range c.targets {
		if et := e.eventTypes[t]; !e.wants(c, et, id, live) {
			e.withdraw(c, et)
		}
	}
	for t := range e.eventTypesByProvider[c.provider] {
		if et := e.eventTypes[t]; e.wants(c, et, id, live) {
			e.contribute(c, et, id)
		}
	}
}

// reconsider recomputes one consumer's contribution to one EventType.
func (e *Engine) reconsider(c *consumerState, et *eventTypeState) {
	if id := e.subscriberID(c); e.wants(c, et, id, e.isProvider(c.provider)) {
		e.contribute(c, et, id)
	} else {
		e.withdraw(c, et)
	}
}

// wants is the relation rule: a consumer with a labelled subscriber on an existing provider
// consumes the provider's EventTypes that its filter can match.
func (e *Engine) wants(c *consumerState, et *eventTypeState, id string, live bool) bool {
	return id != "" && live && et.reference != nil && *et.reference == c.provider &&
		c.filter.eval(et.attrs) != no
}

func (e *Engine) contribute(c *consumerState, et *eventTypeState, id string) {
	if old, ok := et.consumedBy[c.ref]; !ok || old != id {
		et.consumedBy[c.ref] = id
		e.mark(mesh.KindEventType, et.ref)
	}
	c.targets[et.ref] = struct{}{}
}

func (e *Engine) withdraw(c *consumerState, et *eventTypeState) {
	if _, ok := et.consumedBy[c.ref]; ok {
		delete(et.consumedBy, c.ref)
		e.mark(mesh.KindEventType, et.ref)
	}
	delete(c.targets, et.ref)
}
