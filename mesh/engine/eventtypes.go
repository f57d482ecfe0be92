package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

func (e *Engine) upsertEventType(ref ObjectRef, obj eventTypeObject) {
	et, existed := e.eventTypes[ref]
	if !existed {
		et = &eventTypeState{ref: ref, consumedBy: map[ObjectRef]string{}}
		e.eventTypes[ref] = et
	}
	oldProvider, oldType := et.reference, et.typ
	providerChanged := !existed || !equalRef(oldProvider, obj.reference)
	typeChanged := !existed || oldType != obj.typ
	if existed && providerChanged {
		e.unindexProvided(ref, oldProvider)
	}
	if existed && typeChanged {
		e.unindexType(ref, oldType)
	}
	et.eventTypeObject = obj
	if providerChanged {
		e.indexProvided(ref, obj.reference)
	}
	if typeChanged {
		e.indexType(ref, obj.typ)
	}
	e.mark(mesh.KindEventType, ref)

	// Re-ask the consumers it had and those of its (possibly new) provider.
	for c := range et.consumedBy {
		e.reconsider(e.consumers[c], et)
	}
	if obj.reference != nil {
		for c := range e.consumersByProvider[*obj.reference] {
			e.reconsider(e.consumers[c], et)
		}
	}
}

func (e *Engine) deleteEventType(ref ObjectRef) {
	et, ok := e.eventTypes[ref]
	if !ok {
		return
	}
	e.unindexProvided(ref, et.reference)
	e.unindexType(ref, et.typ)
	for c := range et.consumedBy {
		delete(e.consumers[c].targets, ref)
	}
	delete(e.eventTypes, ref)
	e.mark(mesh.KindEventType, ref)
}

func (e *Engine) indexProvided(et ObjectRef, provider *ObjectRef) {
	if provider != nil {
		addRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) unindexProvided(et ObjectRef, provider *ObjectRef) {
	if provider != nil {
		removeRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) indexType(et ObjectRef, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.Namespace, typ}
	addRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k] {
		e.mark(mesh.KindSource, s)
	}
}

func (e *Engine) unindexType(et ObjectRef, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.Namespace, typ}
	removeRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k] {
		e.mark(mesh.KindSource, s)
	}
}
