package cluster

// Benchmarks against a real API server (docs/benchmarks.md, "Cluster source"). They are not
// part of the pass/fail suite: `go test ./...` runs no benchmarks. Run them with
//
//	go test -run '^$' -bench . -benchtime=1x -timeout 60m ./test/cluster/

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// The resources the benchmark mesh is made of, at the versions it writes them.
var (
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrBroker     = schema.GroupVersionResource{Group: mesh.GroupEventing, Version: "v1", Resource: "brokers"}
	gvrTrigger    = schema.GroupVersionResource{Group: mesh.GroupEventing, Version: "v1", Resource: "triggers"}
	gvrEventType  = schema.GroupVersionResource{Group: mesh.GroupEventing, Version: "v1beta2", Resource: "eventtypes"}
	gvrPingSource = schema.GroupVersionResource{Group: "sources.knative.dev", Version: "v1", Resource: "pingsources"}
)

// BenchmarkWriteToChange measures, for 1,000 sequential writes, the time from just before the
// API call to the moment the hub's listener sees the entity change it causes. Each write sets
// one EventType's description, which changes that EventType's entity and nothing else.
func BenchmarkWriteToChange(b *testing.B) {
	const (
		ns      = "shop"
		nTypes  = 10
		writes  = 1000
		warmups = 20 // connections and caches warm up first; these are not counted
	)
	cfg := testkube.Start(b)
	c := newCluster(b, cfg)
	for _, obj := range smallMesh(ns, nTypes) {
		if _, err := c.apply(obj); err != nil {
			b.Fatal(err)
		}
	}
	r := startSource(b, cfg)
	if got, want := r.hub.Snapshot().Len(), 1+nTypes; got != want {
		b.Fatalf("%d entities after the initial listing, want %d", got, want)
	}

	type seen struct {
		change mesh.Change
		at     time.Time
	}
	seenCh := make(chan seen, 1<<14)
	var dropped atomic.Int64
	r.hub.Listen(func(batch mesh.Batch) {
		cs := batch.Changes

		now := time.Now()
		for _, ch := range cs {
			select {
			case seenCh <- seen{ch, now}:
			default:
				dropped.Add(1)
			}
		}
	})

	writer := fastClient(b, cfg)
	eventTypes := writer.Resource(gvrEventType).Namespace(ns)
	var total, apiOnly []time.Duration
	var unexpected []string
	write := func(i int) (toChange, toResponse time.Duration) {
		name := fmt.Sprintf("et-%d", i%nTypes)
		key := "eventing.knative.dev/EventType/" + ns + "/" + name
		desc := fmt.Sprintf("write %d", i)
		marker := []byte(`"description":"` + desc + `"`)
		patch := []byte(`{"spec":{"description":"` + desc + `"}}`)
		start := time.Now()
		if _, err := eventTypes.Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatalf("write %d: %v", i, err)
		}
		toResponse = time.Since(start)
		timeout := time.After(30 * time.Second)
		for {
			select {
			case s := <-seenCh:
				if s.change.Key.String() == key && s.change.Op == mesh.OpUpdated && bytes.Contains(s.change.Entity, marker) {
					return s.at.Sub(start), toResponse
				}
				unexpected = append(unexpected, fmt.Sprintf("write %d: %s %s %s", i, s.change.Kind, s.change.Op, s.change.Key))
			case <-timeout:
				b.Fatalf("write %d: no change of %s within 30s", i, key)
			}
		}
	}
	for i := range warmups {
		write(i)
	}

	b.ResetTimer()
	start := time.Now()
	next := warmups
	for range b.N {
		for range writes {
			toChange, toResponse := write(next)
			next++
			total = append(total, toChange)
			apiOnly = append(apiOnly, toResponse)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()

	// Anything arriving after the last write would be an extra change too.
	time.Sleep(500 * time.Millisecond)
	for len(seenCh) > 0 {
		s := <-seenCh
		unexpected = append(unexpected, fmt.Sprintf("after the writes: %s %s %s", s.change.Kind, s.change.Op, s.change.Key))
	}
	if len(unexpected) > 0 || dropped.Load() > 0 {
		b.Errorf("writes caused %d changes besides the one expected each (%d dropped); first: %v",
			len(unexpected), dropped.Load(), unexpected[:min(len(unexpected), 5)])
	}

	b.ReportMetric(0, "ns/op")
	reportPercentiles(b, total, "")
	reportPercentiles(b, apiOnly, "api-")
	b.ReportMetric(float64(len(total))/elapsed.Seconds(), "writes/s")
}

// smallMesh is a Broker with EventTypes, a Trigger and its labelled subscriber in ns.
func smallMesh(ns string, eventTypes int) []map[string]any {
	broker := map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}
	objs := []map[string]any{
		object("v1", "Service", ns, "svc", map[string]any{engine.LabelBackstageID: "svc"},
			map[string]any{"type": "ExternalName", "externalName": "example.com"}),
		object("eventing.knative.dev/v1", "Broker", ns, "default", nil, nil),
		object("eventing.knative.dev/v1", "Trigger", ns, "to-svc", nil, map[string]any{"broker": "default",
			"subscriber": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": "svc"}}}),
	}
	for i := range eventTypes {
		objs = append(objs, object("eventing.knative.dev/v1beta2", "EventType", ns, fmt.Sprintf("et-%d", i), nil,
			map[string]any{"type": fmt.Sprintf("com.example.shop.t%d", i), "source": "/shop", "reference": broker}))
	}
	return objs
}

// BenchmarkInitialSync fills one API server with a realistic mesh, first 10,000 objects and
// then 40,000 more, and at each size starts the broadcaster binary (built without -race) and
// measures the time until /readyz answers 200, its memory, and GET /v1/getEventMesh; then,
// with it stopped, where that time and memory go (breakDown). Running only objects=50000
// fills the API server with all 50,000 at once.
func BenchmarkInitialSync(b *testing.B) {
	cfg := testkube.Start(b)
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	token := clusterReaderToken(b, admin)
	kubeconfig := testkube.WriteKubeconfig(b, cfg)
	binary := plainBinary(b)
	client := fastClient(b, cfg)
	populated := 0

	for _, n := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			b.StopTimer()
			if populated < n {
				start := time.Now()
				populate(b, client, populated, n)
				elapsed := time.Since(start)
				b.Logf("populated objects %d..%d (%d namespaces in all) in %v: %.0f objects/s",
					populated, n, (n+benchPerNamespace-1)/benchPerNamespace, elapsed.Round(time.Millisecond),
					float64(n-populated)/elapsed.Seconds())
				populated = n
			}
			for range b.N {
				measureSync(b, cfg, binary, kubeconfig, token, n)
			}
		})
	}
}

