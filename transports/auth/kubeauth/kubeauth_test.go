package kubeauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

// The review logic against a scripted API server (the real one is exercised in
// test/cluster): who may see what, and how long answers are reused.
func TestAuthorizeCachesBriefly(t *testing.T) {
	t.Parallel()
	var reviews, checks atomic.Int32
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		switch tr.Spec.Token {
		case "alice", "root":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: tr.Spec.Token, Groups: []string{"g"}}}
		}
		return true, tr, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		checks.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		attrs := sar.Spec.ResourceAttributes
		if attrs.Verb != "list" || attrs.Group != "eventing.knative.dev" || attrs.Resource != "eventtypes" {
			t.Errorf("asked about %+v", attrs)
		}
		sar.Status.Allowed = sar.Spec.User == "root" || sar.Spec.User == "alice" && attrs.Namespace == "a"
		return true, sar, nil
	})
	clock := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	a := testkit.Must(New(client, WithTTL(10*time.Second), WithClock(clock)))
	ctx := context.Background()
	namespaces := func() []string { return []string{"a", "b", "c"} }

	tests := []struct {
		token           string
		wantErr         error
		wantAll         bool
		wantNamespaces  []string
		reviews, checks int32 // API calls this step makes
	}{
		{token: "mallory", wantErr: auth.ErrUnauthenticated, reviews: 1},
		{token: "mallory", wantErr: auth.ErrUnauthenticated}, // negative answers are cached too
		{token: "alice", wantNamespaces: []string{"a"}, reviews: 1, checks: 4},
		{token: "alice", wantNamespaces: []string{"a"}},
		{token: "root", wantAll: true, reviews: 1, checks: 1},
	}
	for i, tt := range tests {
		r0, c0 := reviews.Load(), checks.Load()
		got, err := a.Authorize(ctx, tt.token, namespaces)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("step %d (%s): err %v, want %v", i, tt.token, err, tt.wantErr)
		}
		if got.All != tt.wantAll || len(got.Namespaces) != len(tt.wantNamespaces) {
			t.Errorf("step %d (%s): access %+v", i, tt.token, got)
		}
		for _, ns := range tt.wantNamespaces {
			if !got.Namespaces[ns] {
				t.Errorf("step %d (%s): %s not allowed", i, tt.token, ns)
			}
		}
		if dr, dc := reviews.Load()-r0, checks.Load()-c0; dr != tt.reviews || dc != tt.checks {
			t.Errorf("step %d (%s): %d token reviews and %d access reviews, want %d and %d", i, tt.token, dr, dc, tt.reviews, tt.checks)
		}
	}
	clock.Step(11 * time.Second) // answers expire: a revoked grant stops working within the TTL
	r0, c0 := reviews.Load(), checks.Load()
	if _, err := a.Authorize(ctx, "alice", namespaces); err != nil {
		t.Fatal(err)
	}
	if reviews.Load()-r0 != 1 || checks.Load()-c0 != 4 {
		t.Errorf("after the TTL: %d reviews, %d checks; want 1 and 4", reviews.Load()-r0, checks.Load()-c0)
	}
}

// scripted answers TokenReviews (tokens "user-N" are user N; others unknown) and
// SubjectAccessReviews (user N may list in namespace "ns-N" only), counting both; slow makes
// every review take a while, so concurrent requests pile up.
func scripted(slow time.Duration) (client *fake.Clientset, reviews, checks *atomic.Int32) {
	reviews, checks = new(atomic.Int32), new(atomic.Int32)
	client = fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews.Add(1)
		time.Sleep(slow)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if n, ok := strings.CutPrefix(tr.Spec.Token, "user-"); ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "u" + n}}
		}
		return true, tr, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		checks.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = sar.Spec.ResourceAttributes.Namespace == "ns-"+strings.TrimPrefix(sar.Spec.User, "u")
		return true, sar, nil
	})
	return client, reviews, checks
}

// Concurrent requests with one new token share one TokenReview; tokens not in the cache are
// reviewed at a bounded rate, and beyond it the answer is ErrBusy, not an API call.
func TestReviewsSharedAndBounded(t *testing.T) {
	t.Parallel()
	client, reviews, _ := scripted(50 * time.Millisecond)
	a := testkit.Must(New(client, WithReviewRate(1, 3)))
	namespaces := func() []string { return []string{"ns-1"} }
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := a.Authorize(context.Background(), "user-1", namespaces); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := reviews.Load(); n != 1 {
		t.Fatalf("50 concurrent requests with one token made %d token reviews, want 1", n)
	}
	busy := 0
	for i := range 100 {
		_, err := a.Authorize(context.Background(), fmt.Sprint("made-up-", i), namespaces)
		switch {
		case errors.Is(err, auth.ErrBusy):
			busy++
		case !errors.Is(err, auth.ErrUnauthenticated):
			t.Fatalf("made-up token: %v", err)
		}
	}
	if n := reviews.Load() - 1; n > 4 || busy < 96 {
		t.Errorf("100 made-up tokens: %d token reviews, %d busy answers; want at most the burst (3) and a few more", n, busy)
	}
}

