package page_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// pageLineage is what the page shows of a lineage: in its panel, every path hop by hop (a
// hop's key, else its URI, else "(hidden)") with how it ends, the edges between hops ("from
// role to"), the dead-letter sinks ("hop sink"), those marked as not existing and the
// problems marked on hops ("key problem"); on the graph, the ids of the boxes and edges
// ("from kind to") highlighted and of the boxes marked broken. Senders and problems are the
// panel's lists.
type pageLineage struct {
	State          string     `json:"state"`
	Paths          [][]string `json:"paths"`
	Ends           []string   `json:"ends"`
	Arrows         []string   `json:"arrows"`
	DeadLetters    []string   `json:"deadLetters"`
	MissingLetters []string   `json:"missingLetters"`
	HopProblems    []string   `json:"hopProblems"`
	Senders        []string   `json:"senders"`
	Problems       []string   `json:"problems"`
	Nodes          []string   `json:"nodes"`
	Edges          []string   `json:"edges"`
	Broken         []string   `json:"broken"`
}

const readPageLineage = `(() => {
  const uniq = (xs) => [...new Set(xs)].sort();
  const aside = document.getElementById('lineage');
  const paths = [...aside.querySelectorAll('.path')];
  return {
    state: document.body.dataset.lineage || '',
    paths: paths.map((p) => [...p.querySelectorAll('.hop')].map((h) => h.dataset.key || h.dataset.uri || '(hidden)')),
    ends: paths.map((p) => p.dataset.end),
    arrows: uniq([...aside.querySelectorAll('.path .arrow')].map((a) => a.dataset.from + ' ' + a.dataset.role + ' ' + a.dataset.to)),
    deadLetters: uniq([...aside.querySelectorAll('.path .dead-letter')].map((d) => d.dataset.of + ' ' + (d.dataset.key || d.dataset.uri))),
    missingLetters: uniq([...aside.querySelectorAll('.path .dead-letter.dangling')].map((d) => d.dataset.of + ' ' + (d.dataset.key || d.dataset.uri))),
    hopProblems: uniq([...aside.querySelectorAll('.path [data-problem-of]')].map((t) => t.dataset.problemOf + ' ' + t.dataset.problem)),
    senders: [...aside.querySelectorAll('.senders li')].map((s) => s.dataset.key + ' ' + (s.dataset.admitted || '')),
    problems: [...aside.querySelectorAll('.problem')].map((p) => p.dataset.problem + ' ' + p.querySelector('[data-key]').dataset.key),
    nodes: uniq([...document.querySelectorAll('#graph .node.on-lineage')].map((n) => n.dataset.id)),
    edges: uniq([...document.querySelectorAll('#graph svg.edges path.on-lineage')].map((p) => p.dataset.from + ' ' + p.dataset.kind + ' ' + p.dataset.to)),
    broken: uniq([...document.querySelectorAll('#graph .node.broken')].map((n) => n.dataset.id)),
  };
})()`

