package stockclients

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// edit rewrites file in dir, replacing old by new (which must be there).
func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	path := filepath.Join(dir, file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not hold %q", file, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func number(v any) int { f, _ := v.(float64); return int(f) }

// (a) A broadcaster without leader election restarts into a new epoch whose opening covers the
// sequence the EventSource last saw, while an EventType, a Trigger and a sink changed: the
// EventSource reconnects by itself with only Last-Event-ID and ends with the new epoch's exact
// mesh, every list of it (a resume into the new epoch would keep the stale entities, and so
// would a client that kept only the upstream lists: the Trigger and the sink are not in them).
func TestEventSourceAcrossARestartIntoANewEpoch(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	addr := testkit.FreeAddr(t)
	first := startBroadcaster(t, dir, addr)
	es := startEventSource(t, first.base)
	before := es.exact(t, first.base, 60*time.Second)

	first.stop(t)
	es.wait(t, "the EventSource to notice the stop", 0, 30*time.Second, func(l map[string]any) bool { return l["what"] == "error" })
	edit(t, dir, "shop/eventtypes.yaml", "description: A customer placed an order", "description: A customer placed an order (edited while no broadcaster ran)")
	edit(t, dir, "flows/fulfilment.yaml", "attributes: {type: com.example.shop.order.paid}", "attributes: {type: com.example.shop.order.settled}")
	edit(t, dir, "shop/services.yaml", "labels: {app.kubernetes.io/part-of: platform}", "labels: {app.kubernetes.io/part-of: observability}")
	second := startBroadcaster(t, dir, addr)
	testkit.Eventually(t, "the restarted broadcaster to load", 60*time.Second, second.ready)
	after, _ := getMesh(t, second.base)
	if after.Epoch == before.Epoch || after.Sequence < before.Sequence {
		t.Fatalf("precondition: the restart opened epoch %s at %d after %s at %d; the new epoch's log must cover the old last id",
			after.Epoch, after.Sequence, before.Epoch, before.Sequence)
	}
	const (
		eventType = "eventtype|eventing.knative.dev/EventType/shop/order-created"
		trigger   = "trigger|eventing.knative.dev/Trigger/shop/fulfil-paid-orders"
		sink      = "sink|serving.knative.dev/Service/shop/metrics-exporter"
	)
	if changed := changedEntities(before, after, eventType, trigger, sink); len(changed) != 3 {
		t.Fatalf("precondition: of %s, %s and %s only %q changed across the restart", eventType, trigger, sink, changed)
	}
	es.exact(t, second.base, 60*time.Second)

	// And it follows live changes in the new epoch, of upstream and other kinds alike.
	edit(t, dir, "shop/eventtypes.yaml", "(edited while no broadcaster ran)", "(edited again, live)")
	edit(t, dir, "flows/fulfilment.yaml", "com.example.shop.order.settled", "com.example.shop.order.captured")
	testkit.Eventually(t, "the live edits", 30*time.Second, func() bool {
		m, _ := getMesh(t, second.base)
		return len(changedEntities(after, m, eventType, trigger)) == 2
	})
	es.exact(t, second.base, 60*time.Second)
	if l := es.last(); number(l["opens"]) < 2 {
		t.Errorf("the EventSource opened %v streams; the restart needs a reconnect", l["opens"])
	}
}

// changedEntities is those of keys that both meshes hold and that differ between them.
func changedEntities(was, is servedMesh, keys ...string) []string {
	var changed []string
	for _, k := range keys {
		if was.Entities[k] != nil && is.Entities[k] != nil && !reflect.DeepEqual(was.Entities[k], is.Entities[k]) {
			changed = append(changed, k)
		}
	}
	return changed
}

// writeMesh writes namespaces × brokers Brokers, each with types EventTypes referencing it.
func writeMesh(t *testing.T, namespaces, brokers, types int) string {
	t.Helper()
	dir := t.TempDir()
	for n := range namespaces {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("ns-%03d.yaml", n)))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for b := range brokers {
			fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b%d, namespace: ns-%03d}\n", b, n)
			for e := range types {
				fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: b%d-t%d, namespace: ns-%03d}\n"+
					"spec: {type: com.example.ns%d.b%d.t%d, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b%d}}\n", b, e, n, n, b, e, b)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

// (b) An EventSource that connects while a 30,000-entity mesh loads is held, not refused: its
// one stream starts with the snapshot once the mesh is loaded.
func TestEventSourceWhileTheMeshLoads(t *testing.T) {
	t.Parallel()
	const namespaces, brokers, types = 100, 10, 29 // 30,000 entities
	dir := writeMesh(t, namespaces, brokers, types)
	started := time.Now()
	b := startBroadcaster(t, dir, testkit.FreeAddr(t))
	es := startEventSource(t, b.base)
	es.wait(t, "the EventSource to open", 0, 60*time.Second, func(l map[string]any) bool { return l["what"] == "open" })
	opened := time.Since(started)
	if b.ready() {
		t.Fatal("the mesh was loaded when the EventSource connected: the test shows nothing (a faster machine needs a larger mesh)")
	}
	got := es.exact(t, b.base, 5*time.Minute)
	t.Logf("the stream opened %v after the start, while loading; the EventSource held the exact mesh %v after the start",
		opened.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	if len(got.Entities) != namespaces*brokers*(1+types) {
		t.Errorf("the mesh holds %d entities, want %d", len(got.Entities), namespaces*brokers*(1+types))
	}
	if l := es.last(); number(l["opens"]) != 1 || number(l["errors"]) != 0 {
		t.Errorf("the EventSource opened %v streams with %v errors; want one stream, held while loading", l["opens"], l["errors"])
	}
}

// (c) Beyond the watcher cap the EventSource is told to come back later in a way it obeys, and
// gets in by itself once a stream is free.
func TestEventSourceBeyondTheWatcherCap(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	b := startBroadcaster(t, dir, testkit.FreeAddr(t), "--max-watchers", "1")
	testkit.Eventually(t, "the broadcaster to load", 60*time.Second, b.ready)
	resp, err := http.Get(b.base + "/v1/watch") // takes the one stream
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the first watch: %d", resp.StatusCode)
	}
	es := startEventSource(t, b.base)
	es.wait(t, "a busy answer", 0, 60*time.Second, func(l map[string]any) bool { return l["what"] == "busy" })
	edit(t, dir, "shop/eventtypes.yaml", "description: A customer placed an order", "description: A customer placed an order (edited while the EventSource waited)")
	es.wait(t, "a second busy answer (it came back by itself)", 0, 60*time.Second, func(l map[string]any) bool { return l["what"] == "busy" && number(l["busy"]) >= 2 })
	resp.Body.Close() // the stream is free
	es.exact(t, b.base, 60*time.Second)
	if l := es.last(); number(l["opens"]) < 3 {
		t.Errorf("the EventSource opened %v streams; want the busy answers and then the stream", l["opens"])
	}
}
