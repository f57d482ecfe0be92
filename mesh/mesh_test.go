package mesh_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want mesh.Key
		bad  bool
	}{
		{name: "broker", key: "eventing.knative.dev/Broker/shop/orders", want: mesh.Key{"eventing.knative.dev", "Broker", "shop", "orders"}},
		{name: "core group", key: "/Service/ns/svc", want: mesh.Key{"", "Service", "ns", "svc"}},
		{name: "dots in names", key: "a.b/K/ns/c.d", want: mesh.Key{"a.b", "K", "ns", "c.d"}},
		{name: "three parts", key: "a/K/n", bad: true},
		{name: "five parts", key: "a/K/ns/n/x", bad: true},
		{name: "no kind", key: "a//ns/n", bad: true},
		{name: "no name", key: "a/K/ns/", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mesh.ParseKey(tt.key)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseKey(%q) = %v, want an error", tt.key, got)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.key {
				t.Fatalf("ParseKey(%q) = %#v, %v; want %#v", tt.key, got, err, tt.want)
			}
		})
	}
}

func TestEntityKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		got  mesh.Key
		want string
	}{
		{mesh.Broker{Namespace: "shop", Name: "orders"}.Key(), "eventing.knative.dev/Broker/shop/orders"},
		{mesh.EventType{Namespace: "shop", Name: "created"}.Key(), "eventing.knative.dev/EventType/shop/created"},
		{mesh.Subscribable{Group: "messaging.knative.dev", Kind: "InMemoryChannel", Namespace: "ops", Name: "imc"}.Key(), "messaging.knative.dev/InMemoryChannel/ops/imc"},
		{mesh.Source{Group: "sources.knative.dev", Kind: "PingSource", Namespace: "ops", Name: "tick"}.Key(), "sources.knative.dev/PingSource/ops/tick"},
	}
	for _, tt := range tests {
		if tt.got.String() != tt.want {
			t.Errorf("key %s, want %s", tt.got, tt.want)
		}
	}
}

func TestTypeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, kind := range []mesh.EntityKind{mesh.KindBroker, mesh.KindEventType, mesh.KindSource, mesh.KindSubscribable} {
		for _, op := range []mesh.Op{mesh.OpAdded, mesh.OpUpdated, mesh.OpDeleted} {
			typ := mesh.TypeOf(kind, op)
			if !strings.HasPrefix(typ, "dev.knative.eventmesh.") {
				t.Errorf("type %q", typ)
			}
			k, o, err := mesh.ParseType(typ)
			if err != nil || k != kind || o != op {
				t.Errorf("ParseType(%q) = %v, %v, %v", typ, k, o, err)
			}
		}
	}
	for _, bad := range []string{"", "dev.knative.eventmesh.broker", "dev.knative.eventmesh.broker.moved", "dev.knative.eventmesh.pipe.added", "com.example.broker.added"} {
		if _, _, err := mesh.ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) accepted", bad)
		}
	}
}

// The envelope around a mesh a producer holds as JSON reads back as a Snapshot.
func TestSnapshotEnvelope(t *testing.T) {
	t.Parallel()
	m := mesh.EventMesh{Brokers: []mesh.Broker{{Namespace: "shop", Name: "orders", ProvidedEventTypes: []string{}}},
		EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}}
	body, _ := json.Marshal(m)
	epoch := "e\"<&>\u2028"
	head, tail := mesh.SnapshotEnvelope(epoch, 42)
	var got mesh.Snapshot
	if err := json.Unmarshal([]byte(head+string(body)+tail), &got); err != nil {
		t.Fatal(err)
	}
	if got.Epoch != epoch || got.Sequence != 42 || len(got.Mesh.Brokers) != 1 || got.Mesh.Brokers[0].Key() != m.Brokers[0].Key() {
		t.Fatalf("snapshot %+v", got)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ before, after, want string }{
		{`{"name":"a","consumedBy":[]}`, `{"name":"a","consumedBy":["x"]}`, `consumedBy: [] → ["x"]`},
		{`{"consumedBy":["a"]}`, `{"consumedBy":["b"]}`, `consumedBy: ["a"] → ["b"]`}, // a list of strings reads best whole
		{`{"labels":{"a":"1"}}`, `{"labels":{"a":"2","b":"3"}}`, `labels.a: "1" → "2"; labels.b: ∅ → "3"`},
		{`{"labels":null}`, `{"labels":{"a":"1"}}`, `labels: null → {"a":"1"}`},
		{`{"edges":[{"role":"broker"},{"role":"subscriber","filter":[{"exact":{"type":"a"}}]}]}`,
			`{"edges":[{"role":"broker"},{"role":"subscriber","filter":[{"exact":{"type":"b"}}]}]}`, `edges[1].filter[0].exact.type: "a" → "b"`},
		{`{"edges":[{"role":"broker"}]}`, `{"edges":[{"role":"broker"},{"role":"sink"}]}`, `edges: [{"role":"broker"}] → [{"role":"broker"},{"role":"sink"}]`},
		{`{"ready":{"status":"True"}}`, `{}`, `ready: {"status":"True"} → ∅`},
	} {
		c := mesh.Change{Op: mesh.OpUpdated, Previous: []byte(tt.before), Entity: []byte(tt.after)}
		if got := c.Summary(); got != tt.want {
			t.Errorf("Summary() of %s → %s = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
	c := mesh.Change{Op: mesh.OpAdded, Entity: []byte(`{"name":"a"}`)}
	if got := c.Summary(); got != "" {
		t.Errorf("Summary() of an add = %q", got)
	}
}

func TestParseStreamID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id    string
		epoch string
		seq   uint64
		bad   bool
	}{
		{id: "69db75ab8e958574-43", epoch: "69db75ab8e958574", seq: 43},
		{id: "ep-0", epoch: "ep", seq: 0},
		{id: "a-b-7", epoch: "a-b", seq: 7}, // split at the last "-"
		{id: "43", seq: 43},                 // the old form: the sequence alone
		{id: "", bad: true},
		{id: "-43", bad: true},
		{id: "ep-", bad: true},
		{id: "ep-x", bad: true},
		{id: "ep--1", epoch: "ep-", seq: 1},
		{id: "x", bad: true},
	} {
		epoch, seq, err := mesh.ParseStreamID(tc.id)
		if tc.bad != (err != nil) || !tc.bad && (epoch != tc.epoch || seq != tc.seq) {
			t.Errorf("ParseStreamID(%q) = %q, %d, %v", tc.id, epoch, seq, err)
		}
		if !tc.bad && tc.epoch != "" && mesh.StreamID(epoch, seq) != tc.id {
			t.Errorf("StreamID(%q, %d) = %q, want %q", epoch, seq, mesh.StreamID(epoch, seq), tc.id)
		}
	}
}