// measureSync runs the broadcaster once against the populated cluster and reports its numbers.
func measureSync(b *testing.B, cfg *rest.Config, binary, kubeconfig, token string, n int) {
	addr := testkit.FreeAddr(b)
	logs := &testkit.Buffer{}
	cmd := exec.Command(binary, "--kubeconfig", kubeconfig, "--listen", addr, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "KUBERNETES_SERVICE_HOST=")
	exited := make(chan struct{})
	var exitErr error

	b.StartTimer()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if b.Failed() {
			b.Logf("broadcaster logs:\n%s", logs.String())
		}
	}()

	var listening time.Duration
	poll := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-exited:
			b.Fatalf("the broadcaster exited: %v\n%s", exitErr, logs.String())
		default:
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("not ready after 10 minutes\n%s", logs.String())
		}
		resp, err := poll.Get("http://" + addr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if listening == 0 {
				listening = time.Since(start)
			}
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ready := time.Since(start)
	b.StopTimer()
	pid := cmd.Process.Pid
	rssReady, hwmReady := memoryOf(b, pid)
	time.Sleep(2 * time.Second)
	rssSettled, _ := memoryOf(b, pid)
	goMem := goMemory(b, addr)

	b.Logf("objects=%d: Go heap after 2 s (from /metrics): %s", n, goMem)

	cold := getMesh(b, addr, token, "identity")
	warm := getMesh(b, addr, token, "identity")
	zipped := getMesh(b, addr, token, "gzip")
	rssAfterGet, hwm := memoryOf(b, pid)

	var m mesh.EventMesh
	if err := json.Unmarshal(cold.body, &m); err != nil {
		b.Fatalf("decoding GET /v1/getEventMesh: %v", err)
	}
	entities := len(m.Brokers) + len(m.EventTypes) + len(m.Sources) + len(m.Subscribables)
	consumed := 0
	for _, et := range m.EventTypes {
		if len(et.ConsumedBy) > 0 {
			consumed++
		}
	}
	if want := benchEntities(n); entities != want || len(m.Sources) == 0 || consumed == 0 {
		b.Errorf("served %d entities (%d sources, %d consumed EventTypes), want %d with sources and consumers",
			entities, len(m.Sources), consumed, want)
	}
	b.Logf("objects=%d: listening after %v, ready after %v; RSS %.1f MiB at ready (peak %.1f), %.1f after 2 s, %.1f after the GETs (peak %.1f)",
		n, listening.Round(time.Millisecond), ready.Round(time.Millisecond), rssReady, hwmReady, rssSettled, rssAfterGet, hwm)
	b.Logf("objects=%d: GET /v1/getEventMesh: %d entities (%d EventTypes with consumers), %d bytes in %v (first: token and access review, serialisation), %v (again), %d bytes gzip in %v",
		n, entities, consumed, len(cold.body), cold.took.Round(time.Microsecond), warm.took.Round(time.Microsecond),
		zipped.wire, zipped.took.Round(time.Microsecond))

	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	parts := breakDown(b, cfg, n)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(ready), "sync-ms")
	b.ReportMetric(parts.list, "list-ms")
	b.ReportMetric(parts.engine, "engine-ms")
	b.ReportMetric(parts.inProcess, "inproc-sync-ms")
	b.ReportMetric(parts.objectsHeap, "objects-heap-MiB")
	b.ReportMetric(parts.engineHeap, "engine-heap-MiB")
	b.ReportMetric(rssReady, "rss-MiB")
	b.ReportMetric(rssSettled, "rss-settled-MiB")
	b.ReportMetric(hwm, "hwm-MiB")
	b.ReportMetric(float64(entities), "entities")
	b.ReportMetric(ms(cold.took), "get-ms")
	b.ReportMetric(ms(warm.took), "get-warm-ms")
	b.ReportMetric(float64(len(cold.body)), "get-bytes")
	b.ReportMetric(float64(zipped.wire), "get-gzip-bytes")
}

