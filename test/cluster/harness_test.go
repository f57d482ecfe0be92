package cluster

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// cluster drives a real API server the way users do: through the API, by group and kind.
type cluster struct {
	t      testing.TB
	cfg    *rest.Config
	client dynamic.Interface
	mapper apimeta.ResettableRESTMapper
}

func newCluster(t testing.TB, cfg *rest.Config) *cluster {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{} // the tables write deprecated EventType versions on purpose
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, cfg: cfg, client: client,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
}

// resource maps a kind (at version, when given) to its resource and whether it is namespaced.
func (c *cluster) resource(gk schema.GroupKind, version ...string) (dynamic.NamespaceableResourceInterface, bool) {
	c.t.Helper()
	m, err := c.mapper.RESTMapping(gk, version...)
	if apimeta.IsNoMatchError(err) {
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gk, version...)
	}
	if err != nil {
		c.t.Fatalf("no resource for %v: %v", gk, err)
	}
	return c.client.Resource(m.Resource), m.Scope.Name() == apimeta.RESTScopeNameNamespace
}

// ensureNamespace creates ns if needed. (envtest runs no namespace controller, so namespaces
// are never deleted, only emptied.)
func (c *cluster) ensureNamespace(ns string) {
	c.t.Helper()
	nsRes := c.client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	_, err := nsRes.Create(context.Background(), &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		c.t.Fatalf("namespace %s: %v", ns, err)
	}
}

// apply creates or replaces obj (server-side apply, one field manager) and returns what the
// API server stored.
func (c *cluster) apply(obj map[string]any) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	res, namespaced := c.resource(gvk.GroupKind(), gvk.Version)
	var ri dynamic.ResourceInterface = res
	if namespaced {
		c.ensureNamespace(u.GetNamespace())
		ri = res.Namespace(u.GetNamespace())
	}
	return ri.Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "test", Force: true})
}

// remove deletes the object ref and waits until it is gone (finalizers included).
func (c *cluster) remove(ref engine.ObjectRef) (deleted bool) {
	c.t.Helper()
	res, namespaced := c.resource(schema.GroupKind{Group: ref.Group, Kind: ref.Kind})
	var ri dynamic.ResourceInterface = res
	if namespaced {
		ri = res.Namespace(ref.Namespace)
	}
	ctx := context.Background()
	err := ri.Delete(ctx, ref.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		c.t.Fatalf("deleting %s: %v", ref, err)
	}
	testkit.Eventually(c.t, "deletion of "+ref.String(), 30*time.Second, func() bool {
		_, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	return true
}

// running is a kube source feeding a hub, with everything it did recorded.
type running struct {
	t      testing.TB
	hub    *hub.Hub
	source *kube.Source
	seen   *seenObjects
	logs   *testkit.Buffer
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	changes []mesh.Change
	// graph: the changes of every entity kind count, not only of the upstream kinds'.
	graph bool
}

// startSource runs a source with opts until the test ends, and waits for its initial listing.
func startSource(t testing.TB, cfg *rest.Config, opts ...kube.Option) *running {
	t.Helper()
	r := &running{t: t, seen: newSeenObjects(), logs: &testkit.Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	src, err := kube.New(cfg, append(opts, kube.WithLogger(log))...)
	if err != nil {
		t.Fatal(err)
	}
	r.source = src
	r.hub = testkit.Must(hub.New(engine.New("test"), src.Listed, hub.WithLogger(log)))
	r.hub.Listen(func(batch mesh.Batch) {
		cs := batch.Changes

		r.mu.Lock()
		defer r.mu.Unlock()
		r.changes = append(r.changes, cs...)
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- src.Run(ctx, &recorder{Sink: r.hub, seen: r.seen}) }()
	t.Cleanup(r.stop)
	testkit.Eventually(t, "the source's initial listing", 60*time.Second, src.Listed)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			r.t.Errorf("source stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		r.t.Error("source did not stop")
	}
}

// takeChanges returns the changes so far as "kind op key" lines, and forgets them.
func (r *running) takeChanges() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, c := range r.changes {
		if r.graph || c.Kind.Upstream() {
			out = append(out, c.Kind.String()+" "+c.Op.String()+" "+c.Key.String())
		}
	}
	r.changes = nil
	return out
}

func (r *running) changeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.changes {
		if r.graph || c.Kind.Upstream() {
			n++
		}
	}
	return n
}

// waitSeen waits until the source has sent u as the API server returned it, so writes of
// different kinds reach the mesh in the order they were made.
func (r *running) waitSeen(u *unstructured.Unstructured) {
	r.t.Helper()
	ref := engine.RefOf(u)
	want := engine.Parse(u)
	testkit.Eventually(r.t, "the source to see "+ref.String()+"@"+u.GetResourceVersion(), 30*time.Second, func() bool {
		return r.seen.has(want)
	})
}

func (r *running) waitGone(ref engine.ObjectRef) {
	r.t.Helper()
	testkit.Eventually(r.t, "the source to see "+ref.String()+" deleted", 30*time.Second, func() bool {
		return r.seen.deleted(ref)
	})
}

// settle waits until at least want changes arrived and then no more for a while, so a test
// can assert the exact list.
func (r *running) settle(want int) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.changeCount() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for last := -1; last != r.changeCount(); {
		last = r.changeCount()
		time.Sleep(300 * time.Millisecond)
	}
}

// recorder passes every batch to the hub and notes which objects it carried.
type recorder struct {
	source.Sink
	seen *seenObjects
}

func (rc *recorder) Apply(b engine.ObjectBatch) {
	rc.seen.note(b)
	rc.Sink.Apply(b)
}

// seenObjects is the latest state (nil: deleted) the source sent per object.
type seenObjects struct {
	mu   sync.Mutex
	objs map[engine.ObjectRef]*engine.Parsed
}

func newSeenObjects() *seenObjects { return &seenObjects{objs: map[engine.ObjectRef]*engine.Parsed{}} }

func (s *seenObjects) note(b engine.ObjectBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Replace {
		for ref := range s.objs {
			s.objs[ref] = nil
		}
	}
	for _, ref := range b.Deletes {
		s.objs[ref] = nil
	}
	for _, p := range b.Upserts {
		s.objs[p.Ref()] = p
	}
}

// has reports whether the source sent want's object as want reads (the version written, or
// a later one that reads the same).
func (s *seenObjects) has(want *engine.Parsed) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return reflect.DeepEqual(s.objs[want.Ref()], want)
}

func (s *seenObjects) deleted(ref engine.ObjectRef) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	got, ok := s.objs[ref]
	return ok && got == nil
}

func keysOf[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// installServingService installs testdata/serving-service-crd.yaml and waits until it serves.
func installServingService(c *cluster) {
	c.t.Helper()
	raw, err := os.ReadFile("testdata/serving-service-crd.yaml")
	if err != nil {
		c.t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &crd.Object); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.client.Resource(crdGVR).Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.waitServed(crd)
}
