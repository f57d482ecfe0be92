package httpsink

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

var brokersResource = schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"}

// oidcSink is a Broker ingress with transport encryption and OIDC authentication, as Knative
// runs it: HTTPS with a certificate of a private CA, and every request's bearer token checked
// with a TokenReview for the sink's audience on the real API server.
type oidcSink struct {
	*recordingSink
	srv      *httptest.Server
	audience string
	tls      brokers.TLS
	review   kubernetes.Interface

	mu      sync.Mutex
	callers []string // who presented the accepted tokens
	tokens  []string // the tokens presented
	refused int
}

func newOIDCSink(t *testing.T, admin kubernetes.Interface, audience string) *oidcSink {
	t.Helper()
	s := &oidcSink{recordingSink: &recordingSink{attempts: map[string]int{}}, audience: audience, tls: brokers.NewTLS(t), review: admin}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		user, err := s.who(r.Context(), token)
		s.mu.Lock()
		s.tokens = append(s.tokens, token)
		if !ok || err != nil {
			s.refused++
			s.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.callers = append(s.callers, user)
		s.mu.Unlock()
		s.recordingSink.ServeHTTP(w, r)
	}))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.TLS = s.tls.Server
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// who is the identity of a token for the sink's audience.
func (s *oidcSink) who(ctx context.Context, token string) (string, error) {
	review, err := s.review.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{s.audience}}}, metav1.CreateOptions{})
	switch {
	case err != nil:
		return "", err
	case !review.Status.Authenticated || !slices.Contains(review.Status.Audiences, s.audience):
		return "", io.EOF
	}
	return review.Status.User.Username, nil
}

func (s *oidcSink) got() (accepted []uint64, callers []string) {
	s.recordingSink.mu.Lock()
	accepted = append(accepted, s.accepted...)
	s.recordingSink.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return accepted, append(callers, s.callers...)
}

func (s *oidcSink) presented() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

func (s *oidcSink) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// address points the Broker's status.address at s, as Knative's Broker reconciler does with
// transport encryption and OIDC on: the HTTPS URL, the CA and the audience.
func (s *oidcSink) address() map[string]any {
	return map[string]any{"name": "https", "url": s.srv.URL + "/shop/event-mesh", "CACerts": string(s.tls.CAPEM), "audience": s.audience}
}

