package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// The graph's kinds are watched as the cluster serves them, each on its own: a kind the
// service account may not read (EventPolicy) is degraded alone while the rest of the graph
// loads; a kind whose CRD goes away (Sequence) leaves the mesh, and the edges naming its
// objects dangle; when the CRD comes back, so do its objects.
func TestGraphKindsFollowTheirCRDsAndRBAC(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "shop"
	sequence := map[string]any{"apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
		"metadata": map[string]any{"name": "fulfil", "namespace": ns},
		"spec":     map[string]any{"steps": []any{map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": "svc"}}}}}
	toSequence := map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
		"metadata": map[string]any{"name": "to-fulfil", "namespace": ns},
		"spec": map[string]any{"broker": "orders",
			"subscriber": map[string]any{"ref": map[string]any{"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "name": "fulfil"}}}}
	policy := map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy",
		"metadata": map[string]any{"name": "only-shop", "namespace": ns},
		"spec":     map[string]any{"from": []any{map[string]any{"sub": "system:serviceaccount:shop:*"}}}}
	c.mustApply(broker(ns, "orders"), eventType(ns, "created", "order.created", "orders", ""),
		service(ns, "svc", "stock"), sequence, toSequence, policy)

	watch := []string{"get", "list", "watch"}
	token := serviceAccountToken(t, client, ns, "broadcaster")
	grantClusterRole(t, client, ns, "broadcaster", []rbacv1.PolicyRule{
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: watch},
		{APIGroups: []string{"eventing.knative.dev"}, Resources: []string{"brokers", "eventtypes", "triggers", "eventtransforms", "requestreplies"}, Verbs: watch},
		{APIGroups: []string{"flows.knative.dev"}, Resources: []string{"sequences", "parallels"}, Verbs: watch},
		{APIGroups: []string{"sinks.knative.dev"}, Resources: []string{"jobsinks", "integrationsinks"}, Verbs: watch},
		{APIGroups: []string{"messaging.knative.dev"}, Resources: []string{"subscriptions", "channels", "inmemorychannels"}, Verbs: watch},
		{APIGroups: []string{"sources.knative.dev"}, Resources: []string{"*"}, Verbs: watch},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: watch},
	})
	saCfg := rest.AnonymousClientConfig(cfg)
	saCfg.BearerToken = token

	registry := prometheus.NewRegistry()
	r := startSource(t, saCfg, kube.WithMetrics(registry))
	r.graph = true
	degraded := func(kind, reason string) float64 {
		group := "eventing.knative.dev"
		if kind == "Sequence" {
			group = "flows.knative.dev"
		}
		return testutil.ToFloat64(gaugeOf(t, registry, "broadcaster_source_kind_degraded",
			map[string]string{"group": group, "kind": kind, "reason": reason}))
	}
	entities := entitiesOf(r.hub.Snapshot())
	for _, want := range []string{"sequence flows.knative.dev/Sequence/shop/fulfil", "trigger eventing.knative.dev/Trigger/shop/to-fulfil", "sink /Service/shop/svc"} {
		if _, ok := entities[want]; !ok {
			t.Errorf("no entity %s in %q", want, keysOf(entities))
		}
	}
	if _, ok := entities["eventpolicy eventing.knative.dev/EventPolicy/shop/only-shop"]; ok {
		t.Error("the EventPolicy is in the mesh although the source may not read EventPolicies")
	}
	if got := consumedBy(t, r, ns, "created"); !slices.Equal(got, []string{"stock"}) {
		t.Errorf("consumedBy %q, want the Sequence's first step [stock]", got)
	}
	if d := degraded("EventPolicy", "forbidden"); d != 1 {
		t.Errorf("EventPolicy degraded gauge %v, want 1", d)
	}
	r.takeChanges()

	// The Sequence CRD goes: its object leaves the mesh, the Trigger's subscriber dangles, and
	// what the first step consumed through it is gone.
	crds, err := testkube.KnativeCRDs()
	if err != nil {
		t.Fatal(err)
	}
	var sequenceCRD *unstructured.Unstructured
	for _, crd := range crds {
		if crd.Spec.Names.Kind == "Sequence" {
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
			if err != nil {
				t.Fatal(err)
			}
			sequenceCRD = &unstructured.Unstructured{Object: obj}
		}
	}
	c.remove(engine.ObjectRef{Group: engine.GroupCRD, Kind: engine.KindCRDObject, Name: sequenceCRD.GetName()})
	testkit.Eventually(t, "the Sequence to leave the mesh", 60*time.Second, func() bool {
		_, ok := entitiesOf(r.hub.Snapshot())["sequence flows.knative.dev/Sequence/shop/fulfil"]
		return !ok
	})
	r.settle(3)
	if got, want := r.takeChanges(), []string{
		"eventtype updated eventing.knative.dev/EventType/shop/created",
		"trigger updated eventing.knative.dev/Trigger/shop/to-fulfil",
		"sequence deleted flows.knative.dev/Sequence/shop/fulfil",
		"sink deleted /Service/shop/svc",
	}; !slices.Equal(got, want) {
		t.Errorf("changes when the Sequence CRD went %q, want %q", got, want)
	}
	if trig := entitiesOf(r.hub.Snapshot())["trigger eventing.knative.dev/Trigger/shop/to-fulfil"]; !strings.Contains(trig, `"dangling":true`) {
		t.Errorf("the Trigger's subscriber does not dangle: %s", trig)
	}
	testkit.Eventually(t, "the Sequence kind reported as not served", 30*time.Second, func() bool {
		return degraded("Sequence", "not_served") == 1
	})

	// The CRD comes back (an upgrade re-installs it): the Sequence, created again, is back.
	unstructured.RemoveNestedField(sequenceCRD.Object, "status")
	stored, err := c.apply(sequenceCRD.Object)
	if err != nil {
		t.Fatal(err)
	}
	c.waitServed(stored)
	// Discovery lags behind the CRD being served; the harness's mapper asks it once.
	testkit.Eventually(t, "discovery to serve Sequences again", 30*time.Second, func() bool {
		c.mapper.Reset()
		_, err := c.mapper.RESTMapping(schema.GroupKind{Group: "flows.knative.dev", Kind: "Sequence"}, "v1")
		return err == nil
	})
	c.mustApply(sequence)
	testkit.Eventually(t, "the Sequence back in the mesh", 90*time.Second, func() bool {
		return slices.Equal(consumedBy(t, r, ns, "created"), []string{"stock"})
	})
	if trig := entitiesOf(r.hub.Snapshot())["trigger eventing.knative.dev/Trigger/shop/to-fulfil"]; strings.Contains(trig, `"dangling":true`) {
		t.Errorf("the Trigger's subscriber still dangles: %s", trig)
	}
	testkit.Eventually(t, "the Sequence gauge to clear", 30*time.Second, func() bool { return degraded("Sequence", "not_served") == 0 })
	if d := degraded("EventPolicy", "forbidden"); d != 1 {
		t.Errorf("EventPolicy degraded gauge %v after all that, want 1", d)
	}
}
