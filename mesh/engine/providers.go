package engine

import (
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Brokers and channels provide EventTypes; sources are matched to EventTypes by type; the
// CRDs say which kinds are channels and sources.

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

// isProvider reports whether ref is an existing Broker or channel.
func (e *Engine) isProvider(ref ObjectRef) bool {
	if ref.groupKind() == gkBroker {
		return e.brokers[ref] != nil
	}
	return e.isChannel(ref)
}

func (e *Engine) isChannel(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.subscribable && e.generics[ref] != nil
}

func (e *Engine) isSource(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.source && e.generics[ref] != nil
}

func (e *Engine) markProvider(ref ObjectRef) {
	if ref.groupKind() == gkBroker {
		e.mark(mesh.KindBroker, ref)
	} else {
		e.mark(mesh.KindSubscribable, ref)
	}
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

// setKind records what the CRD called name says about its kind (the zero crdObject: the CRD is
// gone) and re-derives every object of that kind whose role changed.
func (e *Engine) setKind(name string, crd crdObject) {
	if old, ok := e.crdKinds[name]; ok && old != crd.gk {
		e.applyKind(old, nil)
		delete(e.crdKinds, name)
	}
	if crd.gk == (GroupKind{}) {
		return
	}
	e.crdKinds[name] = crd.gk
	e.applyKind(crd.gk, &crd)
}

func (e *Engine) applyKind(gk GroupKind, crd *crdObject) {
	var before, after crdObject
	if old := e.kinds[gk]; old != nil {
		before = *old
	}
	if crd != nil {
		after = *crd
		e.kinds[gk] = crd
	} else {
		delete(e.kinds, gk)
	}
	sourceChanged := before.source != after.source || !slices.Equal(before.eventTypes, after.eventTypes)
	channelChanged := before.subscribable != after.subscribable
	for ref := range e.genericsByKind[gk].Keys() {
		if sourceChanged {
			if before.source {
				e.unindexSource(ref, before.eventTypes)
			}
			if after.source {
				e.indexSource(ref, after.eventTypes)
			}
			e.mark(mesh.KindSource, ref)
		}
		if channelChanged {
			e.mark(mesh.KindSubscribable, ref)
			e.refreshConsumersOf(ref)
		}
	}
}
