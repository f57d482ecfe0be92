package page_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// domGraph is the graph the page draws: the ids of its boxes and its edges ("from kind to").
type domGraph struct {
	Nodes []string `json:"nodes"`
	Edges []string `json:"edges"`
}

const readDOMGraph = `(() => {
  const uniq = (xs) => [...new Set(xs)].sort();
  return {
    nodes: uniq([...document.querySelectorAll('#graph .node')].map((n) => n.dataset.id)),
    edges: uniq([...document.querySelectorAll('#graph svg.edges path')].map((p) => p.dataset.from + ' ' + p.dataset.kind + ' ' + p.dataset.to)),
  };
})()`

// servedGraph is mesh/graph's graph of what the broadcaster serves now.
func servedGraph(t testing.TB, base, token string) domGraph {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+mesh.PathGetEventMesh, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m mesh.EventMesh
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", mesh.PathGetEventMesh, resp.StatusCode, err)
	}
	g := graph.Build(m)
	var out domGraph
	for _, n := range g.Nodes() {
		out.Nodes = append(out.Nodes, n.ID)
	}
	for _, e := range g.Edges {
		out.Edges = append(out.Edges, e.From+" "+string(e.Kind)+" "+e.To)
	}
	sort.Strings(out.Nodes)
	sort.Strings(out.Edges)
	return out
}

