package engine

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
)

// TestLineageEqualsEnumeration asks every lineage question of random graphs of every kind and
// checks each answer against a naive enumeration written from docs/protocol.md's lineage
// section alone: it reads the graph from the engine's snapshot (the entities as consumers see
// them), builds its own adjacency and enumerates every path by plain recursion over explicit
// path lists. The only piece of the engine it shares is filter matching (the Trigger filter
// evaluation consumedBy uses). Each graph is asked with every namespace visible and with only
// namespace "a", with the largest limit and with a limit of 3 (the answer must then list a
// prefix of the full list and say it is truncated exactly when there is more). The 64-hop
// bound needs longer routes than these graphs hold: mesh/lineage's TestTooLong covers it.
func TestLineageEqualsEnumeration(t *testing.T) {
	t.Parallel()
	const seeds, graphs = 16, 70 // 1,120 graphs
	var mu sync.Mutex
	seen := map[string]bool{}
	var questions, paths int
	t.Run("graphs", func(t *testing.T) { // returns when every seed's subtest is done
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				mine := map[string]bool{}
				q, p := 0, 0
				for i := range uint64(graphs) {
					dq, dp := checkLineageGraph(t, seed*graphs+i, mine)
					q, p = q+dq, p+dp
				}
				mu.Lock()
				defer mu.Unlock()
				questions, paths = questions+q, paths+p
				for k := range mine {
					seen[k] = true
				}
			})
		}
	})
	t.Logf("%d graphs, %d answers compared, %d paths and problems in them", seeds*graphs, questions, paths)
	// The graphs must reach what the answers can say, or the comparison proves little.
	wanted := []string{"truncated", "producers", "changes", "deadLetterSink", "ready", "index",
		"match yes", "match maybe", "admitted yes", "admitted maybe", "admitted no", "via",
		"authorization policies", "authorization default", "not found"}
	for _, end := range []string{lineage.EndSink, lineage.EndURI, lineage.EndDangling, lineage.EndCycle,
		lineage.EndHidden, lineage.EndNowhere, lineage.EndOrigin} {
		wanted = append(wanted, "end "+end)
	}
	for _, p := range []string{lineage.ProblemDangling, lineage.ProblemNotReady, lineage.ProblemUnmatched, lineage.ProblemUnadmitted} {
		wanted = append(wanted, "problem "+p)
	}
	for _, w := range wanted {
		if !seen[w] {
			t.Errorf("%d graphs gave no answer with %s: the generator does not cover the lineage", seeds*graphs, w)
		}
	}
}

// checkLineageGraph builds one random graph and compares every answer with the oracle's; it
// returns how many answers and paths (or problems) it compared.
func checkLineageGraph(t *testing.T, seed uint64, seen map[string]bool) (questions, paths int) {
	t.Helper()
	g := &generator{rnd: newRand(seed)}
	e := New("lineage")
	var objects []*unstructured.Unstructured
	for range 20 + g.rnd.IntN(21) {
		u := g.lineageObject()
		objects = append(objects, u)
		_, _ = e.upsert(u) // an invalid object is part of the graph's story too
	}
	m, err := e.Snapshot().Mesh()
	if err != nil {
		t.Fatalf("seed %d: snapshot: %v", seed, err)
	}
	o := newLineageOracle(m, lineageGraph{e}.Match)

	var queries []lineage.Query
	for _, et := range m.EventTypes {
		k := et.Key()
		queries = append(queries, lineage.Query{EventType: &k})
	}
	for _, k := range o.keys {
		queries = append(queries, lineage.Query{Target: &k})
	}
	queries = append(queries, lineage.Query{Broken: true})

	visibilities := []struct {
		name    string
		visible func(string) bool
	}{
		{"every namespace", nil},
		{`namespace "a"`, func(ns string) bool { return ns == "a" }},
	}
	for _, vis := range visibilities {
		for _, q := range queries {
			full, wantErr := o.ask(q, vis.visible)
			for _, limit := range []int{lineage.MaxLimit, 3} {
				q.Limit = limit
				got, gotErr := lineage.Ask(e.LineageGraph(), q, vis.visible)
				want := full.cut(q)
				if wantErr != nil || gotErr != nil {
					if !errors.Is(gotErr, lineage.ErrNotFound) || wantErr == nil {
						t.Fatalf("seed %d, %s, %s: error %v, oracle %v\n%s", seed, vis.name, queryText(q), gotErr, wantErr, replay(objects))
					}
					seen["not found"] = true
					continue
				}
				noteLineage(seen, got)
				questions, paths = questions+1, paths+len(got.Paths)+len(got.Broken)
				checkDetails(t, seed, got, vis.visible)
				if sameAnswer(got, want) {
					continue
				}
				if gj, wj := answerJSON(got, ""), answerJSON(want, ""); gj != wj {
					gj, wj = answerJSON(got, " "), answerJSON(want, " ")
					t.Fatalf("seed %d, %s, %s: the answer differs from the enumeration\n--- answer\n%s\n--- enumeration\n%s\n--- objects (applied in order)\n%s",
						seed, vis.name, queryText(q), gj, wj, replay(objects))
				}
			}
		}
	}
	return questions, paths
}

