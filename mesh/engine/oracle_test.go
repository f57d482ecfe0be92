package engine

import (
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// rebuild is the oracle: a deliberately naive from-scratch build of the mesh, rule by rule as
// docs/protocol.md states them, in the shape of the upstream backend's BuildEventMesh. It shares the
// parsers and the filter evaluation with the engine (those have their own table tests) but none
// of the engine's indexes or incremental bookkeeping.
func rebuild(objs []*unstructured.Unstructured) mesh.EventMesh {
	kinds := map[GroupKind]crdObject{}
	brokers := map[ObjectRef]objectMeta{}
	eventTypes := map[ObjectRef]eventTypeObject{}
	var triggers, subscriptions []consumerObject
	generics := map[ObjectRef]genericObject{}
	ids := map[ObjectRef]string{}
	held := map[ObjectRef]*unstructured.Unstructured{}
	for _, u := range objs {
		ref := RefOf(u)
		held[ref] = u
		if ref.groupKind() == gkCRD {
			if c, _ := parseCRD(u); c.gk.Group != "" && c.gk.Kind != "" {
				kinds[c.gk] = c
			}
			continue
		}
		if ref.Namespace == "" {
			continue
		}
		if id := u.GetLabels()[LabelBackstageID]; id != "" {
			ids[ref] = id
		}
		switch ref.groupKind() {
		case gkBroker:
			brokers[ref] = metaOf(u)
		case gkEventType:
			eventTypes[ref], _ = parseEventType(u)
		case gkTrigger:
			t, _ := parseTrigger(u)
			triggers = append(triggers, t)
		case gkSubscription:
			subscriptions = append(subscriptions, parseSubscription(u))
		default:
			generics[ref] = parseGeneric(u)
		}
	}

	providedBy := func(p ObjectRef) []string {
		out := []string{}
		for ref, et := range eventTypes {
			if et.reference != nil && *et.reference == p {
				out = append(out, ref.NamespacedName())
			}
		}
		slices.Sort(out)
		return out
	}
	isChannel := func(r ObjectRef) bool {
		_, exists := generics[r]
		return exists && kinds[r.groupKind()].subscribable
	}

	// A consumer delivers to its subscriber, and through a Sequence or Parallel to the
	// subscribers it passes events on to unchanged (its first step, every branch).
	delivered := func(sub ObjectRef) []string {
		out := []string{}
		if ids[sub] != "" {
			out = append(out, ids[sub])
		}
		u, ok := held[sub]
		k := declaredKind(sub.groupKind())
		if !ok || sub.Namespace == "" || k == nil || k.delivers == nil {
			return out
		}
		if g := readGraph(u, k.edges); g != nil {
			for _, t := range k.delivers(g) {
				if ids[t] != "" {
					out = append(out, ids[t])
				}
			}
		}
		return out
	}
	consumedBy := map[ObjectRef][]string{}
	consume := func(c consumerObject, providerExists bool) {
		if c.subscriber == nil || !providerExists {
			return
		}
		consumers := delivered(*c.subscriber)
		for ref, et := range eventTypes {
			if et.reference != nil && *et.reference == c.provider && c.filter.eval(et.attrs) != no {
				consumedBy[ref] = append(consumedBy[ref], consumers...)
			}
		}
	}
	for _, t := range triggers {
		_, exists := brokers[t.provider]
		consume(t, exists)
	}
	for _, s := range subscriptions {
		consume(s, isChannel(s.provider))
	}

	m := mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}}
	for ref, b := range brokers {
		m.Brokers = append(m.Brokers, mesh.Broker{Namespace: ref.Namespace, Name: ref.Name, UID: b.uid,
			Labels: b.labels.Map(), Annotations: b.annotations.Map(), ProvidedEventTypes: providedBy(ref)})
	}
	for ref, et := range eventTypes {
		state := eventTypeState{eventTypeObject: &et}
		e := state.entity(ref, et.labels.Map(), et.annotations.Map())
		e.ConsumedBy = consumedBy[ref]
		slices.Sort(e.ConsumedBy)
		e.ConsumedBy = orEmpty(slices.Compact(e.ConsumedBy))
		m.EventTypes = append(m.EventTypes, e)
	}
	for ref, g := range generics {
		k := kinds[ref.groupKind()]
		if k.subscribable {
			m.Subscribables = append(m.Subscribables, mesh.Subscribable{Namespace: ref.Namespace, Name: ref.Name,
				UID: g.uid, Labels: g.labels.Map(), Annotations: g.annotations.Map(), Group: ref.Group, Kind: ref.Kind,
				ProvidedEventTypes: providedBy(ref)})
		}
		if k.source {
			provided := []string{}
			for etRef, et := range eventTypes {
				if etRef.Namespace == ref.Namespace && slices.Contains(k.eventTypes, et.typ) {
					provided = append(provided, etRef.NamespacedName())
				}
			}
			slices.Sort(provided)
			m.Sources = append(m.Sources, mesh.Source{Namespace: ref.Namespace, Name: ref.Name, UID: g.uid,
				Labels: g.labels.Map(), Annotations: g.annotations.Map(), Group: ref.Group, Kind: ref.Kind,
				ProvidedEventTypeTypes: orEmpty(k.eventTypes), ProvidedEventTypes: provided, Sink: gknn(g.sink)})
		}
	}
	byNsName := func(ns1, n1, g1, k1, ns2, n2, g2, k2 string) int {
		for _, c := range [][2]string{{ns1, ns2}, {n1, n2}, {g1, g2}, {k1, k2}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	}
	slices.SortFunc(m.Brokers, func(a, b mesh.Broker) int {
		return byNsName(a.Namespace, a.Name, "", "", b.Namespace, b.Name, "", "")
	})
	slices.SortFunc(m.EventTypes, func(a, b mesh.EventType) int {
		return byNsName(a.Namespace, a.Name, "", "", b.Namespace, b.Name, "", "")
	})
	slices.SortFunc(m.Sources, func(a, b mesh.Source) int {
		return byNsName(a.Namespace, a.Name, a.Group, a.Kind, b.Namespace, b.Name, b.Group, b.Kind)
	})
	slices.SortFunc(m.Subscribables, func(a, b mesh.Subscribable) int {
		return byNsName(a.Namespace, a.Name, a.Group, a.Kind, b.Namespace, b.Name, b.Group, b.Kind)
	})
	return m
}