// syncParts is where an initial sync's time and memory go.
type syncParts struct {
	list, engine, inProcess float64 // milliseconds
	objectsHeap, engineHeap float64 // MiB
}

// breakDown measures, after the broadcaster has stopped, what the API server alone takes to
// answer the source's lists, what the engine alone takes to build the mesh from them, and
// the source run in this process with its lists traced.
func breakDown(b *testing.B, cfg *rest.Config, n int) (p syncParts) {
	func() {
		heapBefore := heapInUse()
		listTook, objs, eachKind := listLikeTheSource(b, cfg)
		heapObjects := heapInUse()
		eng := engine.New("bench")
		start := time.Now()
		count := func() int { // the changes are let go of, as the transports would have by now
			changes, _ := eng.Apply(engine.ObjectBatch{Upserts: objs, Replace: true})
			return len(changes)
		}()
		engineTook := time.Since(start)
		b.Logf("objects=%d: the same lists by a bare client took %v (%d objects, CRDs included; %s); their heap as the informers keep them %.1f MiB",
			n, listTook.Round(time.Millisecond), len(objs), eachKind, heapObjects-heapBefore)
		heapEngine := heapInUse()
		b.Logf("objects=%d: the engine's Replace of them took %v (%d changes); engine heap %.1f MiB",
			n, engineTook.Round(time.Millisecond), count, heapEngine-heapObjects)
		runtime.KeepAlive(objs)
		runtime.KeepAlive(eng)
		p.list, p.engine = ms(listTook), ms(engineTook)
		p.objectsHeap, p.engineHeap = heapObjects-heapBefore, heapEngine-heapObjects
	}()
	inProcess, timeline := traceSourceLists(b, cfg)
	b.Logf("objects=%d: the source in this process listed in %v; its lists (start–end of body, from its start): %s",
		n, inProcess.Round(time.Millisecond), timeline)
	p.inProcess = ms(inProcess)
	return p
}

