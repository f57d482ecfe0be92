package graph_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// small is a mesh with one of each: a source sinking into a Broker, a channel, EventTypes
// provided by both, consumers, and names that point at nothing.
func small() mesh.EventMesh {
	ref := func(kind, ns, name string) *mesh.GroupKindNamespacedName {
		group := mesh.GroupEventing
		if kind == "InMemoryChannel" {
			group = "messaging.knative.dev"
		}
		return &mesh.GroupKindNamespacedName{Group: group, Kind: kind, Namespace: ns, Name: name}
	}
	return mesh.EventMesh{
		Brokers: []mesh.Broker{{Namespace: "shop", Name: "orders", ProvidedEventTypes: []string{"shop/order-paid", "shop/gone", "other/x"}}},
		EventTypes: []mesh.EventType{
			{Namespace: "shop", Name: "order-paid", Type: "com.example.order.paid", Reference: ref("Broker", "shop", "orders"), ConsumedBy: []string{"shipping", "audit"}},
			{Namespace: "ops", Name: "disk-full", Type: "com.example.disk.full", Reference: ref("InMemoryChannel", "ops", "alerts"), ConsumedBy: []string{"audit"}},
		},
		Sources: []mesh.Source{
			{Namespace: "shop", Name: "tick", Group: "sources.knative.dev", Kind: "PingSource", Sink: ref("Broker", "shop", "orders")},
			{Namespace: "shop", Name: "lost", Group: "sources.knative.dev", Kind: "PingSource", Sink: ref("Broker", "shop", "nowhere")},
		},
		Subscribables: []mesh.Subscribable{{Namespace: "ops", Name: "alerts", Group: "messaging.knative.dev", Kind: "InMemoryChannel", ProvidedEventTypes: []string{"ops/disk-full"}}},
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	g := graph.Build(small())
	var nodes []string
	for _, n := range g.Nodes() {
		nodes = append(nodes, n.ID)
	}
	wantNodes := []string{
		"channel:messaging.knative.dev/InMemoryChannel/ops/alerts",
		"eventtype:eventing.knative.dev/EventType/ops/disk-full",
		"source:sources.knative.dev/PingSource/shop/lost",
		"source:sources.knative.dev/PingSource/shop/tick",
		"broker:eventing.knative.dev/Broker/shop/orders",
		"eventtype:eventing.knative.dev/EventType/shop/order-paid",
		"consumer:audit",
		"consumer:shipping",
	}
	if !slices.Equal(nodes, wantNodes) {
		t.Errorf("nodes:\n%s\nwant:\n%s", strings.Join(nodes, "\n"), strings.Join(wantNodes, "\n"))
	}
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, fmt.Sprintf("%s -%s-> %s", e.From, e.Kind, e.To))
	}
	wantEdges := []string{
		"broker:eventing.knative.dev/Broker/shop/orders -provides-> eventtype:eventing.knative.dev/EventType/shop/order-paid",
		"channel:messaging.knative.dev/InMemoryChannel/ops/alerts -provides-> eventtype:eventing.knative.dev/EventType/ops/disk-full",
		"eventtype:eventing.knative.dev/EventType/ops/disk-full -consumes-> consumer:audit",
		"eventtype:eventing.knative.dev/EventType/shop/order-paid -consumes-> consumer:audit",
		"eventtype:eventing.knative.dev/EventType/shop/order-paid -consumes-> consumer:shipping",
		"source:sources.knative.dev/PingSource/shop/tick -sink-> broker:eventing.knative.dev/Broker/shop/orders",
	}
	if !slices.Equal(edges, wantEdges) {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(edges, "\n"), strings.Join(wantEdges, "\n"))
	}
	if got := graph.Build(mesh.EventMesh{}); len(got.Namespaces)+len(got.Consumers)+len(got.Edges) != 0 {
		t.Errorf("empty mesh: %+v", got)
	}
}

