package resync

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// loadServer is a hub with n entities (Brokers with 10 EventTypes each, like a real mesh) behind
// the real endpoints on a real HTTP server.
func loadServer(b *testing.B, entities int) (*hub.Hub, *Watchers, string) {
	h := testkit.Must(hub.New(engine.New("load"), func() bool { return true }))
	deltaLog, _ := changelog.New("load")
	enc, _ := codec.NewEncoder("")
	watchers, _ := NewWatchers(enc, WithWatchBuffer(4096))
	h.Listen(deltaLog.Append)
	h.Listen(watchers.Publish)
	handler, _ := New(h, WithDeltaLog(deltaLog, enc), WithWatch(watchers, 15*time.Second))
	var objs []*unstructured.Unstructured
	for i := range entities / 11 {
		ns, broker := fmt.Sprint("ns-", i/10), fmt.Sprint("broker-", i%10)
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": map[string]any{"name": broker, "namespace": ns, "labels": map[string]any{"app": "shop"}}}})
		for j := range 10 {
			objs = append(objs, eventType(ns, broker, j, "t"))
		}
	}
	h.Apply(engine.Listing(objs...)) // the initial listing: the epoch opens with one change per entity
	srv := httptest.NewServer(handler)
	b.Cleanup(srv.Close)
	return h, watchers, srv.URL
}

func eventType(ns, broker string, j int, typ string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
		"metadata": map[string]any{"name": fmt.Sprint(broker, "-et-", j), "namespace": ns},
		"spec": map[string]any{"type": fmt.Sprint("com.example.", typ, j), "description": "an event type",
			"reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": broker}}}}
}

func percentile(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

func rssMB() float64 {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkSnapshotLoad: GET /v1/getEventMesh at 10,000 entities from 50 concurrent clients.
// Each op is one request; reports requests/s and p50/p99 latency.
func BenchmarkSnapshotLoad(b *testing.B) {
	_, _, url := loadServer(b, 10000)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	const clients = 50
	var mu sync.Mutex
	var latencies []time.Duration
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				t0 := time.Now()
				resp, err := client.Get(url + "/v1/getEventMesh")
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(percentile(latencies, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(latencies, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(rssMB(), "RSS-MB")
}

// BenchmarkWatchLoad: 200 /v1/watch clients while the mesh changes 1,000 times a second for
// 5 s; reports how far behind the engine each delta reached its watchers (p50/p99 over every
// delivery). Run with -benchtime=1x.
func BenchmarkWatchLoad(b *testing.B) {
	h, watchers, url := loadServer(b, 10000)
	const clients, rate, seconds = 200, 1000, 5
	applied := sync.Map{} // sequence → time the engine emitted it
	h.Listen(func(batch mesh.Batch) {
		cs := batch.Changes

		now := time.Now()
		for _, c := range cs {
			applied.Store(c.Sequence, now)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var lags []time.Duration
	cut, snapshots := 0, 0
	reached := make([]atomic.Uint64, clients) // each watcher's last sequence (all of them once cut off)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/watch", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error {
				switch ev.Type {
				case "snapshot":
					mu.Lock()
					snapshots++
					mu.Unlock()
				case "delta":
					_, seq, _ := mesh.ParseStreamID(ev.ID)
					reached[i].Store(seq)
					if t, ok := applied.Load(seq); ok {
						lag := time.Since(t.(time.Time))
						mu.Lock()
						lags = append(lags, lag)
						mu.Unlock()
					}
				case "cutoff":
					reached[i].Store(math.MaxUint64)
					mu.Lock()
					cut++
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	for { // every watcher connected and through its snapshot: measure the live phase only
		mu.Lock()
		n := snapshots
		mu.Unlock()
		if n == clients && watchers.Len() == clients {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	for i := range rate * seconds {
		<-tick.C
		ns, broker := fmt.Sprint("ns-", i%90), fmt.Sprint("broker-", i%10)
		h.Apply(engine.Upserts(eventType(ns, broker, i%10, fmt.Sprint("v", i)))) // an EventType's type changes
	}
	tick.Stop()
	last := h.Snapshot().Position().Sequence
	testkit.Eventually(b, "every watcher to receive the last change", 30*time.Second, func() bool {
		for i := range reached {
			if reached[i].Load() < last {
				return false
			}
		}
		return true
	})
	b.StopTimer()
	rss := rssMB()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(len(lags))/float64(clients), "deliveries/watcher")
	b.ReportMetric(float64(percentile(lags, 50).Microseconds())/1000, "p50-lag-ms")
	b.ReportMetric(float64(percentile(lags, 99).Microseconds())/1000, "p99-lag-ms")
	b.ReportMetric(float64(cut), "cut-off")
	b.ReportMetric(rss, "RSS-MB")
}

// BenchmarkDeltasReaders: eight clients read the whole change log of a 50,000-entity mesh at
// once through GET /v1/deltas, page after page, discarding the bodies. Reports the peak heap
// beyond the mesh's own while they read (sampled every 5 ms), and the process RSS.
func BenchmarkDeltasReaders(b *testing.B) {
	h, _, url := loadServer(b, 50000)
	epoch, head := h.Snapshot().Position().Epoch, h.Snapshot().Position().Sequence
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	readAll := func() (bytes int64) {
		for since := uint64(0); since < head; {
			resp, err := client.Get(fmt.Sprintf("%s/v1/deltas?epoch=%s&since=%d", url, epoch, since))
			if err != nil {
				b.Error(err)
				return bytes
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			bytes += n
			next, _ := strconv.ParseUint(resp.Header.Get("Mesh-Sequence"), 10, 64)
			if next <= since {
				b.Errorf("no progress from %d: %s", since, resp.Status)
				return bytes
			}
			since = next
		}
		return bytes
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	b.ResetTimer()
	for range b.N {
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		var wg sync.WaitGroup
		var total atomic.Int64
		for range 8 {
			wg.Go(func() { total.Add(readAll()) })
		}
		wg.Wait()
		close(stop)
		<-sampled
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "extra-heap-MB")
		b.ReportMetric(float64(total.Load())/8/(1<<20), "MB-per-reader")
	}
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "mesh-heap-MB")
	b.ReportMetric(rssMB(), "RSS-MB")
}
