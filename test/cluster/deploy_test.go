package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
)

// What deploy/ installs, as the rest of the project names it.
const (
	deployDir       = "../../deploy"
	deployNamespace = "knative-eventing"
	deployName      = "event-mesh-broadcaster" // ServiceAccount, roles, bindings, Deployment, Service, Lease
)

// The manifests in deploy/ apply to a real API server, hang together, and grant the
// broadcaster exactly what it uses: its source, run with the ServiceAccount's own token, lists
// and watches every kind the mesh needs without a refusal, and the ServiceAccount can review
// callers' tokens and hold its Lease but cannot read secrets or change anything it watches.
func TestDeployManifests(t *testing.T) {
	admin := testkube.Start(t)
	c := newCluster(t, admin)
	c.ensureNamespace(deployNamespace)

	objs := deployObjects(t)
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			t.Errorf("%s: deploy/ must not create namespaces (%s is assumed)", u.GetName(), deployNamespace)
			continue
		}
		if _, err := c.apply(u.Object); err != nil {
			t.Errorf("applying %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	checkWiring(t, objs)
	checkLeastPrivilege(t, objs)

	sa := serviceAccountConfig(t, admin, deployNamespace, deployName)

	t.Run("source", func(t *testing.T) {
		c.t = t
		defer func() { c.t = nil }()
		const ns = "shop"
		broker := map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"}
		channel := map[string]any{"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "imc"}
		subscriber := map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": "svc"}}
		for _, obj := range []map[string]any{
			object("v1", "Service", ns, "svc", map[string]any{engine.LabelBackstageID: "svc"},
				map[string]any{"type": "ExternalName", "externalName": "example.com"}),
			object("eventing.knative.dev/v1", "Broker", ns, "orders", nil, nil),
			object("eventing.knative.dev/v1beta2", "EventType", ns, "order-created", nil,
				map[string]any{"type": "com.example.order.created", "reference": broker}),
			object("eventing.knative.dev/v1beta2", "EventType", ns, "ping", nil,
				map[string]any{"type": "dev.knative.sources.ping", "reference": broker}),
			object("eventing.knative.dev/v1", "Trigger", ns, "to-svc", nil,
				map[string]any{"broker": "orders", "subscriber": subscriber}),
			object("sources.knative.dev/v1", "PingSource", ns, "tick", nil,
				map[string]any{"schedule": "*/1 * * * *", "sink": map[string]any{"ref": broker}}),
			object("messaging.knative.dev/v1", "InMemoryChannel", ns, "imc", nil, nil),
			object("eventing.knative.dev/v1beta2", "EventType", ns, "alert", nil,
				map[string]any{"type": "com.example.alert", "reference": channel}),
			object("messaging.knative.dev/v1", "Subscription", ns, "imc-to-svc", nil,
				map[string]any{"channel": channel, "subscriber": subscriber}),
		} {
			if _, err := c.apply(obj); err != nil {
				t.Fatalf("creating %v %v: %v", obj["kind"], obj["metadata"], err)
			}
		}

		r := startSource(t, sa)
		want := []string{
			"Broker shop/orders provides [shop/order-created shop/ping]",
			"EventType shop/alert type com.example.alert reference messaging.knative.dev/InMemoryChannel/shop/imc consumedBy [svc]",
			"EventType shop/order-created type com.example.order.created reference eventing.knative.dev/Broker/shop/orders consumedBy [svc]",
			"EventType shop/ping type dev.knative.sources.ping reference eventing.knative.dev/Broker/shop/orders consumedBy [svc]",
			"Source sources.knative.dev/PingSource shop/tick types [dev.knative.sources.ping] provides [shop/ping] sink eventing.knative.dev/Broker/shop/orders",
			"Subscribable messaging.knative.dev/InMemoryChannel shop/imc provides [shop/alert]",
		}
		// A refused kind is logged as degraded once the source has listed: no need to wait
		// out the deadline then.
		var got []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := r.hub.Snapshot().EventMesh()
			if err != nil {
				t.Fatal(err)
			}
			got = meshLines(m)
			if slices.Equal(got, want) || strings.Contains(r.logs.String(), "kind degraded") || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.stop()
		logs := r.logs.String()
		if !slices.Equal(got, want) {
			t.Errorf("mesh as the ServiceAccount:\n  got  %s\n  want %s",
				strings.Join(got, "\n       "), strings.Join(want, "\n       "))
		}
		for _, bad := range []string{"forbidden", "kind degraded", "not served"} {
			if strings.Contains(strings.ToLower(logs), bad) {
				t.Errorf("the source's log mentions %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("the source's log above debug level:\n%s", aboveDebug(logs))
		}
	})

	t.Run("access", func(t *testing.T) {
		client, err := kubernetes.NewForConfig(sa)
		if err != nil {
			t.Fatal(err)
		}
		type access struct {
			verb, group, resource, namespace, name string
			allowed                                bool
		}
		cases := []access{
			{"create", "authentication.k8s.io", "tokenreviews", "", "", true},
			{"create", "authorization.k8s.io", "subjectaccessreviews", "", "", true},
			{"watch", "rbac.authorization.k8s.io", "rolebindings", "", "", true},
			{"update", "rbac.authorization.k8s.io", "rolebindings", "shop", "", false},
			{"list", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
			{"create", "coordination.k8s.io", "leases", deployNamespace, "", true},
			{"get", "coordination.k8s.io", "leases", deployNamespace, deployName, true},
			{"update", "coordination.k8s.io", "leases", deployNamespace, deployName, true},
			{"update", "coordination.k8s.io", "leases", deployNamespace, "someone-elses", false},
			{"delete", "coordination.k8s.io", "leases", deployNamespace, deployName, false},
			{"update", "coordination.k8s.io", "leases", "default", deployName, false},
			{"list", "", "secrets", "", "", false},
			{"get", "", "secrets", deployNamespace, "", false},
			{"*", "", "pods", "", "", false},
			{"get", "", "pods", deployNamespace, "", false},
			{"delete", "eventing.knative.dev", "brokers", "shop", "orders", false},
			{"update", "eventing.knative.dev", "triggers", "shop", "", false},
			{"create", "eventing.knative.dev", "eventtypes", "shop", "", false},
			{"delete", "", "services", "shop", "", false},
			{"create", "apiextensions.k8s.io", "customresourcedefinitions", "", "", false},
		}
		for _, gr := range []struct{ group, resource string }{
			{"eventing.knative.dev", "brokers"}, {"eventing.knative.dev", "triggers"}, {"eventing.knative.dev", "eventtypes"},
			{"messaging.knative.dev", "subscriptions"}, {"messaging.knative.dev", "channels"}, {"messaging.knative.dev", "inmemorychannels"},
			{"sources.knative.dev", "apiserversources"}, {"sources.knative.dev", "containersources"},
			{"sources.knative.dev", "integrationsources"}, {"sources.knative.dev", "pingsources"}, {"sources.knative.dev", "sinkbindings"},
			{"apiextensions.k8s.io", "customresourcedefinitions"}, {"", "services"}, {"serving.knative.dev", "services"},
		} {
			for _, verb := range []string{"get", "list", "watch"} {
				cases = append(cases, access{verb, gr.group, gr.resource, "", "", true})
			}
		}
		for _, a := range cases {
			what := a.verb + " " + strings.TrimSuffix(a.resource+"."+a.group, ".")
			if a.name != "" {
				what += " " + a.name
			}
			if a.namespace != "" {
				what += " in " + a.namespace
			}
			review, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.namespace, Name: a.name,
					}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if review.Status.Allowed != a.allowed {
				t.Errorf("%s: allowed = %v, want %v", what, review.Status.Allowed, a.allowed)
			}
		}
	})
}

// deployObjects decodes every document of deploy/*.yaml.
func deployObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := manifests.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			if ns := o.GetNamespace(); ns != "" && ns != deployNamespace {
				t.Errorf("%s: %s %s is in namespace %q, want %q", f, o.GetKind(), o.GetName(), ns, deployNamespace)
			}
			out = append(out, o.Unstructured)
		}
	}
	return out
}

// deployObject finds the one object of kind in objs and converts it to into.
func deployObject(t *testing.T, objs []*unstructured.Unstructured, kind string, into any) {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("deploy/ has %d objects of kind %s, want 1", len(found), kind)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(found[0].Object, into); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// checkWiring checks what the API server accepts but a running cluster would trip over: the
// names and labels by which the objects find each other.
func checkWiring(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var (
		sa          corev1.ServiceAccount
		crb         rbacv1.ClusterRoleBinding
		rb          rbacv1.RoleBinding
		deployment  appsv1.Deployment
		service     corev1.Service
		wantSubject = rbacv1.Subject{Kind: "ServiceAccount", Name: deployName, Namespace: deployNamespace}
	)
	deployObject(t, objs, "ServiceAccount", &sa)
	deployObject(t, objs, "ClusterRoleBinding", &crb)
	deployObject(t, objs, "RoleBinding", &rb)
	deployObject(t, objs, "Deployment", &deployment)
	deployObject(t, objs, "Service", &service)

	if sa.Name != deployName {
		t.Errorf("ServiceAccount %q, want %q", sa.Name, deployName)
	}
	for _, b := range []struct {
		kind     string
		subjects []rbacv1.Subject
		ref      rbacv1.RoleRef
		wantRef  string
	}{
		{"ClusterRoleBinding", crb.Subjects, crb.RoleRef, "ClusterRole"},
		{"RoleBinding", rb.Subjects, rb.RoleRef, "Role"},
	} {
		if !slices.Equal(b.subjects, []rbacv1.Subject{wantSubject}) {
			t.Errorf("%s subjects %v, want [%v]", b.kind, b.subjects, wantSubject)
		}
		if b.ref.Kind != b.wantRef || b.ref.Name != deployName {
			t.Errorf("%s refers to %s %q, want %s %q", b.kind, b.ref.Kind, b.ref.Name, b.wantRef, deployName)
		}
	}

	pod := deployment.Spec.Template
	if pod.Spec.ServiceAccountName != deployName {
		t.Errorf("Deployment runs as %q, want %q", pod.Spec.ServiceAccountName, deployName)
	}
	if deployment.Spec.Replicas == nil || *deployment.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %v, want 2", deployment.Spec.Replicas)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	for _, arg := range []string{"--leader-elect", "--listen=:8080"} {
		if !slices.Contains(ctr.Args, arg) {
			t.Errorf("container args %q lack %s", ctr.Args, arg)
		}
	}
	if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Errorf("container env %v lacks POD_NAMESPACE from metadata.namespace", ctr.Env)
	}
	if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	}) {
		t.Errorf("container env %v lacks POD_IP from status.podIP (the followers find the leader at it)", ctr.Env)
	}
	if !slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" && p.ContainerPort == 8080 }) {
		t.Errorf("container ports %v lack http: 8080", ctr.Ports)
	}
	for name, probe := range map[string]*corev1.Probe{"/readyz": ctr.ReadinessProbe, "/healthz": ctr.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != name || probe.HTTPGet.Port.String() != "http" {
			t.Errorf("probe of %s: %+v, want GET %s on port http", name, probe, name)
		}
	}
	for k, v := range service.Spec.Selector {
		if pod.Labels[k] != v {
			t.Errorf("Service selects %s=%s, the pods are labelled %v", k, v, pod.Labels)
		}
	}
	if len(service.Spec.Selector) == 0 {
		t.Error("Service selects no pods")
	}
	if len(service.Spec.Ports) != 1 || service.Spec.Ports[0].Port != 80 || service.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service ports %v, want 80 → http", service.Spec.Ports)
	}
	if service.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		t.Error("Service sessionAffinity ClientIP: every replica serves the leader's sequence space, so none is needed")
	}
}

