package mqtt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
)

// replica subscribes to a prefix and keeps what it receives.
func dial(t *testing.T, brokerURL, prefix string) *mqtt.Publisher {
	t.Helper()
	enc, _ := codec.NewEncoder("")
	p, err := mqtt.New(context.Background(), brokerURL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("pub-"+prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		defer stop()
		p.Close(ctx)
	})
	return p
}

// A live subscriber's replica follows the stream; a late subscriber gets the whole mesh from
// retained messages, and nothing for deleted entities.
func TestStreamAndRetainedState(t *testing.T) {
	t.Parallel()
	broker := brokers.StartMQTT(t)
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	live := testkit.SubscribeRetained(t, broker.URL, prefix)
	p := dial(t, broker.URL, prefix)

	changes, state := transporttest.Stream(rand.New(rand.NewPCG(1, 2)), "ep", "b%d", 300)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(changes); i += 7 {
		if err := p.Publish(ctx, changes[i:min(i+7, len(changes))]); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "the live replica to converge", 20*time.Second, func() bool { return live.Equals(state) })
	for i, s := range live.Seqs() {
		if s != uint64(i+1) {
			t.Fatalf("live subscriber got meshseq %d at %d: out of order or missing", s, i)
		}
	}

	late := testkit.SubscribeRetained(t, broker.URL, prefix)
	testkit.Eventually(t, "the late subscriber to receive the retained mesh", 20*time.Second, func() bool { return late.Equals(state) })
}

// Publishing waits out a broker outage and goes on where it stopped.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTT(t) // stopped and restarted: never the shared one
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	p := dial(t, broker.URL, prefix)
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(3, 4)), "ep", "b%d", 200)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Publish(ctx, changes[:100]); err != nil {
		t.Fatal(err)
	}
	broker.Stop()
	done := make(chan error, 1)
	go func() { done <- p.Publish(ctx, changes[100:]) }()
	testkit.Eventually(t, "the publisher to see the outage", 20*time.Second, func() bool { return !p.Connected() })
	broker.Start()
	if err := <-done; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	// The restarted broker kept nothing, so the retained state is what was published since;
	// republishing the current state (as a new epoch's opening would) restores it all.
	late := testkit.SubscribeRetained(t, broker.URL, prefix)
	var opening []mesh.Change
	seq := uint64(0)
	for key, entity := range state {
		seq++
		opening = append(opening, mesh.Change{Epoch: "ep2", Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded, Key: mesh.MustParseKey(key), Entity: json.RawMessage(entity)})
	}
	if err := p.Publish(ctx, opening); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the retained mesh after the restart", 20*time.Second, func() bool { return late.Equals(state) })
}

// A broker that restarts in the middle of a pipelined batch loses what was in flight with our
// session: publishing sends everything from the first lost message again, in order, so the
// batch completes and no topic is left with an older state than its last change.
func TestBrokerRestartMidBatch(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTT(t)
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	live := testkit.SubscribeRetained(t, broker.URL, prefix)
	p := dial(t, broker.URL, prefix)
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(5, 6)), "ep", "b%d", 20000) // 12 topics, each changed often
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Publish(ctx, changes) }()
	testkit.Eventually(t, "publishing under way", 20*time.Second, func() bool { return len(live.Seqs()) >= 200 })
	broker.Pause() // nothing more is acknowledged: the batch is surely in flight
	select {
	case err := <-done:
		t.Fatalf("the batch ended (%v) before the broker could restart under it: make it larger", err)
	default:
	}
	broker.Restart() // comes back with no retained messages and no sessions
	if err := <-done; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	late := testkit.SubscribeRetained(t, broker.URL, prefix)
	testkit.Eventually(t, "every topic at its last change", 20*time.Second, func() bool { return late.Equals(state) })
}

// A broker that restarts empty gets the whole retained state back, with no new change needed.
func TestRetainedStateRestoredAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTT(t)
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(11, 12)), "ep", "b%d", 150)
	var mu sync.Mutex
	published := 0
	latest := func() []mesh.Change { // what the hub's snapshot would list
		mu.Lock()
		defer mu.Unlock()
		last := map[string]mesh.Change{}
		for _, c := range changes[:published] {
			if c.Op == mesh.OpDeleted {
				delete(last, c.Key.String())
			} else {
				last[c.Key.String()] = c
			}
		}
		var out []mesh.Change
		for _, c := range last {
			out = append(out, c)
		}
		return out
	}
	enc, _ := codec.NewEncoder("")
	p, err := mqtt.New(context.Background(), broker.URL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("pub"), mqtt.WithLatest(latest))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mu.Lock()
	published = len(changes) // the hub holds a change before any transport publishes it
	mu.Unlock()
	if err := p.Publish(ctx, changes); err != nil {
		t.Fatal(err)
	}

	broker.Restart() // comes back with no retained messages and no sessions
	late := testkit.SubscribeRetained(t, broker.URL, prefix)
	testkit.Eventually(t, "the retained state to be restored", 20*time.Second, func() bool { return late.Equals(state) })
}