// The benchmark mesh, per namespace: a Broker, EventTypes (one of the PingSource's type),
// labelled Services, one Trigger per Service (exact type filter, prefix filter, or none), and
// a PingSource sending to the Broker.
const (
	benchTypes        = 10
	benchPerNamespace = 1 + 3*benchTypes + 1
)

// benchObject is object i of the benchmark mesh; objects 0..n-1 make the mesh of n objects.
func benchObject(i int) (gvr schema.GroupVersionResource, obj *unstructured.Unstructured) {
	ns := fmt.Sprintf("bench-%04d", i/benchPerNamespace)
	j := i % benchPerNamespace
	broker := map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}
	typeOf := func(k int) string {
		if k == 0 {
			return "dev.knative.sources.ping"
		}
		return fmt.Sprintf("com.example.%s.t%d", ns, k)
	}
	var o map[string]any
	switch k := (j - 1) % benchTypes; {
	case j == 0:
		gvr, o = gvrBroker, object("eventing.knative.dev/v1", "Broker", ns, "default", map[string]any{"team": ns}, nil)
	case j <= benchTypes:
		gvr, o = gvrEventType, object("eventing.knative.dev/v1beta2", "EventType", ns, fmt.Sprintf("et-%d", k), nil,
			map[string]any{"type": typeOf(k), "source": "/" + ns, "reference": broker,
				"description": fmt.Sprintf("Event type %d of %s", k, ns)})
	case j <= 2*benchTypes:
		gvr, o = gvrService, object("v1", "Service", ns, fmt.Sprintf("svc-%d", k),
			map[string]any{engine.LabelBackstageID: fmt.Sprintf("%s.svc-%d", ns, k)},
			map[string]any{"type": "ExternalName", "externalName": "example.com"})
	case j <= 3*benchTypes:
		spec := map[string]any{"broker": "default",
			"subscriber": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": fmt.Sprintf("svc-%d", k)}}}
		switch k % 3 {
		case 0:
			spec["filter"] = map[string]any{"attributes": map[string]any{"type": typeOf(k)}}
		case 1:
			spec["filters"] = []any{map[string]any{"prefix": map[string]any{"type": "com.example."}}}
		}
		gvr, o = gvrTrigger, object("eventing.knative.dev/v1", "Trigger", ns, fmt.Sprintf("tr-%d", k), nil, spec)
	default:
		gvr, o = gvrPingSource, object("sources.knative.dev/v1", "PingSource", ns, "ping", nil,
			map[string]any{"schedule": "*/1 * * * *", "data": `{"ping":true}`, "sink": map[string]any{"ref": broker}})
	}
	return gvr, &unstructured.Unstructured{Object: o}
}

// benchEntities is how many entities the first n objects make: Brokers, EventTypes, sources.
func benchEntities(n int) int {
	count := 0
	for i := range n {
		if gvr, _ := benchObject(i); gvr == gvrBroker || gvr == gvrEventType || gvr == gvrPingSource {
			count++
		}
	}
	return count
}

// populate creates objects from..to-1 of the benchmark mesh (and their namespaces) concurrently.
func populate(b testing.TB, client dynamic.Interface, from, to int) {
	populateWith(b, client, from, to, benchObject)
}

// populateWith creates objects from..to-1 of a mesh (and their namespaces) concurrently.
func populateWith(b testing.TB, client dynamic.Interface, from, to int,
	benchObject func(int) (schema.GroupVersionResource, *unstructured.Unstructured)) {
	const workers = 24
	var namespaces []string
	for i := from; i < to; i++ {
		_, u := benchObject(i)
		if len(namespaces) == 0 || namespaces[len(namespaces)-1] != u.GetNamespace() {
			namespaces = append(namespaces, u.GetNamespace())
		}
	}
	run := func(count int, create func(i int) error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= count {
						return
					}
					if err := createRetrying(func() error { return create(i) }); err != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, err)
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
	}
	ctx := context.Background()
	run(len(namespaces), func(i int) error {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": namespaces[i]}}}
		_, err := client.Resource(gvrNamespace).Create(ctx, u, metav1.CreateOptions{})
		return err
	})
	run(to-from, func(i int) error {
		gvr, u := benchObject(from + i)
		if _, err := client.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		return nil
	})
}

