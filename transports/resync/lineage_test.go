package resync

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// crossNamespaceMesh: in a, an EventType on Broker a/x, whose Trigger delivers to Broker b/y,
// whose Trigger delivers to Service b/svc.
func crossNamespaceMesh() []*unstructured.Unstructured {
	obj := func(o map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: o} }
	trigger := func(ns, name, broker string, subscriber map[string]any) *unstructured.Unstructured {
		return obj(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": map[string]any{"namespace": ns, "name": name},
			"spec":     map[string]any{"broker": broker, "subscriber": map[string]any{"ref": subscriber}}})
	}
	return []*unstructured.Unstructured{
		brokerIn("a", "x"), brokerIn("b", "y"),
		obj(map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
			"metadata": map[string]any{"namespace": "a", "name": "created"},
			"spec": map[string]any{"type": "created", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1",
				"kind": "Broker", "name": "x"}}}),
		trigger("a", "forward", "x", map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "y", "namespace": "b"}),
		trigger("b", "deliver", "y", map[string]any{"apiVersion": "v1", "kind": "Service", "name": "svc"}),
		obj(map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"namespace": "b", "name": "svc"}}),
	}
}

// GET /v1/lineage answers from the live graph, as each caller may see it: a path into a
// namespace the caller may not see ends there, hidden, naming nothing of it.
func TestLineageEndpoint(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	h := testkit.Must(hub.New(engine.New("ep"), ready.Load))
	handler, err := New(h, WithAuthorizer(oneNamespace{}), WithLineage(h))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	ask := func(token, query string) (int, lineage.Answer, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+mesh.PathLineage+"?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var a lineage.Answer
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &a); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if resp.Header.Get(mesh.HeaderEpoch) != "ep" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", resp.Header)
			}
		}
		return resp.StatusCode, a, string(body)
	}
	q := url.Values{"eventType": {"a/created"}}.Encode()
	if status, _, body := ask("all", q); status != http.StatusServiceUnavailable {
		t.Errorf("before the mesh is loaded: %d %s", status, body)
	}
	h.Apply(engine.Listing(crossNamespaceMesh()...))
	ready.Store(true)

	_, whole, _ := ask("all", q)
	if len(whole.Paths) != 1 || strings.Join(whole.Paths[0].Keys, " ") != "eventing.knative.dev/EventType/a/created eventing.knative.dev/Broker/a/x "+
		"eventing.knative.dev/Trigger/a/forward eventing.knative.dev/Broker/b/y eventing.knative.dev/Trigger/b/deliver /Service/b/svc" ||
		whole.Paths[0].End != lineage.EndSink || whole.Sequence == 0 {
		t.Fatalf("a caller seeing everything: %+v", whole)
	}
	_, cut, _ := ask("a", q)
	if len(cut.Paths) != 1 || len(cut.Paths[0].Keys) != 3 || cut.Paths[0].End != lineage.EndHidden {
		t.Fatalf("a caller seeing namespace a: %+v", cut)
	}
	if last := cut.Paths[0].Hops[3]; last.Key != "" || last.URI != "" || last.Role != mesh.RoleSubscriber {
		t.Errorf("the hidden hop names something: %+v", last)
	}
	raw, _ := json.Marshal(cut)
	if strings.Contains(string(raw), `/b/`) {
		t.Errorf("the answer for namespace a names namespace b: %s", raw)
	}

	for _, tt := range []struct {
		token, query string
		status       int
		says         string
	}{
		{"a", url.Values{"target": {"/Service/b/svc"}}.Encode(), http.StatusNotFound, "no such entity"},
		{"all", url.Values{"target": {"/Service/b/nothing"}}.Encode(), http.StatusNotFound, "no such entity"},
		{"all", "eventType=created", http.StatusBadRequest, "NAMESPACE/NAME"},
		{"all", "broken&target=g/K/a/n", http.StatusBadRequest, "exactly one"},
		{"all", "broken&limit=0", http.StatusBadRequest, "limit"},
		{"all", "broken&what=1", http.StatusBadRequest, `unknown parameter \"what\"`},
		{"nobody", "broken", http.StatusUnauthorized, ""},
	} {
		if status, _, body := ask(tt.token, tt.query); status != tt.status || !strings.Contains(body, tt.says) {
			t.Errorf("%s as %s: %d %s, want %d saying %q", tt.query, tt.token, status, body, tt.status, tt.says)
		}
	}
	_, senders, _ := ask("all", url.Values{"target": {"eventing.knative.dev/Broker/b/y"}}.Encode())
	if len(senders.Senders) != 1 || senders.Senders[0].Via != "eventing.knative.dev/Broker/a/x" || senders.Authorization != "default" {
		t.Errorf("who sends to b/y: %+v", senders)
	}
	_, mine, _ := ask("a", "broken")
	if len(mine.Broken) != 0 {
		t.Errorf("namespace a has nothing broken: %+v", mine.Broken)
	}
}
