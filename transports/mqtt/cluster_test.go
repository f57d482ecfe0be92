package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
)

// Broadcasters of two clusters share one broker and one prefix, with their default client
// ids: each retains its entities under <prefix>/<cluster>/, keeps a status of its own, and
// clears only its own cluster's stale retained messages.
func TestClustersShareAPrefix(t *testing.T) {
	t.Parallel()
	broker := brokers.StartMQTT(t)
	prefix := fmt.Sprintf("test/%d/mesh", rand.Int())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	change := func(cluster, name string, seq uint64) mesh.Change {
		return mesh.Change{Epoch: "ep-" + cluster, Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)}
	}
	want := map[string]map[string]string{}
	for _, cluster := range []string{"east", "west"} {
		enc, _ := codec.NewEncoder("", codec.WithCluster(cluster))
		// The same names in both clusters; each has a ghost of its own, deleted while nobody
		// published.
		opening := []mesh.Change{change(cluster, "orders", 1), change(cluster, "only-"+cluster, 2)}
		old, err := mqtt.New(context.Background(), broker.URL, enc, mqtt.WithTopicPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Publish(ctx, append(opening, change(cluster, "ghost", 3))); err != nil {
			t.Fatal(err)
		}
		old.Close(ctx)
		p, err := mqtt.New(context.Background(), broker.URL, enc, mqtt.WithTopicPrefix(prefix), mqtt.WithLatest(func() []mesh.Change { return opening }))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		if p.Topic(opening[0].Key) != prefix+"/"+cluster+"/"+opening[0].Key.String() {
			t.Fatalf("topic %s", p.Topic(opening[0].Key))
		}
		if err := p.Publish(ctx, opening); err != nil {
			t.Fatal(err)
		}
		if err := p.Reconcile(ctx, false); err != nil {
			t.Fatal(err)
		}
		want[cluster] = map[string]string{}
		for _, c := range opening {
			want[cluster][c.Key.String()] = string(c.Entity)
		}
	}
	for _, cluster := range []string{"east", "west"} {
		late := testkit.SubscribeRetained(t, broker.URL, mesh.MQTTEntityRoot(prefix, cluster))
		testkit.Eventually(t, cluster+"'s retained state without its ghost", 20*time.Second, func() bool { return late.Equals(want[cluster]) })
	}
}