// lineageObject is a random object of any kind, two times in three one of those routes are made of
// (Brokers, Triggers, EventTypes, channels and Subscriptions, Sequences, Parallels,
// EventPolicies naming senders), so that events of random EventTypes get somewhere.
func (g *generator) lineageObject() *unstructured.Unstructured {
	if g.chance(35) {
		return g.object()
	}
	ns, name := g.one(propNamespaces...), g.one(propNames...)
	var o map[string]any
	switch g.rnd.IntN(10) {
	case 0:
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": g.meta(ns, name)}
		if g.chance(40) {
			o["spec"] = map[string]any{"delivery": g.delivery()}
		}
	case 1:
		o = g.eventType(ns, name)
	case 2, 3:
		spec := map[string]any{"broker": g.one(propNames...), "subscriber": g.destination()}
		if g.chance(50) {
			spec["filters"] = []any{g.filter(1)}
		}
		if g.chance(30) {
			spec["delivery"] = g.delivery()
		}
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": g.meta(ns, name), "spec": spec}
	case 4:
		spec := map[string]any{"channel": g.ref("TestChannel"), "subscriber": g.destination()}
		if g.chance(40) {
			spec["reply"] = g.destination()
		}
		if g.chance(30) {
			spec["delivery"] = g.delivery()
		}
		o = map[string]any{"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "metadata": g.meta(ns, name), "spec": spec}
	case 5:
		labels := map[string]any{LabelSubscribable: "true"}
		if g.chance(30) {
			labels[LabelSource] = "true"
		}
		o = map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "testchannels.messaging.example.dev", "labels": labels},
			"spec": map[string]any{"group": "messaging.example.dev", "names": map[string]any{"kind": "TestChannel", "plural": "testchannels"},
				"scope": "Namespaced"}}
		return &unstructured.Unstructured{Object: o}
	case 6:
		o = map[string]any{"apiVersion": "messaging.example.dev/v1", "kind": "TestChannel", "metadata": g.meta(ns, name)}
	case 7:
		senders := [][2]string{{"eventing.knative.dev/v1", "Trigger"}, {"messaging.knative.dev/v1", "Subscription"},
			{"flows.knative.dev/v1", "Sequence"}, {"flows.knative.dev/v1", "Parallel"},
			{"eventing.knative.dev/v1alpha1", "RequestReply"}, {"sources.example.dev/v1", "TestSource"}}
		var from []any
		for range 1 + g.rnd.IntN(2) {
			s := senders[g.rnd.IntN(len(senders))]
			ref := map[string]any{"apiVersion": s[0], "kind": s[1], "name": g.one(propNames...)}
			if g.chance(20) {
				ref["namespace"] = g.one(propNamespaces...)
			}
			from = append(from, map[string]any{"ref": ref})
		}
		if g.chance(20) {
			from = append(from, map[string]any{"sub": "system:serviceaccount:" + ns + ":*"})
		}
		spec := map[string]any{"from": from}
		if g.chance(80) {
			spec["to"] = []any{map[string]any{"ref": g.ref(g.one("Broker", "TestChannel", "Sequence", "Parallel"))}}
		}
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy", "metadata": g.meta(ns, name), "spec": spec}
	case 8:
		o = g.sequence(ns, name, flowOdds{parts: 3, reply: 60})
	default:
		o = g.parallel(ns, name, flowOdds{parts: 3, branchReply: 30, reply: 50})
	}
	if g.chance(30) {
		o["status"] = g.status(ns, name)
	}
	return &unstructured.Unstructured{Object: o}
}

// noteLineage records what an answer says, for the coverage check.
func noteLineage(seen map[string]bool, a lineage.Answer) {
	seen["truncated"] = seen["truncated"] || a.Truncated
	seen["producers"] = seen["producers"] || len(a.Producers) > 0
	if a.Authorization != "" {
		seen["authorization "+a.Authorization] = true
	}
	for _, p := range a.Paths {
		seen["end "+p.End] = true
		for _, h := range p.Hops {
			seen["changes"] = seen["changes"] || h.Changes
			seen["deadLetterSink"] = seen["deadLetterSink"] || h.DeadLetterSink != ""
			seen["ready"] = seen["ready"] || h.Ready != nil
			seen["index"] = seen["index"] || h.Index != nil && *h.Index > 0
			if h.Match != "" {
				seen["match "+h.Match] = true
			}
		}
	}
	for _, s := range a.Senders {
		seen["via"] = seen["via"] || s.Via != ""
		if s.Admitted != "" {
			seen["admitted "+s.Admitted] = true
		}
	}
	for _, p := range a.Broken {
		seen["problem "+p.Problem] = true
	}
}

