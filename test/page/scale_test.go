package page_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	scaleNamespaces = 90
	scaleBrokers    = 10 // per namespace
	scaleTypes      = 10 // per broker
	scaleEntities   = scaleNamespaces * (scaleBrokers*(1+scaleTypes) + 1)
)

// writeLargeMesh writes per namespace a number of Brokers with a number of EventTypes each, a
// Trigger per Broker whose subscriber carries a Backstage id (3 consumers per namespace), and a
// PingSource sinking into the first Broker. One file per namespace.
func writeLargeMesh(t testing.TB, namespaces, brokers, types int) string {
	t.Helper()
	dir := t.TempDir()
	crds, err := os.ReadFile("../../examples/mesh/crds/knative-sources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "crds.yaml"), crds, 0o644)
	for i := range namespaces {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("ns-%02d.yaml", i)))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		ns := fmt.Sprintf("ns-%02d", i)
		for s := range 3 {
			fmt.Fprintf(w, "---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: svc-%d, namespace: %s, labels: {backstage.io/kubernetes-id: team-%02d-svc-%d}}\n", s, ns, i, s)
		}
		fmt.Fprintf(w, "---\napiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {name: tick, namespace: %s}\n"+
			"spec: {schedule: '* * * * *', sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b0}}}\n", ns)
		for b := range brokers {
			fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b%d, namespace: %s}\n", b, ns)
			fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: b%d-all, namespace: %s}\n"+
				"spec: {broker: b%d, subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc-%d}}}\n", b, ns, b, b%3)
			for e := range types {
				fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: b%d-et-%d, namespace: %s}\n"+
					"spec: {type: com.example.%s.b%d.t%d, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b%d}}\n", b, e, ns, ns, b, e, b)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

// TestPageAtScale opens the page on about 10,000 entities and checks it stays readable:
// namespaces start collapsed (a summary line each, nothing else drawn), a search draws only
// what it matches, opening a namespace draws that namespace, and an edit still shows. The
// times (load, first render, search, opening, edit) and the page's size are logged for
// docs/benchmarks.md, never asserted.
func TestPageAtScale(t *testing.T) {
	t.Parallel()
	dir := writeLargeMesh(t, scaleNamespaces, scaleBrokers, scaleTypes)
	base := startBroadcaster(t, dir)
	ctx := browser(t)
	start := time.Now()
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the whole mesh loaded and drawn", 60*time.Second,
		fmt.Sprintf(`document.body.dataset.state === 'live' && document.body.dataset.entities === '%d' && document.querySelectorAll('section.ns').length === %d`, scaleEntities, scaleNamespaces))
	load := time.Since(start)
	firstRender := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	elements := eval[int](t, ctx, `document.getElementsByTagName('*').length`)
	if open := eval[int](t, ctx, `document.querySelectorAll('section.ns.open').length`); open != 0 {
		t.Errorf("%d namespaces open at %d entities; they should start collapsed", open, scaleEntities)
	}
	if elements > 3000 {
		t.Errorf("%d elements for the collapsed mesh: not readable, not light", elements)
	}
	if got := eval[string](t, ctx, `document.querySelector('section.ns[data-ns="ns-07"] .summary').textContent`); got != "1 source · 10 brokers · 100 event types · 3 consumers" {
		t.Errorf("ns-07's summary: %q", got)
	}
	screenshot(t, ctx, "page-10k-collapsed.png")

	// A search draws what it matches: one EventType per namespace, with its Broker and consumer.
	resetMax := func() { eval[int](t, ctx, `window.meshPage.stats.maxRenderMs = 0`) }
	resetMax()
	start = time.Now()
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = 'b3-et-7'; s.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(t, ctx, "the search result", 30*time.Second, fmt.Sprintf(`document.querySelectorAll('#graph .node.match').length === %d`, scaleNamespaces))
	search := time.Since(start)
	if n := eval[int](t, ctx, `document.querySelectorAll('#graph .node').length`); n != 3*scaleNamespaces {
		t.Errorf("the search draws %d nodes, want %d (each match, its Broker and its consumer)", n, 3*scaleNamespaces)
	}
	searchRender := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	screenshot(t, ctx, "page-10k-search.png")

	// Opening one namespace draws it whole: 114 nodes, 201 edges.
	eval[bool](t, ctx, `(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return true; })()`)
	waitFor(t, ctx, "the search cleared", 30*time.Second, `document.querySelectorAll('#graph .node').length === 0`)
	resetMax()
	start = time.Now()
	eval[bool](t, ctx, `(() => { const h = document.querySelector('section.ns[data-ns="ns-07"] > h2'); h.focus();
		h.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); return true; })()`) // as a keyboard does
	waitFor(t, ctx, "ns-07 open", 30*time.Second, `document.querySelectorAll('section.ns[data-ns="ns-07"] .node').length === 114 &&
		document.querySelectorAll('section.ns[data-ns="ns-07"] svg.edges path').length === 201`)
	open := time.Since(start)
	if got := eval[string](t, ctx, `document.activeElement.closest('section.ns').dataset.ns + ' ' + document.activeElement.getAttribute('aria-expanded')`); got != "ns-07 true" {
		t.Errorf("the keyboard is on %q after opening ns-07, want its header, expanded", got)
	}
	openRender := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	screenshot(t, ctx, "page-10k-open.png")

	// An edit in the open namespace shows.
	resetMax()
	start = time.Now()
	f, err := os.OpenFile(filepath.Join(dir, "ns-07.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "---\napiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: added-late, namespace: ns-07}\n"+
		"spec: {type: com.example.late, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b4}}\n")
	f.Close()
	waitFor(t, ctx, "the new EventType drawn", 30*time.Second, `!!document.querySelector('path[data-from="broker:eventing.knative.dev/Broker/ns-07/b4"][data-to="eventtype:eventing.knative.dev/EventType/ns-07/added-late"]')`)
	edit := time.Since(start)
	editRender := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	heap := eval[float64](t, ctx, `performance.memory ? performance.memory.usedJSHeapSize / 1048576 : 0`)

	t.Logf("at %d entities in %d namespaces: page load → drawn %v (longest render %d ms, %d elements); "+
		"search → drawn %v (render %d ms); opening a namespace of 111 entities %v (render %d ms); "+
		"manifest edit → drawn %v (render %d ms); JS heap %.0f MiB",
		scaleEntities, scaleNamespaces, load.Round(time.Millisecond), firstRender, elements, search.Round(time.Millisecond), searchRender,
		open.Round(time.Millisecond), openRender, edit.Round(time.Millisecond), editRender, heap)
}

