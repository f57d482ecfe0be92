package mqttconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/mqttconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// publisher publishes to the broker at brokerURL until the end of the test, then clears the
// retained messages it left, so a shared broker is left as it was.
type publisher struct {
	t        *testing.T
	cm       *autopaho.ConnectionManager
	retained []string
}

func newPublisher(t *testing.T, brokerURL string) *publisher {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20,
		CleanStartOnInitialConnection: true, ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("test-%d", rand.Int())}})
	if err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := cm.AwaitConnection(wait); err != nil {
		t.Fatal(err)
	}
	p := &publisher{t: t, cm: cm}
	t.Cleanup(func() {
		for _, topic := range p.retained {
			p.publish(topic, true, nil)
		}
		cancel()
		<-cm.Done()
	})
	return p
}

func (p *publisher) publish(topic string, retain bool, payload []byte) {
	p.t.Helper()
	if retain && len(payload) > 0 {
		p.retained = append(p.retained, topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload}); err != nil {
		p.t.Errorf("publish %s: %v", topic, err)
	}
}

// The retained messages arrive as entities (deletes and, without Entity, all of them as
// changes), live messages as changes; empty payloads are skipped, undecodable ones reported
// with their topic. The caller's own handlers still run and its config is left as it was.
func TestConnect(t *testing.T) {
	t.Parallel()
	broker := brokers.StartMQTT(t)
	for _, tc := range []struct {
		name     string
		entities bool
		want     []string
	}{
		{"entities apart", true, []string{"entity a 3 added", "entity b 4 updated", "change d 5 deleted", "change c 6 added"}},
		{"all changes", false, []string{"change a 3 added", "change b 4 updated", "change d 5 deleted", "change c 6 added"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
			pub := newPublisher(t, broker.URL)
			for _, c := range []mesh.Change{testkit.BrokerChange(3, mesh.OpAdded, "a"), testkit.BrokerChange(4, mesh.OpUpdated, "b"), testkit.BrokerChange(5, mesh.OpDeleted, "d")} {
				pub.publish(prefix+"/broker/ns/"+c.Key.Name, true, testkit.Structured(t, c))
			}
			pub.publish(prefix+"/broker/ns/bad", true, []byte("not an event"))

			var r testkit.ChangeRecorder
			s := mqttconsumer.Stream{Prefix: prefix, Change: r.Note("change"), OnError: r.OnError}
			if tc.entities {
				s.Entity = r.Note("entity")
			}
			var ups, received atomic.Int32
			mine := []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) { received.Add(1); return false, nil }}
			u, _ := url.Parse(broker.URL)
			cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
				OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) { ups.Add(1) },
				ClientConfig:   paho.ClientConfig{OnPublishReceived: mine[:1:1]}}
			ctx, cancel := context.WithCancel(context.Background())
			cm, err := mqttconsumer.Connect(ctx, cfg, s)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); <-cm.Done() }()
			if len(cfg.OnPublishReceived) != 1 {
				t.Errorf("the caller's config changed: %d handlers", len(cfg.OnPublishReceived))
			}
			testkit.Eventually(t, "the retained messages", 10*time.Second, func() bool {
				got, errs := r.Lines()
				return len(got) == 3 && len(errs) == 1
			})
			pub.publish(prefix+"/broker/ns/c", false, nil) // skipped
			pub.publish(prefix+"/broker/ns/c", false, testkit.Structured(t, testkit.BrokerChange(6, mesh.OpAdded, "c")))
			testkit.Eventually(t, "the live change", 10*time.Second, func() bool {
				got, _ := r.Lines()
				return len(got) == 4
			})
			got, errs := r.Lines()
			want := slices.Clone(tc.want)
			slices.Sort(got[:3]) // the broker sends the retained messages in any order
			slices.Sort(want[:3])
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
			var bad *consumer.MessageError
			if len(errs) != 1 || !errors.As(errs[0], &bad) || bad.Source != prefix+"/broker/ns/bad" || !errors.Is(errs[0], codec.ErrInvalidEvent) {
				t.Errorf("errors %v, want the bad message's", errs)
			}
			if ups.Load() != 1 || received.Load() != 6 {
				t.Errorf("the caller's handlers ran %d and %d times, want 1 and 6", ups.Load(), received.Load())
			}
		})
	}
}

// A subscription the broker refuses is reported. The embedded broker refuses an invalid topic
// filter with a reason code (Mosquitto drops the connection instead).
func TestConnectReportsARefusedSubscription(t *testing.T) {
	t.Parallel()
	broker := brokers.StartEmbeddedMQTT(t)
	u, _ := url.Parse(broker.URL)
	errs := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := mqttconsumer.Connect(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true},
		mqttconsumer.Stream{Prefix: "test/#/invalid", Change: func(mesh.Change) error { return nil }, OnError: func(err error) { errs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-cm.Done() }()
	select {
	case err := <-errs:
		var sub *mqttconsumer.SubscribeError
		if !errors.As(err, &sub) || sub.Topic != "test/#/invalid/#" {
			t.Errorf("got %v, want a SubscribeError", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error")
	}
}

func TestConnectRejectsIncompleteStreams(t *testing.T) {
	t.Parallel()
	for _, s := range []mqttconsumer.Stream{{Change: func(mesh.Change) error { return nil }}, {Prefix: "p"}} {
		if _, err := mqttconsumer.Connect(context.Background(), autopaho.ClientConfig{}, s); !errors.Is(err, mqttconsumer.ErrInvalidStream) {
			t.Errorf("Connect(%+v): %v", s, err)
		}
	}
}