func queryText(q lineage.Query) string { return q.Values().Encode() }

// sameAnswer is the quick comparison: equal values, details aside. When it says no,
// answerJSON decides (a nil and an empty list read the same there).
func sameAnswer(got, want lineage.Answer) bool {
	if len(got.Broken) != len(want.Broken) {
		return false
	}
	for i := range got.Broken {
		g, w := got.Broken[i], want.Broken[i]
		g.Detail, w.Detail = "", ""
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	got.Broken, want.Broken = nil, nil
	return reflect.DeepEqual(got, want)
}

// answerJSON is an answer as indented JSON, problems' free-text details left out (checked
// apart by checkDetails), one path or problem per line group for a readable diff.
func answerJSON(a lineage.Answer, indent string) string {
	a.Broken = slices.Clone(a.Broken)
	for i := range a.Broken {
		a.Broken[i].Detail = ""
	}
	data, err := json.Marshal(a)
	if indent != "" {
		data, err = json.MarshalIndent(a, "", indent)
	}
	if err != nil {
		return "unencodable: " + err.Error()
	}
	return string(data)
}

// checkDetails checks what the comparison leaves out: every problem says something, and no
// detail names an object of a namespace the caller may not see.
func checkDetails(t *testing.T, seed uint64, a lineage.Answer, visible func(string) bool) {
	t.Helper()
	for _, p := range a.Broken {
		if p.Detail == "" {
			t.Fatalf("seed %d: problem %+v has no detail", seed, p)
		}
		if visible == nil {
			continue
		}
		for _, word := range strings.Fields(p.Detail) {
			if k, err := mesh.ParseKey(strings.Trim(word, ",.()")); err == nil && !visible(k.Namespace) {
				t.Fatalf("seed %d: problem %+v names %s, of a namespace the caller may not see", seed, p, k)
			}
		}
	}
}

func replay(objects []*unstructured.Unstructured) string {
	var b strings.Builder
	for _, u := range objects {
		data, _ := json.Marshal(u.Object)
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.String()
}

// --- the oracle: docs/protocol.md, "GET /v1/lineage", read naively ---

// oracleNode is an entity as the snapshot shows it.
type oracleNode struct {
	kind      mesh.EntityKind
	graph     mesh.Graph
	labels    map[string]string
	reference *mesh.Key // an EventType's
	provides  []string  // a source's providedEventTypes (NAMESPACE/NAME)
	source    bool      // the key is (also) a source entity
}

type lineageOracle struct {
	nodes map[mesh.Key]*oracleNode
	keys  []mesh.Key // every entity key once, in key order
	match func(consumer mesh.Key, eventType *mesh.Key) lineage.Match
}

func gkKey(r *mesh.GroupKindNamespacedName) mesh.Key {
	return mesh.Key{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

func newLineageOracle(m mesh.Mesh, match func(mesh.Key, *mesh.Key) lineage.Match) *lineageOracle {
	o := &lineageOracle{nodes: map[mesh.Key]*oracleNode{}, match: match}
	add := func(k mesh.Key, n *oracleNode) {
		if old, ok := o.nodes[k]; ok {
			// One object, two entities (a kind labelled both channel and source): it is walked
			// as the channel it is, and is a source too.
			if n.kind == mesh.KindSubscribable {
				n.source, n.provides = old.source, old.provides
				o.nodes[k] = n
			} else {
				old.source, old.provides = n.source, n.provides
			}
			return
		}
		o.nodes[k] = n
		o.keys = append(o.keys, k)
	}
	for _, b := range m.Brokers {
		add(b.Key(), &oracleNode{kind: mesh.KindBroker, graph: b.Graph, labels: b.Labels})
	}
	for _, et := range m.EventTypes {
		n := &oracleNode{kind: mesh.KindEventType, graph: et.Graph, labels: et.Labels}
		if et.Reference != nil {
			r := gkKey(et.Reference)
			n.reference = &r
		}
		add(et.Key(), n)
	}
	for _, s := range m.Sources {
		add(s.Key(), &oracleNode{kind: mesh.KindSource, graph: s.Graph, labels: s.Labels, provides: s.ProvidedEventTypes, source: true})
	}
	for _, c := range m.Subscribables {
		add(c.Key(), &oracleNode{kind: mesh.KindSubscribable, graph: c.Graph, labels: c.Labels})
	}
	for _, kind := range mesh.EntityKinds() {
		if list := m.Elements(kind); list != nil {
			for _, el := range *list {
				add(el.Key(), &oracleNode{kind: kind, graph: el.Graph, labels: el.Labels})
			}
		}
	}
	slices.SortFunc(o.keys, mesh.Key.Compare)
	return o
}

func (o *lineageOracle) exists(k mesh.Key) bool { _, ok := o.nodes[k]; return ok }

// oracleAsk is one question with the caller's view.
type oracleAsk struct {
	*lineageOracle
	visible func(string) bool
	paths   []lineage.Path // up to MaxLimit + 1: then enumerating stops
}

// oracleAnswer is an answer with every path and problem (up to MaxLimit + 1 of them).
type oracleAnswer struct{ lineage.Answer }

// cut is the answer to q: its limit applied, truncated exactly when there is more (or the
// 64-hop bound ended a path).
func (f oracleAnswer) cut(q lineage.Query) lineage.Answer {
	a := f.Answer
	a.Query = q
	a.Paths = a.Paths[:min(q.Limit, len(a.Paths))]
	a.Truncated = len(f.Paths) > q.Limit || slices.ContainsFunc(a.Paths, func(p lineage.Path) bool { return p.End == lineage.EndTooLong })
	if q.Broken {
		a.Broken = a.Broken[:min(q.Limit, len(a.Broken))]
		a.Truncated = len(f.Broken) > q.Limit
	}
	return a
}

func (o *lineageOracle) ask(q lineage.Query, visible func(string) bool) (oracleAnswer, error) {
	if visible == nil {
		visible = func(string) bool { return true }
	}
	a := &oracleAsk{lineageOracle: o, visible: visible}
	ans := lineage.Answer{Query: q, Paths: []lineage.Path{}}
	switch {
	case q.EventType != nil:
		n, ok := o.nodes[*q.EventType]
		if !ok || n.kind != mesh.KindEventType || !visible(q.EventType.Namespace) {
			return oracleAnswer{}, lineage.ErrNotFound
		}
		ans.Producers = a.producers(*q.EventType, n)
		a.forward(nil, nil, lineage.Hop{}, q.EventType, "", q.EventType)
	case q.Target != nil:
		n, ok := o.nodes[*q.Target]
		if !ok || !visible(q.Target.Namespace) {
			return oracleAnswer{}, lineage.ErrNotFound
		}
		a.whoSends(&ans, *q.Target, n)
	case q.Broken:
		ans.Broken = a.broken()
	}
	ans.Paths = append(ans.Paths, a.paths...)
	return oracleAnswer{ans}, nil
}

// shown is a key as the caller may see it.
func (a *oracleAsk) shown(k mesh.Key) string {
	if !a.visible(k.Namespace) {
		return "(hidden)"
	}
	return k.String()
}

func (a *oracleAsk) done() bool { return len(a.paths) > lineage.MaxLimit }

func (a *oracleAsk) emit(hops []lineage.Hop, end string, reversed bool) {
	if a.done() {
		return
	}
	hops = slices.Clone(hops)
	if reversed {
		slices.Reverse(hops)
	}
	keys := []string{}
	for _, h := range hops {
		if h.Key != "" {
			keys = append(keys, h.Key)
		}
	}
	a.paths = append(a.paths, lineage.Path{Keys: keys, Hops: hops, End: end})
}

func readiness(g mesh.Graph) *mesh.Readiness {
	if g.Ready != nil && g.Ready.Status != "True" {
		r := *g.Ready
		return &r
	}
	return nil
}

// producers: the sources of the EventType's namespace whose providedEventTypes name it, and
// the objects its owner edges name.
func (a *oracleAsk) producers(et mesh.Key, n *oracleNode) []string {
	var out []string
	for _, k := range a.keys { // key order
		s := a.nodes[k]
		owns := slices.ContainsFunc(n.graph.Edges, func(ed mesh.Edge) bool { return ed.Role == mesh.RoleOwner && ed.Ref != nil && gkKey(ed.Ref) == k })
		if owns || s.source && k.Namespace == et.Namespace && slices.Contains(s.provides, et.NamespacedName()) {
			out = append(out, k.String())
		}
	}
	return out
}

// deadLetter is where failed deliveries of an object's go: its deadLetterSink edge, as the
// caller may see it.
func (a *oracleAsk) deadLetter(g mesh.Graph) string {
	for _, ed := range g.Edges {
		if ed.Role == mesh.RoleDeadLetterSink {
			if ed.Ref != nil {
				return a.shown(gkKey(ed.Ref))
			}
			return ed.URI
		}
	}
	return ""
}

// deadLetterAt is where failed deliveries to a Sequence step or Parallel branch go: the
// deadLetterSink edge with its index.
func (a *oracleAsk) deadLetterAt(g mesh.Graph, index int) string {
	for _, ed := range g.Edges {
		if ed.Role == mesh.RoleDeadLetterSink && ed.Index != nil && *ed.Index == index {
			if ed.Ref != nil {
				return a.shown(gkKey(ed.Ref))
			}
			return ed.URI
		}
	}
	return ""
}

func edgesOf(g mesh.Graph, role mesh.EdgeRole) []mesh.Edge {
	var out []mesh.Edge
	for _, ed := range g.Edges {
		if ed.Role == role {
			out = append(out, ed)
		}
	}
	return out
}

func onPath(path []mesh.Key, k mesh.Key) bool { return slices.Contains(path, k) }

// forward enumerates every path from hop h, which names to (or uri), on. hops and keys are the
// path so far. ev is the EventType the event is still known to be (nil once it may have
// changed).
func (a *oracleAsk) forward(hops []lineage.Hop, keys []mesh.Key, h lineage.Hop, to *mesh.Key, uri string, ev *mesh.Key) {
	if a.done() {
		return
	}
	hops = slices.Clone(hops)
	if to == nil {
		h.URI = uri
		a.emit(append(hops, h), lineage.EndURI, false)
		return
	}
	if !a.visible(to.Namespace) {
		a.emit(append(hops, lineage.Hop{Role: h.Role, Index: h.Index, Changes: h.Changes}), lineage.EndHidden, false)
		return
	}
	h.Key = to.String()
	if onPath(keys, *to) {
		a.emit(append(hops, h), lineage.EndCycle, false)
		return
	}
	n, ok := a.nodes[*to]
	if !ok {
		h.Dangling = true
		a.emit(append(hops, h), lineage.EndDangling, false)
		return
	}
	h.Ready = readiness(n.graph)
	hops, keys = append(hops, h), append(slices.Clone(keys), *to)
	if len(hops) > lineage.MaxHops {
		a.emit(hops, lineage.EndTooLong, false)
		return
	}
	edge := func(ed mesh.Edge, hop lineage.Hop, ev *mesh.Key) {
		hop.Role, hop.Index = ed.Role, ed.Index
		var next *mesh.Key
		if ed.Ref != nil {
			k := gkKey(ed.Ref)
			next = &k
		}
		if hop.Changes {
			ev = nil
		}
		a.forward(hops, keys, hop, next, ed.URI, ev)
	}
	switch n.kind {
	case mesh.KindEventType:
		if n.reference == nil {
			a.emit(hops, lineage.EndNowhere, false)
			return
		}
		a.forward(hops, keys, lineage.Hop{Role: lineage.RoleReference}, n.reference, "", ev)
	case mesh.KindBroker, mesh.KindSubscribable:
		consumerKind, role := mesh.KindTrigger, mesh.RoleBroker
		if n.kind == mesh.KindSubscribable {
			consumerKind, role = mesh.KindSubscription, mesh.RoleChannel
		}
		any := false
		for _, ck := range a.keys { // key order
			c := a.nodes[ck]
			if c.kind != consumerKind || !slices.ContainsFunc(edgesOf(c.graph, role), func(ed mesh.Edge) bool {
				return ed.Ref != nil && gkKey(ed.Ref) == *to
			}) {
				continue
			}
			hop := lineage.Hop{Role: role, DeadLetterSink: cmp.Or(a.deadLetter(c.graph), a.deadLetter(n.graph))}
			if consumerKind == mesh.KindTrigger {
				m := a.match(ck, ev)
				if m == lineage.No {
					continue
				}
				hop.Match = m.String()
				for _, ed := range edgesOf(c.graph, mesh.RoleSubscriber) {
					hop.Filter = ed.Filter
				}
			}
			any = true
			a.forward(hops, keys, hop, &ck, "", ev)
		}
		if !any {
			a.emit(hops, lineage.EndNowhere, false)
		}
	case mesh.KindTrigger, mesh.KindSubscription, mesh.KindSource, mesh.KindEventTransform, mesh.KindRequestReply:
		type out struct {
			role    mesh.EdgeRole
			changes bool
		}
		outs := map[mesh.EntityKind][]out{
			mesh.KindTrigger:        {{mesh.RoleSubscriber, false}},
			mesh.KindSubscription:   {{mesh.RoleSubscriber, false}, {mesh.RoleReply, true}},
			mesh.KindSource:         {{mesh.RoleSink, false}},
			mesh.KindEventTransform: {{mesh.RoleSink, true}, {mesh.RoleReply, true}},
			mesh.KindRequestReply:   {{mesh.RoleBroker, false}},
		}[n.kind]
		any := false
		for _, ed := range n.graph.Edges {
			for _, o := range outs {
				if ed.Role == o.role {
					any = true
					edge(ed, lineage.Hop{Changes: o.changes}, ev)
				}
			}
		}
		if !any {
			a.emit(hops, lineage.EndNowhere, false)
		}
	case mesh.KindSequence:
		var steps []mesh.Edge
		for _, ed := range edgesOf(n.graph, mesh.RoleSubscriber) {
			if ed.Index != nil {
				steps = append(steps, ed)
			}
		}
		slices.SortStableFunc(steps, func(x, y mesh.Edge) int { return cmp.Compare(*x.Index, *y.Index) })
		var reply *mesh.Edge
		for _, ed := range edgesOf(n.graph, mesh.RoleReply) {
			if ed.Index == nil {
				reply = &ed
			}
		}
		var hopsOf []lineage.Hop
		for i, step := range steps {
			hopsOf = append(hopsOf, lineage.Hop{Changes: i > 0, DeadLetterSink: a.deadLetterAt(n.graph, *step.Index)})
		}
		a.flow(hops, keys, steps, hopsOf, reply)
	case mesh.KindParallel:
		branches := map[int]bool{}
		var reply *mesh.Edge
		for _, ed := range n.graph.Edges {
			if ed.Index != nil {
				branches[*ed.Index] = true
			} else if ed.Role == mesh.RoleReply {
				reply = &ed
			}
		}
		order := make([]int, 0, len(branches))
		for i := range branches {
			order = append(order, i)
		}
		slices.Sort(order)
		any := false
		for _, i := range order {
			var chain []mesh.Edge
			var chainHops []lineage.Hop
			branchReply := reply
			for _, ed := range n.graph.Edges {
				if ed.Index == nil || *ed.Index != i {
					continue
				}
				switch ed.Role {
				case mesh.RoleFilter:
					chain = slices.Insert(chain, 0, ed)
					chainHops = slices.Insert(chainHops, 0, lineage.Hop{Match: "maybe"})
				case mesh.RoleSubscriber:
					chain = append(chain, ed)
					chainHops = append(chainHops, lineage.Hop{DeadLetterSink: a.deadLetterAt(n.graph, i)})
				case mesh.RoleReply:
					branchReply = &ed
				}
			}
			if len(chain) == 0 {
				continue
			}
			any = true
			a.flow(hops, keys, chain, chainHops, branchReply)
		}
		if !any {
			a.emit(hops, lineage.EndNowhere, false)
		}
	default:
		a.emit(hops, lineage.EndSink, false)
	}
}

// flow walks the hops of a Sequence or a Parallel branch in turn (each a hop of the path, not
// followed beyond), then the reply (the last one's answer) on, or ends at a sink.
// (What is known of the event matters no more: nothing in a flow is a filter the engine
// evaluates, and the reply carries another event.)
func (a *oracleAsk) flow(hops []lineage.Hop, keys []mesh.Key, chain []mesh.Edge, chainHops []lineage.Hop, reply *mesh.Edge) {
	hops, keys = slices.Clone(hops), slices.Clone(keys)
	for i, ed := range chain {
		h := chainHops[i]
		h.Role, h.Index = ed.Role, ed.Index
		if ed.Ref == nil {
			h.URI = ed.URI
			hops = append(hops, h)
			continue
		}
		k := gkKey(ed.Ref)
		switch n, ok := a.nodes[k]; {
		case !a.visible(k.Namespace):
			a.emit(append(hops, lineage.Hop{Role: h.Role, Index: h.Index, Changes: h.Changes}), lineage.EndHidden, false)
			return
		case onPath(keys, k):
			h.Key = k.String()
			a.emit(append(hops, h), lineage.EndCycle, false)
			return
		case !ok:
			h.Key, h.Dangling = k.String(), true
			a.emit(append(hops, h), lineage.EndDangling, false)
			return
		default:
			h.Key, h.Ready = k.String(), readiness(n.graph)
			hops, keys = append(hops, h), append(keys, k)
		}
	}
	if reply == nil {
		a.emit(hops, lineage.EndSink, false)
		return
	}
	var next *mesh.Key
	if reply.Ref != nil {
		k := gkKey(reply.Ref)
		next = &k
	}
	a.forward(hops, keys, lineage.Hop{Role: reply.Role, Index: reply.Index, Changes: true}, next, reply.URI, nil)
}

// --- who sends, who may ---

type oracleSender struct {
	key  mesh.Key
	role mesh.EdgeRole
}

// sendersOf: every object one of whose edges names k with a sending role, in key order.
func (a *oracleAsk) sendersOf(k mesh.Key) []oracleSender {
	var out []oracleSender
	for _, sk := range a.keys {
		n := a.nodes[sk]
		for _, ed := range n.graph.Edges {
			if ed.Ref == nil || gkKey(ed.Ref) != k {
				continue
			}
			switch ed.Role {
			case mesh.RoleSubscriber, mesh.RoleReply, mesh.RoleSink, mesh.RoleDeadLetterSink, mesh.RoleFilter:
			case mesh.RoleBroker:
				if n.kind != mesh.KindRequestReply {
					continue
				}
			default:
				continue
			}
			s := oracleSender{sk, ed.Role}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y oracleSender) int { return cmp.Compare(x.role, y.role) })
	slices.SortStableFunc(out, func(x, y oracleSender) int { return x.key.Compare(y.key) })
	return out
}

// readsFrom is the Broker a Trigger reads from, or the channel a Subscription does.
func readsFrom(n *oracleNode) (mesh.Key, mesh.EdgeRole, bool) {
	role := map[mesh.EntityKind]mesh.EdgeRole{mesh.KindTrigger: mesh.RoleBroker, mesh.KindSubscription: mesh.RoleChannel}[n.kind]
	if role == "" {
		return mesh.Key{}, "", false
	}
	for _, ed := range edgesOf(n.graph, role) {
		if ed.Ref != nil {
			return gkKey(ed.Ref), role, true
		}
	}
	return mesh.Key{}, "", false
}

func (a *oracleAsk) whoSends(ans *lineage.Answer, target mesh.Key, n *oracleNode) {
	policies := a.policiesOf(target, n)
	ans.Authorization = "default"
	if len(policies) > 0 {
		ans.Authorization, ans.Policies = "policies", policies
	}
	for _, s := range a.sendersOf(target) {
		if !a.visible(s.key.Namespace) {
			continue
		}
		out := lineage.Sender{Key: s.key.String(), Role: s.role}
		if from, _, ok := readsFrom(a.nodes[s.key]); ok {
			out.Via = a.shown(from)
		}
		if len(policies) > 0 {
			out.Admitted = admittedBy(policies, s.key.String())
		}
		ans.Senders = append(ans.Senders, out)
	}
	a.backward([]lineage.Hop{{Key: target.String(), Ready: readiness(n.graph)}}, []mesh.Key{target})
}

// backward enumerates the paths that end at the first of rev (the path so far, reversed:
// rev[0] is the target, the last the object reached furthest upstream).
func (a *oracleAsk) backward(rev []lineage.Hop, keys []mesh.Key) {
	if a.done() {
		return
	}
	if len(rev) > lineage.MaxHops {
		a.emit(rev, lineage.EndTooLong, true)
		return
	}
	cur := keys[len(keys)-1]
	var ups []oracleSender
	if from, role, ok := readsFrom(a.nodes[cur]); ok {
		ups = []oracleSender{{from, role}}
	} else {
		ups = a.sendersOf(cur)
	}
	if len(ups) == 0 {
		a.emit(rev, lineage.EndOrigin, true)
		return
	}
	for _, up := range ups {
		next := slices.Clone(rev)
		next[len(next)-1].Role = up.role
		switch n, ok := a.nodes[up.key]; {
		case !a.visible(up.key.Namespace):
			a.emit(append(next, lineage.Hop{}), lineage.EndHidden, true)
		case onPath(keys, up.key):
			a.emit(append(next, lineage.Hop{Key: up.key.String()}), lineage.EndCycle, true)
		case !ok:
			a.emit(append(next, lineage.Hop{Key: up.key.String(), Dangling: true}), lineage.EndDangling, true)
		default:
			a.backward(append(next, lineage.Hop{Key: up.key.String(), Ready: readiness(n.graph)}), append(slices.Clone(keys), up.key))
		}
	}
}

// enforcing kinds: Knative's addressables check EventPolicies.
var oracleEnforcing = []mesh.EntityKind{mesh.KindBroker, mesh.KindSubscribable, mesh.KindSequence, mesh.KindParallel,
	mesh.KindEventTransform, mesh.KindRequestReply, mesh.KindJobSink, mesh.KindIntegrationSink}

// policiesOf: the EventPolicies of k's namespace whose "to" names k, selects it by label (and
// kind), or is empty; none for what does not check them.
func (a *oracleAsk) policiesOf(k mesh.Key, n *oracleNode) []lineage.Policy {
	if !slices.Contains(oracleEnforcing, n.kind) {
		return nil
	}
	var out []lineage.Policy
	for _, pk := range a.keys {
		p := a.nodes[pk]
		if p.kind != mesh.KindEventPolicy || pk.Namespace != k.Namespace {
			continue
		}
		to := edgesOf(p.graph, mesh.RoleTo)
		applies := len(to) == 0
		for _, ed := range to {
			if ed.Ref != nil && gkKey(ed.Ref) == k || ed.Ref == nil && selects(ed.Selector, k, n.labels) {
				applies = true
			}
		}
		if !applies {
			continue
		}
		pol := lineage.Policy{Key: pk.String(), From: []string{}}
		for _, ed := range edgesOf(p.graph, mesh.RoleFrom) {
			if ed.Ref != nil {
				pol.From = append(pol.From, a.shown(gkKey(ed.Ref)))
			} else {
				pol.From = append(pol.From, "sub:"+ed.Subject)
			}
			pol.Filter = ed.Filter
		}
		out = append(out, pol)
	}
	return out
}

func selects(selector json.RawMessage, k mesh.Key, objectLabels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	var sel struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		metav1.LabelSelector
	}
	if json.Unmarshal(selector, &sel) != nil {
		return false
	}
	if sel.Kind != "" && sel.Kind != k.Kind {
		return false
	}
	if gv, err := schema.ParseGroupVersion(sel.APIVersion); sel.APIVersion != "" && (err != nil || gv.Group != k.Group) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(&sel.LabelSelector)
	return err == nil && s.Matches(labels.Set(objectLabels))
}

// admittedBy: yes when a policy's from names the sender, maybe when one admits OIDC subjects,
// else no.
func admittedBy(policies []lineage.Policy, sender string) string {
	answer := "no"
	for _, p := range policies {
		for _, f := range p.From {
			switch {
			case f == sender:
				return "yes"
			case strings.HasPrefix(f, "sub:"):
				answer = "maybe"
			}
		}
	}
	return answer
}

// --- what is broken ---

// broken lists every problem of the visible namespaces, in key order; for one key: its
// dangling edges (in edge order, an EventType's reference after them), notReady, unmatched,
// then unadmitted (by target, then role).
func (a *oracleAsk) broken() []lineage.Problem {
	// unadmitted: the senders each target's policies admit not, by sender (targets in key
	// order, then roles).
	unadmitted := map[mesh.Key][]lineage.Problem{}
	for _, tk := range a.keys {
		policies := a.policiesOf(tk, a.nodes[tk])
		if len(policies) == 0 {
			continue
		}
		for _, s := range a.sendersOf(tk) {
			if admittedBy(policies, s.key.String()) == "no" {
				unadmitted[s.key] = append(unadmitted[s.key], lineage.Problem{Problem: lineage.ProblemUnadmitted, Key: s.key.String(), Role: s.role, Ref: a.shown(tk)})
			}
		}
	}
	var out []lineage.Problem
	for _, k := range a.keys {
		if !a.visible(k.Namespace) {
			continue
		}
		n := a.nodes[k]
		for _, ed := range n.graph.Edges {
			if ed.Ref != nil && !a.exists(gkKey(ed.Ref)) {
				out = append(out, lineage.Problem{Problem: lineage.ProblemDangling, Key: k.String(), Role: ed.Role, Ref: a.shown(gkKey(ed.Ref))})
			}
		}
		if n.kind == mesh.KindEventType && n.reference != nil && !a.exists(*n.reference) {
			out = append(out, lineage.Problem{Problem: lineage.ProblemDangling, Key: k.String(), Role: lineage.RoleReference, Ref: a.shown(*n.reference)})
		}
		if r := readiness(n.graph); r != nil {
			out = append(out, lineage.Problem{Problem: lineage.ProblemNotReady, Key: k.String(), Ready: r})
		}
		if n.kind == mesh.KindEventType && n.reference != nil {
			if c, ok := a.nodes[*n.reference]; ok && a.unmatched(k, *n.reference, c) {
				out = append(out, lineage.Problem{Problem: lineage.ProblemUnmatched, Key: k.String(), Ref: a.shown(*n.reference)})
			}
		}
		out = append(out, unadmitted[k]...)
	}
	return out
}

// unmatched: the EventType's Broker has no Trigger that can match it, or its channel no
// Subscription.
func (a *oracleAsk) unmatched(et, carrier mesh.Key, c *oracleNode) bool {
	var kind mesh.EntityKind
	var role mesh.EdgeRole
	switch c.kind {
	case mesh.KindBroker:
		kind, role = mesh.KindTrigger, mesh.RoleBroker
	case mesh.KindSubscribable:
		kind, role = mesh.KindSubscription, mesh.RoleChannel
	default:
		return false
	}
	for _, ck := range a.keys {
		n := a.nodes[ck]
		if n.kind != kind {
			continue
		}
		for _, ed := range edgesOf(n.graph, role) {
			if ed.Ref != nil && gkKey(ed.Ref) == carrier && (kind == mesh.KindSubscription || a.match(ck, &et) != lineage.No) {
				return false
			}
		}
	}
	return true
}
