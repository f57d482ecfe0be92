package mqtt_test

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
)

// BenchmarkPublish: the MQTT transport beside a bare autopaho client publishing the same
// payloads (QoS 1, retained, same topics) to the same broker in the same run, one at a time
// (raw) and all at once (raw-concurrent).
func BenchmarkPublish(b *testing.B) {
	broker := brokers.StartMQTT(b)
	enc, _ := codec.NewEncoder("")
	prefix := fmt.Sprintf("bench/%d", time.Now().UnixNano())
	b.Run("mode=transport", func(b *testing.B) {
		p, err := mqtt.New(context.Background(), broker.URL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithClientID(prefix+"-t"))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(context.Background())
		transporttest.Run(b, func(batch []mesh.Change) error { return p.Publish(context.Background(), batch) })
	})
	b.Run("mode=raw-concurrent", func(b *testing.B) {
		// The bare client pipelining the only way its API offers with acks: a goroutine per
		// publish (so in no particular order, which the transport must keep).
		cm, payloads := rawClient(b, broker.URL, prefix+"-c", enc)
		transporttest.Run(b, func(batch []mesh.Change) error {
			errs := make(chan error, len(batch))
			for _, c := range batch {
				go func() {
					_, err := cm.Publish(context.Background(), &paho.Publish{QoS: 1, Retain: true, Topic: prefix + "/raw/" + c.Key.String(),
						Payload: payloads[c.Sequence], Properties: &paho.PublishProperties{ContentType: mesh.ContentTypeEvent}})
					errs <- err
				}()
			}
			var err error
			for range batch {
				err = cmp.Or(err, <-errs)
			}
			return err
		})
	})
	b.Run("mode=raw", func(b *testing.B) {
		cm, payloads := rawClient(b, broker.URL, prefix+"-r", enc)
		ctx := context.Background()
		transporttest.Run(b, func(batch []mesh.Change) error {
			for _, c := range batch {
				if _, err := cm.Publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: prefix + "/raw/" + c.Key.String(),
					Payload: payloads[c.Sequence], Properties: &paho.PublishProperties{ContentType: mesh.ContentTypeEvent}}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// rawClient connects a bare autopaho client and prepares the benchmark's payloads.
func rawClient(b *testing.B, brokerURL, clientID string, enc *codec.Encoder) (*autopaho.ConnectionManager, map[uint64][]byte) {
	u, _ := url.Parse(brokerURL)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20,
		CleanStartOnInitialConnection: true, ClientConfig: paho.ClientConfig{ClientID: clientID}})
	if err != nil {
		b.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		b.Fatal(err)
	}
	payloads := map[uint64][]byte{}
	for _, c := range transporttest.Changes(transporttest.Batch * 16) {
		payloads[c.Sequence], _ = enc.Structured(c)
	}
	return cm, payloads
}
