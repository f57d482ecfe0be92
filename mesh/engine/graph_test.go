package engine

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// The spliced JSON of an upstream entity with a Graph is json.Marshal's, and its upstream part
// the entity without the Graph, for every upstream kind.
func TestMarshalEntitySplices(t *testing.T) {
	t.Parallel()
	one := 1
	graph := mesh.Graph{Ready: &mesh.Readiness{Status: "False", Reason: "NotFound"}, Address: &mesh.Address{URL: "http://x"},
		Edges: []mesh.Edge{{Role: mesh.RoleDeadLetterSink, Index: &one, Ref: &mesh.GroupKindNamespacedName{Kind: "Service", Namespace: "n", Name: "d"},
			Dangling: true, Filter: json.RawMessage(`{"a":1}`)}}}
	desc := "d"
	for _, tt := range []struct {
		kind mesh.EntityKind
		v    any
	}{
		{mesh.KindBroker, &mesh.Broker{Namespace: "n", Name: "b", ProvidedEventTypes: []string{"n/e"}, Graph: graph}},
		{mesh.KindEventType, &mesh.EventType{Namespace: "n", Name: "e", Description: &desc, ConsumedBy: []string{}, Graph: graph}},
		{mesh.KindSource, &mesh.Source{Namespace: "n", Name: "s", Labels: map[string]string{"a": "b"}, Graph: graph}},
		{mesh.KindSubscribable, &mesh.Subscribable{Namespace: "n", Name: "c", Graph: graph}},
		{mesh.KindBroker, &mesh.Broker{Namespace: "n", Name: "plain"}},
	} {
		data, upstream, err := marshalEntity(tt.kind, tt.v, new([]byte))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(tt.v)
		if !bytes.Equal(data, want) {
			t.Errorf("%s: spliced\n %s\nwant\n %s", tt.kind, data, want)
		}
		plain := graphPartOf(tt.v)
		*plain = mesh.Graph{}
		wantUpstream, _ := json.Marshal(tt.v)
		got := Entity{JSON: data, upstream: upstream}.UpstreamJSON()
		if !bytes.Equal(got, wantUpstream) {
			t.Errorf("%s: upstream JSON\n %s\nwant\n %s", tt.kind, got, wantUpstream)
		}
		if n := upstreamLen(tt.kind, data); n != upstream {
			t.Errorf("%s: upstream length of the JSON %d, rendered %d", tt.kind, n, upstream)
		}
	}
}
