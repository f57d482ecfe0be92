package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// BenchmarkDeliveryAtScale starts the broadcaster in process on a mesh of 100,001 entities,
// with no transport and with three (an HTTP sink, MQTT and NATS, the brokers in their own
// processes), and reports:
//   - peak-live-MiB: the largest live heap seen (sampled after a GC every 250 ms) from start
//     until every transport has published the whole opening; the difference between the two
//     runs is the delivery path's memory;
//   - ready-s: start until /readyz;
//   - <transport>-s: start until that transport has delivered the whole opening;
//   - mqtt-late-s, kv-read-s: once published, how long a late MQTT subscriber and a KV reader
//     take to hold the whole mesh.
//
// Run it alone: go test ./cmd/broadcaster -run XXX -bench DeliveryAtScale -benchtime 1x
// (BENCH_PEAK_HEAP_PROFILE=file writes a heap profile at each new peak of the three-transport run).
func BenchmarkDeliveryAtScale(b *testing.B) {
	const brokersN = 9091 // × 11 entities: 100,001
	dir := b.TempDir()
	writeMesh(b, dir, "a.yaml", 0, brokersN/2)
	writeMesh(b, dir, "b.yaml", brokersN/2, brokersN)
	for _, three := range []bool{false, true} {
		b.Run(fmt.Sprintf("transports=%d", map[bool]int{false: 0, true: 3}[three]), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				deliverOnce(b, dir, three)
			}
		})
	}
}

func deliverOnce(b *testing.B, dir string, three bool) {
	args := []string{"--manifests", dir, "--listen", "127.0.0.1:0"}
	var events atomic.Int64
	var mqttBroker *brokers.MQTT
	var natsServer *brokers.NATS
	suffix := fmt.Sprint(time.Now().UnixNano())
	mqttPrefix, natsPrefix := "bench/"+suffix, "bench.n"+suffix
	if three {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			events.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}))
		defer sink.Close()
		// MQTT: a broker that hands a late subscriber every retained message (the machine's
		// Mosquitto, on defaults, drops beyond 1,000: see docs/protocol.md).
		mqttBroker, natsServer = brokers.StartEmbeddedMQTT(b), brokers.StartNATS(b)
		defer testkit.DeleteJetStream(natsServer.URL, natspub.StreamName(natsPrefix), natspub.BucketName(natsPrefix))
		args = append(args, "--sink", sink.URL, "--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", mqttPrefix,
			"--nats", natsServer.URL, "--nats-subject-prefix", natsPrefix)
	}
	cfg, err := config.Load(args, noEnv, settings.All())
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
				if file := os.Getenv("BENCH_PEAK_HEAP_PROFILE"); file != "" && three {
					writeHeapProfile(b, file) // where the peak's memory is
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- run(ctx, cfg, io.Discard, func(a net.Addr) { addr <- a }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	base := "http://" + (<-addr).String()
	testkit.Eventually(b, "ready", 5*time.Minute, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	b.ReportMetric(time.Since(started).Seconds(), "ready-s")
	snap, want := entitiesOf(b, base)
	if three {
		delivered := map[string]func(map[string]float64) bool{
			"http": func(map[string]float64) bool { return events.Load() >= int64(snap.Sequence) },
			"mqtt": func(m map[string]float64) bool {
				return m[`broadcaster_transport_delivered_total{transport="mqtt `+mqttPrefix+`/#"}`] >= float64(snap.Sequence)
			},
			"nats": func(m map[string]float64) bool {
				return m[`broadcaster_transport_delivered_total{transport="nats `+natsPrefix+`.>"}`] >= float64(snap.Sequence)
			},
		}
		testkit.Eventually(b, "every transport to deliver the opening", 10*time.Minute, func() bool {
			metrics := scrape(b, base)
			for name, done := range delivered {
				if done(metrics) {
					b.ReportMetric(time.Since(started).Seconds(), name+"-s")
					delete(delivered, name)
				}
			}
			return len(delivered) == 0
		})
	}
	close(stopSampling)
	<-sampled
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-live-MiB")
	if !three {
		return
	}
	lateStart := time.Now()
	late := testkit.SubscribeRetainedQoS0(b, mqttBroker.URL, mqttPrefix)
	settle(b, "a late MQTT subscriber", want, func() map[string]string {
		got, err := late.Entities()
		if err != nil {
			b.Fatal(err)
		}
		return got
	})
	b.ReportMetric(time.Since(lateStart).Seconds(), "mqtt-late-s")
	readStart := time.Now()
	got, err := testkit.KVEntities(natsServer.URL, natspub.BucketName(natsPrefix))
	if err != nil || !mapsEqual(got, want) {
		b.Fatalf("the KV bucket: %d entries (%v), want %d", len(got), err, len(want))
	}
	b.ReportMetric(time.Since(readStart).Seconds(), "kv-read-s")
}

func writeHeapProfile(b *testing.B, file string) {
	f, err := os.Create(file)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Error(err)
	}
}
