package cluster

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// Objects of a small mesh, by name, for the fault tests.
func broker(ns, name string) map[string]any {
	return map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": map[string]any{"name": name, "namespace": ns}}
}

func eventType(ns, name, typ, brokerName, description string) map[string]any {
	return map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"type": typ, "description": description,
			"reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": brokerName}}}
}

func trigger(ns, name, brokerName, service string) map[string]any {
	return map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"broker": brokerName, "subscriber": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": service}}}}
}

func service(ns, name, backstageID string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{engine.LabelBackstageID: backstageID}},
		"spec":     map[string]any{"type": "ExternalName", "externalName": "example.com"}}
}

func (c *cluster) mustApply(objs ...map[string]any) {
	c.t.Helper()
	for _, o := range objs {
		if _, err := c.apply(o); err != nil {
			c.t.Fatalf("writing %v: %v", o["metadata"], err)
		}
	}
}

// freshEntities builds the mesh from scratch from a fresh listing ("kind key" → JSON).
func (c *cluster) freshEntities() map[string]string {
	c.t.Helper()
	var objs []*unstructured.Unstructured
	for _, gk := range []schema.GroupKind{{Group: engine.GroupCRD, Kind: engine.KindCRDObject}, {Group: mesh.GroupEventing, Kind: "Broker"},
		{Group: mesh.GroupEventing, Kind: "EventType"}, {Group: mesh.GroupEventing, Kind: "Trigger"},
		{Group: engine.GroupMessaging, Kind: "Subscription"}, {Kind: "Service"}} {
		res, _ := c.resource(gk)
		list, err := res.List(context.Background(), metav1.ListOptions{})
		if err != nil {
			c.t.Fatal(err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	e := engine.New("fresh")
	e.Apply(engine.Listing(objs...))
	return entitiesOf(e.Snapshot())
}

func entitiesOf(s mesh.State) map[string]string {
	out := map[string]string{}
	for _, c := range s.Latest() {
		out[c.Kind.String()+" "+c.Key.String()] = string(c.Entity)
	}
	return out
}

// diff lists the changes that turn before into after, as sorted "kind op key" lines.
func diff(before, after map[string]string) []string {
	var out []string
	line := func(kindKey, op string) string {
		kind, key, _ := strings.Cut(kindKey, " ")
		return kind + " " + op + " " + key
	}
	for k, v := range after {
		if old, ok := before[k]; !ok {
			out = append(out, line(k, "added"))
		} else if old != v {
			out = append(out, line(k, "updated"))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, line(k, "deleted"))
		}
	}
	slices.Sort(out)
	return out
}

// The API server goes away and comes back (every watch breaks; its watch cache starts
// afresh, so reflectors may have to relist) while objects change: the source emits exactly
// the changes that happened, each once, with no spurious deletes and re-adds, and ends equal
// to a mesh built from scratch.
func TestAPIServerRestartKeepsChangesExact(t *testing.T) {
	srv := testkube.StartServer(t)
	c := newCluster(t, srv.Config)
	const ns = "shop"
	c.mustApply(broker(ns, "b1"), broker(ns, "b2"), broker(ns, "b3"),
		eventType(ns, "e1", "order.created", "b1", "created"), eventType(ns, "e2", "order.paid", "b2", "paid"),
		eventType(ns, "e3", "order.shipped", "b2", "shipped"), eventType(ns, "e6", "order.lost", "b3", "lost"),
		service(ns, "svc", "shipping"), trigger(ns, "t", "b3", "svc"))
	r := startSource(t, srv.Config)
	r.graph = true // every kind's changes count: the diff below is of every kind
	before := entitiesOf(r.hub.Snapshot())
	r.takeChanges()

	srv.RestartAPIServer(t, time.Second)
	// Changes made as soon as the API server is back, racing the source's reconnection.
	// Each touches different entities, so each expected change happens exactly once.
	testkit.Eventually(t, "the API server to take writes", 30*time.Second, func() bool {
		_, err := c.apply(eventType(ns, "e2", "order.paid", "b2", "paid, now described"))
		return err == nil
	})
	c.remove(engine.ObjectRef{Group: mesh.GroupEventing, Kind: "EventType", Namespace: ns, Name: "e1"})
	c.mustApply(eventType(ns, "e5", "order.refunded", "b2", "refunded"), service(ns, "svc", "logistics"))

	after := c.freshEntities()
	want := diff(before, after)
	if len(want) != 7 { // six upstream entities, and the relabelled Service (a sink: the Trigger names it)
		t.Fatalf("the test's own writes should change 7 entities, they change %q", want)
	}
	testkit.Eventually(t, "the mesh to catch up", 60*time.Second, func() bool {
		return maps.Equal(entitiesOf(r.hub.Snapshot()), after)
	})
	r.settle(len(want))
	got := r.takeChanges()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("changes across the restart\n got %q\nwant %q", got, want)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "watch reconnected") {
		t.Errorf("the source never lost its watches; the test proves nothing\n%s", logs)
	}
}

// A source whose service account may not list Triggers degrades that kind only: it loads the
// rest of the mesh, logs the refusal and raises the gauge; once RBAC allows Triggers, it
// recovers on its own and emits exactly the change the Triggers make.
func TestForbiddenKindRecovers(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "shop"
	c.mustApply(broker(ns, "orders"), eventType(ns, "created", "order.created", "orders", ""),
		service(ns, "svc", "billing"), trigger(ns, "bill", "orders", "svc"))

	watch := []string{"get", "list", "watch"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: watch},
		{APIGroups: []string{"eventing.knative.dev"}, Resources: []string{"brokers", "eventtypes"}, Verbs: watch},
		{APIGroups: []string{"messaging.knative.dev"}, Resources: []string{"subscriptions", "channels", "inmemorychannels"}, Verbs: watch},
		{APIGroups: []string{"sources.knative.dev"}, Resources: []string{"*"}, Verbs: watch},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: watch},
	}
	token := serviceAccountToken(t, client, ns, "broadcaster")
	grantClusterRole(t, client, ns, "broadcaster", rules)
	saCfg := rest.AnonymousClientConfig(cfg)
	saCfg.BearerToken = token

	registry := prometheus.NewRegistry()
	r := startSource(t, saCfg, kube.WithMetrics(registry))
	degraded := func() float64 {
		return testutil.ToFloat64(gaugeOf(t, registry, "broadcaster_source_kind_degraded",
			map[string]string{"group": "eventing.knative.dev", "kind": "Trigger", "reason": "forbidden"}))
	}
	if got := consumedBy(t, r, ns, "created"); len(got) != 0 {
		t.Errorf("consumedBy %q without Triggers", got)
	}
	if r.hub.Snapshot().Len() != 2 {
		t.Errorf("the rest of the mesh should load: %d entities", r.hub.Snapshot().Len())
	}
	if d := degraded(); d != 1 {
		t.Errorf("degraded gauge %v, want 1", d)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "kind degraded: forbidden") || !strings.Contains(logs, "kind=Trigger.eventing.knative.dev") {
		t.Errorf("no log line names the forbidden kind:\n%s", logs)
	}
	r.takeChanges()

	rules[1].Resources = append(rules[1].Resources, "triggers")
	role, err := client.RbacV1().ClusterRoles().Get(context.Background(), ns+"-broadcaster", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules = rules
	if _, err := client.RbacV1().ClusterRoles().Update(context.Background(), role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the Trigger kind to recover", 90*time.Second, func() bool {
		return slices.Equal(consumedBy(t, r, ns, "created"), []string{"billing"})
	})
	r.settle(1)
	if got, want := r.takeChanges(), []string{"eventtype updated eventing.knative.dev/EventType/shop/created"}; !slices.Equal(got, want) {
		t.Errorf("changes on recovery %q, want %q", got, want)
	}
	if !strings.Contains(r.logs.String(), "kind recovered") {
		t.Errorf("no recovery logged:\n%s", r.logs.String())
	}
	testkit.Eventually(t, "the gauge to clear", 10*time.Second, func() bool { return degraded() == 0 })
}

func consumedBy(t *testing.T, r *running, ns, name string) []string {
	t.Helper()
	m, err := r.hub.Snapshot().EventMesh()
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range m.EventTypes {
		if et.Namespace == ns && et.Name == name {
			return et.ConsumedBy
		}
	}
	t.Fatalf("no event type %s/%s", ns, name)
	return nil
}

// gaugeOf finds one series of a gauge vector in registry (a zero gauge when absent).
func gaugeOf(t *testing.T, registry *prometheus.Registry, name string, labels map[string]string) prometheus.Gauge {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "absent"})
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			g.Set(m.GetGauge().GetValue())
		}
	}
	return g
}
