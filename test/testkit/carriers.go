package testkit

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Retained follows what an MQTT subscriber to <prefix>/# holds: each topic's latest entity
// (key → entity JSON), as a late consumer of the retained messages would build it.
type Retained struct {
	mu       sync.Mutex
	entities map[string]string
	seqs     []uint64 // of every event received, in order
	errs     []error
}

// SubscribeRetained subscribes to prefix/# (QoS 1) on the broker at brokerURL until the test ends.
func SubscribeRetained(t testing.TB, brokerURL, prefix string) *Retained {
	t.Helper()
	return subscribeRetained(t, brokerURL, prefix, 1)
}

// SubscribeRetainedQoS0 subscribes at QoS 0: how a reader of more than 65,535 retained
// messages subscribes, since at QoS 1 each message in flight holds one of 65,535 packet ids
// (mochi drops what exceeds them).
func SubscribeRetainedQoS0(t testing.TB, brokerURL, prefix string) *Retained {
	t.Helper()
	return subscribeRetained(t, brokerURL, prefix, 0)
}

func subscribeRetained(t testing.TB, brokerURL, prefix string, qos byte) *Retained {
	t.Helper()
	r := &Retained{entities: map[string]string{}}
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: prefix + "/#", QoS: qos}}}); err == nil {
				once.Do(func() { close(ready) })
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: fmt.Sprintf("testkit-%d", rand.Int()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				r.mu.Lock()
				defer r.mu.Unlock()
				key := pr.Packet.Topic[len(prefix)+1:]
				if len(pr.Packet.Payload) == 0 {
					delete(r.entities, key)
					return true, nil
				}
				c, err := codec.DecodeStructured(pr.Packet.Payload)
				if err != nil {
					r.errs = append(r.errs, fmt.Errorf("%s: %w", pr.Packet.Topic, err))
					return true, nil
				}
				if c.Key.String() != key {
					r.errs = append(r.errs, fmt.Errorf("topic %s holds %s", pr.Packet.Topic, c.Key))
				}
				if pr.Packet.Properties == nil || pr.Packet.Properties.ContentType != mesh.ContentTypeEvent {
					r.errs = append(r.errs, fmt.Errorf("%s: content type %+v", pr.Packet.Topic, pr.Packet.Properties))
				}
				r.seqs = append(r.seqs, c.Sequence)
				if c.Op == mesh.OpDeleted {
					delete(r.entities, key)
				} else {
					r.entities[key] = string(c.Entity)
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, stop := context.WithTimeout(context.Background(), time.Second)
		defer stop()
		cm.Disconnect(dctx)
		cancel()
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT subscriber did not connect")
	}
	return r
}

// Entities is a copy of what the subscriber holds; err reports undecodable messages.
func (r *Retained) Entities() (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.entities))
	for k, v := range r.entities {
		out[k] = v
	}
	if len(r.errs) > 0 {
		return out, r.errs[0]
	}
	return out, nil
}

// Seqs lists the meshseq of every event received, in order of arrival.
func (r *Retained) Seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

// Equals reports whether the subscriber holds exactly want (and received nothing undecodable).
func (r *Retained) Equals(want map[string]string) bool {
	got, err := r.Entities()
	return err == nil && maps.Equal(got, want)
}

// KVEntities reads a NATS KV bucket of entity states as a late consumer would: key → entity
// JSON of each entry's event.
func KVEntities(url, bucket string) (map[string]string, error) {
	entries, err := KVChanges(url, bucket)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Change.Key.String()] = string(e.Change.Entity)
	}
	return out, nil
}

// KVEntry is an entry of a KV bucket: its key and the change it holds, decoded.
type KVEntry struct {
	Key    string
	Change mesh.Change
}

// KVChanges lists the entries of a KV bucket that are not deleted, each decoded; an entry that
// is not a mesh-delta event is an error naming its key.
func KVChanges(url, bucket string) ([]KVEntry, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []KVEntry
	for entry := range w.Updates() {
		if entry == nil { // the current values are all in
			return out, nil
		}
		c, err := codec.DecodeStructured(entry.Value())
		if err != nil {
			return nil, fmt.Errorf("kv %s: %w", entry.Key(), err)
		}
		out = append(out, KVEntry{Key: entry.Key(), Change: c})
	}
	return out, ctx.Err()
}