// createRetrying retries transient failures; an object that already exists is done.
func createRetrying(create func() error) error {
	var err error
	for attempt := range 5 {
		if err = create(); err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return err
}

// listLikeTheSource lists what the source lists at start-up the way its informers do (a
// pager from resourceVersion 0, so from the API server's watch cache): CRDs, then every mesh
// kind concurrently, labelled Services metadata-only. It reads objects as the source's
// informers keep them (engine.Parse) and returns the wall time of both rounds, the objects,
// and a line with each kind's own list time.
func listLikeTheSource(b *testing.B, cfg *rest.Config) (time.Duration, []*engine.Parsed, string) {
	client := fastClient(b, cfg)
	meta, err := metadata.NewForConfig(fastConfig(cfg))
	if err != nil {
		b.Fatal(err)
	}
	type kindList struct {
		name string
		list func(context.Context, metav1.ListOptions) (k8sruntime.Object, error)
		took time.Duration
		objs []*engine.Parsed
		err  error
	}
	full := func(gvr schema.GroupVersionResource) kindList {
		return kindList{name: gvr.Resource, list: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			return client.Resource(gvr).List(ctx, o)
		}}
	}
	run := func(k *kindList) {
		ctx := context.Background()
		start := time.Now()
		p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (k8sruntime.Object, error) { return k.list(ctx, o) }))
		list, _, err := p.ListWithAlloc(ctx, metav1.ListOptions{ResourceVersion: "0"})
		k.took = time.Since(start)
		if err != nil {
			k.err = fmt.Errorf("listing %s: %w", k.name, err)
			return
		}
		switch l := list.(type) {
		case *unstructured.UnstructuredList:
			for i := range l.Items {
				k.objs = append(k.objs, engine.Parse(&l.Items[i]))
			}
		case *metav1.PartialObjectMetadataList:
			for _, m := range l.Items {
				u := &unstructured.Unstructured{Object: map[string]any{}}
				u.SetAPIVersion("v1")
				u.SetKind("Service")
				u.SetNamespace(m.Namespace)
				u.SetName(m.Name)
				u.SetUID(m.UID)
				u.SetLabels(m.Labels)
				k.objs = append(k.objs, engine.Parse(u))
			}
		}
	}
	crds := full(crdGVR)
	kinds := []kindList{full(gvrBroker), full(gvrTrigger),
		full(gvrEventType), // at the version it is stored in, as the source reads it
		full(schema.GroupVersionResource{Group: engine.GroupMessaging, Version: "v1", Resource: "subscriptions"}),
		full(gvrPingSource),
		{name: "services (metadata)", list: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			o.LabelSelector = engine.LabelBackstageID
			return meta.Resource(gvrService).List(ctx, o)
		}}}
	start := time.Now()
	run(&crds)
	var wg sync.WaitGroup
	for i := range kinds {
		wg.Go(func() { run(&kinds[i]) })
	}
	wg.Wait()
	took := time.Since(start)
	objs := crds.objs
	var each []string
	for _, k := range append([]kindList{crds}, kinds...) {
		if k.err != nil {
			b.Fatal(k.err)
		}
		if k.name != crds.name {
			objs = append(objs, k.objs...)
		}
		each = append(each, fmt.Sprintf("%s %d in %v", k.name, len(k.objs), k.took.Round(time.Millisecond)))
	}
	return took, objs, strings.Join(each, ", ")
}

// traceSourceLists runs the kube source in this process until its initial listing is
// handed over, noting when each LIST request started and when its body was read.
func traceSourceLists(b *testing.B, cfg *rest.Config) (time.Duration, string) {
	type span struct {
		what       string
		start, end time.Duration
	}
	var mu sync.Mutex
	var spans []*span
	var origin time.Time
	traced := rest.CopyConfig(cfg)
	traced.QPS, traced.Burst = 50, 100 // as the broadcaster sets them
	traced.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet || req.URL.Query().Get("watch") != "" || !strings.Contains(req.URL.Path, "/") {
				return rt.RoundTrip(req)
			}
			parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
			sp := &span{what: parts[len(parts)-1]}
			mu.Lock()
			sp.start = time.Since(origin)
			spans = append(spans, sp)
			mu.Unlock()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return resp, err
			}
			resp.Body = &endNotingBody{ReadCloser: resp.Body, done: func() {
				mu.Lock()
				defer mu.Unlock()
				if sp.end == 0 {
					sp.end = time.Since(origin)
				}
			}}
			return resp, nil
		})
	})
	origin = time.Now()
	r := startSource(b, traced)
	took := time.Since(origin)
	r.stop()
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for _, sp := range spans {
		if sp.end-sp.start >= 20*time.Millisecond { // discovery and small lists are noise here
			out = append(out, fmt.Sprintf("%s %v–%v", sp.what, sp.start.Round(time.Millisecond), sp.end.Round(time.Millisecond)))
		}
	}
	return took, strings.Join(out, ", ")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// endNotingBody calls done once the body has been read to its end or closed.