// sameGraph waits until the page draws exactly the broadcaster's graph (as mesh/graph builds it).
func sameGraph(t testing.TB, ctx context.Context, base, token string) domGraph {
	t.Helper()
	want := servedGraph(t, base, token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := eval[domGraph](t, ctx, readDOMGraph)
		if slices.Equal(got.Nodes, want.Nodes) && slices.Equal(got.Edges, want.Edges) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page draws\n  nodes %q\n  edges %q\nwant\n  nodes %q\n  edges %q", got.Nodes, got.Edges, want.Nodes, want.Edges)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// edit switches refund-issued's consumer between billing-service and billing-v2.
func edit(t testing.TB, dir string, to string) {
	t.Helper()
	path := filepath.Join(dir, "payments", "payments.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]string{"billing-v2": "billing-service", "billing-service": "billing-v2"}[to]
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(raw), from, to)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func refundEdgeTo(consumer string) string {
	return fmt.Sprintf(`!!document.querySelector('#graph svg.edges path[data-from="eventtype:eventing.knative.dev/EventType/payments/refund-issued"][data-to="consumer:%s"]')`, consumer)
}

// TestPageShowsTheExample opens GET / of the real broadcaster on a copy of examples/mesh: the
// page draws exactly mesh/graph's graph of the served mesh (every broker, channel, source,
// event type, consumer and edge, nothing else), and follows manifest edits live. The edit
// latency (file written → edge drawn) is logged, never asserted: docs/benchmarks.md reports it.
func TestPageShowsTheExample(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base := startBroadcaster(t, dir)
	ctx := browser(t)
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the page to go live", 30*time.Second, `document.body.dataset.state === 'live'`)
	got := sameGraph(t, ctx, base, "")
	for _, id := range []string{"broker:eventing.knative.dev/Broker/shop/orders", "channel:messaging.knative.dev/InMemoryChannel/ops/alerts",
		"source:sources.knative.dev/PingSource/shop/heartbeat", "eventtype:eventing.knative.dev/EventType/shop/order-paid", "consumer:shipping-service"} {
		if !slices.Contains(got.Nodes, id) {
			t.Errorf("no %s among %q", id, got.Nodes)
		}
	}
	if n := len(got.Edges); n < 30 {
		t.Errorf("%d edges drawn: %q", n, got.Edges)
	}
	screenshot(t, ctx, "page-example.png")

	var latencies []time.Duration
	for round, to := range []string{"billing-v2", "billing-service", "billing-v2", "billing-service", "billing-v2", "billing-service", "billing-v2"} {
		start := time.Now()
		edit(t, dir, to)
		waitFor(t, ctx, fmt.Sprintf("edit %d (refund-issued consumed by %s) on the page", round, to), 30*time.Second, refundEdgeTo(to))
		latencies = append(latencies, time.Since(start))
		time.Sleep(150 * time.Millisecond) // let the debounce window close: edits one at a time
	}
	sameGraph(t, ctx, base, "")
	screenshot(t, ctx, "page-example-edited.png")
	slices.Sort(latencies)
	t.Logf("manifest edit → page: median %v, min %v, max %v over %d edits (includes the manifests debounce of 50 ms)",
		latencies[len(latencies)/2].Round(time.Millisecond), latencies[0].Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond), len(latencies))

	// Search narrows the picture to what touches the match, highlighted.
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = 'pager'; s.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(t, ctx, "the search to narrow the picture", 10*time.Second, `document.querySelectorAll('#graph .node.match').length === 1 &&
		!document.querySelector('#graph [data-id="broker:eventing.knative.dev/Broker/shop/orders"]') &&
		!!document.querySelector('#graph [data-id="channel:messaging.knative.dev/InMemoryChannel/ops/alerts"]')`)
	// Unticking a namespace hides it.
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));
		const box = document.querySelector('#ns-list input[data-ns="ops"]'); box.click(); return true; })()`)
	waitFor(t, ctx, "the ops namespace to be hidden", 10*time.Second, `!document.querySelector('section.ns[data-ns="ops"]') &&
		!!document.querySelector('section.ns[data-ns="shop"] [data-id="broker:eventing.knative.dev/Broker/shop/orders"]')`)
}

// TestPageWithTokens runs the broadcaster with a tokens file: the page asks for a token, says
// when one is refused, keeps the accepted one for the tab (a reload needs none), follows edits
// through the authorised watch stream, asks GET /v1/lineage with the same token, and asks again
// once the token is forgotten.
func TestPageWithTokens(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("page-test-token\n"), 0o600)
	base := startBroadcaster(t, dir, "--tokens-file", tokens)
	ctx := browser(t)
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the token form", 30*time.Second, `document.body.dataset.state === 'unauthorized' && !document.getElementById('login').hidden`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph .node').length`); n != 0 {
		t.Errorf("%d nodes drawn without a token", n)
	}
	screenshot(t, ctx, "page-token-form.png")

	submit := func(token string) {
		eval[bool](t, ctx, fmt.Sprintf(`(() => { document.getElementById('token').value = %q; document.getElementById('login').requestSubmit(); return true; })()`, token))
	}
	submit("wrong-token")
	waitFor(t, ctx, "the refusal", 30*time.Second, `!document.getElementById('login').hidden && document.getElementById('login-why').textContent.includes('refused')`)
	submit("page-test-token")
	waitFor(t, ctx, "the page to go live", 30*time.Second, `document.body.dataset.state === 'live'`)
	sameGraph(t, ctx, base, "page-test-token")
	if got := eval[string](t, ctx, `sessionStorage.getItem('event-mesh-broadcaster-token')`); got != "page-test-token" {
		t.Errorf("sessionStorage holds %q", got)
	}

	if err := chromedpReload(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the page to go live again without asking", 30*time.Second, `document.body.dataset.state === 'live' && document.getElementById('login').hidden`)
	start := time.Now()
	edit(t, dir, "billing-v2")
	waitFor(t, ctx, "the edit through the authorised stream", 30*time.Second, refundEdgeTo("billing-v2"))
	t.Logf("manifest edit → page with token auth: %v", time.Since(start).Round(time.Millisecond))
	sameGraph(t, ctx, base, "page-test-token")
	// The lineage asks with the same token.
	eval[bool](t, ctx, `(() => { document.querySelector('#graph .node[data-id="eventtype:eventing.knative.dev/EventType/shop/order-created"]').click(); return true; })()`)
	waitFor(t, ctx, "the lineage through the authorised endpoint", 30*time.Second, `document.body.dataset.lineage === 'shown' && document.querySelectorAll('#lineage .path').length > 0`)

	eval[bool](t, ctx, `(() => { document.getElementById('forget').click(); return true; })()`)
	waitFor(t, ctx, "the token form after forgetting the token", 30*time.Second, `!document.getElementById('login').hidden && sessionStorage.getItem('event-mesh-broadcaster-token') === null`)
}

// TestPageBehindAPathPrefix serves the broadcaster under /mesh/ through a reverse proxy, as an
// ingress with a path prefix does: the page finds the API beside itself and follows edits.
func TestPageBehindAPathPrefix(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base := startBroadcaster(t, dir)
	target, _ := url.Parse(base)
	proxy := httptest.NewServer(http.StripPrefix("/mesh", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close) // after the browser's (cleanups run last first), whose watch stream it holds
	ctx := browser(t)
	navigate(t, ctx, proxy.URL+"/mesh/")
	waitFor(t, ctx, "the page to go live through the proxy", 30*time.Second, `document.body.dataset.state === 'live'`)
	sameGraph(t, ctx, base, "")
	edit(t, dir, "billing-v2")
	waitFor(t, ctx, "the edit through the proxy", 30*time.Second, refundEdgeTo("billing-v2"))
}
