package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// rebuildGraph is the oracle of the whole Mesh, built from scratch as docs/protocol.md states
// it: rebuild's upstream lists, each entity with the graph of its object; an Element for every
// object of the graph's other kinds; and a sink for every object of an undeclared kind that an
// edge names and that is neither a channel nor a source. An edge is dangling when no object
// it names is held. It shares the readers with the engine, none of its indexes.
func rebuildGraph(objs []*unstructured.Unstructured) mesh.Mesh {
	m := mesh.Mesh{EventMesh: rebuild(objs)}
	held := map[ObjectRef]*unstructured.Unstructured{}
	for _, u := range objs {
		if ref := RefOf(u); ref.Namespace != "" && ref.Kind != "" && ref.Name != "" {
			held[ref] = u
		}
	}
	parts := map[ObjectRef]*graphPart{}
	named := map[ObjectRef]bool{}
	for ref, u := range held {
		parts[ref] = readGraph(u, handling(ref.groupKind()).edges)
		for _, t := range parts[ref].targets() {
			named[t] = true
		}
	}
	graphOf := func(key mesh.Key) mesh.Graph {
		g := parts[ObjectRef(key)]
		if g == nil {
			return mesh.Graph{}
		}
		out := mesh.Graph{Ready: g.ready, Address: g.address}
		for _, ed := range g.edges {
			edge := mesh.Edge{Role: ed.role, Ref: gknn(ed.ref), URI: ed.uri, Filter: ed.filter, Selector: ed.selector, Subject: ed.subject}
			if ed.index >= 0 {
				i := ed.index
				edge.Index = &i
			}
			if ed.ref != nil {
				_, exists := held[*ed.ref]
				edge.Dangling = !exists
			}
			out.Edges = append(out.Edges, edge)
		}
		return out
	}
	plays := map[ObjectRef]bool{} // channels and sources
	for i, b := range m.Brokers {
		m.Brokers[i].Graph = graphOf(b.Key())
	}
	for i, et := range m.EventTypes {
		m.EventTypes[i].Graph = graphOf(et.Key())
	}
	for i, s := range m.Sources {
		m.Sources[i].Graph = graphOf(s.Key())
		plays[ObjectRef(s.Key())] = true
	}
	for i, c := range m.Subscribables {
		m.Subscribables[i].Graph = graphOf(c.Key())
		plays[ObjectRef(c.Key())] = true
	}
	for ref, u := range held {
		k := declaredKind(ref.groupKind())
		meta := metaOf(u)
		el := mesh.Element{Namespace: ref.Namespace, Name: ref.Name, UID: meta.uid, Group: ref.Group, Kind: ref.Kind,
			Labels: meta.labels.Map(), Annotations: meta.annotations.Map(), Graph: graphOf(ref.Key())}
		switch {
		case k != nil && k.HasEntity && !k.Entity.Upstream():
			list := m.Elements(k.Entity)
			*list = append(*list, el)
		case k == nil && named[ref] && !plays[ref]:
			el.Edges = nil
			m.Sinks = append(m.Sinks, el)
		}
	}
	m.Sort()
	return m
}