// What an identity may see is one cache entry: 50 callers on a 1,000-namespace mesh fit a
// 64-entry cache, so asking again costs no review at all.
func TestNamespaceSetsCachedPerIdentity(t *testing.T) {
	t.Parallel()
	client, _, checks := scripted(0)
	a := testkit.Must(New(client, WithCacheSize(64), WithReviewRate(1000, 1000)))
	var all []string
	for i := range 1000 {
		all = append(all, fmt.Sprint("ns-", i))
	}
	namespaces := func() []string { return all }
	for round := range 2 {
		c0 := checks.Load()
		for caller := range 50 {
			got, err := a.Authorize(context.Background(), fmt.Sprint("user-", caller), namespaces)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprint("ns-", caller); len(got.Namespaces) != 1 || !got.Namespaces[want] {
				t.Fatalf("round %d, caller %d: sees %v, want only %s", round, caller, got.Namespaces, want)
			}
		}
		want := int32(50 * 1001) // the cluster-wide question and one per namespace
		if round == 1 {
			want = 0
		}
		if n := checks.Load() - c0; n != want {
			t.Errorf("round %d: %d access reviews, want %d", round, n, want)
		}
	}
}

// With audiences, a token is accepted only if the API server says it is for one of them.
func TestAudiences(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if !slices.Equal(tr.Spec.Audiences, []string{"event-mesh"}) {
			t.Errorf("review asked for audiences %q", tr.Spec.Audiences)
		}
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: tr.Spec.Token}}
		if tr.Spec.Token == "for-us" {
			tr.Status.Audiences = []string{"event-mesh"}
		} else {
			tr.Status.Audiences = []string{"https://kubernetes.default.svc"}
		}
		return true, tr, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = true
		return true, sar, nil
	})
	a := testkit.Must(New(client, WithAudiences("event-mesh")))
	namespaces := func() []string { return nil }
	if got, err := a.Authorize(context.Background(), "for-us", namespaces); err != nil || !got.All {
		t.Errorf("a token for our audience: %+v, %v", got, err)
	}
	if _, err := a.Authorize(context.Background(), "for-the-api-server", namespaces); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("a token for another audience: %v, want unauthenticated", err)
	}
	if _, err := New(client, WithAudiences(" ")); err == nil {
		t.Error("an empty audience was accepted")
	}
}

// With the RoleBindings known, only namespaces where one names the caller (by user, group or
// ServiceAccount) are asked about: a 1,000-namespace mesh costs a handful of reviews.
func TestRoleBindingsNarrowTheQuestions(t *testing.T) {
	t.Parallel()
	var checks atomic.Int32
	client := fake.NewClientset(
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "ns-1"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: "team"}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "group", Namespace: "ns-2"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "readers"}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: "ns-3"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "bob"}}},
	)
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
			Username: "system:serviceaccount:team:reader", Groups: []string{"readers", "system:authenticated"}}}
		return true, tr, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		checks.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = sar.Spec.ResourceAttributes.Namespace == "ns-1" || sar.Spec.ResourceAttributes.Namespace == "ns-2"
		return true, sar, nil
	})
	bindings := testkit.Must(NewRoleBindings(client, slog.New(slog.DiscardHandler)))
	go bindings.Run(t.Context())
	testkit.Eventually(t, "the RoleBindings to be listed", 10*time.Second, bindings.informer.HasSynced)
	a := testkit.Must(New(client, WithRoleBindings(bindings)))
	var namespaces []string
	for i := range 1000 {
		namespaces = append(namespaces, fmt.Sprintf("ns-%d", i))
	}
	got, err := a.Authorize(context.Background(), "token", func() []string { return namespaces })
	if err != nil {
		t.Fatal(err)
	}
	if got.All || len(got.Namespaces) != 2 || !got.Namespaces["ns-1"] || !got.Namespaces["ns-2"] {
		t.Errorf("access %+v, want ns-1 and ns-2", got)
	}
	if n := checks.Load(); n != 3 { // cluster-wide, ns-1, ns-2
		t.Errorf("%d access reviews, want 3", n)
	}
}

func TestTokenShapes(t *testing.T) {
	t.Parallel()
	now := time.Unix(2_000_000_000, 0)
	seg := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	tests := []struct {
		name, token string
		want        tokenShape
	}{
		{"made up", "made-up-1-2", shapeOpaque},
		{"EKS-like", "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8", shapeOpaque},
		{"three garbage parts", "a.b.c", shapeOpaque},
		{"alg none", seg(`{"alg":"none"}`) + "." + seg(`{"sub":"x"}`) + ".", shapeOpaque},
		{"ServiceAccount token", seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(`{"sub":"system:serviceaccount:a:b","exp":2000000600}`) + ".c2ln", shapeJWT},
		{"legacy token without exp", seg(`{"alg":"RS256"}`) + "." + seg(`{"sub":"x"}`) + ".c2ln", shapeJWT},
		{"expired", seg(`{"alg":"RS256"}`) + "." + seg(`{"sub":"x","exp":1999999999}`) + ".c2ln", shapeExpired},
	}
	for _, tt := range tests {
		if got := shapeOf(tt.token, now); got != tt.want {
			t.Errorf("%s: shape %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Callers' bearer tokens are untrusted: reading their shape never panics, and only a JWT
// whose exp has passed is refused without asking the API server.
func FuzzTokenShape(f *testing.F) {
	for _, seed := range []string{"", "a.b.c", "made-up", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", "..", "eyJ9.e30.x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if shapeOf(token, time.Unix(2_000_000_000, 0)) == shapeExpired && strings.Count(token, ".") != 2 {
			t.Errorf("%q: expired without being a JWT", token)
		}
	})
}
