package graph

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Kind is what a node stands for.
type Kind string

// Node kinds. The order of the list is the order of a namespace's nodes.
const (
	KindSource    Kind = "source"
	KindBroker    Kind = "broker"
	KindChannel   Kind = "channel"
	KindEventType Kind = "eventtype"
	KindConsumer  Kind = "consumer"
)

var kindOrder = map[Kind]int{KindSource: 0, KindBroker: 1, KindChannel: 2, KindEventType: 3, KindConsumer: 4}

// EdgeKind is what an edge says.
type EdgeKind string

// Edge kinds.
const (
	// Provides goes from a source, Broker or channel to an EventType it provides
	// (its providedEventTypes).
	Provides EdgeKind = "provides"
	// Consumes goes from an EventType to a Backstage entity in its consumedBy.
	Consumes EdgeKind = "consumes"
	// Sink goes from a source to the Broker or channel its spec.sink.ref names.
	Sink EdgeKind = "sink"
)

// Node is one box of the picture.
type Node struct {
	// ID is unique in the graph and stable: "<kind>:<entity key>" for entities,
	// "consumer:<Backstage id>" for consumers.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Cluster is the cluster of the node in a merged picture (Merge); empty otherwise and for
	// consumers.
	Cluster string `json:"cluster,omitempty"`
	// Namespace is empty for consumers (Backstage ids are not namespaced).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Detail is the EventType's CloudEvents type, or the source's or channel's kind.
	Detail string `json:"detail,omitempty"`
}

// Edge links two nodes of the graph.
type Edge struct {
	From string   `json:"from"`
	To   string   `json:"to"`
	Kind EdgeKind `json:"kind"`
}

// Namespace is the nodes of one namespace: sources, Brokers, channels, then EventTypes, each
// by name (then group and kind).
type Namespace struct {
	// Cluster is the namespace's cluster in a merged picture (Merge); empty otherwise.
	Cluster string `json:"cluster,omitempty"`
	Name    string `json:"name"`
	Nodes   []Node `json:"nodes"`
}

// title is how a picture names the namespace.
func (ns Namespace) title() string {
	if ns.Cluster != "" {
		return "cluster " + ns.Cluster + ", namespace " + ns.Name
	}
	return "namespace " + ns.Name
}

// Graph is the whole picture.
type Graph struct {
	Namespaces []Namespace `json:"namespaces"`
	// Consumers are the Backstage entities named by some EventType's consumedBy, by id.
	Consumers []Node `json:"consumers"`
	// Edges are sorted by From, To, Kind, and only join nodes of the graph: an entity naming
	// one that is not in the mesh (or not in the caller's view) gets no edge.
	Edges []Edge `json:"edges"`
}

// NodeID is the ID of the node of an entity of kind k (KindConsumer: key.Name is the id).
func NodeID(k Kind, key mesh.Key) string {
	if k == KindConsumer {
		return string(KindConsumer) + ":" + key.Name
	}
	return string(k) + ":" + key.String()
}

func eventTypeID(namespacedName string) string {
	ns, name, _ := strings.Cut(namespacedName, "/")
	return NodeID(KindEventType, mesh.Key{Group: mesh.GroupEventing, Kind: mesh.KindEventTypeObject, Namespace: ns, Name: name})
}

// Build makes the graph of m. m need not be sorted.
func Build(m mesh.EventMesh) Graph {
	byNS := map[string][]Node{}
	ids := map[string]bool{}
	add := func(n Node) {
		byNS[n.Namespace] = append(byNS[n.Namespace], n)
		ids[n.ID] = true
	}
	for _, b := range m.Brokers {
		add(Node{ID: NodeID(KindBroker, b.Key()), Kind: KindBroker, Namespace: b.Namespace, Name: b.Name})
	}
	for _, c := range m.Subscribables {
		add(Node{ID: NodeID(KindChannel, c.Key()), Kind: KindChannel, Namespace: c.Namespace, Name: c.Name, Detail: c.Kind})
	}
	for _, s := range m.Sources {
		add(Node{ID: NodeID(KindSource, s.Key()), Kind: KindSource, Namespace: s.Namespace, Name: s.Name, Detail: s.Kind})
	}
	for _, e := range m.EventTypes {
		add(Node{ID: NodeID(KindEventType, e.Key()), Kind: KindEventType, Namespace: e.Namespace, Name: e.Name, Detail: e.Type})
	}

	var g Graph
	edges := map[Edge]bool{}
	link := func(from, to string, k EdgeKind) {
		if ids[from] && ids[to] {
			edges[Edge{from, to, k}] = true
		}
	}
	provides := func(from string, provided []string) {
		for _, et := range provided {
			link(from, eventTypeID(et), Provides)
		}
	}
	for _, b := range m.Brokers {
		provides(NodeID(KindBroker, b.Key()), b.ProvidedEventTypes)
	}
	for _, c := range m.Subscribables {
		provides(NodeID(KindChannel, c.Key()), c.ProvidedEventTypes)
	}
	for _, s := range m.Sources {
		from := NodeID(KindSource, s.Key())
		provides(from, s.ProvidedEventTypes)
		if s.Sink != nil {
			key := mesh.Key{Group: s.Sink.Group, Kind: s.Sink.Kind, Namespace: s.Sink.Namespace, Name: s.Sink.Name}
			link(from, NodeID(KindBroker, key), Sink) // only one of these two is a node
			link(from, NodeID(KindChannel, key), Sink)
		}
	}
	consumers := map[string]bool{}
	for _, e := range m.EventTypes {
		for _, id := range e.ConsumedBy {
			if !consumers[id] {
				consumers[id] = true
				n := Node{ID: NodeID(KindConsumer, mesh.Key{Name: id}), Kind: KindConsumer, Name: id}
				g.Consumers = append(g.Consumers, n)
				ids[n.ID] = true
			}
			link(NodeID(KindEventType, e.Key()), NodeID(KindConsumer, mesh.Key{Name: id}), Consumes)
		}
	}

	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		nodes := byNS[ns]
		slices.SortFunc(nodes, func(a, b Node) int {
			return cmp.Or(cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		g.Namespaces = append(g.Namespaces, Namespace{Name: ns, Nodes: nodes})
	}
	slices.SortFunc(g.Consumers, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for e := range edges {
		g.Edges = append(g.Edges, e)
	}
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Kind, b.Kind))
	})
	return g
}

// Nodes lists every node: each namespace's, then the consumers.
func (g Graph) Nodes() []Node {
	var out []Node
	for _, ns := range g.Namespaces {
		out = append(out, ns.Nodes...)
	}
	return append(out, g.Consumers...)
}