// awkward holds names that would break a naive renderer: quotes, backslashes, markup, comment
// and keyword look-alikes, newlines, unicode, invalid UTF-8 and a very long id.
func awkward() mesh.EventMesh {
	long := strings.Repeat("very-long-backstage-id-", 12) + "end"
	return mesh.EventMesh{
		Brokers: []mesh.Broker{{Namespace: "ns with space", Name: `say "hi"`, ProvidedEventTypes: []string{`ns with space/end`, "ns with space/日本語"}}},
		EventTypes: []mesh.EventType{
			{Namespace: "ns with space", Name: "end", Type: `a\b"c<d>e#f;g%%h` + "\nnew line", ConsumedBy: []string{long, "<script>alert(1)</script>"}},
			{Namespace: "ns with space", Name: "日本語", Type: "é\u2028\x00\xff", ConsumedBy: []string{"subgraph", "%% comment", `back\slash`, "x]];y{{z"}},
		},
	}
}

func render(t testing.TB, g graph.Graph) (mermaid, dot string) {
	var m, d bytes.Buffer
	if err := g.WriteMermaid(&m); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDOT(&d); err != nil {
		t.Fatal(err)
	}
	return m.String(), d.String()
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	for name, m := range map[string]mesh.EventMesh{"small": small(), "awkward": awkward(), "empty": {}} {
		t.Run(name, func(t *testing.T) {
			g := graph.Build(m)
			mermaid, dot := render(t, g)
			checkMermaid(t, g, mermaid)
			checkDOT(t, g, dot)
			golden(t, filepath.Join("testdata", name+".mmd"), mermaid)
			golden(t, filepath.Join("testdata", name+".dot"), dot)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

var (
	mermaidNode = regexp.MustCompile(`^    (n\d+)(\(\["|\[\["|\[\("|\["|\{\{")([^"]*)("\]\)|"\]\]|"\)\]|"\]|"\}\}):::(source|broker|channel|eventtype|consumer)$`)
	mermaidEdge = regexp.MustCompile(`^  (n\d+) (-->|-\. sink \.->) (n\d+)$`)
	mermaidSub  = regexp.MustCompile(`^  subgraph (ns\d+|consumers)\["([^"]*)"\]$`)
	// Inside a label: entity codes, <br/> between lines, and nothing else that Mermaid reads.
	mermaidLabel = regexp.MustCompile(`^(?:[^"<>#\[\]{}()|;&\x00-\x1f\x7f` + "`" + `]|#\d+;|<br/>)*$`)
)

// checkMermaid parses the output with the grammar the renderer promises: a header, subgraphs
// of node lines, edge lines and class definitions, every label closed on its own line.
func checkMermaid(t testing.TB, g graph.Graph, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "flowchart LR" {
		t.Fatalf("mermaid: first line %q", lines[0])
	}
	declared, depth := map[string]bool{}, 0
	edges := 0
	for i, line := range lines[1:] {
		switch {
		case mermaidSub.MatchString(line):
			if depth++; depth > 1 || !mermaidLabel.MatchString(mermaidSub.FindStringSubmatch(line)[2]) {
				t.Fatalf("mermaid line %d: %q", i+2, line)
			}
		case line == "  end":
			if depth--; depth < 0 {
				t.Fatalf("mermaid line %d: unbalanced end", i+2)
			}
		case mermaidNode.MatchString(line):
			m := mermaidNode.FindStringSubmatch(line)
			if depth != 1 || !mermaidLabel.MatchString(m[3]) || declared[m[1]] {
				t.Fatalf("mermaid line %d: %q", i+2, line)
			}
			declared[m[1]] = true
		case mermaidEdge.MatchString(line):
			m := mermaidEdge.FindStringSubmatch(line)
			if depth != 0 || !declared[m[1]] || !declared[m[3]] {
				t.Fatalf("mermaid line %d: %q joins undeclared nodes", i+2, line)
			}
			edges++
		case strings.HasPrefix(line, "  classDef ") && depth == 0:
		default:
			t.Fatalf("mermaid line %d does not parse: %q", i+2, line)
		}
	}
	if depth != 0 || len(declared) != len(g.Nodes()) || edges != len(g.Edges) {
		t.Fatalf("mermaid: depth %d, %d nodes (want %d), %d edges (want %d)", depth, len(declared), len(g.Nodes()), edges, len(g.Edges))
	}
}

// checkDOT tokenises the output: strings end on their line, braces and brackets balance
// outside strings, and the nodes and edges are the graph's.
func checkDOT(t testing.TB, g graph.Graph, out string) {
	t.Helper()
	if !strings.HasPrefix(out, "digraph mesh {\n") || !strings.HasSuffix(out, "}\n") {
		t.Fatalf("dot: not one digraph:\n%s", out)
	}
	braces, brackets, inString := 0, 0, false
	var outside strings.Builder // the text with every string replaced by S
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case inString && c == '\\':
			i++
			if i < len(out) && out[i] == '\n' {
				t.Fatalf("dot: escaped newline at byte %d", i)
			}
		case inString && c == '"':
			inString = false
		case inString && c == '\n':
			t.Fatalf("dot: a string runs past its line at byte %d", i)
		case inString:
		case c == '"':
			inString = true
			outside.WriteString("S")
		default:
			switch c {
			case '{':
				braces++
			case '}':
				braces--
			case '[':
				brackets++
			case ']':
				brackets--
			}
			if braces < 0 || brackets < 0 || brackets > 1 {
				t.Fatalf("dot: unbalanced at byte %d", i)
			}
			outside.WriteByte(c)
		}
	}
	if inString || braces != 0 || brackets != 0 {
		t.Fatalf("dot: unterminated (string %v, braces %d, brackets %d)", inString, braces, brackets)
	}
	rest := outside.String()
	nodes := regexp.MustCompile(`(?m)^    n\d+ \[label=S, tooltip=S, shape=\w+, style=(?:\w+|S), fillcolor=S, color=S\];$`).FindAllString(rest, -1)
	edges := regexp.MustCompile(`(?m)^  n\d+ -> n\d+( \[style=dashed, label=S\])?;$`).FindAllString(rest, -1)
	if len(nodes) != len(g.Nodes()) || len(edges) != len(g.Edges) {
		t.Fatalf("dot: %d nodes (want %d), %d edges (want %d):\n%s", len(nodes), len(g.Nodes()), len(edges), len(g.Edges), rest)
	}
}

// FuzzRender builds a mesh from arbitrary names and checks both renderings parse and are
// deterministic. The seed corpus is in testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	f.Add("shop", "orders", "order-paid", "com.example.order.paid", "audit-log")
	f.Fuzz(func(t *testing.T, ns, broker, eventType, ceType, consumer string) {
		m := mesh.EventMesh{
			Brokers:    []mesh.Broker{{Namespace: ns, Name: broker, ProvidedEventTypes: []string{ns + "/" + eventType}}},
			EventTypes: []mesh.EventType{{Namespace: ns, Name: eventType, Type: ceType, ConsumedBy: []string{consumer, consumer + "2"}}},
			Sources: []mesh.Source{{Namespace: ns, Name: consumer, Group: ceType, Kind: broker, ProvidedEventTypes: []string{ns + "/" + eventType},
				Sink: &mesh.GroupKindNamespacedName{Group: mesh.GroupEventing, Kind: "Broker", Namespace: ns, Name: broker}}},
			Subscribables: []mesh.Subscribable{{Namespace: eventType, Name: ns, Group: consumer, Kind: ceType}},
		}
		g := graph.Build(m)
		mermaid, dot := render(t, g)
		checkMermaid(t, g, mermaid)
		checkDOT(t, g, dot)
		if m2, d2 := render(t, graph.Build(m)); m2 != mermaid || d2 != dot {
			t.Fatal("rendering is not deterministic")
		}
	})
}
