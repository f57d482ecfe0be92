package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// A sink that is down for longer than the change log holds gets one declared gap: logged,
// counted in /metrics, and then every later change in order.
func TestSinkDownLongerThanTheLog(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	var mu sync.Mutex
	var seqs []uint64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		c, err := testkit.DecodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		seqs = append(seqs, c.Sequence)
		mu.Unlock()
	}))
	defer sink.Close()
	received := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint64(nil), seqs...)
	}
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, logs := startRun(t, dir, "--sink", sink.URL, "--delta-log-size", "10")
	head := func() uint64 {
		resp, err := http.Get(base + mesh.PathMesh)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		n, _ := strconv.ParseUint(resp.Header.Get(mesh.HeaderSequence), 10, 64)
		return n
	}
	testkit.Eventually(t, "the opening at the sink", 20*time.Second, func() bool {
		h := head()
		got := received()
		return h > 0 && len(got) > 0 && got[len(got)-1] == h
	})
	opening := len(received())

	down.Store(true)
	for round := range 12 { // several changes a round: far more than the log's 10
		before := head()
		churn(t, dir, round)
		testkit.Eventually(t, "the round's changes", 10*time.Second, func() bool { return head() > before })
	}
	down.Store(false)
	testkit.Eventually(t, "the sink to catch up", 60*time.Second, func() bool {
		got, last := received(), head()
		return len(got) > 0 && got[len(got)-1] == last
	})
	got := received()
	gaps := 0
	for i := 1; i < len(got); i++ {
		switch {
		case got[i] <= got[i-1]:
			t.Fatalf("meshseq %d after %d: out of order", got[i], got[i-1])
		case got[i] > got[i-1]+1:
			gaps++
		}
	}
	if gaps != 1 || len(got) <= opening {
		t.Fatalf("%d gaps in %v, want one", gaps, got)
	}
	if !strings.Contains(logs.String(), "fell behind the change log") {
		t.Errorf("the gap was not logged:\n%s", logs.String())
	}
	name := `transport="http ` + sink.URL + `"`
	var metrics map[string]float64
	testkit.Eventually(t, "the metrics to count the sink's events and the gap", 20*time.Second, func() bool {
		metrics = scrape(t, base) // a batch is counted once the sink has answered its last event
		return metrics["broadcaster_transport_delivered_total{"+name+"}"] == float64(len(received()))
	})
	if metrics["broadcaster_transport_gaps_total{"+name+"}"] != 1 || metrics["broadcaster_transport_missed_total{"+name+"}"] < 1 {
		t.Errorf("metrics: gaps %v, missed %v", metrics["broadcaster_transport_gaps_total{"+name+"}"],
			metrics["broadcaster_transport_missed_total{"+name+"}"])
	}
}

