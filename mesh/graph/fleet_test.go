package graph_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	east, west := small(), small()
	west.Sources = nil // west differs: no sources
	g := graph.Merge(map[string]graph.Graph{"west": graph.Build(west), "east": graph.Build(east), "bare": graph.Build(mesh.EventMesh{})})

	var titles []string
	nodes := map[string]graph.Node{}
	for _, ns := range g.Namespaces {
		titles = append(titles, ns.Cluster+"/"+ns.Name)
		for _, n := range ns.Nodes {
			if n.Cluster != ns.Cluster {
				t.Errorf("node %s of cluster %q sits in %s", n.ID, n.Cluster, ns.Cluster+"/"+ns.Name)
			}
			if _, twice := nodes[n.ID]; twice {
				t.Errorf("node id %s twice", n.ID)
			}
			nodes[n.ID] = n
		}
	}
	if want := []string{"east/ops", "east/shop", "west/ops", "west/shop"}; !slices.Equal(titles, want) {
		t.Errorf("namespaces %q, want %q (by cluster, then name)", titles, want)
	}
	orders := graph.NodeID(graph.KindBroker, mesh.Key{Group: mesh.GroupEventing, Kind: "Broker", Namespace: "shop", Name: "orders"})
	for _, cluster := range []string{"east", "west"} {
		if n, ok := nodes["@"+cluster+" "+orders]; !ok || n.Name != "orders" {
			t.Errorf("no Broker shop/orders of cluster %s: %v", cluster, nodes)
		}
	}
	var consumers []string
	for _, n := range g.Consumers {
		consumers = append(consumers, n.ID)
	}
	if want := []string{"consumer:audit", "consumer:shipping"}; !slices.Equal(consumers, want) {
		t.Errorf("consumers %q, want %q: one node each for every cluster", consumers, want)
	}
	into := map[string]int{}
	for _, e := range g.Edges {
		_, fromOK := nodes[e.From]
		_, toOK := nodes[e.To]
		if !fromOK || (!toOK && e.Kind != graph.Consumes) {
			t.Errorf("edge %v joins nodes not in the picture", e)
		}
		if e.Kind == graph.Consumes {
			into[e.To]++
		}
	}
	// audit consumes two EventTypes in each of two clusters.
	if into["consumer:audit"] != 4 || into["consumer:shipping"] != 2 {
		t.Errorf("edges into consumers %v, want audit 4 and shipping 2", into)
	}
	mermaid, dot := render(t, g)
	checkMermaid(t, g, mermaid)
	checkDOT(t, g, dot)
	golden(t, filepath.Join("testdata", "fleet.mmd"), mermaid)
	golden(t, filepath.Join("testdata", "fleet.dot"), dot)
}