// askLineage is GET /v1/lineage as the test asks it; false when what it asks about does not
// exist (404), as while an edit is on its way.
func askLineage(t testing.TB, base, query string) (lineage.Answer, bool) {
	t.Helper()
	resp, err := http.Get(base + mesh.PathLineage + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a lineage.Answer
	if resp.StatusCode == http.StatusNotFound {
		return a, false
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?%s: %d %v", mesh.PathLineage, query, resp.StatusCode, err)
	}
	return a, true
}

// wantLineage is what the page must show of answer a on graph g, knowing what is broken in
// the mesh (problems): the panel lists the answer as it is, and the graph highlights exactly
// the boxes of the objects on it (every hop, every dead-letter sink that is an object, the
// producers, the EventType or target asked about, the objects of the problems) and the edges
// between two objects next to each other on a path (or a producer and its EventType). Marked
// broken: a dead-letter sink a dangling edge names, the problems of the objects on a path,
// and on the graph the objects on the lineage with a problem, a dangling or not ready hop.
func wantLineage(a lineage.Answer, problems []lineage.Problem, g domGraph) pageLineage {
	w := pageLineage{State: "shown", Paths: [][]string{}, Ends: []string{}, Arrows: []string{}, DeadLetters: []string{},
		MissingLetters: []string{}, HopProblems: []string{}, Senders: []string{}, Problems: []string{}, Nodes: []string{},
		Edges: []string{}, Broken: []string{}}
	problemsOf := map[string][]string{}
	dangling := map[string]bool{}
	for _, p := range problems {
		problemsOf[p.Key] = append(problemsOf[p.Key], p.Problem)
		if p.Problem == lineage.ProblemDangling && p.Ref != "" {
			dangling[p.Ref] = true
		}
	}
	on, broken := map[string]bool{}, map[string]bool{}
	missingLetters, hopProblems := map[string]bool{}, map[string]bool{}
	pairs := map[[2]string]bool{}
	pair := func(x, y string) { pairs[[2]string{x, y}], pairs[[2]string{y, x}] = true, true }
	arrows, deadLetters := map[string]bool{}, map[string]bool{}
	for _, p := range a.Paths {
		var hops []string
		prev := ""
		for i, h := range p.Hops {
			here := h.Key + h.URI // one of them, or neither for a hidden hop
			shown := here
			if shown == "" {
				shown = "(hidden)"
			}
			hops = append(hops, shown)
			if i > 0 {
				arrows[prev+" "+string(h.Role)+" "+here] = true
			}
			if h.Key != "" {
				on[h.Key] = true
				if h.Dangling || h.Ready != nil {
					broken[h.Key] = true
				}
				for _, p := range problemsOf[h.Key] {
					hopProblems[h.Key+" "+p] = true
				}
				if i > 0 && p.Hops[i-1].Key != "" {
					pair(p.Hops[i-1].Key, h.Key)
				}
			}
			if h.DeadLetterSink != "" {
				deadLetters[here+" "+h.DeadLetterSink] = true
				if dangling[h.DeadLetterSink] {
					missingLetters[here+" "+h.DeadLetterSink] = true
				}
				if !strings.Contains(h.DeadLetterSink, "://") {
					on[h.DeadLetterSink] = true
				}
			}
			prev = here
		}
		w.Paths = append(w.Paths, hops)
		w.Ends = append(w.Ends, p.End)
	}
	if a.Query.EventType != nil {
		et := a.Query.EventType.String()
		on[et] = true
		for _, k := range a.Producers {
			on[k] = true
			pair(k, et)
		}
	}
	if a.Query.Target != nil {
		on[a.Query.Target.String()] = true
	}
	for _, s := range a.Senders {
		w.Senders = append(w.Senders, s.Key+" "+s.Admitted)
	}
	for _, p := range a.Broken {
		on[p.Key] = true
		w.Problems = append(w.Problems, p.Problem+" "+p.Key)
	}
	for k := range on {
		if len(problemsOf[k]) > 0 {
			broken[k] = true
		}
	}
	keyOf := func(id string) string { _, key, _ := strings.Cut(id, ":"); return key }
	for _, id := range g.Nodes {
		if !strings.HasPrefix(id, "consumer:") && on[keyOf(id)] {
			w.Nodes = append(w.Nodes, id)
			if broken[keyOf(id)] {
				w.Broken = append(w.Broken, id)
			}
		}
	}
	for _, e := range g.Edges {
		f := strings.Fields(e) // from kind to
		if pairs[[2]string{keyOf(f[0]), keyOf(f[2])}] {
			w.Edges = append(w.Edges, e)
		}
	}
	w.Arrows = sortedSet(arrows)
	w.DeadLetters = sortedSet(deadLetters)
	w.MissingLetters = sortedSet(missingLetters)
	w.HopProblems = sortedSet(hopProblems)
	return w
}

func sortedSet(set map[string]bool) []string {
	out := []string{}
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// sameLineage waits until the page shows exactly the broadcaster's answer to query (asked by
// the test itself, again on every look, so an edit in between is followed) and, when unlike is
// given, that answer differs from it. It returns what the page shows.
func sameLineage(t testing.TB, ctx context.Context, base, query string, unlike *pageLineage) pageLineage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		answer, found := askLineage(t, base, query)
		problems := answer.Broken
		if !answer.Query.Broken {
			all, _ := askLineage(t, base, "broken=true&limit=1000")
			problems = all.Broken
		}
		want := wantLineage(answer, problems, servedGraph(t, base, ""))
		got := eval[pageLineage](t, ctx, readPageLineage)
		if found && reflect.DeepEqual(got, want) && (unlike == nil || !reflect.DeepEqual(got, *unlike)) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("for %s the page shows\n  %+v\nwant\n  %+v", query, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replaceIn replaces the one occurrence of from in the manifests file at path.
func replaceIn(t testing.TB, path, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), from); n != 1 {
		t.Fatalf("%s holds %q %d times, want once", path, from, n)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(raw), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func click(t testing.TB, ctx context.Context, selector string) {
	t.Helper()
	if !eval[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, selector)) {
		t.Fatalf("nothing on the page matches %s", selector)
	}
}

// pickFromList chooses the question asked in the lineage picker (its list is filled as it
// gets the focus).
func pickFromList(t testing.TB, ctx context.Context, query string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const s = document.getElementById('lineage-pick'); s.dispatchEvent(new Event('focus'));
		if (![...s.options].some((o) => o.value === %[1]q)) return false;
		s.value = %[1]q; s.dispatchEvent(new Event('change')); return true; })()`, query)
	if !eval[bool](t, ctx, js) {
		t.Fatalf("the lineage picker offers no %s", query)
	}
}

// TestPageLineage picks EventType shop/order-created on the page of the real broadcaster (a
// click on its box): the panel lists exactly GET /v1/lineage's paths and the graph highlights
// exactly what lies on them. A Trigger's filter edited in the manifests (metrics-orders no
// longer takes order-created) changes both to the new answer, followed through /v1/watch; the
// time from the file written to the new lineage shown is logged, never asserted. Then the
// Broker's senders with their admission, the broken routes, and the EventType gone and back.
func TestPageLineage(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base := startBroadcaster(t, dir)
	ctx := browser(t)
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the page to go live", 30*time.Second, `document.body.dataset.state === 'live'`)
	sameGraph(t, ctx, base, "")

	const created = "eventType=shop%2Forder-created"
	const metricsOrders = "eventing.knative.dev/Trigger/shop/metrics-orders"
	click(t, ctx, `#graph .node[data-id="eventtype:eventing.knative.dev/EventType/shop/order-created"]`)
	before := sameLineage(t, ctx, base, created, nil)
	if !slices.ContainsFunc(before.Paths, func(p []string) bool { return slices.Contains(p, metricsOrders) }) {
		t.Fatalf("no path through %s before the edit: %q", metricsOrders, before.Paths)
	}
	for _, id := range []string{"eventtype:eventing.knative.dev/EventType/shop/order-created", "broker:eventing.knative.dev/Broker/shop/orders"} {
		if !slices.Contains(before.Nodes, id) {
			t.Errorf("%s is not highlighted: %q", id, before.Nodes)
		}
	}
	if dimmed := eval[int](t, ctx, `document.querySelectorAll('body.lineage-active #graph .node:not(.on-lineage)').length`); dimmed == 0 {
		t.Error("nothing of the graph is dimmed")
	}
	screenshot(t, ctx, "page-lineage.png")

	start := time.Now()
	replaceIn(t, filepath.Join(dir, "shop", "triggers.yaml"),
		"    - exact: {type: com.example.shop.order.created}\n    - exact: {type: com.example.shop.order.shipped}",
		"    - exact: {type: com.example.shop.order.returned}\n    - exact: {type: com.example.shop.order.shipped}")
	after := sameLineage(t, ctx, base, created, &before)
	t.Logf("Trigger filter edited → lineage redrawn: %v", time.Since(start).Round(time.Millisecond))
	if slices.ContainsFunc(after.Paths, func(p []string) bool { return slices.Contains(p, metricsOrders) }) {
		t.Errorf("a path still passes %s after its filter no longer matches: %q", metricsOrders, after.Paths)
	}
	screenshot(t, ctx, "page-lineage-edited.png")

	// A route with a dead-letter sink that does not exist, chosen from the picker.
	pickFromList(t, ctx, "eventType=payments%2Frefund-issued")
	refunds := sameLineage(t, ctx, base, "eventType=payments%2Frefund-issued", nil)
	if len(refunds.MissingLetters) == 0 || len(refunds.HopProblems) == 0 {
		t.Errorf("the dead-letter sink of payments/refund-issued's route is not shown missing: %+v", refunds)
	}
	screenshot(t, ctx, "page-lineage-dead-letter.png")

	// The Broker, clicked: who sends to it, and whether its EventPolicy admits them.
	click(t, ctx, `#graph .node[data-id="broker:eventing.knative.dev/Broker/shop/orders"]`)
	target := sameLineage(t, ctx, base, "target=eventing.knative.dev%2FBroker%2Fshop%2Forders", nil)
	if !slices.Contains(target.Senders, "sources.knative.dev/PingSource/shop/heartbeat yes") {
		t.Errorf("the heartbeat source is not shown admitted: %q", target.Senders)
	}
	screenshot(t, ctx, "page-lineage-target.png")

	// What is broken, chosen from the picker.
	pickFromList(t, ctx, "broken=true")
	broken := sameLineage(t, ctx, base, "broken=true", nil)
	if len(broken.Problems) == 0 {
		t.Error("no broken route listed (the example has a dangling dead-letter sink)")
	}

	// The EventType renamed away: the page says it is gone; renamed back, it shows it again.
	click(t, ctx, `#graph .node[data-id="eventtype:eventing.knative.dev/EventType/shop/order-created"]`)
	sameLineage(t, ctx, base, created, nil)
	eventTypes := filepath.Join(dir, "shop", "eventtypes.yaml")
	replaceIn(t, eventTypes, "  name: order-created\n", "  name: order-placed\n")
	waitFor(t, ctx, "the page to say the EventType is gone", 30*time.Second, `document.body.dataset.lineage === 'missing' &&
		document.getElementById('lineage-status').textContent.includes('does not exist') && !document.querySelector('#graph .on-lineage')`)
	replaceIn(t, eventTypes, "  name: order-placed\n", "  name: order-created\n")
	sameLineage(t, ctx, base, created, nil)
}
