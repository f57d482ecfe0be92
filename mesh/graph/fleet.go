package graph

import (
	"cmp"
	"maps"
	"slices"
)

// Merge is one picture of several clusters' graphs (cluster name → its graph, as Build or
// BuildWhole made it): each cluster's namespaces stay apart (the same shop/orders Broker in two
// clusters is two nodes, in "cluster east, namespace shop" and "cluster west, namespace
// shop"), while a Backstage consumer is one node for every cluster, since a catalog entity is
// not in any cluster. Node IDs of cluster nodes become "@<cluster> <ID>": a cluster name holds
// no space, and no unmerged ID starts with "@", so no two nodes collide.
func Merge(graphs map[string]Graph) Graph {
	var merged Graph
	consumers := map[string]Node{}
	edges := map[Edge]bool{}
	for _, cluster := range slices.Sorted(maps.Keys(graphs)) {
		g := graphs[cluster]
		isConsumer := consumerIDs(g)
		id := func(nodeID string) string {
			if _, ok := isConsumer[nodeID]; ok {
				return nodeID
			}
			return "@" + cluster + " " + nodeID
		}
		for _, ns := range g.Namespaces {
			nodes := make([]Node, len(ns.Nodes))
			for i, n := range ns.Nodes {
				n.ID, n.Cluster = id(n.ID), cluster
				nodes[i] = n
			}
			merged.Namespaces = append(merged.Namespaces, Namespace{Cluster: cluster, Name: ns.Name, Nodes: nodes})
		}
		for _, n := range g.Consumers {
			consumers[n.ID] = n
		}
		for _, e := range g.Edges {
			edges[Edge{From: id(e.From), To: id(e.To), Kind: e.Kind}] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(consumers)) {
		merged.Consumers = append(merged.Consumers, consumers[id])
	}
	for e := range edges {
		merged.Edges = append(merged.Edges, e)
	}
	slices.SortFunc(merged.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Kind, b.Kind))
	})
	return merged
}

func consumerIDs(g Graph) map[string]struct{} {
	ids := make(map[string]struct{}, len(g.Consumers))
	for _, n := range g.Consumers {
		ids[n.ID] = struct{}{}
	}
	return ids
}
