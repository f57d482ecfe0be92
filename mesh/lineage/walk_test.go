package lineage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// fakeGraph is a Graph written out by hand: the objects of a test case, each with its kind,
// edges and readiness, and a Trigger's filter's answer given instead of evaluated.
type fakeGraph struct {
	nodes map[mesh.Key]fakeNode
	keys  []mesh.Key // key order
}

type fakeNode struct {
	Key string `json:"key"`
	// Kind is the entity kind's name (mesh.EntityKind.String); by default read off the key's
	// kind (Broker, Trigger, ...; TestChannel a channel, TestSource a source, else a sink).
	Kind      string            `json:"kind,omitempty"`
	Ready     *mesh.Readiness   `json:"ready,omitempty"`
	Reference string            `json:"reference,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Edges     []fakeEdge        `json:"edges,omitempty"`
	// Match is a Trigger's answer for events of an EventType (by NAMESPACE/NAME, or "?" for an
	// event nothing is known of); yes, and maybe for "?", when not given.
	Match map[string]string `json:"match,omitempty"`
	// Produces lists the EventTypes (keys) the object produces.
	Produces []string `json:"produces,omitempty"`
}

type fakeEdge struct {
	Role     mesh.EdgeRole   `json:"role"`
	Index    *int            `json:"index,omitempty"`
	To       string          `json:"to,omitempty"`
	URI      string          `json:"uri,omitempty"`
	Filter   json.RawMessage `json:"filter,omitempty"`
	Selector json.RawMessage `json:"selector,omitempty"`
	Sub      string          `json:"sub,omitempty"`
}

var kindOfObject = map[string]mesh.EntityKind{"Broker": mesh.KindBroker, "EventType": mesh.KindEventType,
	"Trigger": mesh.KindTrigger, "Subscription": mesh.KindSubscription, "Sequence": mesh.KindSequence,
	"Parallel": mesh.KindParallel, "EventTransform": mesh.KindEventTransform, "RequestReply": mesh.KindRequestReply,
	"EventPolicy": mesh.KindEventPolicy, "JobSink": mesh.KindJobSink, "IntegrationSink": mesh.KindIntegrationSink,
	"TestChannel": mesh.KindSubscribable, "TestSource": mesh.KindSource}

func newFakeGraph(t testing.TB, nodes []fakeNode) *fakeGraph {
	t.Helper()
	g := &fakeGraph{nodes: map[mesh.Key]fakeNode{}}
	for _, n := range nodes {
		k, err := mesh.ParseKey(n.Key)
		if err != nil {
			t.Fatalf("node %q: %v", n.Key, err)
		}
		g.nodes[k] = n
		g.keys = append(g.keys, k)
	}
	slices.SortFunc(g.keys, mesh.Key.Compare)
	return g
}

func (g *fakeGraph) kind(k mesh.Key) mesh.EntityKind {
	if name := g.nodes[k].Kind; name != "" {
		for _, kind := range mesh.EntityKinds() {
			if kind.String() == name {
				return kind
			}
		}
	}
	if kind, ok := kindOfObject[k.Kind]; ok {
		return kind
	}
	return mesh.KindSink
}

func refOf(s string) *mesh.GroupKindNamespacedName {
	if s == "" {
		return nil
	}
	k := mesh.MustParseKey(s)
	return &mesh.GroupKindNamespacedName{Group: k.Group, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
}

func (g *fakeGraph) Node(k mesh.Key) (Node, bool) {
	n, ok := g.nodes[k]
	if !ok {
		return Node{}, false
	}
	out := Node{Kind: g.kind(k), Graph: mesh.Graph{Ready: n.Ready}}
	if n.Reference != "" {
		r := mesh.MustParseKey(n.Reference)
		out.Reference = &r
	}
	for _, ed := range n.Edges {
		e := mesh.Edge{Role: ed.Role, Index: ed.Index, Ref: refOf(ed.To), URI: ed.URI, Filter: ed.Filter,
			Selector: ed.Selector, Subject: ed.Sub}
		if ed.To != "" {
			_, exists := g.nodes[mesh.MustParseKey(ed.To)]
			e.Dangling = !exists
		}
		out.Graph.Edges = append(out.Graph.Edges, e)
	}
	return out, true
}

func (g *fakeGraph) Referrers(k mesh.Key, fn func(mesh.Key) bool) {
	for _, r := range g.keys {
		if slices.ContainsFunc(g.nodes[r].Edges, func(ed fakeEdge) bool { return ed.To == k.String() }) && !fn(r) {
			return
		}
	}
}

func (g *fakeGraph) Match(consumer mesh.Key, eventType *mesh.Key) Match {
	what, answer := "?", "maybe"
	if eventType != nil {
		what, answer = eventType.NamespacedName(), "yes"
	}
	if a, ok := g.nodes[consumer].Match[what]; ok {
		answer = a
	}
	return map[string]Match{"yes": Yes, "maybe": Maybe, "no": No}[answer]
}

func (g *fakeGraph) Producers(eventType mesh.Key, fn func(mesh.Key) bool) {
	for _, k := range g.keys {
		if slices.Contains(g.nodes[k].Produces, eventType.String()) && !fn(k) {
			return
		}
	}
	for _, ed := range g.nodes[eventType].Edges {
		if ed.Role == mesh.RoleOwner && !fn(mesh.MustParseKey(ed.To)) {
			return
		}
	}
}

func (g *fakeGraph) Policies(namespace string, fn func(mesh.Key) bool) {
	for _, k := range g.keys {
		if k.Namespace == namespace && g.kind(k) == mesh.KindEventPolicy && !fn(k) {
			return
		}
	}
}

// Selects reads a selector's kind and matchLabels.
func (g *fakeGraph) Selects(selector json.RawMessage, k mesh.Key) bool {
	var sel struct {
		Kind        string            `json:"kind"`
		MatchLabels map[string]string `json:"matchLabels"`
	}
	if json.Unmarshal(selector, &sel) != nil || sel.Kind != "" && sel.Kind != k.Kind {
		return false
	}
	for name, value := range sel.MatchLabels {
		if g.nodes[k].Labels[name] != value {
			return false
		}
	}
	return true
}

func (g *fakeGraph) Each(fn func(mesh.Key) bool) {
	for _, k := range g.keys {
		if !fn(k) {
			return
		}
	}
}

// walkCase is one case of testdata/walk/*.yaml.
type walkCase struct {
	Name  string     `json:"name"`
	Graph []fakeNode `json:"graph"`
	Query Query      `json:"query"`
	// Visible lists the namespaces the caller sees; all when not given.
	Visible []string `json:"visible"`
	// Want is the answer (query, epoch and sequence left out; details compared when given);
	// NotFound: the query names nothing the caller may see.
	Want     map[string]any `json:"want"`
	NotFound bool           `json:"notFound"`
}

// TestAsk answers the hand-written cases of testdata/walk: one per behaviour the spec names
// (where events go, cycles, hidden namespaces, dangling references, URIs, truncation,
// Sequences and Parallels, who sends and who may, what is broken).
func TestAsk(t *testing.T) {
	t.Parallel()
	files, err := os.ReadDir("testdata/walk")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile("testdata/walk/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		var cases []walkCase
		if err := yaml.UnmarshalStrict(data, &cases); err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		for _, c := range cases {
			t.Run(f.Name()+"/"+c.Name, func(t *testing.T) {
				t.Parallel()
				var visible func(string) bool
				if c.Visible != nil {
					visible = func(ns string) bool { return slices.Contains(c.Visible, ns) }
				}
				got, err := Ask(newFakeGraph(t, c.Graph), c.Query, visible)
				if c.NotFound {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("got %v, want ErrNotFound", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				compareAnswer(t, got, c.Want)
			})
		}
	}
}

func compareAnswer(t *testing.T, got Answer, want map[string]any) {
	t.Helper()
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var have map[string]any
	if err := json.Unmarshal(data, &have); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"query", "epoch", "sequence"} {
		delete(have, name)
	}
	if want == nil {
		want = map[string]any{}
	}
	if _, ok := want["paths"]; !ok {
		want["paths"] = []any{}
	}
	if _, ok := want["truncated"]; !ok {
		want["truncated"] = false
	}
	// Details are free text: compared where the case gives them.
	if problems, ok := have["broken"].([]any); ok {
		wantProblems, _ := want["broken"].([]any)
		for i, p := range problems {
			if i < len(wantProblems) {
				if _, given := wantProblems[i].(map[string]any)["detail"]; given {
					continue
				}
			}
			delete(p.(map[string]any), "detail")
		}
	}
	// want went through YAML: read it back as JSON reads numbers.
	wantData, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var wantJSON map[string]any
	if err := json.Unmarshal(wantData, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(have, wantJSON) {
		g, _ := yaml.Marshal(have)
		w, _ := yaml.Marshal(wantJSON)
		t.Fatalf("answer differs\n--- got\n%s\n--- want\n%s", g, w)
	}
}

// TestTooLong: a route longer than MaxHops ends with tooLong, and the answer says it was cut.
func TestTooLong(t *testing.T) {
	t.Parallel()
	const n = MaxHops + 5
	nodes := []fakeNode{{Key: "eventing.knative.dev/EventType/a/t", Reference: key("TestSource", 0)}}
	for i := range n {
		nodes = append(nodes, fakeNode{Key: key("TestSource", i), Edges: []fakeEdge{{Role: mesh.RoleSink, To: key("TestSource", i+1)}}})
	}
	g := newFakeGraph(t, nodes)
	et := mesh.MustParseKey("eventing.knative.dev/EventType/a/t")
	got, err := Ask(g, Query{EventType: &et}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 1 || got.Paths[0].End != EndTooLong || len(got.Paths[0].Hops) != MaxHops+1 || !got.Truncated {
		t.Fatalf("got %d paths (end %q, %d hops), truncated %v; want one of %d hops ending tooLong, truncated",
			len(got.Paths), got.Paths[0].End, len(got.Paths[0].Hops), got.Truncated, MaxHops+1)
	}
	// Walked back from its end, the chain is cut the same way.
	target := mesh.MustParseKey(key("TestSource", n-1))
	got, err = Ask(g, Query{Target: &target}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 1 || got.Paths[0].End != EndTooLong || !got.Truncated {
		t.Fatalf("target: got %+v, want one path ending tooLong, truncated", got)
	}
}

func key(kind string, i int) string { return fmt.Sprintf("sources.example.dev/%s/a/s%02d", kind, i) }
