package manifests

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

const (
	brokerAndType = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: orders, namespace: shop}
---
apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: created, namespace: shop}
spec: {type: %TYPE%, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}
`
	consumer = `apiVersion: v1
kind: Service
metadata: {name: svc, namespace: shop, labels: {backstage.io/kubernetes-id: %ID%}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t, namespace: shop}
spec: {broker: orders, subscriber: {ref: {apiVersion: v1, kind: Service, name: svc}}}
`
)

// harness runs a Source on a temporary directory into a hub, recording changes and logs.
type harness struct {
	t        *testing.T
	dir      string
	hub      *hub.Hub
	src      *Source
	mu       sync.Mutex
	got      []string
	logs     testkit.Buffer
	barriers int
}

func newHarness(t *testing.T, files map[string]string) *harness {
	h := &harness{t: t, dir: t.TempDir()}
	for name, content := range files {
		h.write(name, content)
	}
	log := slog.New(slog.NewTextHandler(&h.logs, nil))
	src, err := New(h.dir, WithLogger(log), WithDebounce(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	h.hub = testkit.Must(hub.New(engine.New("e"), src.Listed, hub.WithLogger(log)))
	h.hub.Listen(func(batch mesh.Batch) {
		changes := batch.Changes

		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range changes {
			h.got = append(h.got, c.Kind.String()+" "+c.Op.String()+" "+c.Key.String())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, h.hub) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	h.waitFor("initial sync", src.Listed)
	return h
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	path := filepath.Join(h.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; changes %q; logs:\n%s", what, h.take(), h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := h.got
	h.got = nil
	return got
}

// expect waits for exactly want (in order), then proves nothing more comes with a barrier.
func (h *harness) expect(step string, want ...string) {
	h.t.Helper()
	var got []string
	h.waitFor(step, func() bool {
		got = append(got, h.take()...)
		return len(got) >= len(want)
	})
	got = append(got, h.barrier()...)
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("%s: changes\n got %q\nwant %q", step, got, want)
	}
}

// barrier adds a marker Broker in a file of its own and removes it again, and returns the
// other changes that arrived meanwhile: the source reads the directory in order, so anything
// the earlier writes still had to cause has come by the time the marker is gone.
func (h *harness) barrier() []string {
	h.t.Helper()
	h.barriers++
	name := fmt.Sprintf("barrier-%d", h.barriers)
	key := "eventing.knative.dev/Broker/zz-barrier/" + name
	file := name + ".yaml"
	var got []string
	seen := func(line string) func() bool {
		found := false
		return func() bool {
			for _, c := range h.take() {
				switch {
				case c == line:
					found = true
				case !strings.HasSuffix(c, " "+key):
					got = append(got, c)
				}
			}
			return found
		}
	}
	h.write(file, "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: "+name+", namespace: zz-barrier}\n")
	h.waitFor("barrier "+name+" added", seen("broker added "+key))
	if err := os.Remove(filepath.Join(h.dir, file)); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor("barrier "+name+" deleted", seen("broker deleted "+key))
	return got
}

func TestManifestsFollowEdits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{
		"a.yaml":              strings.ReplaceAll(brokerAndType, "%TYPE%", "order.created"),
		"nested/deeper/b.yml": strings.ReplaceAll(consumer, "%ID%", "shipping"),
		"notes.txt":           "not a manifest",
		".hidden/x.yaml":      "{broken",
	})
	snap := h.hub.Snapshot()
	if snap.Len() != 4 { // the Broker, the EventType, the Trigger and its subscriber (a sink)
		t.Fatalf("initial mesh has %d entities, want 4", snap.Len())
	}
	h.take()
	const et = "eventing.knative.dev/EventType/shop/created"

	h.write("nested/deeper/b.yml", strings.ReplaceAll(consumer, "%ID%", "billing"))
	h.expect("relabel the subscriber", "eventtype updated "+et, "sink updated /Service/shop/svc")

	h.write("a.yaml", "apiVersion: v1\nkind: [broken\n")
	h.expect("break a file") // nothing is lost
	h.waitFor("the parse error in the log", func() bool {
		return strings.Contains(h.logs.String(), "a.yaml:2")
	})
	if got := h.hub.Snapshot().Len(); got != 4 {
		t.Fatalf("broken file dropped entities: %d left", got)
	}

	h.write("a.yaml", strings.ReplaceAll(brokerAndType, "%TYPE%", "order.made"))
	h.expect("fix it with a new type", "eventtype updated "+et)

	// An editor's atomic save of identical content changes nothing.
	h.write("a.yaml.tmp~", strings.ReplaceAll(brokerAndType, "%TYPE%", "order.made"))
	if err := os.Rename(filepath.Join(h.dir, "a.yaml.tmp~"), filepath.Join(h.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.expect("atomic save, same content")

	if err := os.RemoveAll(filepath.Join(h.dir, "nested")); err != nil {
		t.Fatal(err)
	}
	h.expect("remove the folder of the consumer", "eventtype updated "+et,
		"trigger deleted eventing.knative.dev/Trigger/shop/t", "sink deleted /Service/shop/svc")

	h.write("new/dir/c.json", `{"apiVersion":"eventing.knative.dev/v1","kind":"Broker","metadata":{"name":"more","namespace":"shop"}}`)
	h.expect("a new folder and file", "broker added eventing.knative.dev/Broker/shop/more")

	// A second definition is ignored until the first goes away.
	h.write("z.yaml", strings.ReplaceAll(brokerAndType, "%TYPE%", "order.other"))
	h.expect("duplicate definitions")
	if err := os.Remove(filepath.Join(h.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.expect("first definition removed", "eventtype updated "+et)
	if err := os.Remove(filepath.Join(h.dir, "z.yaml")); err != nil {
		t.Fatal(err)
	}
	// One batch for the file change: the engine's batch order, EventTypes first.
	h.expect("all definitions removed", "eventtype deleted "+et, "broker deleted eventing.knative.dev/Broker/shop/orders")
	if !strings.Contains(h.logs.String(), "object defined twice") {
		t.Errorf("duplicate not logged:\n%s", h.logs.String())
	}
}

func TestManifestsBrokenAtStartContributeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{"bad.yaml": "kind: Broker\nmetadata: {name: x}\n"})
	if n := h.hub.Snapshot().Len(); n != 0 {
		t.Fatalf("mesh has %d entities, want 0", n)
	}
	if !strings.Contains(h.logs.String(), "bad.yaml:1") || !strings.Contains(h.logs.String(), "apiVersion is required") {
		t.Errorf("log does not name file, line and problem:\n%s", h.logs.String())
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for name, dir := range map[string]string{"missing": filepath.Join(file, "nope"), "file": file} {
		if _, err := New(dir); err == nil {
			t.Errorf("%s: New(%s) accepted", name, dir)
		}
	}
	if _, err := New(t.TempDir(), WithDebounce(0, time.Second)); err == nil {
		t.Error("zero debounce accepted")
	}
}

// Only regular files inside the directory are read: a FIFO named *.yaml would block the
// source for good, a symlink out of the directory would show other files; a file over the
// size bound is refused. Each is reported once, and the rest goes on.
func TestOnlyRegularFilesInside(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "manifests")
	broker := func(name string) string {
		return "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: " + name + ", namespace: shop}\n"
	}
	for name, content := range map[string]string{"manifests/good.yaml": broker("good"), "outside.yaml": broker("outside"),
		"manifests/big.yaml": broker("big") + strings.Repeat("# padding\n", 200)} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "outside.yaml"), filepath.Join(dir, "out.yaml")); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	src := testkit.Must(New(dir, WithLogger(log), WithMaxFileBytes(1000), WithDebounce(20*time.Millisecond, 100*time.Millisecond)))
	h := testkit.Must(hub.New(engine.New("e"), src.Listed))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h) }()
	defer func() { cancel(); <-done }()
	testkit.Eventually(t, "the first listing", 10*time.Second, src.Listed)
	keys := func() []string {
		var out []string
		for _, c := range h.Snapshot().Latest() {
			out = append(out, c.Key.Name)
		}
		return out
	}
	if got := keys(); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("entities %v, want only good", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "later.yaml"), []byte(broker("later")), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "a later file (the source is not wedged)", 10*time.Second, func() bool {
		return slices.Equal(keys(), []string{"good", "later"})
	})
	for _, want := range []string{"not a regular file", "a symlink out of the manifests directory", "manifest file too large"} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, logs.String())
		}
	}
}

// A file change is one batch: removing the example's payments.yaml emits exactly the
// deletes, with no intermediate state (such as consumedBy emptied just before a delete), and
// restoring it exactly the adds, each entity once in its final state.
func TestFileChangeIsOneBatch(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	root := "../../examples/mesh"
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isManifest(d.Name()) {
			return err
		}
		raw, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		files[rel] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, files)
	h.take()
	before := h.hub.Snapshot()
	if err := os.Remove(filepath.Join(h.dir, "payments", "payments.yaml")); err != nil {
		t.Fatal(err)
	}
	// The billing Service defined there also consumes two shop EventTypes: they change once
	// each, and the two shop Triggers delivering to it now name a missing object (dangling).
	h.expect("payments.yaml removed",
		"eventtype deleted eventing.knative.dev/EventType/payments/chargeback",
		"eventtype deleted eventing.knative.dev/EventType/payments/refund-issued",
		"eventtype updated eventing.knative.dev/EventType/shop/order-cancelled",
		"eventtype updated eventing.knative.dev/EventType/shop/payment-failed",
		"broker deleted eventing.knative.dev/Broker/payments/default",
		"trigger deleted eventing.knative.dev/Trigger/payments/audit-chargebacks",
		"trigger deleted eventing.knative.dev/Trigger/payments/audit-shop-cancellations",
		"trigger deleted eventing.knative.dev/Trigger/payments/billing-refunds",
		"trigger updated eventing.knative.dev/Trigger/shop/billing-on-cancel",
		"trigger updated eventing.knative.dev/Trigger/shop/billing-on-payments",
		"sink deleted /Service/payments/billing")
	h.write("payments/payments.yaml", files["payments/payments.yaml"])
	h.expect("payments.yaml restored",
		"eventtype added eventing.knative.dev/EventType/payments/chargeback",
		"eventtype added eventing.knative.dev/EventType/payments/refund-issued",
		"eventtype updated eventing.knative.dev/EventType/shop/order-cancelled",
		"eventtype updated eventing.knative.dev/EventType/shop/payment-failed",
		"broker added eventing.knative.dev/Broker/payments/default",
		"trigger added eventing.knative.dev/Trigger/payments/audit-chargebacks",
		"trigger added eventing.knative.dev/Trigger/payments/audit-shop-cancellations",
		"trigger added eventing.knative.dev/Trigger/payments/billing-refunds",
		"trigger updated eventing.knative.dev/Trigger/shop/billing-on-cancel",
		"trigger updated eventing.knative.dev/Trigger/shop/billing-on-payments",
		"sink added /Service/payments/billing")
	was, _ := before.Mesh()
	now, _ := h.hub.Snapshot().Mesh()
	if !reflect.DeepEqual(was, now) {
		t.Error("the restored mesh differs from the original")
	}
}

// A directory that disappears leaves the mesh as it was (no deletes go out) and says why it is
// not ready; when it comes back, it is read again and only the net changes go out.
func TestDirectoryGoneAndBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{"a.yaml": strings.ReplaceAll(brokerAndType, "%TYPE%", "v1")})
	h.take()
	before := h.hub.Snapshot().Len()
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the source to notice", func() bool { return h.src.Stale() != nil })
	time.Sleep(300 * time.Millisecond) // more than a debounce: anything it would send is sent
	if got := h.take(); len(got) > 0 || h.hub.Snapshot().Len() != before {
		t.Fatalf("the directory went away and the mesh changed: %q, %d entities (had %d)", got, h.hub.Snapshot().Len(), before)
	}
	if !strings.Contains(h.src.Stale().Error(), "serving the mesh as last read") {
		t.Errorf("trouble: %v", h.src.Stale())
	}
	h.write("a.yaml", strings.ReplaceAll(brokerAndType, "%TYPE%", "v2"))
	h.expect("the directory back with an edit", "eventtype updated eventing.knative.dev/EventType/shop/created")
	if err := h.src.Stale(); err != nil {
		t.Errorf("trouble after the directory returned: %v", err)
	}
	if n := strings.Count(h.logs.String(), "manifests directory is gone"); n != 1 {
		t.Errorf("the disappearance was logged %d times", n)
	}
}

// A Kubernetes ConfigMap volume: each file is a symlink into ..data, itself a symlink to a
// timestamped folder that an update replaces atomically. The update is followed.
func TestConfigMapVolumeUpdates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	version := func(name, typ string) {
		h.write(filepath.Join(name, "a.yaml"), strings.ReplaceAll(brokerAndType, "%TYPE%", typ))
		tmp := filepath.Join(h.dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(h.dir, "..data")); err != nil { // atomic, as the kubelet does
			t.Fatal(err)
		}
	}
	version("..2026_12_02_08_00_00.1", "v1")
	if err := os.Symlink(filepath.Join("..data", "a.yaml"), filepath.Join(h.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.expect("the ConfigMap mounted",
		"eventtype added eventing.knative.dev/EventType/shop/created",
		"broker added eventing.knative.dev/Broker/shop/orders")
	version("..2026_12_02_08_05_00.2", "v2")
	if err := os.RemoveAll(filepath.Join(h.dir, "..2026_12_02_08_00_00.1")); err != nil {
		t.Fatal(err)
	}
	h.expect("the ConfigMap updated", "eventtype updated eventing.knative.dev/EventType/shop/created")
}

// An invalid object is kept out and reported with its file and line; the valid objects of the
// same file are applied.
func TestInvalidObjectKeptOutOthersApplied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, map[string]string{"mixed.yaml": strings.ReplaceAll(brokerAndType, "%TYPE%", "t") +
		"---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: lost, namespace: shop}\nspec: {subscriber: {uri: 'http://x'}}\n"})
	if n := h.hub.Snapshot().Len(); n != 2 {
		t.Errorf("mesh has %d entities, want the Broker and the EventType", n)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "mixed.yaml:10") || !strings.Contains(logs, "spec.broker: Required value") {
		t.Errorf("log does not name file, line and problem:\n%s", logs)
	}
}

// An invalid object of the event graph's kinds (testdata/invalid: each file a valid Broker,
// then the invalid object on line 6) is reported with its file and line, its kind and name,
// and the field at fault, and left out: the mesh, with the valid graph of graph.yaml that names
// it and its own file's Broker, is exactly the mesh without it.
func TestInvalidGraphObjectsLeftOut(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", "invalid", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	graph := read("graph.yaml")
	// The valid graph alone: every object applied, none reported.
	alone := newHarness(t, map[string]string{"graph.yaml": graph})
	if n := alone.hub.Snapshot().Len(); n < 9 || strings.Contains(alone.logs.String(), "invalid") {
		t.Fatalf("graph.yaml gives %d entities; logs:\n%s", n, alone.logs.String())
	}
	for _, tc := range []struct{ file, want string }{
		{"sequence-without-steps.yaml", "Sequence flow: spec.steps: Required value"},
		{"sequence-empty-steps.yaml", "Sequence flow: spec.steps: Required value"},
		{"parallel-branch-without-subscriber.yaml", "Parallel fan: spec.branches[1].subscriber: Required value"},
		{"requestreply-without-brokerref.yaml", "RequestReply ask: spec.brokerRef: Required value"},
		{"requestreply-brokerref-without-name.yaml", "RequestReply ask: spec.brokerRef: Required value"},
		{"eventtransform-without-transformation.yaml", "EventTransform reshape: spec.jsonata: Required value"},
		{"eventtransform-reply-without-sink.yaml", "EventTransform reshape: spec.sink: Required value"},
		{"jobsink-without-job.yaml", "JobSink jobs: spec.job: Required value"},
		{"jobsink-job-not-an-object.yaml", "JobSink jobs: spec.job: Invalid value"},
		{"integrationsink-without-sink-type.yaml", "IntegrationSink logs: spec: Required value"},
		{"integrationsink-two-sink-types.yaml", "IntegrationSink logs: spec: Invalid value"},
		{"eventpolicy-from-without-ref-or-sub.yaml", "EventPolicy senders: spec.from[1]: Required value"},
		{"eventpolicy-to-ref-without-name.yaml", "EventPolicy senders: spec.to[0].ref.name: Required value"},
		{"eventpolicy-sub-inner-wildcard.yaml", "EventPolicy senders: spec.from[0].sub: Invalid value"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			bad := read(tc.file)
			docs := strings.Split(bad, "\n---\n")
			valid := strings.Join(docs[:len(docs)-1], "\n---\n") + "\n"
			h := newHarness(t, map[string]string{"graph.yaml": graph, tc.file: bad})
			without := newHarness(t, map[string]string{"graph.yaml": graph, tc.file: valid})
			logs := h.logs.String()
			if strings.Count(logs, "left out") != 1 || !strings.Contains(logs, "/"+tc.file+":6 ") || !strings.Contains(logs, tc.want) {
				t.Errorf("the log does not name the file and line (%s:6), the object and the field (%q) once:\n%s", tc.file, tc.want, logs)
			}
			got, err := h.hub.Snapshot().Mesh()
			if err != nil {
				t.Fatal(err)
			}
			want, err := without.hub.Snapshot().Mesh()
			if err != nil {
				t.Fatal(err)
			}
			if n := without.hub.Snapshot().Len(); n != alone.hub.Snapshot().Len()+1 {
				t.Errorf("without the invalid object: %d entities, want graph.yaml's and the spare Broker", n)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the mesh with the invalid object differs from the mesh without it:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