// checkLeastPrivilege reads the rules themselves, so a grant the access table does not think
// of (a wildcard, a write verb, secrets) still fails the test.
func checkLeastPrivilege(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	// The only verbs beyond get, list and watch, by group/resource.
	writes := map[string][]string{
		"authentication.k8s.io/tokenreviews":        {"create"},
		"authorization.k8s.io/subjectaccessreviews": {"create"},
		"coordination.k8s.io/leases":                {"create", "update"},
	}
	for _, u := range objs {
		if u.GetKind() != "ClusterRole" && u.GetKind() != "Role" {
			continue
		}
		var role rbacv1.ClusterRole // a Role is a ClusterRole without aggregation
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if role.AggregationRule != nil {
			t.Errorf("%s %s aggregates other roles", u.GetKind(), u.GetName())
		}
		for i, rule := range role.Rules {
			where := fmt.Sprintf("%s %s rule %d", u.GetKind(), u.GetName(), i)
			if len(rule.NonResourceURLs) > 0 {
				t.Errorf("%s grants non-resource URLs %v", where, rule.NonResourceURLs)
			}
			if slices.Contains(rule.APIGroups, "*") || slices.Contains(rule.Verbs, "*") {
				t.Errorf("%s uses a wildcard group or verb: %+v", where, rule)
			}
			for _, res := range rule.Resources {
				if res == "*" && !slices.Equal(rule.APIGroups, []string{"sources.knative.dev"}) {
					t.Errorf("%s grants every resource of %v; only sources.knative.dev may use *", where, rule.APIGroups)
				}
				if strings.Contains(res, "/") {
					t.Errorf("%s grants subresource %s", where, res)
				}
				for _, group := range rule.APIGroups {
					if group == "" && res == "secrets" {
						t.Errorf("%s grants secrets", where)
					}
					if group == "coordination.k8s.io" && u.GetKind() != "Role" {
						t.Errorf("%s grants leases outside the broadcaster's namespace", where)
					}
					for _, verb := range rule.Verbs {
						if verb != "get" && verb != "list" && verb != "watch" && !slices.Contains(writes[group+"/"+res], verb) {
							t.Errorf("%s grants %s on %s", where, verb, strings.TrimSuffix(res+"."+group, "."))
						}
					}
				}
			}
		}
	}
}

