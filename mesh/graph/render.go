package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// MaxLabelRunes bounds each line of a label: a longer name keeps its start and end around an
// ellipsis, so a 253-character id does not stretch the picture. JSON and YAML keep names whole.
const MaxLabelRunes = 80

// label is a node's text: its name, and its detail on a second line.
func label(n Node) []string {
	lines := []string{shorten(n.Name)}
	if n.Detail != "" {
		lines = append(lines, shorten(n.Detail))
	}
	return lines
}

// shorten makes s valid UTF-8 on one line of at most MaxLabelRunes runes.
func shorten(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= MaxLabelRunes {
		return s
	}
	r := []rune(s)
	half := (MaxLabelRunes - 1) / 2
	return string(r[:half]) + "…" + string(r[len(r)-(MaxLabelRunes-1-half):])
}

// ids numbers the nodes in graph order: n0, n1, … (names never become identifiers, so no
// name can collide with a keyword of either syntax).
func ids(g Graph) map[string]string {
	out := map[string]string{}
	for i, n := range g.Nodes() {
		out[n.ID] = fmt.Sprintf("n%d", i)
	}
	return out
}

var mermaidShape = map[Kind][2]string{
	KindSource:    {`(["`, `"])`},
	KindBroker:    {`[["`, `"]]`},
	KindChannel:   {`[("`, `")]`},
	KindEventType: {`["`, `"]`},
	KindConsumer:  {`{{"`, `"}}`},
}

// WriteMermaid writes g as a Mermaid flowchart, one subgraph per namespace and one for the
// consumers.
func (g Graph) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	id := ids(g)
	bw.WriteString("flowchart LR\n")
	elements := false
	node := func(n Node) {
		shape, class := mermaidShape[n.Kind], string(n.Kind)
		if _, known := mermaidShape[n.Kind]; !known { // the whole graph's other kinds
			shape, class, elements = [2]string{`("`, `")`}, "element", true
		}
		parts := label(n)
		for i := range parts {
			parts[i] = MermaidText(parts[i])
		}
		fmt.Fprintf(bw, "    %s%s%s%s:::%s\n", id[n.ID], shape[0], strings.Join(parts, "<br/>"), shape[1], class)
	}
	for i, ns := range g.Namespaces {
		fmt.Fprintf(bw, "  subgraph ns%d[\"%s\"]\n", i, MermaidText(shorten(ns.title())))
		for _, n := range ns.Nodes {
			node(n)
		}
		bw.WriteString("  end\n")
	}
	if len(g.Consumers) > 0 {
		bw.WriteString("  subgraph consumers[\"Backstage consumers\"]\n")
		for _, n := range g.Consumers {
			node(n)
		}
		bw.WriteString("  end\n")
	}
	for _, e := range g.Edges {
		arrow := "-->"
		switch e.Kind {
		case Sink:
			arrow = "-. sink .->"
		case Provides, Consumes:
		case EdgeKind(mesh.RoleDeadLetterSink):
			arrow = `-. "` + MermaidText(string(e.Kind)) + `" .->`
		default:
			arrow = `-- "` + MermaidText(string(e.Kind)) + `" -->`
		}
		fmt.Fprintf(bw, "  %s %s %s\n", id[e.From], arrow, id[e.To])
	}
	bw.WriteString("  classDef source fill:#e8f5e9,stroke:#2e7d32\n" +
		"  classDef broker fill:#e3f2fd,stroke:#1565c0\n" +
		"  classDef channel fill:#f3e5f5,stroke:#6a1b9a\n" +
		"  classDef eventtype fill:#fff8e1,stroke:#f9a825\n" +
		"  classDef consumer fill:#fce4ec,stroke:#ad1457\n")
	if elements {
		bw.WriteString("  classDef element fill:#eceff1,stroke:#455a64\n")
	}
	return bw.Flush()
}

// MermaidText escapes s for a double-quoted Mermaid label: every character that is not a
// letter, a digit, a space or plain punctuation becomes an entity code (#34; for a quote), so
// no name can end the label, open markup or start a comment.
func MermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("-_./:@,+=!?'…\uFFFD", r) {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, "#%d;", r)
	}
	return b.String()
}

var dotShape = map[Kind]string{
	KindSource:    `shape=cds, style=filled, fillcolor="#e8f5e9", color="#2e7d32"`,
	KindBroker:    `shape=box, style="filled,bold", fillcolor="#e3f2fd", color="#1565c0"`,
	KindChannel:   `shape=cylinder, style=filled, fillcolor="#f3e5f5", color="#6a1b9a"`,
	KindEventType: `shape=note, style=filled, fillcolor="#fff8e1", color="#f9a825"`,
	KindConsumer:  `shape=component, style=filled, fillcolor="#fce4ec", color="#ad1457"`,
}

// WriteDOT writes g as a Graphviz digraph, one cluster per namespace and one for the
// consumers.
func (g Graph) WriteDOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	id := ids(g)
	bw.WriteString("digraph mesh {\n  rankdir=LR;\n  graph [fontname=\"Helvetica\", fontsize=12];\n" +
		"  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10, color=\"#555555\"];\n")
	node := func(n Node) {
		parts := label(n)
		for i := range parts {
			parts[i] = DOTText(parts[i])
		}
		shape, known := dotShape[n.Kind]
		if !known { // the whole graph's other kinds
			shape = `shape=box, style="rounded,filled", fillcolor="#eceff1", color="#455a64"`
		}
		fmt.Fprintf(bw, "    %s [label=%s, tooltip=%s, %s];\n", id[n.ID], `"`+strings.Join(parts, `\n`)+`"`,
			`"`+DOTText(strings.ToValidUTF8(n.ID, "\uFFFD"))+`"`, shape)
	}
	for i, ns := range g.Namespaces {
		fmt.Fprintf(bw, "  subgraph cluster_%d {\n    label=\"%s\";\n    style=rounded;\n", i, DOTText(shorten(ns.title())))
		for _, n := range ns.Nodes {
			node(n)
		}
		bw.WriteString("  }\n")
	}
	if len(g.Consumers) > 0 {
		bw.WriteString("  subgraph cluster_consumers {\n    label=\"Backstage consumers\";\n    style=rounded;\n")
		for _, n := range g.Consumers {
			node(n)
		}
		bw.WriteString("  }\n")
	}
	for _, e := range g.Edges {
		attrs := ""
		switch e.Kind {
		case Sink:
			attrs = ` [style=dashed, label="sink"]`
		case Provides, Consumes:
		case EdgeKind(mesh.RoleDeadLetterSink):
			attrs = ` [style=dashed, color="#c62828", label="` + DOTText(string(e.Kind)) + `"]`
		default:
			attrs = ` [label="` + DOTText(string(e.Kind)) + `"]`
		}
		fmt.Fprintf(bw, "  %s -> %s%s;\n", id[e.From], id[e.To], attrs)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// DOTText escapes s for a double-quoted DOT string: backslashes (which Graphviz reads as
// escapes such as \N) and quotes are escaped, control characters become spaces.
func DOTText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
