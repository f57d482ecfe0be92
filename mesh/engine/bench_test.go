package engine

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
)

// benchMesh builds a realistic mesh of about n objects: namespaces of 10 brokers, each broker
// with 10 EventTypes, 3 Triggers (an old-style type filter, a new-style prefix filter and no
// filter; one with a dead-letter sink) whose subscribers are 5 labelled services per
// namespace, and a two-step Sequence; each namespace has an EventPolicy on its first Broker.
// Brokers, Triggers and services carry a Ready condition and an address, as in a cluster. It
// returns the objects and a cycle of single-object changes that each alter the mesh.
func benchMesh(n int) (objects, changes []*unstructured.Unstructured) {
	const brokersPerNS, typesPerBroker, servicesPerNS = 10, 10, 5
	brokers := max(1, n/(typesPerBroker+1))
	obj := func(o map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: o} }
	meta := func(ns, name string, labels map[string]any) map[string]any {
		m := map[string]any{"namespace": ns, "name": name, "uid": ns + "-" + name}
		if labels != nil {
			m["labels"] = labels
		}
		return m
	}
	brokerRef := func(name string) map[string]any {
		return map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": name}
	}
	eventType := func(ns, broker string, i int, typ string) *unstructured.Unstructured {
		return obj(map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
			"metadata": meta(ns, fmt.Sprintf("%s-et-%d", broker, i), map[string]any{"app": "shop"}),
			"spec": map[string]any{"type": typ, "source": "/apis/" + ns, "reference": brokerRef(broker),
				"description": "an event type"}})
	}
	status := func(ns, name string) map[string]any {
		return map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"address": map[string]any{"url": "http://" + name + "." + ns + ".svc.cluster.local"}}
	}
	serviceRef := func(i int) map[string]any {
		return map[string]any{"ref": map[string]any{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
			"name": fmt.Sprintf("svc-%d", i%servicesPerNS)}}
	}
	service := func(ns string, i int, id string) *unstructured.Unstructured {
		labels := map[string]any{"app": "svc"}
		if id != "" {
			labels[LabelBackstageID] = id
		}
		name := fmt.Sprintf("svc-%d", i)
		return obj(map[string]any{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
			"metadata": meta(ns, name, labels), "status": status(ns, name)})
	}
	trigger := func(ns, broker string, i int, spec map[string]any) *unstructured.Unstructured {
		spec["broker"] = broker
		spec["subscriber"] = serviceRef(i)
		name := fmt.Sprintf("%s-t-%d", broker, i)
		return obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": meta(ns, name, nil), "spec": spec, "status": status(ns, name)})
	}
	sequence := func(ns, broker string, first int) *unstructured.Unstructured {
		return obj(map[string]any{"apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
			"metadata": meta(ns, broker+"-seq", nil),
			"spec":     map[string]any{"steps": []any{serviceRef(first), serviceRef(first + 1)}, "reply": serviceRef(0)}})
	}
	typeName := func(b, i int) string { return fmt.Sprintf("com.example.b%d.type%d", b, i) }

	for b := range brokers {
		ns, name := fmt.Sprintf("ns-%d", b/brokersPerNS), fmt.Sprintf("broker-%d", b%brokersPerNS)
		if b%brokersPerNS == 0 {
			for s := range servicesPerNS {
				objects = append(objects, service(ns, s, fmt.Sprintf("%s-svc-%d", ns, s)))
			}
			objects = append(objects, obj(map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy",
				"metadata": meta(ns, "policy", nil), "spec": map[string]any{
					"to":   []any{map[string]any{"ref": brokerRef(name)}},
					"from": []any{map[string]any{"sub": "system:serviceaccount:" + ns + ":*"}}}}))
		}
		objects = append(objects, obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": meta(ns, name, nil), "status": status(ns, name)}), sequence(ns, name, 1))
		for i := range typesPerBroker {
			objects = append(objects, eventType(ns, name, i, typeName(b, i)))
		}
		objects = append(objects,
			trigger(ns, name, b, map[string]any{"filter": map[string]any{"attributes": map[string]any{"type": typeName(b, 0)}}}),
			trigger(ns, name, b+1, map[string]any{"filters": []any{map[string]any{"prefix": map[string]any{"type": fmt.Sprintf("com.example.b%d.type1", b)}}}}),
			trigger(ns, name, b+2, map[string]any{"delivery": map[string]any{"deadLetterSink": serviceRef(b + 3)}}),
		)

		// Changes, spread over the mesh: an EventType renamed and back, a filter edited,
		// a subscriber relabelled, a broker relabelled, an EventType deleted and re-created.
		if b%max(1, brokers/50) == 0 {
			changes = append(changes,
				eventType(ns, name, 3, typeName(b, 0)), eventType(ns, name, 3, typeName(b, 3)),
				trigger(ns, name, b, map[string]any{"filter": map[string]any{"attributes": map[string]any{"type": typeName(b, 2)}}}),
				trigger(ns, name, b, map[string]any{"filter": map[string]any{"attributes": map[string]any{"type": typeName(b, 0)}}}),
				service(ns, b%servicesPerNS, "renamed"), service(ns, b%servicesPerNS, fmt.Sprintf("%s-svc-%d", ns, b%servicesPerNS)),
				obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": meta(ns, name, map[string]any{"tier": "gold"}), "status": status(ns, name)}),
				obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": meta(ns, name, nil), "status": status(ns, name)}),
				nil, eventType(ns, name, 9, typeName(b, 9)), // nil: delete the EventType above
				sequence(ns, name, 2), sequence(ns, name, 1), // a step moved to another service and back
				nil, service(ns, 4, fmt.Sprintf("%s-svc-%d", ns, 4)), // a sink gone (edges dangle) and back
			)
		}
	}
	return objects, changes
}

