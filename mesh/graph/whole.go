package graph

import (
	"cmp"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// BuildWhole makes the picture of the whole event graph: Build's, plus a node for every entity
// of the graph's other kinds (Triggers, Subscriptions, Sequences, Parallels, EventTransforms,
// RequestReplies, EventPolicies, sinks, ...) in its namespace, and an edge for every edge of
// every entity between two nodes of the picture, its kind the edge's role. A dangling edge, or
// one into a namespace left out, draws nothing.
func BuildWhole(m mesh.Mesh) Graph {
	g := Build(m.EventMesh)
	byKey := map[mesh.Key]string{} // object → its node (a channel that is also a source: the channel)
	for _, n := range g.Nodes() {
		if n.Kind != KindConsumer {
			byKey[keyOfID(n.ID)] = n.ID
		}
	}
	at := map[string]int{}
	for i, ns := range g.Namespaces {
		at[ns.Name] = i
	}
	m.Each(func(kind mesh.EntityKind, key mesh.Key, _ any) {
		if _, drawn := byKey[key]; drawn || kind.Upstream() {
			return
		}
		n := Node{ID: NodeID(Kind(kind.String()), key), Kind: Kind(kind.String()), Namespace: key.Namespace, Name: key.Name, Detail: key.Kind}
		byKey[key] = n.ID
		i, ok := at[key.Namespace]
		if !ok {
			i = len(g.Namespaces)
			at[key.Namespace] = i
			g.Namespaces = append(g.Namespaces, Namespace{Name: key.Namespace})
		}
		g.Namespaces[i].Nodes = append(g.Namespaces[i].Nodes, n)
	})
	edges := map[Edge]bool{}
	for _, e := range g.Edges {
		edges[e] = true
	}
	m.Each(func(_ mesh.EntityKind, key mesh.Key, entity any) {
		from, ok := byKey[key]
		if !ok {
			return
		}
		for _, ed := range entity.(mesh.Entity).GraphPart().Edges {
			if ed.Ref == nil || ed.Dangling || ed.Hidden {
				continue
			}
			to, ok := byKey[mesh.Key{Group: ed.Ref.Group, Kind: ed.Ref.Kind, Namespace: ed.Ref.Namespace, Name: ed.Ref.Name}]
			if ok {
				edges[Edge{from, to, EdgeKind(ed.Role)}] = true // a source's sink is Build's Sink edge
			}
		}
	})
	slices.SortFunc(g.Namespaces, func(a, b Namespace) int { return cmp.Compare(a.Name, b.Name) })
	for i := range g.Namespaces {
		slices.SortFunc(g.Namespaces[i].Nodes, func(a, b Node) int {
			return cmp.Or(cmp.Compare(nodeRank(a.Kind), nodeRank(b.Kind)), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
	}
	g.Edges = g.Edges[:0]
	for e := range edges {
		g.Edges = append(g.Edges, e)
	}
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Kind, b.Kind))
	})
	return g
}

// nodeRank orders a namespace's nodes: Build's kinds first, then the others by entity kind.
func nodeRank(k Kind) int {
	if r, ok := kindOrder[k]; ok {
		return r
	}
	for _, ek := range mesh.EntityKinds() {
		if ek.String() == string(k) {
			return len(kindOrder) + int(ek)
		}
	}
	return 1 << 10
}

// keyOfID is the entity key of a node ID ("<kind>:<key>").
func keyOfID(id string) mesh.Key {
	for i := range id {
		if id[i] == ':' {
			k, _ := mesh.ParseKey(id[i+1:])
			return k
		}
	}
	return mesh.Key{}
}
