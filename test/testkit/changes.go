package testkit

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// ChangeRecorder keeps, in order, the changes a consumer passed on (one line each: what,
// name, sequence, op) and the errors it reported; it is safe for concurrent use.
type ChangeRecorder struct {
	mu     sync.Mutex
	log    []string
	errors []error
}

// Note returns a handler that records each change it gets as what.
func (r *ChangeRecorder) Note(what string) func(mesh.Change) error {
	return func(c mesh.Change) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.log = append(r.log, fmt.Sprintf("%s %s %d %s", what, c.Key.Name, c.Sequence, c.Op))
		return nil
	}
}

// OnError records an error.
func (r *ChangeRecorder) OnError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, err)
}

// Lines returns what was recorded so far.
func (r *ChangeRecorder) Lines() ([]string, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log), slices.Clone(r.errors)
}

// BrokerChange is a change of the Broker ns/name in epoch "ep", with the entity JSON the engine
// would give it.
func BrokerChange(seq uint64, op mesh.Op, name string) mesh.Change {
	data, _ := json.Marshal(mesh.Broker{Namespace: "ns", Name: name, ProvidedEventTypes: []string{}})
	return mesh.Change{Epoch: "ep", Sequence: seq, Kind: mesh.KindBroker, Op: op,
		Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: data}
}

// Structured is c as a structured-mode CloudEvent (what MQTT carries and NATS's KV holds).
func Structured(t testing.TB, c mesh.Change) []byte {
	t.Helper()
	enc, err := codec.NewEncoder("test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := enc.Structured(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// MeshEntities lists every entity of a snapshot's mesh by key, as JSON (what a replica, a
// retained topic or a KV bucket holds of it).
func MeshEntities(m mesh.Mesh) map[string]string {
	out := map[string]string{}
	m.Each(func(_ mesh.EntityKind, key mesh.Key, v any) {
		b, _ := json.Marshal(v)
		out[key.String()] = string(b)
	})
	return out
}
