package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

var update = flag.Bool("update", false, "rewrite testdata/examples-mesh.json from the current output")

// startRun runs the broadcaster on dir and returns its base URL and its log.
func startRun(t *testing.T, dir string, extra ...string) (string, *testkit.Buffer) {
	t.Helper()
	cfg, err := config.Load(append([]string{"--manifests", dir, "--listen", "127.0.0.1:0"}, extra...), noEnv, settings.All())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logs := &testkit.Buffer{}
	go func() { done <- run(ctx, cfg, logs, func(a net.Addr) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a.String(), logs
	case err := <-done:
		t.Fatalf("run ended early: %v", err)
	}
	return "", nil
}

func getMesh(t *testing.T, base string) (mesh.EventMesh, bool) {
	t.Helper()
	resp, err := http.Get(base + "/v1/getEventMesh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return mesh.EventMesh{}, false
	}
	var m mesh.EventMesh
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/getEventMesh: %d %v", resp.StatusCode, err)
	}
	return m, true
}

// TestExamples runs on a copy of examples/mesh, checks the whole mesh against a golden file,
// then edits a manifest and waits for the change to be served and logged.
func TestExamples(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, logs := startRun(t, dir, "--log-level", "debug")
	var m mesh.EventMesh
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { m, ok = getMesh(t, base); return ok })

	// The epoch opens with the whole mesh as added events, one per entity of every kind, seq
	// 1..N: logged as one summary line, the entities themselves at debug.
	whole, all := entitiesOf(t, base)
	entities := len(all)
	opened := logs.String()
	if added := len(regexp.MustCompile(`level=DEBUG msg="[a-z]+ added"`).FindAllString(opened, -1)); added != entities ||
		strings.Count(opened, ` added"`) != entities || strings.Contains(opened, ` updated"`) ||
		!strings.Contains(opened, fmt.Sprintf(" seq=%d ", entities)) ||
		!strings.Contains(opened, `level=INFO msg="mesh loaded" epoch=`) || !strings.Contains(opened, fmt.Sprintf(" entities=%d ", entities)) {
		t.Errorf("the epoch did not open with a summary and %d added events at debug (found %d):\n%s", entities, added, opened)
	}

	got, _ := json.MarshalIndent(m, "", "  ")
	golden := "testdata/examples-mesh.json"
	if *update {
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Fatalf("mesh of examples/mesh differs from %s (run with -update after checking):\n%s", golden, got)
	}
	// The whole graph (GET /v1/mesh): every kind, with its edges, readiness and addresses.
	got, _ = json.MarshalIndent(whole.Mesh, "", "  ")
	golden = "testdata/examples-graph.json"
	if *update {
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	if want, err = os.ReadFile(golden); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Fatalf("graph of examples/mesh differs from %s (run with -update after checking):\n%s", golden, got)
	}

	edit := filepath.Join(dir, "shop", "zz-added-by-test.yaml")
	os.WriteFile(edit, []byte(`apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: order-refunded, namespace: shop}
spec: {type: com.example.shop.order.refunded, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}
`), 0o644)
	took := testkit.Eventually(t, "the new event type to be served", 10*time.Second, func() bool {
		m, _ := getMesh(t, base)
		for _, et := range m.EventTypes {
			if et.Name == "order-refunded" {
				return true
			}
		}
		return false
	})
	t.Logf("edit served after %v", took)
	testkit.Eventually(t, "the change to be logged", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="eventtype added"`) &&
			strings.Contains(logs.String(), "key=eventing.knative.dev/EventType/shop/order-refunded")
	})
}

func TestRunFailsOnBusyAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, err := config.Load([]string{"--manifests", t.TempDir(), "--listen", ln.Addr().String()}, noEnv, settings.All())
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), cfg, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("run on a busy address: %v", err)
	}
}

func noEnv(string) string { return "" }

// exampleEntities is the number of entities of every kind examples/mesh makes (its README
// lists them; testdata/examples-graph.json holds them).
const exampleEntities = 41

// TestExamplesToSink runs on the examples with --sink: the sink receives the epoch's opening
// (every entity added, meshseq 1..N) and then each edit, and a replica built from the events
// equals the served snapshot.
func TestExamplesToSink(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	replica := map[string]string{}
	var seqs []uint64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := testkit.DecodeRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		seqs = append(seqs, c.Sequence)
		if c.Op == mesh.OpDeleted {
			delete(replica, c.Key.String())
		} else {
			replica[c.Key.String()] = string(c.Entity)
		}
	}))
	defer sink.Close()

	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, logs := startRun(t, dir, "--sink", sink.URL)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })
	_, all := entitiesOf(t, base)
	entities := len(all) // every kind's: the opening adds each
	testkit.Eventually(t, "the opening events", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(seqs) >= entities })

	os.Remove(filepath.Join(dir, "sources", "heartbeat.yaml"))
	testkit.Eventually(t, "the source deletion to reach the sink", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := replica["sources.knative.dev/PingSource/shop/heartbeat"]
		return !ok
	})

	resp, err := http.Get(base + "/v1/mesh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap mesh.Snapshot
	json.NewDecoder(resp.Body).Decode(&snap)
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("sink got meshseq %d at position %d", s, i)
		}
	}
	if uint64(len(seqs)) != snap.Sequence {
		t.Fatalf("sink got %d events, snapshot is at %d", len(seqs), snap.Sequence)
	}
	want := testkit.MeshEntities(snap.Mesh)
	if !reflect.DeepEqual(replica, want) {
		t.Fatalf("replica from the sink differs from the snapshot:\n%v\n%v", replica, want)
	}
}

// TestAllTransportsDeliverTheSameEvents runs on the examples with --sink, --mqtt and --nats
// together, edits a manifest, and checks that the three carriers delivered the same events.
func TestAllTransportsDeliverTheSameEvents(t *testing.T) {
	t.Parallel()
	mqttBroker, natsServer := brokers.StartMQTT(t), brokers.StartNATS(t)
	suffix := fmt.Sprint(time.Now().UnixNano())
	mqttPrefix, natsPrefix := "test/"+suffix, "test.n"+suffix

	var mu sync.Mutex
	got := map[string][]string{}
	record := func(carrier string, c mesh.Change) {
		mu.Lock()
		defer mu.Unlock()
		got[carrier] = append(got[carrier], fmt.Sprintf("%d %s %s", c.Sequence, c.Op, c.Key))
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		if err == nil {
			var c mesh.Change
			if c, err = codec.Decode(*ev); err == nil {
				record("http", c)
				return
			}
		}
		t.Errorf("http sink: %v", err)
	}))
	defer sink.Close()

	mqttURL, _ := url.Parse(mqttBroker.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed := make(chan struct{})
	var once sync.Once
	sub, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{mqttURL}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: mqttPrefix + "/#", QoS: 1}}}); err == nil {
				once.Do(func() { close(subscribed) })
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: "sub-" + suffix, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if len(pr.Packet.Payload) > 0 { // empty: a deleted entity's retained state cleared
					c, err := codec.DecodeStructured(pr.Packet.Payload)
					if err != nil {
						t.Errorf("mqtt: %v", err)
					}
					record("mqtt", c)
				}
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(context.Background())
	<-subscribed

	nc, err := natsgo.Connect(natsServer.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	natsSub, err := nc.Subscribe(natsPrefix+".>", func(m *natsgo.Msg) {
		c, err := codec.DecodeStructured(m.Data)
		if err != nil {
			t.Errorf("nats: %v", err)
		}
		record("nats", c)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer natsSub.Unsubscribe()
	nc.Flush()

	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir, "--sink", sink.URL, "--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", mqttPrefix,
		"--nats", natsServer.URL, "--nats-subject-prefix", natsPrefix)
	defer testkit.DeleteJetStream(natsServer.URL, natspub.StreamName(natsPrefix), natspub.BucketName(natsPrefix))
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })
	os.Remove(filepath.Join(dir, "sources", "heartbeat.yaml"))

	var want []string
	testkit.Eventually(t, "every carrier to deliver the same events", 10*time.Second, func() bool {
		resp, err := http.Get(base + "/v1/mesh")
		if err != nil {
			return false
		}
		seq := resp.Header.Get("Mesh-Sequence")
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		want = got["http"]
		return len(want) > 0 && fmt.Sprint(len(want)) == seq && strings.Contains(strings.Join(want, "\n"), "deleted sources.knative.dev/PingSource/shop/heartbeat") &&
			reflect.DeepEqual(got["mqtt"], want) && reflect.DeepEqual(got["nats"], want)
	})
}

// churn rewrites one manifest with EventTypes and a subscriber whose types and label change
// every round, so each round produces several entity changes.
func churn(t *testing.T, dir string, round int) {
	t.Helper()
	var b strings.Builder
	for i := range 4 {
		fmt.Fprintf(&b, `---
apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: churn-%d, namespace: shop}
spec: {type: com.example.churn.t%d, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}
`, i, (round+i)%3)
	}
	if round%3 != 2 {
		fmt.Fprintf(&b, `---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: churner, namespace: shop, labels: {backstage.io/kubernetes-id: churner-%d}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: churner, namespace: shop}
