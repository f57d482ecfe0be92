package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// loadObject is object i of a mesh of one Broker and one EventType per namespace.
func loadObject(i int) (schema.GroupVersionResource, *unstructured.Unstructured) {
	ns := fmt.Sprintf("load-%04d", i/2)
	if i%2 == 0 {
		return gvrBroker, &unstructured.Unstructured{Object: broker(ns, "default")}
	}
	return gvrEventType, &unstructured.Unstructured{Object: eventType(ns, "created", "com.example."+ns+".created", "default", "")}
}

// On a 1,000-namespace mesh, requests with made-up tokens (1,000 at least, for 6 s) and 50
// callers each allowed in one namespace hit a leader with a tight lease (3 s, renewed within
// 2 s) at once. The Lease is
// never lost (reviews go through a client of their own), TokenReviews stay within the rate
// for unknown tokens, every namespaced answer holds its own namespace only, and each caller
// costs a couple of access reviews rather than one per namespace.
func TestAccessHoldsUnderLoad(t *testing.T) {
	cfg := testkube.Start(t)
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const namespaces, callers, madeUp = 1000, 50, 1000
	populateWith(t, fastClient(t, cfg), 0, 2*namespaces, loadObject)
	listEventTypes := []rbacv1.PolicyRule{{APIGroups: []string{mesh.GroupEventing}, Resources: []string{"eventtypes"}, Verbs: []string{"list"}}}
	tokens := make([]string, callers)
	for k := range callers {
		ns := fmt.Sprintf("load-%04d", k*(namespaces/callers))
		tokens[k] = serviceAccountToken(t, admin, ns, "caller")
		grantRole(t, admin, ns, "caller", listEventTypes)
	}
	p := startBroadcaster(t, "--kubeconfig", testkube.WriteKubeconfig(t, cfg), "--leader-elect", "--leader-election-namespace", "default",
		"--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "250ms")
	testkit.Eventually(t, "the broadcaster to lead a whole mesh", 2*time.Minute, func() bool {
		status, _, _ := p.get("/readyz", "")
		return status == http.StatusOK && strings.Contains(p.Logs(), "leading:")
	})
	lease := func() (holder string, transitions int32) {
		l, err := admin.CoordinationV1().Leases("default").Get(context.Background(), config.DefaultLeaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *l.Spec.HolderIdentity, *l.Spec.LeaseTransitions
	}
	holder, transitions := lease()
	reviewsBefore, accessBefore := apiRequests(t, admin, "tokenreviews"), apiRequests(t, admin, "subjectaccessreviews")

	start := time.Now()
	var mu sync.Mutex
	madeUpAnswers := map[int]int{}
	var latencies, warm []time.Duration // every namespaced request; those after a caller's first
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			// At least madeUp in all, and for two lease durations.
			for i := 0; i < madeUp/50 || time.Since(start) < 6*time.Second; i++ {
				status, _, _ := p.get(mesh.PathMesh, fmt.Sprintf("made-up-%d-%d", w, i))
				mu.Lock()
				madeUpAnswers[status]++
				mu.Unlock()
			}
		})
	}
	for k, token := range tokens {
		own := fmt.Sprintf("load-%04d", k*(namespaces/callers))
		wg.Go(func() {
			for i := range 5 {
				began := time.Now()
				status, body, _ := p.get(mesh.PathGetEventMesh, token)
				took := time.Since(began)
				if status != http.StatusOK {
					t.Errorf("caller of %s: %d %s", own, status, body)
					return
				}
				var m mesh.EventMesh
				if err := json.Unmarshal(body, &m); err != nil {
					t.Errorf("caller of %s: %v", own, err)
					return
				}
				if len(m.Brokers) != 1 || m.Brokers[0].Namespace != own || len(m.EventTypes) != 1 || m.EventTypes[0].Namespace != own {
					t.Errorf("caller of %s sees %+v", own, m)
				}
				mu.Lock()
				latencies = append(latencies, took)
				if i > 0 {
					warm = append(warm, took)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	reviews := apiRequests(t, admin, "tokenreviews") - reviewsBefore
	accessReviews := apiRequests(t, admin, "subjectaccessreviews") - accessBefore

	slices.Sort(latencies)
	slices.Sort(warm)
	sent := 0
	for _, n := range madeUpAnswers {
		sent += n
	}
	t.Logf("%d made-up requests answered %v; %d TokenReviews and %d SubjectAccessReviews in %v; namespaced snapshots p50 %v, p99 %v (after each caller's first: p50 %v, p99 %v)",
		sent, madeUpAnswers, reviews, accessReviews, elapsed.Round(time.Millisecond),
		latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond),
		warm[len(warm)/2].Round(time.Microsecond), warm[len(warm)*99/100].Round(time.Microsecond))
	for status, n := range madeUpAnswers {
		if status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
			t.Errorf("%d made-up tokens answered %d", n, status)
		}
	}
	// Unknown tokens: a burst of 40, then 20 a second; the callers' own: one each (answers are
	// cached 10 s), once more if the test outlasts the cache.
	if limit := 40 + 20*int(elapsed.Seconds()+1) + 2*callers; reviews > limit {
		t.Errorf("%d TokenReviews in %v, more than the %d the rate allows", reviews, elapsed, limit)
	}
	// Each caller: one cluster-wide question and one for its namespace (twice if the cache expired).
	if limit := 2 * 2 * callers; accessReviews > limit {
		t.Errorf("%d SubjectAccessReviews for %d callers on %d namespaces (at most %d)", accessReviews, callers, namespaces, limit)
	}
	if h, tr := lease(); h != holder || tr != transitions || strings.Contains(p.Logs(), "lost the lease") {
		t.Errorf("the Lease changed hands under load: %s (%d transitions), was %s (%d)", h, tr, holder, transitions)
	}
}

// apiRequests sums the API server's apiserver_request_total for a resource.
func apiRequests(t *testing.T, client kubernetes.Interface, resource string) int {
	t.Helper()
	raw, err := client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="`+resource+`"`) {
			continue
		}
		fields := strings.Fields(line)
		n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}