// sequenceOf is the sequence of the broadcaster's mesh (GET /v1/mesh).
func sequenceOf(t testing.TB, base string) uint64 {
	t.Helper()
	resp, err := http.Get(base + mesh.PathMesh)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Sequence uint64 `json:"sequence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("GET %s: %v", mesh.PathMesh, err)
	}
	return s.Sequence
}

// scrape reads /metrics as series → value.
func scrape(t testing.TB, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Brokers that hang while changes (deletes among them) flow, longer than a small change log
// holds, end with exactly the mesh retained and in the KV once they answer again: each
// transport declares the gap, republishes every entity and clears what was deleted meanwhile.
func TestBrokersHangWithASmallLog(t *testing.T) {
	t.Parallel()
	c := startWithCarriers(t, "hang", "--delta-log-size", "5")
	mqttBroker, natsServer, dir, base, logs := c.mqtt, c.nats, c.dir, c.base, c.logs
	mqttPrefix, natsPrefix := c.mqttPrefix, c.natsPrefix
	carriersAreMesh(t, "before the hang", mqttBroker.URL, mqttPrefix, natsServer.URL, natsPrefix, base)

	mqttBroker.Pause()
	natsServer.Pause()
	for round := range 6 {
		// Each round awaited, so the file watcher cannot fold the rounds into one read: the
		// changes must outnumber what the log and the transports' in-flight windows hold.
		before := sequenceOf(t, base)
		churn(t, dir, round)
		testkit.Eventually(t, fmt.Sprintf("churn round %d in the mesh", round), 20*time.Second, func() bool { return sequenceOf(t, base) > before })
	}
	if err := os.Remove(filepath.Join(dir, "sources", "heartbeat.yaml")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the deletion in the mesh", 20*time.Second, func() bool {
		_, want := entitiesOf(t, base)
		_, ok := want["sources.knative.dev/PingSource/shop/heartbeat"]
		return !ok
	})
	mqttBroker.Resume()
	natsServer.Resume()
	carriersAreMesh(t, "after the hang", mqttBroker.URL, mqttPrefix, natsServer.URL, natsPrefix, base)
	if n := strings.Count(logs.String(), "fell behind the change log"); n < 2 {
		t.Errorf("%d declared gaps in the logs, want one per transport:\n%s", n, logs.String())
	}
	for _, transport := range []string{"mqtt " + mqttPrefix + "/#", "nats " + natsPrefix + ".>"} {
		name := `{transport="` + transport + `"}`
		testkit.Eventually(t, transport+": the metrics to show the gap and both reconciles", 20*time.Second, func() bool {
			metrics := scrape(t, base) // the reconcile after the gap may finish after the state is exact
			return metrics["broadcaster_transport_connected"+name] == 1 && metrics["broadcaster_transport_gaps_total"+name] >= 1 &&
				metrics["broadcaster_transport_reconciles_total"+name] >= 2
		})
	}
}

// With the NATS server away at start-up, the broadcaster serves at once; when the server
// comes, the stream and the KV bucket catch up exactly.
func TestNATSUnreachableAtStart(t *testing.T) {
	t.Parallel()
	server := brokers.StartEmbeddedNATS(t)
	server.Stop()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	prefix := fmt.Sprintf("away.n%d", time.Now().UnixNano())
	base, logs := startRun(t, dir, "--nats", server.URL, "--nats-subject-prefix", prefix)
	// The server is still away: the endpoints serve all the same.
	testkit.Eventually(t, "the endpoints with NATS away", 20*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })
	churn(t, dir, 1)
	testkit.Eventually(t, "the broadcaster to find the server away", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "nats server unreachable")
	})
	server.Start()
	settle(t, "the KV bucket after the server came", nil, func() map[string]string {
		got, _ := testkit.KVEntities(server.URL, natspub.BucketName(prefix))
		return got
	}, func() map[string]string { _, want := entitiesOf(t, base); return want })
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors:\n%s", logs.String())
	}
}

// Brokers that restart without persistence (retained messages, our session, the stream and
// the KV bucket all gone) get the whole state back, with no change needed.
func TestBrokersRestartEmpty(t *testing.T) {
	t.Parallel()
	c := startWithCarriers(t, "empty")
	mqttBroker, natsServer, base := c.mqtt, c.nats, c.base
	mqttPrefix, natsPrefix := c.mqttPrefix, c.natsPrefix
	carriersAreMesh(t, "before the restart", mqttBroker.URL, mqttPrefix, natsServer.URL, natsPrefix, base)
	mqttBroker.Restart() // mochi keeps nothing on disk
	natsServer.RestartEmpty()
	carriersAreMesh(t, "after the restart", mqttBroker.URL, mqttPrefix, natsServer.URL, natsPrefix, base)
}

// withCarriers is the example running with MQTT and NATS brokers of the test's own.
type withCarriers struct {
	mqtt                   *brokers.MQTT
	nats                   *brokers.NATS
	dir, base              string
	mqttPrefix, natsPrefix string
	logs                   *testkit.Buffer
}

// startWithCarriers runs the example (with extra flags) publishing to MQTT and NATS brokers
// in processes of their own, under prefixes of its own, and waits for the first load.
func startWithCarriers(t *testing.T, name string, extra ...string) withCarriers {
	t.Helper()
	suffix := fmt.Sprint(time.Now().UnixNano())
	c := withCarriers{mqtt: brokers.StartEmbeddedMQTT(t), nats: brokers.StartEmbeddedNATS(t), dir: testkit.CopyDir(t, "../../examples/mesh"),
		mqttPrefix: name + "/" + suffix, natsPrefix: name + ".n" + suffix}
	c.base, c.logs = startRun(t, c.dir, append([]string{"--mqtt", c.mqtt.URL, "--mqtt-topic-prefix", c.mqttPrefix,
		"--nats", c.nats.URL, "--nats-subject-prefix", c.natsPrefix}, extra...)...)
	testkit.Eventually(t, "first full load", 20*time.Second, func() (ok bool) { _, ok = getMesh(t, c.base); return ok })
	return c
}

// carriersAreMesh waits until a late MQTT subscriber and a KV reader both hold exactly the
// mesh the broadcaster at base serves.
func carriersAreMesh(t *testing.T, what, mqttURL, mqttPrefix, natsURL, natsPrefix, base string) {
	t.Helper()
	retainedIsMesh(t, what+": MQTT", mqttURL, mqttPrefix, base)
	settle(t, what+": the KV bucket", nil, func() map[string]string {
		got, _ := testkit.KVEntities(natsURL, natspub.BucketName(natsPrefix))
		return got
	}, func() map[string]string { _, want := entitiesOf(t, base); return want })
}

// retainedIsMesh waits until a late subscriber to prefix/# holds exactly the mesh the
// broadcaster at base serves.
func retainedIsMesh(t *testing.T, what, brokerURL, prefix, base string) {
	t.Helper()
	late := testkit.SubscribeRetained(t, brokerURL, prefix)
	settle(t, what, nil, func() map[string]string {
		got, err := late.Entities()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}, func() map[string]string { _, want := entitiesOf(t, base); return want })
}