spec:
  broker: orders
  filter: {attributes: {type: com.example.churn.t%d}}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: churner}}
`, round%2, round%3)
	}
	// Replaced whole, as editors and ConfigMap updates do: a file read half-written is a
	// parse error (kept as last read, and logged as an error).
	temp := dir + "-churn.yaml.new" // beside dir: the same file system, outside the watched tree
	if err := os.WriteFile(temp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(temp, filepath.Join(dir, "shop", "zz-churn.yaml")); err != nil {
		t.Fatal(err)
	}
}

// churnThroughRestart churns the manifests for 30 rounds, stopping the broker after the 10th
// and starting it again after the 20th.
func churnThroughRestart(t *testing.T, dir string, stop, start func()) {
	t.Helper()
	for round := range 30 {
		churn(t, dir, round)
		time.Sleep(30 * time.Millisecond)
		switch round {
		case 10:
			stop()
		case 20:
			start()
		}
	}
}

// converged waits until the replica equals the served mesh at the served sequence.
func converged(t *testing.T, base string, r *consumer.Replica) {
	t.Helper()
	testkit.Eventually(t, "the replica to converge", 10*time.Second, func() bool {
		resp, err := http.Get(base + "/v1/mesh")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s mesh.Snapshot
		if json.NewDecoder(resp.Body).Decode(&s) != nil {
			return false
		}
		got, err := r.Whole()
		epoch, seq := r.Position()
		return err == nil && epoch == s.Epoch && seq == s.Sequence && reflect.DeepEqual(got, s.Mesh)
	})
	t.Logf("converged after %d snapshot(s)", r.Resyncs())
}

// The consumer library over MQTT keeps an exact replica while the broker restarts mid-stream.
func TestReplicaOverMQTTAcrossBrokerRestart(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTT(t)
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir, "--mqtt", broker.URL)
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })

	replica := consumer.NewReplica(consumer.HTTPSnapshots(base, "", nil))
	mqttURL, _ := url.Parse(broker.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{mqttURL}, KeepAlive: 5, CleanStartOnInitialConnection: true,
		ReconnectBackoff: autopaho.NewConstantBackoff(100 * time.Millisecond),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "knative/eventmesh/#", QoS: 1}}})
		},
		ClientConfig: paho.ClientConfig{ClientID: "replica", OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if err := replica.ApplyStructured(ctx, pr.Packet.Payload); err != nil && ctx.Err() == nil {
					t.Errorf("replica: %v", err)
				}
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(context.Background())

	churnThroughRestart(t, dir, broker.Stop, broker.Start)
	converged(t, base, replica)
}

// The consumer library over NATS (core subscription, no replay) keeps an exact replica while
// the server restarts mid-stream.
func TestReplicaOverNATSAcrossServerRestart(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir, "--nats", srv.URL)
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })

	replica := consumer.NewReplica(consumer.HTTPSnapshots(base, "", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, err := natsgo.Connect(srv.URL, natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(natspub.DefaultSubjectPrefix+".>", func(m *natsgo.Msg) {
		if err := replica.ApplyStructured(ctx, m.Data); err != nil && ctx.Err() == nil {
			t.Errorf("replica: %v", err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	churnThroughRestart(t, dir, srv.Stop, srv.Start)
	converged(t, base, replica)
}

// TestTransportsOverTLS: --ca-file makes the sink (https), MQTT (mqtts) and NATS (tls) trust
// servers whose certificates come from a private CA, and the epoch opening reaches all three.
func TestTransportsOverTLS(t *testing.T) {
	t.Parallel()
	certs := brokers.NewTLS(t)
	mqttBroker := brokers.StartEmbeddedMQTTTLS(t, certs)
	natsServer := brokers.StartEmbeddedNATSTLS(t, certs)
	var mu sync.Mutex
	httpEvents := 0
	sink := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		httpEvents++
		mu.Unlock()
	}))
	sink.TLS = certs.Server
	sink.StartTLS()
	defer sink.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, certs.CAPEM, 0o644)

	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, logs := startRun(t, dir, "--ca-file", caFile, "--sink", sink.URL, "--mqtt", mqttBroker.URL, "--nats", natsServer.URL)
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })
	_, all := entitiesOf(t, base)
	entities := len(all) // every kind's: the opening adds each

	nc, err := natsgo.Connect(natsServer.URL, natsgo.Secure(certs.ClientConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testkit.Eventually(t, "the events over https, mqtts and tls", 10*time.Second, func() bool {
		mu.Lock()
		n := httpEvents
		mu.Unlock()
		info, err := js.Stream(context.Background(), natspub.StreamName(natspub.DefaultSubjectPrefix))
		if err != nil {
			return false
		}
		state := info.CachedInfo().State
		return n == entities && state.Msgs == uint64(entities) && strings.Contains(logs.String(), `msg="mqtt connected"`)
	})
	if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "connection attempt failed") {
		t.Fatalf("TLS trouble:\n%s", logs.String())
	}
}

// A running watch stream does not hold up shutdown: it gets a final event and run returns nil.
func TestShutdownEndsWatchStreams(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load([]string{"--manifests", testkit.CopyDir(t, "../../examples/mesh"), "--listen", "127.0.0.1:0"}, noEnv, settings.All())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, io.Discard, func(a net.Addr) { addr <- a }) }()
	base := "http://" + (<-addr).String()
	testkit.Eventually(t, "first full load", 10*time.Second, func() (ok bool) { _, ok = getMesh(t, base); return ok })
	resp, err := http.Get(base + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error { events = append(events, ev.Type); return nil })
	}()
	cancel()
	if err := <-done; err != nil { // had the stream held Shutdown past its grace period: an error
		t.Fatalf("run: %v", err)
	}
	<-read
	if len(events) < 2 || events[len(events)-1] != "shutdown" {
		t.Fatalf("stream events %v, want a final shutdown", events)
	}
}

// --tls-cert-file and --tls-key-file serve the endpoints over HTTPS, and a rotated pair (as
// cert-manager writes it) is served without a restart.
func TestServesHTTPSAndReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	install := func(c brokers.TLS) {
		t.Helper()
		for f, data := range map[string][]byte{certFile: c.CertPEM, keyFile: c.KeyPEM} {
			if err := os.WriteFile(f+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f+".new", f); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, second := brokers.NewTLS(t), brokers.NewTLS(t)
	install(first)
	base, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"), "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	secure := strings.Replace(base, "http://", "https://", 1)
	trusting := func(c brokers.TLS) *http.Client {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.CAPEM)
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	okWith := func(client *http.Client) bool {
		resp, err := client.Get(secure + mesh.PathMesh)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	testkit.Eventually(t, "the mesh over HTTPS", 20*time.Second, func() bool { return okWith(trusting(first)) })
	if resp, err := http.Get(base + mesh.PathMesh); err == nil && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Error("plain HTTP is served beside HTTPS")
	}
	install(second)
	testkit.Eventually(t, "the rotated certificate", 20*time.Second, func() bool { return okWith(trusting(second)) })
	if okWith(trusting(first)) {
		t.Error("the old certificate is still served")
	}
}