// Credentials come from the URL (or Config.Username/Password); wrong ones never connect.
func TestCredentials(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTTWithUsers(t, map[string]string{"mesh": "s3cret"})
	host := strings.TrimPrefix(broker.URL, "mqtt://")
	enc, _ := codec.NewEncoder("")
	for _, tt := range []struct {
		name, url string
		ok        bool
	}{
		{"right", "mqtt://mesh:s3cret@" + host, true},
		{"wrong password", "mqtt://mesh:nope@" + host, false},
	} {
		p, err := mqtt.New(context.Background(), tt.url, enc, mqtt.WithClientID("cred-"+tt.name))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = p.Publish(ctx, []mesh.Change{{Epoch: "e", Sequence: 1, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/b"), Entity: json.RawMessage(`{"namespace":"ns","name":"b"}`)}})
		cancel()
		p.Close(context.Background())
		if (err == nil) != tt.ok {
			t.Errorf("%s credentials: publish error %v", tt.name, err)
		}
	}
}

// A new epoch (a restart, a leader change) clears the retained messages of entities that were
// deleted while nobody published, and keeps everything else.
func TestNewEpochClearsRetainedGhosts(t *testing.T) {
	t.Parallel()
	brokerURL := brokers.StartMQTT(t).URL
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	enc, _ := codec.NewEncoder("")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker := func(name, epoch string, seq uint64) mesh.Change {
		return mesh.Change{Epoch: epoch, Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)}
	}
	old, err := mqtt.New(context.Background(), brokerURL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("old-"+prefix))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Publish(ctx, []mesh.Change{broker("kept", "ep1", 1), broker("ghost", "ep1", 2)}); err != nil {
		t.Fatal(err)
	}
	old.Close(ctx)

	// The new publisher's mesh has no "ghost": it was deleted while nobody published.
	opening := []mesh.Change{broker("kept", "ep2", 1), broker("new", "ep2", 2)}
	p, err := mqtt.New(context.Background(), brokerURL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("new-"+prefix), mqtt.WithLatest(func() []mesh.Change { return opening }))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Publish(ctx, opening); err != nil {
		t.Fatal(err)
	}
	if err := p.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	late := testkit.SubscribeRetained(t, brokerURL, prefix)
	want := map[string]string{opening[0].Key.String(): string(opening[0].Entity), opening[1].Key.String(): string(opening[1].Entity)}
	testkit.Eventually(t, "the retained state without the ghost", 20*time.Second, func() bool { return late.Equals(want) })
}

// A broker that drops retained messages beyond a client's queue (Mosquitto's defaults do
// beyond 1,000) cannot give a late subscriber the whole mesh: reconciling says so, naming the
// broker settings, instead of reporting the state exact.
func TestReconcileSeesABrokerDropRetained(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTTDropping(t, 50)
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	var opening []mesh.Change
	for i := range 2000 {
		name := fmt.Sprint("b", i)
		opening = append(opening, mesh.Change{Epoch: "ep", Sequence: uint64(i + 1), Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)})
	}
	enc, _ := codec.NewEncoder("")
	p, err := mqtt.New(context.Background(), broker.URL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("pub-"+prefix), mqtt.WithLatest(func() []mesh.Change { return opening }))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Publish(ctx, opening); err != nil {
		t.Fatal(err)
	}
	err = p.Reconcile(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "of the 2000 retained messages") || !strings.Contains(err.Error(), "max_queued_messages") {
		t.Fatalf("Reconcile: %v, want the broker's dropping named", err)
	}
}

// A key MQTT cannot carry is rejected on MQTT alone, saying why; the changes around it flow.
func TestTopicMQTTCannotCarry(t *testing.T) {
	t.Parallel()
	brokerURL := brokers.StartMQTT(t).URL
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	enc, _ := codec.NewEncoder("")
	p, err := mqtt.New(context.Background(), brokerURL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID("pub-"+prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	late := testkit.SubscribeRetained(t, brokerURL, prefix)
	entity := func(name string) json.RawMessage { return json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`) }
	changes := []mesh.Change{
		{Epoch: "e", Sequence: 1, Kind: mesh.KindBroker, Op: mesh.OpAdded, Key: mesh.Key{Group: "eventing.knative.dev", Kind: "Broker", Namespace: "ns", Name: "a"}, Entity: entity("a")},
		{Epoch: "e", Sequence: 2, Kind: mesh.KindBroker, Op: mesh.OpAdded, Key: mesh.Key{Group: "eventing.knative.dev", Kind: "Broker", Namespace: "ns", Name: "wild#card+name"}, Entity: entity("wild#card+name")},
		{Epoch: "e", Sequence: 3, Kind: mesh.KindBroker, Op: mesh.OpAdded, Key: mesh.Key{Group: "eventing.knative.dev", Kind: "Broker", Namespace: "ns", Name: "b"}, Entity: entity("b")},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Publish(ctx, changes)
	if !errors.Is(err, transports.ErrRejected) || !strings.Contains(err.Error(), "cannot hold #, + or NUL") {
		t.Fatalf("publish: %v, want the wildcard name rejected", err)
	}
	want := map[string]string{changes[0].Key.String(): string(changes[0].Entity), changes[2].Key.String(): string(changes[2].Entity)}
	testkit.Eventually(t, "the other entities retained", 20*time.Second, func() bool { return late.Equals(want) })
}

// The status topic says online while a publisher runs and offline after a clean stop; a stale
// will of an older incarnation is answered with the current status. The info topic follows
// the publisher's position. Neither is under <prefix>/#.
func TestStatusAndInfoTopics(t *testing.T) {
	t.Parallel()
	brokerURL := brokers.StartMQTT(t).URL
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	enc, _ := codec.NewEncoder("")
	status := watchTopic(t, brokerURL, mesh.MQTTStatusTopic(prefix))
	info := watchTopic(t, brokerURL, mesh.MQTTInfoTopic(prefix))
	entities := testkit.SubscribeRetained(t, brokerURL, prefix)
	p, err := mqtt.New(context.Background(), brokerURL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithEpoch("e1"), mqtt.WithEntityCount(func() int { return 1 }))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "online", 20*time.Second, func() bool { return status.last() == `{"state":"online","epoch":"e1"}` })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker := mesh.Change{Epoch: "e1", Sequence: 1, Kind: mesh.KindBroker, Op: mesh.OpAdded,
		Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/b"), Entity: json.RawMessage(`{"namespace":"ns","name":"b"}`)}
	if err := p.Publish(ctx, []mesh.Change{broker}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the info", 20*time.Second, func() bool {
		return strings.HasPrefix(info.last(), `{"epoch":"e1","sequence":1,"entities":1,"version":`)
	})
	// An old incarnation's will arrives late: the status is said again.
	raw := watchTopic(t, brokerURL, "unused/"+prefix)
	raw.publish(t, mesh.MQTTStatusTopic(prefix), `{"state":"offline","epoch":"e0"}`)
	testkit.Eventually(t, "online again after the stale will", 20*time.Second, func() bool {
		seen := status.all()
		stale := slices.Index(seen, `{"state":"offline","epoch":"e0"}`)
		return stale >= 0 && slices.Contains(seen[stale:], `{"state":"online","epoch":"e1"}`)
	})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "offline", 20*time.Second, func() bool { return status.last() == `{"state":"offline","epoch":"e1"}` })
	// The entities' subscriber has a connection of its own: its copy may arrive after the info's.
	want := map[string]string{broker.Key.String(): string(broker.Entity)}
	testkit.Eventually(t, "the entity at the entities' subscriber", 20*time.Second, func() bool {
		got, _ := entities.Entities()
		_, ok := got[broker.Key.String()]
		return ok
	})
	if got, err := entities.Entities(); err != nil || !maps.Equal(got, want) {
		t.Errorf("the entities' subscriber under %s/# holds %v (err %v), want only the entity %v", prefix, got, err, want)
	}
}

// topicWatch keeps the last payload of one topic.
type topicWatch struct {
	mu       sync.Mutex
	payloads []string
	cm       *autopaho.ConnectionManager
}

func (w *topicWatch) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.payloads) == 0 {
		return ""
	}
	return w.payloads[len(w.payloads)-1]
}

func (w *topicWatch) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.payloads)
}

func (w *topicWatch) publish(t *testing.T, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
}

func watchTopic(t *testing.T, brokerURL, topic string) *topicWatch {
	t.Helper()
	w := &topicWatch{}
	u, _ := url.Parse(brokerURL)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err == nil {
				once.Do(func() { close(ready) })
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("watch-%d", rand.Int()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				w.mu.Lock()
				w.payloads = append(w.payloads, string(pr.Packet.Payload))
				w.mu.Unlock()
				return true, nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.cm = cm
	t.Cleanup(func() { cm.Disconnect(context.Background()); cancel() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not connect")
	}
	return w
}
