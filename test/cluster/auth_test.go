package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth/kubeauth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// Cluster-mode access (docs/protocol.md), checked by the real API server: no token → 401, a token
// the API server does not know → 401, a service account allowed in one namespace sees only
// that namespace (and not the delta stream, whose numbering spans every namespace), one
// allowed nowhere → 403, one allowed cluster-wide sees everything.
func TestAccessThroughTheAPIServer(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := c.apply(map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": map[string]any{"name": "default", "namespace": ns}}); err != nil {
			t.Fatal(err)
		}
	}
	r := startSource(t, cfg)
	log, err := changelog.New(r.hub.Snapshot().Position().Epoch, changelog.WithMaxChanges(100))
	if err != nil {
		t.Fatal(err)
	}
	r.hub.Listen(log.Append)
	enc, _ := codec.NewEncoder("/test")
	watchers, err := resync.NewWatchers(enc, resync.WithWatchBuffer(100))
	if err != nil {
		t.Fatal(err)
	}
	r.hub.Listen(watchers.Publish)
	h, err := resync.New(r.hub, resync.WithAuthorizer(testkit.Must(kubeauth.New(client))), resync.WithDeltaLog(log, enc),
		resync.WithWatch(watchers, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	listEventTypes := []rbacv1.PolicyRule{{APIGroups: []string{"eventing.knative.dev"}, Resources: []string{"eventtypes"}, Verbs: []string{"list"}}}
	oneNamespace := serviceAccountToken(t, client, "team-a", "reader")
	grantRole(t, client, "team-a", "reader", listEventTypes)
	nowhere := serviceAccountToken(t, client, "team-b", "nobody")
	everywhere := serviceAccountToken(t, client, "team-b", "auditor")
	grantClusterRole(t, client, "team-b", "auditor", listEventTypes)

	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	namespacesIn := func(body []byte) []string {
		t.Helper()
		var m mesh.EventMesh
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var out []string
		for _, b := range m.Brokers {
			out = append(out, b.Namespace)
		}
		return out
	}
	epoch := r.hub.Snapshot().Position().Epoch
	tests := []struct {
		name, path, token string
		status            int
		namespaces        []string
	}{
		{"no token", "/v1/getEventMesh", "", http.StatusUnauthorized, nil},
		{"unknown token", "/v1/getEventMesh", "not-a-token", http.StatusUnauthorized, nil},
		{"one namespace", "/v1/getEventMesh", oneNamespace, http.StatusOK, []string{"team-a"}},
		{"one namespace, deltas", "/v1/deltas?epoch=" + epoch + "&since=0", oneNamespace, http.StatusForbidden, nil},
		{"nowhere", "/v1/getEventMesh", nowhere, http.StatusForbidden, nil},
		{"everywhere", "/v1/getEventMesh", everywhere, http.StatusOK, []string{"team-a", "team-b"}},
		{"everywhere, deltas", "/v1/deltas?epoch=" + epoch + "&since=0", everywhere, http.StatusOK, nil},
		{"health needs no token", "/healthz", "", http.StatusOK, nil},
	}
	t.Run("token audience", func(t *testing.T) {
		h, err := resync.New(r.hub, resync.WithAuthorizer(testkit.Must(kubeauth.New(client, kubeauth.WithAudiences("event-mesh")))))
		if err != nil {
			t.Fatal(err)
		}
		strict := httptest.NewServer(h)
		defer strict.Close()
		tr, err := client.CoreV1().ServiceAccounts("team-b").CreateToken(context.Background(), "auditor",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"event-mesh"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for token, want := range map[string]int{tr.Status.Token: http.StatusOK, everywhere: http.StatusUnauthorized} {
			req, _ := http.NewRequest(http.MethodGet, strict.URL+"/v1/getEventMesh", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("a token for audience %v: %d, want %d", token == tr.Status.Token, resp.StatusCode, want)
			}
		}
	})
	t.Run("one namespace, watch", func(t *testing.T) {
		status, m := firstSnapshot(t, srv.URL, oneNamespace)
		if status != http.StatusOK || len(m.Brokers) != 1 || m.Brokers[0].Namespace != "team-a" {
			t.Errorf("watch: %d, brokers %+v", status, m.Brokers)
		}
	})
	t.Run("a token revoked during a watch", func(t *testing.T) {
		// Short review cache and re-authorisation, so the test waits seconds, not 20.
		h, err := resync.New(r.hub, resync.WithAuthorizer(testkit.Must(kubeauth.New(client, kubeauth.WithTTL(time.Second)))),
			resync.WithDeltaLog(log, enc), resync.WithWatch(watchers, time.Second), resync.WithReauthorize(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		short := httptest.NewServer(h)
		defer short.Close()
		token := serviceAccountToken(t, client, "team-b", "leaving")
		grantClusterRole(t, client, "team-b", "leaving", listEventTypes)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, short.URL+"/v1/watch", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var events []string
		revoked := false
		err = consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error {
			events = append(events, ev.Type)
			if ev.Type == mesh.SSESnapshot && !revoked { // the stream is up: take the token away
				revoked = true
				if err := client.CoreV1().ServiceAccounts("team-b").Delete(context.Background(), "leaving", metav1.DeleteOptions{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || len(events) == 0 || events[len(events)-1] != mesh.SSEAccess {
			t.Fatalf("the stream ended with %v after events %q; want it to end with %q", err, events, mesh.SSEAccess)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(tt.path, tt.token)
			if status != tt.status {
				t.Fatalf("%s: %d %s, want %d", tt.path, status, body, tt.status)
			}
			if tt.namespaces != nil {
				if got := namespacesIn(body); !slices.Equal(got, tt.namespaces) {
					t.Errorf("brokers in %v, want %v", got, tt.namespaces)
				}
			}
		})
	}
}

// firstSnapshot reads the snapshot event GET /v1/watch opens with.
func firstSnapshot(t *testing.T, url, token string) (int, mesh.EventMesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/watch", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap mesh.Snapshot
	if resp.StatusCode == http.StatusOK {
		_ = consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error {
			if ev.Type != "snapshot" {
				t.Fatalf("the stream opens with %s", ev.Type)
			}
			if err := json.Unmarshal(ev.Data, &snap); err != nil {
				t.Fatal(err)
			}
			return io.EOF
		})
	}
	return resp.StatusCode, snap.Mesh.EventMesh
}

// serviceAccountToken creates a service account and returns a token for it (TokenRequest).
func serviceAccountToken(t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

func grantRole(t *testing.T, client kubernetes.Interface, ns, sa string, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	if _, err := client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: rules},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func grantClusterRole(t *testing.T, client kubernetes.Interface, ns, sa string, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := ns + "-" + sa
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