// TestPageOneLargeNamespace puts 10,001 entities in one namespace (100 Brokers of 99
// EventTypes): the namespace opens, each column draws at most a page of boxes with a "show
// more" button, and an edit still shows. Times are logged, never asserted.
func TestPageOneLargeNamespace(t *testing.T) {
	t.Parallel()
	dir := writeLargeMesh(t, 1, 100, 99)
	base := startBroadcaster(t, dir)
	ctx := browser(t)
	start := time.Now()
	navigate(t, ctx, base+"/")
	waitFor(t, ctx, "the namespace drawn", 60*time.Second, `document.body.dataset.state === 'live' && document.body.dataset.entities === '10001' &&
		document.querySelectorAll('section.ns.open').length === 1`)
	load := time.Since(start)
	longest := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	perColumn := eval[[]int](t, ctx, `[...document.querySelectorAll('section.ns .col')].map((c) => c.querySelectorAll('.node').length)`)
	if fmt.Sprint(perColumn) != "[1 100 150 3]" {
		t.Errorf("boxes per column (sources, brokers, event types, consumers): %v, want [1 100 150 3]", perColumn)
	}
	elements := eval[int](t, ctx, `document.getElementsByTagName('*').length`)
	eval[bool](t, ctx, `(() => { document.querySelector('section.ns .col:nth-of-type(3) .more').click(); return true; })()`)
	waitFor(t, ctx, "a second page of event types", 30*time.Second, `document.querySelectorAll('section.ns .node.kind-eventtype').length === 300`)
	screenshot(t, ctx, "page-10k-one-namespace.png")

	eval[int](t, ctx, `window.meshPage.stats.maxRenderMs = 0`)
	start = time.Now()
	f, err := os.OpenFile(filepath.Join(dir, "ns-00.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: a-new-broker, namespace: ns-00}\n")
	f.Close()
	waitFor(t, ctx, "the new Broker drawn", 30*time.Second, has("broker:eventing.knative.dev/Broker/ns-00/a-new-broker"))
	edit := time.Since(start)
	editRender := eval[int](t, ctx, `window.meshPage.stats.maxRenderMs`)
	t.Logf("10,001 entities in one namespace: page load → drawn %v (longest render %d ms, %d elements); manifest edit → drawn %v (render %d ms)",
		load.Round(time.Millisecond), longest, elements, edit.Round(time.Millisecond), editRender)
}
