package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

func (e *Engine) upsertEventType(ref ObjectRef, obj *eventTypeObject) {
	et, existed := e.eventTypes[ref]
	if !existed {
		et = &eventTypeState{ref: ref}
		e.eventTypes[ref] = et
	}
	var oldProvider *ObjectRef
	var oldType string
	if existed {
		oldProvider, oldType = et.reference, et.typ
	}
	providerChanged := !existed || !equalRef(oldProvider, obj.reference)
	typeChanged := !existed || oldType != obj.typ
	if existed && providerChanged {
		e.unindexProvided(et, oldProvider)
	}
	if existed && typeChanged {
		e.unindexType(et, oldType)
	}
	et.eventTypeObject = obj
	if providerChanged {
		e.indexProvided(et, obj.reference)
	}
	if typeChanged {
		e.indexType(et, obj.typ)
	}
	e.mark(mesh.KindEventType, ref)

	// Re-ask the consumers it had and those of its (possibly new) provider.
	for c := range et.consumedBy.Keys() {
		e.reconsider(c, et)
	}
	if obj.reference != nil {
		for c := range e.consumersByProvider[*obj.reference].Keys() {
			e.reconsider(c, et)
		}
	}
}

func (e *Engine) deleteEventType(ref ObjectRef) {
	et, ok := e.eventTypes[ref]
	if !ok {
		return
	}
	e.unindexProvided(et, et.reference)
	e.unindexType(et, et.typ)
	for c := range et.consumedBy.Keys() {
		c.targets.Delete(et)
	}
	delete(e.eventTypes, ref)
	e.mark(mesh.KindEventType, ref)
}

func (e *Engine) indexProvided(et *eventTypeState, provider *ObjectRef) {
	if provider != nil {
		addRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) unindexProvided(et *eventTypeState, provider *ObjectRef) {
	if provider != nil {
		removeRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) indexType(et *eventTypeState, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.ref.Namespace, typ}
	addRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k].Keys() {
		e.mark(mesh.KindSource, s)
	}
}

func (e *Engine) unindexType(et *eventTypeState, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.ref.Namespace, typ}
	removeRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k].Keys() {
		e.mark(mesh.KindSource, s)
	}
}