type endNotingBody struct {
	io.ReadCloser
	done func()
}

func (e *endNotingBody) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	if err != nil {
		e.done()
	}
	return n, err
}

func (e *endNotingBody) Close() error {
	e.done()
	return e.ReadCloser.Close()
}

// goMemory reads the broadcaster's Go heap figures from its /metrics.
func goMemory(b *testing.B, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		switch {
		case !ok:
		case name == "go_memstats_heap_alloc_bytes", name == "go_memstats_heap_inuse_bytes",
			name == "go_memstats_next_gc_bytes", name == "go_memstats_sys_bytes":
			v, _ := strconv.ParseFloat(value, 64)
			out = append(out, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(name, "go_memstats_"), v/(1<<20)))
		}
	}
	return strings.Join(out, ", ")
}

// heapInUse is the live heap after a full collection, in MiB.
func heapInUse() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// clusterReaderToken returns a token for a ServiceAccount allowed to list EventTypes everywhere.
func clusterReaderToken(b *testing.B, client kubernetes.Interface) string {
	const ns, name = "bench-readers", "reader"
	ctx := context.Background()
	steps := []func() error{
		func() error {
			_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{mesh.GroupEventing}, Resources: []string{"eventtypes"}, Verbs: []string{"list"}}}},
				metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ns},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}, metav1.CreateOptions{})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	expiry := int64(4 * 3600)
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// plainBinary builds cmd/broadcaster without -race: memory and timing as deployed.
func plainBinary(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "broadcaster")
	if out, err := exec.Command("go", "build", "-o", path, "../../cmd/broadcaster").CombinedOutput(); err != nil {
		b.Fatalf("building the broadcaster: %v\n%s", err, out)
	}
	return path
}

// fastConfig lifts client-side rate limits so the benchmark's own writes are not throttled.
func fastConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.WarningHandler = rest.NoWarnings{} // EventType v1beta2 is deprecated; written on purpose
	return cfg
}

func fastClient(b testing.TB, cfg *rest.Config) dynamic.Interface {
	client, err := dynamic.NewForConfig(fastConfig(cfg))
	if err != nil {
		b.Fatal(err)
	}
	return client
}

type fetched struct {
	took time.Duration
	body []byte
	wire int // bytes as sent (compressed when asked for gzip)
}

// getMesh fetches GET /v1/getEventMesh asking for encoding, and times it to the last byte.
func getMesh(b *testing.B, addr, token, encoding string) fetched {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/getEventMesh", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept-Encoding", encoding) // set by hand: the transport leaves the body as sent
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /v1/getEventMesh: %d %v: %.200s", resp.StatusCode, err, body)
	}
	return fetched{took: took, body: body, wire: len(body)}
}

// memoryOf reads VmRSS and VmHWM (peak RSS) of pid, in MiB.
func memoryOf(b *testing.B, pid int) (rss, hwm float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "VmRSS" && name != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			b.Fatalf("/proc/%d/status %s: %v", pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// reportPercentiles reports p50, p99 and max of ds in milliseconds (nearest rank).
func reportPercentiles(b *testing.B, ds []time.Duration, prefix string) {
	if len(ds) == 0 {
		return
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	at := func(p float64) time.Duration {
		return sorted[max(0, int(math.Ceil(p*float64(len(sorted))))-1)]
	}
	b.ReportMetric(ms(at(0.50)), prefix+"p50-ms")
	b.ReportMetric(ms(at(0.99)), prefix+"p99-ms")
	b.ReportMetric(ms(sorted[len(sorted)-1]), prefix+"max-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