// A sink given as a reference to a Broker: the broadcaster, running as its own
// ServiceAccount with only the grants of deploy/secured, sends to the Broker's
// status.address, trusting its CACerts and presenting a token from a TokenRequest for its
// audience; when the address changes (another URL, CA and audience), it follows, and every
// event arrives once.
func TestSinkReferenceWithTokenRequest(t *testing.T) {
	t.Parallel()
	admin := kube.Start(t)
	ctx := context.Background()
	adminClient := kubernetes.NewForConfigOrDie(admin)
	dyn := dynamic.NewForConfigOrDie(admin)
	const ns, sa = "shop", "event-mesh-broadcaster"
	must(t, create(ctx, adminClient.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, create(ctx, adminClient.CoreV1().ServiceAccounts(ns), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}))
	// What deploy/secured grants the broadcaster for its sink (namespaced to the Broker's).
	for _, obj := range readObjects(t, filepath.Join("..", "..", "deploy", "secured", "sink-rbac.yaml")) {
		obj.SetNamespace(ns)
		switch obj.GetKind() {
		case "Role":
			var role rbacv1.Role
			fromUnstructured(t, obj, &role)
			must(t, create(ctx, adminClient.RbacV1().Roles(ns), &role))
		case "RoleBinding":
			var binding rbacv1.RoleBinding
			fromUnstructured(t, obj, &binding)
			for i := range binding.Subjects {
				binding.Subjects[i].Namespace = ns
			}
			must(t, create(ctx, adminClient.RbacV1().RoleBindings(ns), &binding))
		}
	}
	// The broadcaster's own credentials: its ServiceAccount's token, as a pod has it.
	own, err := adminClient.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asBroadcaster := &rest.Config{Host: admin.Host, BearerToken: own.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData}}

	first := newOIDCSink(t, adminClient, "eventing.knative.dev/broker/shop/event-mesh")
	second := newOIDCSink(t, adminClient, "eventing.knative.dev/broker/shop/event-mesh-v2")
	broker := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": "event-mesh", "namespace": ns}}}
	if _, err := dyn.Resource(brokersResource).Namespace(ns).Create(ctx, broker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setAddress := func(addr map[string]any) {
		t.Helper()
		current, err := dyn.Resource(brokersResource).Namespace(ns).Get(ctx, "event-mesh", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(current.Object, addr, "status", "address"); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedSlice(current.Object, []any{addr}, "status", "addresses"); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(brokersResource).Namespace(ns).UpdateStatus(ctx, current, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setAddress(first.address())

	s := noKnativeMounts(t)
	s.SinkRef = "eventing.knative.dev/Broker/" + ns + "/event-mesh"
	logs := &testkit.Buffer{}
	pub, err := s.Open(ctx, transports.Deps{Encoder: encoder(t), Log: slogTo(logs), Kube: asBroadcaster, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Publish(ctx, changes(1, 10)); err != nil {
		t.Fatal(err)
	}
	if got, callers := first.got(); !reflect.DeepEqual(got, seqs(1, 10)) || slices.ContainsFunc(callers, notBroadcaster) {
		t.Fatalf("the first address accepted %v from %v, want 1..10 from the broadcaster's ServiceAccount", got, callers)
	}

	// The address changes; the old one stops answering.
	setAddress(second.address())
	first.srv.Close()
	if err := pub.Publish(ctx, changes(11, 20)); err != nil {
		t.Fatal(err)
	}
	got, callers := second.got()
	if !reflect.DeepEqual(got, seqs(11, 20)) || slices.ContainsFunc(callers, notBroadcaster) {
		t.Fatalf("the new address accepted %v from %v, want 11..20 from the broadcaster's ServiceAccount", got, callers)
	}
	if r1, r2 := first.refusals(), second.refusals(); r1+r2 != 0 {
		t.Errorf("tokens refused: %d, %d", r1, r2)
	}
	for _, tok := range append(append([]string{own.Status.Token}, first.presented()...), second.presented()...) {
		if tok != "" && strings.Contains(logs.String(), tok) {
			t.Fatal("a token was logged")
		}
	}
	if !strings.Contains(logs.String(), "event-mesh-v2") {
		t.Errorf("the address change was not logged:\n%s", logs)
	}
}

func notBroadcaster(user string) bool {
	return user != "system:serviceaccount:shop:event-mesh-broadcaster"
}

// The address of a Broker as Knative's Destination resolution reads it: addresses before
// address, a Service by its cluster name, the destination's CA and audience winning.
func TestResolve(t *testing.T) {
	t.Parallel()
	broker := Reference{Group: "eventing.knative.dev", Kind: "Broker", Namespace: "shop", Name: "default"}
	obj := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"status": status}}
	}
	one := map[string]any{"url": "https://a.example/shop/default", "CACerts": "CA-A", "audience": "aud-a"}
	two := map[string]any{"url": "http://b.example/shop/default"}
	for _, tt := range []struct {
		name              string
		ref               Reference
		obj               *unstructured.Unstructured
		caCerts, audience string
		want              Address
		wantErr           string
	}{
		{"address", broker, obj(map[string]any{"address": one}), "", "", Address{URL: "https://a.example/shop/default", CACerts: "CA-A", Audience: "aud-a"}, ""},
		{"addresses first", broker, obj(map[string]any{"address": two, "addresses": []any{one, two}}), "", "", Address{URL: "https://a.example/shop/default", CACerts: "CA-A", Audience: "aud-a"}, ""},
		{"destination wins", broker, obj(map[string]any{"address": one}), "CA-D", "aud-d", Address{URL: "https://a.example/shop/default", CACerts: "CA-D", Audience: "aud-d"}, ""},
		{"no address", broker, obj(map[string]any{}), "", "", Address{}, "no address yet"},
		{"relative URL", broker, obj(map[string]any{"address": map[string]any{"url": "/x"}}), "", "", Address{}, "not an absolute"},
		{"service", Reference{Kind: "Service", Namespace: "shop", Name: "display"}, obj(nil), "", "", Address{URL: "http://display.shop.svc.cluster.local"}, ""},
		{"service with CA", Reference{Kind: "Service", Namespace: "shop", Name: "display"}, obj(nil), "CA", "", Address{URL: "https://display.shop.svc.cluster.local", CACerts: "CA"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.ref, tt.obj, tt.caCerts, tt.audience)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"Broker/shop/default", "eventing.knative.dev/Broker/shop/", "a/b/c/d/e"} {
		if _, err := ParseReference(bad); err == nil {
			t.Errorf("reference %q accepted", bad)
		}
	}
}

// creator is a typed client's Create.
type creator[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// readObjects reads the objects of a YAML file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.Decode(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.Unstructured
	}
	return out
}

func fromUnstructured(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatal(err)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
