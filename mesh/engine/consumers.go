package engine

import (
	"slices"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

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
	for c := range e.consumersBySubscriber[ref].Keys() {
		e.refreshConsumer(c)
	}
	for owner := range e.deliveredBy[ref].Keys() {
		for c := range e.consumersBySubscriber[owner].Keys() {
			e.refreshConsumer(c)
		}
	}
}

func (e *Engine) upsertConsumer(ref ObjectRef, obj *consumerObject) {
	c, existed := e.consumers[ref]
	if existed {
		e.unindexConsumer(c)
	} else {
		c = &consumerState{ref: ref}
		e.consumers[ref] = c
	}
	c.consumerObject = obj
	addRef(e.consumersByProvider, c.provider, c)
	e.matching.provider(c.provider)
	if c.subscriber != nil {
		addRef(e.consumersBySubscriber, *c.subscriber, c)
	}
	e.refreshConsumer(c)
}

func (e *Engine) deleteConsumer(ref ObjectRef) {
	c, ok := e.consumers[ref]
	if !ok {
		return
	}
	for et := range c.targets.Keys() {
		e.withdraw(c, et)
	}
	e.unindexConsumer(c)
	delete(e.consumers, ref)
}

func (e *Engine) unindexConsumer(c *consumerState) {
	removeRef(e.consumersByProvider, c.provider, c)
	e.matching.provider(c.provider)
	if c.subscriber != nil {
		removeRef(e.consumersBySubscriber, *c.subscriber, c)
	}
}

func (e *Engine) refreshConsumersOf(provider ObjectRef) {
	for c := range e.consumersByProvider[provider].Keys() {
		e.refreshConsumer(c)
	}
}

// subscriberID is the Backstage ids a consumer delivers to: its subscriber's, and when the
// subscriber is a Sequence or Parallel, those of the subscribers it passes events on to
// unchanged (Kind.delivers). Several are joined by newlines (label values have none), so a
// consumer's contribution stays one comparable value.
func (e *Engine) subscriberID(c *consumerState) string {
	if c.subscriber == nil {
		return ""
	}
	id := e.ids[*c.subscriber]
	delivered := e.deliveries(*c.subscriber)
	if len(delivered) == 0 {
		return id
	}
	ids := make([]string, 0, len(delivered)+1)
	if id != "" {
		ids = append(ids, id)
	}
	for _, t := range delivered {
		if id := e.ids[t]; id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), "\n")
}

// refreshConsumer recomputes every EventType a consumer contributes to.
func (e *Engine) refreshConsumer(c *consumerState) {
	id, live := e.subscriberID(c), e.isProvider(c.provider)
	for et := range c.targets.Keys() {
		if !e.wants(c, et, id, live) {
			e.withdraw(c, et)
		}
	}
	for et := range e.eventTypesByProvider[c.provider].Keys() {
		if e.wants(c, et, id, live) {
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
	if et.consumedBy.Set(c, id) {
		e.mark(mesh.KindEventType, et.ref)
	}
	c.targets.Add(et)
}

func (e *Engine) withdraw(c *consumerState, et *eventTypeState) {
	if et.consumedBy.Delete(c) {
		e.mark(mesh.KindEventType, et.ref)
	}
	c.targets.Delete(et)
}
