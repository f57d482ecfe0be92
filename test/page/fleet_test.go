package page_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// clusterGraph is what the page draws in the sections of cluster, with the cluster taken off
// the node ids: comparable with mesh/graph's graph of that cluster's broadcaster.
func clusterGraph(t testing.TB, ctx context.Context, cluster string) domGraph {
	t.Helper()
	return eval[domGraph](t, ctx, fmt.Sprintf(`((cluster) => {
  const uniq = (xs) => [...new Set(xs)].sort();
  const own = (id) => id.startsWith(cluster + '/') ? id.slice(cluster.length + 1) : 'ELSEWHERE ' + id;
  const secs = '#graph section.ns[data-cluster="' + cluster + '"]';
  return {
    nodes: uniq([...document.querySelectorAll(secs + ' .node')].map((n) => own(n.dataset.id))),
    edges: uniq([...document.querySelectorAll(secs + ' svg.edges path')].map((p) => own(p.dataset.from) + ' ' + p.dataset.kind + ' ' + own(p.dataset.to))),
  };
})(%q)`, cluster))
}

// sameClusterGraph waits until the page draws, in cluster's sections, exactly the graph of
// the broadcaster at base.
func sameClusterGraph(t testing.TB, ctx context.Context, cluster, base string) domGraph {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		want := servedGraph(t, base, "")
		got := clusterGraph(t, ctx, cluster)
		if slices.Equal(got.Nodes, want.Nodes) && slices.Equal(got.Edges, want.Edges) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("in %s the page draws\n  nodes %q\n  edges %q\nwant\n  nodes %q\n  edges %q", cluster, got.Nodes, got.Edges, want.Nodes, want.Edges)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func clusterState(cluster string) string {
	return fmt.Sprintf(`document.querySelector('#cluster-list li[data-cluster=%q]').dataset.state`, cluster)
}

// TestPageMergesClusters runs three broadcasters of the same manifests (so each has a Broker
// shop/orders) as clusters east, west and north behind `broadcaster page`, which learns their
// names from them. The page draws three distinct copies of every box, each cluster's graph
// exactly as its broadcaster serves it, under sections titled with both names, the search and
// the filters applying to every cluster; a manifest edit in one cluster shows in that cluster
// only; with one broadcaster killed the others stay live (and follow edits) while that cluster
// says it is reconnecting, and once it is started again the page heals to its mesh; a box
// clicked asks its own cluster's GET /v1/lineage. Timings are logged, never asserted.
func TestPageMergesClusters(t *testing.T) {
	t.Parallel()
	names := []string{"east", "west", "north"}
	dirs, addrs, procs := map[string]string{}, map[string]string{}, map[string]*testkit.Process{}
	var urls []string
	for _, name := range names {
		dirs[name], addrs[name] = testkit.CopyDir(t, "../../examples/mesh"), testkit.FreeAddr(t)
		procs[name] = launch(t, addrs[name], "/readyz", "--manifests", dirs[name], "--listen", addrs[name], "--cluster-name", name)
		urls = append(urls, "--url", "http://"+addrs[name])
	}
	base := func(name string) string { return "http://" + addrs[name] }
	pageAddr := testkit.FreeAddr(t)
	launch(t, pageAddr, "/", append([]string{"page", "--listen", pageAddr}, urls...)...)

	ctx := browser(t)
	navigate(t, ctx, "http://"+pageAddr+"/")
	waitFor(t, ctx, "every cluster live", 30*time.Second, `document.body.dataset.state === 'live' &&
		[...document.querySelectorAll('#cluster-list li')].map((li) => li.dataset.cluster + '=' + li.dataset.state).join() === 'east=live,west=live,north=live'`)
	for _, name := range names {
		sameClusterGraph(t, ctx, name, base(name))
	}
	const orders = "broker:eventing.knative.dev/Broker/shop/orders"
	boxes := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('#graph .node[data-id$=%q]')].map((n) => {
		const s = n.closest('section.ns');
		return n.dataset.id + ' in ' + [...s.querySelectorAll('h2 .cluster, h2 .sep, h2 .name')].map((e) => e.textContent).join(' '); })`, orders))
	slices.Sort(boxes)
	if want := []string{"east/" + orders + " in east · shop", "north/" + orders + " in north · shop", "west/" + orders + " in west · shop"}; !slices.Equal(boxes, want) {
		t.Errorf("the shop/orders boxes: %q, want %q", boxes, want)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#ns-list input[data-ns="shop"]').length`); n != 1 {
		t.Errorf("namespace shop is listed %d times, want once for every cluster", n)
	}
	screenshot(t, ctx, "page-fleet.png")

	// The search and the namespace filter apply to every cluster; a cluster can be unticked.
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = 'pager'; s.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(t, ctx, "the search in every cluster", 10*time.Second, `[...document.querySelectorAll('#graph .node.match')].map((n) => n.dataset.id).sort().join() ===
		'east/consumer:pager-duty-bridge,north/consumer:pager-duty-bridge,west/consumer:pager-duty-bridge'`)
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));
		document.querySelector('#ns-list input[data-ns="ops"]').click(); document.querySelector('#cluster-list input[data-cluster="north"]').click(); return true; })()`)
	waitFor(t, ctx, "ops and north hidden", 10*time.Second, `!document.querySelector('section.ns[data-ns="ops"]') &&
		!document.querySelector('section.ns[data-cluster="north"]') && document.querySelectorAll('section.ns[data-ns="shop"]').length === 2`)
	eval[bool](t, ctx, `(() => { document.querySelector('#ns-list input[data-ns="ops"]').click(); document.querySelector('#cluster-list input[data-cluster="north"]').click(); return true; })()`)
	waitFor(t, ctx, "ops and north shown again", 10*time.Second, `document.querySelectorAll('section.ns[data-ns="ops"]').length === 3 &&
		document.querySelectorAll('section.ns[data-cluster="north"]').length === 3`)

	// An edit in west shows in west's sections only.
	refundTo := func(cluster, consumer string) string {
		return fmt.Sprintf(`!!document.querySelector('#graph svg.edges path[data-from="%[1]s/eventtype:eventing.knative.dev/EventType/payments/refund-issued"][data-to="%[1]s/consumer:%[2]s"]')`, cluster, consumer)
	}
	start := time.Now()
	edit(t, dirs["west"], "billing-v2")
	waitFor(t, ctx, "west's edit on the page", 30*time.Second, refundTo("west", "billing-v2"))
	t.Logf("manifest edit in one of three clusters → drawn through broadcaster page: %v", time.Since(start).Round(time.Millisecond))
	for _, name := range names {
		sameClusterGraph(t, ctx, name, base(name))
	}
	if !eval[bool](t, ctx, refundTo("east", "billing-service")+" && "+refundTo("north", "billing-service")+" && !"+refundTo("east", "billing-v2")) {
		t.Error("west's edit shows in another cluster")
	}

	// North killed: it says it is reconnecting, its sections stay drawn, the others stay live.
	procs["north"].Kill()
	down := waitFor(t, ctx, "north reconnecting", 30*time.Second, clusterState("north")+` !== 'live' &&
		document.querySelector('#cluster-list li[data-cluster="north"] .state').textContent.includes('reconnecting') &&
		document.body.dataset.state !== 'live' && document.getElementById('status').textContent.includes('north reconnecting')`)
	t.Logf("broadcaster killed → its cluster shown reconnecting: %v", down.Round(time.Millisecond))
	if got := eval[string](t, ctx, clusterState("east")+` + ' ' + `+clusterState("west")); got != "live live" {
		t.Errorf("east and west: %s, want live live", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph section.ns.stale[data-cluster="north"]').length`); n == 0 {
		t.Error("north's sections are not drawn as stale")
	}
	screenshot(t, ctx, "page-fleet-north-down.png")
	edit(t, dirs["east"], "billing-v2")
	waitFor(t, ctx, "east's edit while north is down", 30*time.Second, refundTo("east", "billing-v2"))
	sameClusterGraph(t, ctx, "east", base("east"))

	// North started again on its address, its manifests edited meanwhile: the page heals.
	edit(t, dirs["north"], "billing-v2")
	procs["north"] = launch(t, addrs["north"], "/readyz", "--manifests", dirs["north"], "--listen", addrs["north"], "--cluster-name", "north")
	healed := waitFor(t, ctx, "north live again", 60*time.Second, clusterState("north")+` === 'live' && document.body.dataset.state === 'live'`)
	sameClusterGraph(t, ctx, "north", base("north"))
	t.Logf("broadcaster ready again → its cluster live on the page: %v (the page's backoff after failures is up to 5 s)", healed.Round(time.Millisecond))
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph section.ns.stale').length`); n != 0 {
		t.Errorf("%d sections still drawn as stale", n)
	}

	// A lineage asked from west's box goes to west: west's Trigger filter differs from east's.
	replaceIn(t, filepath.Join(dirs["west"], "shop", "triggers.yaml"),
		"    - exact: {type: com.example.shop.order.created}\n    - exact: {type: com.example.shop.order.shipped}",
		"    - exact: {type: com.example.shop.order.returned}\n    - exact: {type: com.example.shop.order.shipped}")
	const created = "eventType=shop%2Forder-created"
	testkit.Eventually(t, "west's lineage to differ from east's", 30*time.Second, func() bool {
		w, _ := askLineage(t, base("west"), created)
		e, _ := askLineage(t, base("east"), created)
		return !reflect.DeepEqual(w.Paths, e.Paths)
	})
	sameClusterGraph(t, ctx, "west", base("west"))
	click(t, ctx, `#graph .node[data-id="west/eventtype:eventing.knative.dev/EventType/shop/order-created"]`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		answer, _ := askLineage(t, base("west"), created)
		problems, _ := askLineage(t, base("west"), "broken=true&limit=1000")
		want := wantLineage(answer, problems.Broken, servedGraph(t, base("west"), ""))
		got := eval[pageLineage](t, ctx, readPageLineage)
		var own []string
		for _, id := range got.Nodes {
			if rest, ok := strings.CutPrefix(id, "west/"); ok {
				own = append(own, rest)
			} else {
				own = append(own, "ELSEWHERE "+id)
			}
		}
		if got.State == "shown" && reflect.DeepEqual(got.Paths, want.Paths) && reflect.DeepEqual(got.Ends, want.Ends) &&
			reflect.DeepEqual(got.Arrows, want.Arrows) && slices.Equal(own, want.Nodes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("west's lineage: the page shows\n  %+v\n  nodes %q\nwant\n  %+v", got, own, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	asked := eval[[]string](t, ctx, `performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('/v1/lineage'))`)
	if len(asked) == 0 || slices.ContainsFunc(asked, func(p string) bool { return p != "/clusters/west/v1/lineage" }) {
		t.Errorf("lineage asked at %q, want /clusters/west/v1/lineage only", asked)
	}
	if got := eval[string](t, ctx, `document.getElementById('lineage').dataset.cluster + ': ' + document.getElementById('lineage-title').textContent`); !strings.HasPrefix(got, "west: west · Where events of EventType shop/order-created go") {
		t.Errorf("the lineage panel: %q", got)
	}
	screenshot(t, ctx, "page-fleet-lineage.png")
}