func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			objects, changes := benchMesh(n)
			before := heapInUse()
			e := New("bench")
			for _, u := range objects {
				e.upsert(u)
			}
			entities := e.Snapshot().Len()
			heapPerEntity := float64(heapInUse()-before) / float64(entities)
			runtime.KeepAlive(objects) // measured apart from the engine: they are the input
			emitted := 0
			b.ReportAllocs()
			cpu := processCPU()
			b.ResetTimer()
			for i := range b.N {
				k := i % len(changes)
				if u := changes[k]; u != nil {
					c, _ := e.upsert(u)
					emitted += len(c)
				} else {
					emitted += len(e.remove(RefOf(changes[k+1])))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op") // GC included; load-independent
			b.ReportMetric(float64(emitted)/float64(b.N), "changes/op")
			b.ReportMetric(heapPerEntity, "heapB/entity") // ResetTimer would drop it: report last
			b.ReportMetric(float64(entities), "entities")
			runtime.KeepAlive(e)
		})
	}
}

func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			objects, _ := benchMesh(n)
			e := New("bench")
			for _, u := range objects {
				e.upsert(u)
			}
			var size countingWriter
			e.Snapshot().WriteEventMesh(&size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := e.Snapshot().WriteEventMesh(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkLineage asks lineage questions of a 100k-object mesh while another goroutine keeps
// changing it (both under one lock, as the hub holds it), and reports the median time of one
// answer beside the mean. where: an EventType's paths (two); where-100: an EventType on a
// Broker with 100 Triggers (100 paths); who: a Broker's senders and the paths to it; broken:
// the whole graph scanned, nothing found (the worst case). Run it time-based (-benchtime 2s):
// each question then gets a count of its own.
func BenchmarkLineage(b *testing.B) {
	objects, changes := benchMesh(100000)
	e := New("bench")
	for _, u := range objects {
		e.upsert(u)
	}
	obj := func(o map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: o} }
	e.upsert(obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": map[string]any{"namespace": "fan", "name": "b"}}))
	e.upsert(obj(map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType", "metadata": map[string]any{"namespace": "fan", "name": "e"},
		"spec": map[string]any{"type": "t", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b"}}}))
	for i := range 100 {
		e.upsert(obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": map[string]any{"namespace": "fan", "name": fmt.Sprintf("t-%d", i)},
			"spec": map[string]any{"broker": "b", "filter": map[string]any{"attributes": map[string]any{"type": "t"}},
				"subscriber": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": fmt.Sprintf("s-%d", i)}}}}))
		e.upsert(obj(map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"namespace": "fan", "name": fmt.Sprintf("s-%d", i)}}))
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	var changed atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			k := i % len(changes)
			if u := changes[k]; u != nil {
				e.upsert(u)
			} else {
				e.remove(RefOf(changes[k+1]))
			}
			mu.Unlock()
			changed.Add(1)
			time.Sleep(20 * time.Microsecond) // a busy cluster: thousands of changes a second
		}
	}()
	defer close(stop)
	key := func(kind, ns, name string) *mesh.Key {
		return &mesh.Key{Group: mesh.GroupEventing, Kind: kind, Namespace: ns, Name: name}
	}
	for _, q := range []struct {
		name string
		q    lineage.Query
	}{
		{"where", lineage.Query{EventType: key("EventType", "ns-500", "broker-5-et-1")}},
		{"where-100", lineage.Query{EventType: key("EventType", "fan", "e")}},
		{"who", lineage.Query{Target: key("Broker", "ns-500", "broker-5")}},
		{"broken", lineage.Query{Broken: true}},
	} {
		b.Run(q.name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			paths := 0
			before := changed.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				mu.Lock()
				a, err := lineage.Ask(e.LineageGraph(), q.q, nil)
				mu.Unlock()
				times = append(times, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				paths = len(a.Paths) + len(a.Broken)
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "median-ns")
			b.ReportMetric(float64(paths), "paths")
			b.ReportMetric(float64(changed.Load()-before)/float64(b.N), "changes/op")
		})
	}
}
