package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// writeMesh writes Brokers from..to-1 (10 per namespace), each with 10 EventTypes.
func writeMesh(t testing.TB, dir, file string, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		ns, broker := fmt.Sprint("ns-", i/10), fmt.Sprint("broker-", i%10)
		fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: %s, namespace: %s}\n", broker, ns)
		for j := range 10 {
			fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: %s-et-%d, namespace: %s}\n"+
				"spec: {type: com.example.t%d, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: %s}}\n", broker, j, ns, j, broker)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sinkRecorder is an HTTP sink that keeps every epoch's sequences in arrival order.
type sinkRecorder struct {
	mu   sync.Mutex
	seqs map[string][]uint64
}

func (s *sinkRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := testkit.DecodeRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.seqs[c.Epoch] = append(s.seqs[c.Epoch], c.Sequence)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// inOrder reports whether epoch's sequences are exactly 1..n, in order.
func (s *sinkRecorder) inOrder(epoch string, n uint64) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.seqs[epoch]
	if uint64(len(got)) < n {
		return false, fmt.Sprintf("%d of %d events", len(got), n)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			return true, fmt.Sprintf("event %d has meshseq %d", i, seq)
		}
	}
	if uint64(len(got)) != n {
		return true, fmt.Sprintf("%d events, want %d", len(got), n)
	}
	return true, ""
}

// entitiesOf reads GET /v1/mesh as key → entity JSON.
func entitiesOf(t testing.TB, base string) (mesh.Snapshot, map[string]string) {
	t.Helper()
	resp, err := http.Get(base + mesh.PathMesh)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s mesh.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	out := testkit.MeshEntities(s.Mesh)
	return s, out
}

// The whole mesh reaches every transport at a size far beyond the change log's bounds, with
// default flags: the sink gets meshseq 1..N of the epoch with no gap, a late MQTT subscriber
// and the NATS KV bucket hold exactly the mesh. Restarted with entities deleted and added
// while it was down, both end exact again.
func TestWholeMeshAtScale(t *testing.T) {
	t.Parallel()
	const brokersN = 4546 // × 11 entities: 50,006, five times the old queue
	mqttBroker, natsServer := brokers.StartEmbeddedMQTT(t), brokers.StartEmbeddedNATS(t)
	sink := &sinkRecorder{seqs: map[string][]uint64{}}
	sinkServer := httptest.NewServer(sink)
	defer sinkServer.Close()
	dir := t.TempDir()
	writeMesh(t, dir, "a.yaml", 0, brokersN/2)
	writeMesh(t, dir, "b.yaml", brokersN/2, brokersN)
	mqttPrefix, natsPrefix := "scale/mesh", "scale.mesh"

	start := func() (base string, stop func()) {
		cfg, err := config.Load([]string{"--manifests", dir, "--listen", "127.0.0.1:0", "--sink", sinkServer.URL,
			"--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", mqttPrefix, "--nats", natsServer.URL,
			"--nats-subject-prefix", natsPrefix}, noEnv, settings.All())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		addr, done := make(chan net.Addr, 1), make(chan error, 1)
		logs := &testkit.Buffer{}
		go func() { done <- run(ctx, cfg, logs, func(a net.Addr) { addr <- a }) }()
		select {
		case a := <-addr:
			base = "http://" + a.String()
		case err := <-done:
			t.Fatalf("run ended early: %v", err)
		}
		return base, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
			if strings.Contains(logs.String(), "gap") || strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("trouble in the logs:\n%s", logs.String())
			}
		}
	}
	check := func(round string, base string) {
		t.Helper()
		started := time.Now()
		// A deadline for a loaded machine (50,006 entities under -race), not a timing.
		testkit.Eventually(t, round+": the mesh loaded", 5*time.Minute, func() bool {
			resp, err := http.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
		snap, want := entitiesOf(t, base)
		var problem string
		testkit.Eventually(t, round+": the sink to get the epoch", 10*time.Minute, func() bool {
			var done bool
			done, problem = sink.inOrder(snap.Epoch, snap.Sequence)
			return done
		})
		if problem != "" {
			t.Fatalf("%s: the sink: %s", round, problem)
		}
		t.Logf("%s: the sink has the epoch after %v", round, time.Since(started).Round(time.Millisecond))
		late := testkit.SubscribeRetained(t, mqttBroker.URL, mqttPrefix)
		settle(t, round+": a late MQTT subscriber", want, func() map[string]string {
			got, err := late.Entities()
			if err != nil {
				t.Fatal(err)
			}
			return got
		})
		t.Logf("%s: a late MQTT subscriber has the mesh after %v", round, time.Since(started).Round(time.Millisecond))
		settle(t, round+": the KV bucket", want, func() map[string]string {
			got, _ := testkit.KVEntities(natsServer.URL, natspub.BucketName(natsPrefix))
			return got
		})
		t.Logf("%s: %d entities, epoch %s, on every transport after %v", round, len(want), snap.Epoch, time.Since(started).Round(time.Millisecond))
	}

	base, stop := start()
	check("first start", base)
	stop()
	// While it is down: a quarter of the Brokers (and their EventTypes) go, new ones come.
	writeMesh(t, dir, "a.yaml", brokersN/4, brokersN/2)
	writeMesh(t, dir, "c.yaml", brokersN, brokersN+brokersN/8)
	base, stop = start()
	check("restart", base)
	stop()
}

// settle waits until read returns want (or, with wantNow, what it returns at the time), and
// otherwise fails saying how they differ.
func settle(t testing.TB, what string, want map[string]string, read func() map[string]string, wantNow ...func() map[string]string) {
	t.Helper()
	var got map[string]string
	deadline := time.Now().Add(10 * time.Minute)
	current := func() map[string]string {
		if len(wantNow) > 0 {
			want = wantNow[0]()
		}
		return want
	}
	for got = read(); !mapsEqual(got, current()); got = read() {
		if time.Now().After(deadline) {
			var missing, extra, differ []string
			for k, v := range want {
				if g, ok := got[k]; !ok {
					missing = append(missing, k)
				} else if g != v {
					differ = append(differ, k)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					extra = append(extra, k)
				}
			}
			t.Fatalf("%s: %d entities, want %d: %d missing (%.3q), %d extra (%.3q), %d differ (%.3q)", what, len(got), len(want),
				len(missing), missing, len(extra), extra, len(differ), differ)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