// serviceAccountConfig returns a config that authenticates with nothing but a fresh token of
// the ServiceAccount namespace/name.
func serviceAccountConfig(t *testing.T, admin *rest.Config, namespace, name string) *rest.Config {
	t.Helper()
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	expiry := int64(3600)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// object builds a namespaced object with an optional spec.
func object(apiVersion, kind, namespace, name string, labels, spec map[string]any) map[string]any {
	meta := map[string]any{"namespace": namespace, "name": name}
	if labels != nil {
		meta["labels"] = labels
	}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	if spec != nil {
		obj["spec"] = spec
	}
	return obj
}

// meshLines describes the relations of every entity of m, one line each, without uids.
func meshLines(m mesh.EventMesh) []string {
	ref := func(r *mesh.GroupKindNamespacedName) string {
		if r == nil {
			return "-"
		}
		return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
	}
	var out []string
	for _, b := range m.Brokers {
		out = append(out, fmt.Sprintf("Broker %s/%s provides %v", b.Namespace, b.Name, b.ProvidedEventTypes))
	}
	for _, e := range m.EventTypes {
		out = append(out, fmt.Sprintf("EventType %s/%s type %s reference %s consumedBy %v",
			e.Namespace, e.Name, e.Type, ref(e.Reference), e.ConsumedBy))
	}
	for _, s := range m.Sources {
		out = append(out, fmt.Sprintf("Source %s/%s %s/%s types %v provides %v sink %s",
			s.Group, s.Kind, s.Namespace, s.Name, s.ProvidedEventTypeTypes, s.ProvidedEventTypes, ref(s.Sink)))
	}
	for _, s := range m.Subscribables {
		out = append(out, fmt.Sprintf("Subscribable %s/%s %s/%s provides %v",
			s.Group, s.Kind, s.Namespace, s.Name, s.ProvidedEventTypes))
	}
	return out
}

// aboveDebug keeps the lines of a slog text log that are not debug lines (client-go's
// reflectors log every list and watch at debug levels).
func aboveDebug(log string) string {
	var out []string
	for line := range strings.Lines(log) {
		if !strings.Contains(line, " level=DEBUG") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
