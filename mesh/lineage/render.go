package lineage

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
)

// The pictures of an answer: every object its paths pass is a node (once), every hop an edge
// labelled with how events get there. Dead-letter sinks hang off their hop with a dashed edge,
// replies and changed events are marked, broken ends are drawn as such. Names go through
// mesh/graph's escaping, so none can break out of a label.

// picture is an answer as nodes and edges, in the order they first appear.
type picture struct {
	ids   map[string]string // node name → n0, n1, ...
	names []string
	edges []pictureEdge
	seen  map[pictureEdge]bool
}

type pictureEdge struct {
	from, to, label string
	dashed          bool
}

func (p *picture) node(name string) string {
	if id, ok := p.ids[name]; ok {
		return id
	}
	id := fmt.Sprintf("n%d", len(p.names))
	p.ids[name] = id
	p.names = append(p.names, name)
	return id
}

func (p *picture) edge(e pictureEdge) {
	if !p.seen[e] {
		p.seen[e] = true
		p.edges = append(p.edges, e)
	}
}

// nodeName is how a hop is drawn: Kind namespace/name, a URI, or what ended the path.
func nodeName(h Hop) string {
	switch {
	case h.URI != "":
		return h.URI
	case h.Key == "":
		return "(hidden)"
	}
	if k, err := mesh.ParseKey(h.Key); err == nil {
		return k.Kind + " " + k.NamespacedName()
	}
	return h.Key
}

func edgeLabel(h Hop) string {
	var parts []string
	if h.Role != "" && h.Role != RoleReference {
		parts = append(parts, string(h.Role))
	}
	if h.Index != nil {
		parts = append(parts, fmt.Sprintf("#%d", *h.Index))
	}
	if h.Match == Maybe.String() {
		parts = append(parts, "may match")
	}
	if h.Changes {
		parts = append(parts, "event may change")
	}
	if h.Dangling {
		parts = append(parts, "missing")
	}
	return strings.Join(parts, ", ")
}

func pictureOf(a Answer) *picture {
	p := &picture{ids: map[string]string{}, seen: map[pictureEdge]bool{}}
	for _, path := range a.Paths {
		prev := ""
		for _, h := range path.Hops {
			id := p.node(nodeName(h))
			if prev != "" {
				p.edge(pictureEdge{from: prev, to: id, label: edgeLabel(h)})
			}
			if h.DeadLetterSink != "" {
				p.edge(pictureEdge{from: id, to: p.node(nodeName(Hop{Key: h.DeadLetterSink, URI: uriOnly(h.DeadLetterSink)})),
					label: "dead letters", dashed: true})
			}
			prev = id
		}
		if (path.End == EndNowhere || path.End == EndTooLong) && prev != "" { // the other ends show in the last hop
			p.edge(pictureEdge{from: prev, to: p.node("(" + path.End + ")"), dashed: true})
		}
	}
	return p
}

// uriOnly is s when it is not an entity key (a dead-letter URI).
func uriOnly(s string) string {
	if _, err := mesh.ParseKey(s); err == nil {
		return ""
	}
	return s
}

// WriteMermaid draws the answer's paths as a Mermaid flowchart.
func WriteMermaid(w io.Writer, a Answer) error {
	p := pictureOf(a)
	bw := bufio.NewWriter(w)
	bw.WriteString("flowchart LR\n")
	for _, name := range p.names {
		fmt.Fprintf(bw, "  %s[\"%s\"]\n", p.ids[name], graph.MermaidText(name))
	}
	for _, e := range p.edges {
		arrow := "-->"
		if e.dashed {
			arrow = "-.->"
		}
		if e.label != "" {
			fmt.Fprintf(bw, "  %s %s|\"%s\"| %s\n", e.from, arrow, graph.MermaidText(e.label), e.to)
		} else {
			fmt.Fprintf(bw, "  %s %s %s\n", e.from, arrow, e.to)
		}
	}
	return bw.Flush()
}

// WriteDOT draws the answer's paths as a Graphviz digraph.
func WriteDOT(w io.Writer, a Answer) error {
	p := pictureOf(a)
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph lineage {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\", fontsize=11];\n" +
		"  edge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, name := range p.names {
		fmt.Fprintf(bw, "  %s [label=\"%s\"];\n", p.ids[name], graph.DOTText(name))
	}
	for _, e := range p.edges {
		var attrs []string
		if e.label != "" {
			attrs = append(attrs, `label="`+graph.DOTText(e.label)+`"`)
		}
		if e.dashed {
			attrs = append(attrs, "style=dashed")
		}
		suffix := ""
		if len(attrs) > 0 {
			suffix = " [" + strings.Join(attrs, ", ") + "]"
		}
		fmt.Fprintf(bw, "  %s -> %s%s;\n", e.from, e.to, suffix)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
