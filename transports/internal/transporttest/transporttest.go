// Package transporttest holds what the transports' tests share: a random but consistent stream
// of changes, and the benchmark harness that measures every transport the same way (batches of
// changes timed one by one, reported as events per second and the p99 batch latency: the time
// until the last event of a batch is acknowledged, an upper bound on any event's latency).
package transporttest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Batch is the number of changes per benchmark operation.
const Batch = 64

// Changes returns n realistic EventType changes (about 450 bytes of entity JSON each).
func Changes(n int) []mesh.Change {
	out := make([]mesh.Change, n)
	for i := range out {
		name := fmt.Sprintf("order-created-%d", i)
		entity, _ := json.Marshal(mesh.EventType{Namespace: "shop", Name: name, Type: "com.example.shop.order.created",
			UID: "0b5a6c1e-4a4f-4c3b-9a57-6d0a7c1f2e3d", Labels: map[string]string{"app.kubernetes.io/part-of": "shop"},
			Reference:  &mesh.GroupKindNamespacedName{Group: "eventing.knative.dev", Kind: "Broker", Namespace: "shop", Name: "orders"},
			ConsumedBy: []string{"audit-log", "notification-service", "shipping-service"}})
		out[i] = mesh.Change{Epoch: "bench", Sequence: uint64(i + 1), Kind: mesh.KindEventType, Op: mesh.OpUpdated,
			Key: mesh.Key{Group: mesh.GroupEventing, Kind: mesh.KindEventTypeObject, Namespace: "shop", Name: name}, Entity: entity}
	}
	return out
}

// Run times b.N batches of publish(batch) and reports events/s and p99 latency.
func Run(b *testing.B, publish func(batch []mesh.Change) error) {
	changes := Changes(Batch * 16)
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		k := (i % 16) * Batch
		t0 := time.Now()
		if err := publish(changes[k : k+Batch]); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N*Batch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs/batch")
}

// Stream makes n changes over a dozen Broker keys (names from nameFormat, e.g. "b%d" or
// "b.%d") that add, update and delete consistently, and returns them with the state (key →
// entity JSON) they leave.
func Stream(rnd *rand.Rand, epoch, nameFormat string, n int) ([]mesh.Change, map[string]string) {
	state := map[string]string{}
	var out []mesh.Change
	for seq := uint64(1); seq <= uint64(n); seq++ {
		name := fmt.Sprintf(nameFormat, rnd.IntN(12))
		ref := mesh.Broker{Namespace: "ns", Name: name}.Key()
		key := ref.String()
		entity := fmt.Sprintf(`{"namespace":"ns","name":"%s","uid":"%d"}`, name, seq)
		c := mesh.Change{Epoch: epoch, Sequence: seq, Kind: mesh.KindBroker, Key: ref, Entity: json.RawMessage(entity)}
		_, exists := state[key]
		switch {
		case !exists:
			c.Op = mesh.OpAdded
			state[key] = entity
		case rnd.IntN(4) == 0:
			c.Op, c.Entity = mesh.OpDeleted, json.RawMessage(state[key])
			delete(state, key)
		default:
			c.Op = mesh.OpUpdated
			state[key] = entity
		}
		out = append(out, c)
	}
	return out, state
}
