package httpsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// A TokenRequest's token is kept until a fifth of its lifetime is left, then renewed on the
// next use; a refused one is renewed at once; each audience has its own. (The API server's
// side is TestSinkReferenceWithTokenRequest; this is the renewal schedule, on a fake clock.)
func TestTokenRequestsRenewBeforeExpiry(t *testing.T) {
	t.Parallel()
	clock := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	client := fake.NewClientset()
	var issued []string // "namespace/name audience"
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		create := a.(k8stesting.CreateAction)
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		req := create.GetObject().(*authenticationv1.TokenRequest)
		issued = append(issued, a.GetNamespace()+" "+req.Spec.Audiences[0])
		req.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprintf("token-%d", len(issued)),
			ExpirationTimestamp: metav1.NewTime(clock.Now().Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second))}
		return true, req, nil
	})
	r, err := NewTokenRequests(client, "shop", "sender", clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	token := func(audience string, renew bool) string {
		t.Helper()
		tok, err := r.Token(ctx, audience, renew)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	steps := []struct {
		step     time.Duration
		audience string
		renew    bool
		want     string
	}{
		{0, "", false, ""},                          // no audience, no token
		{0, "aud", false, "token-1"},                // the first
		{47 * time.Minute, "aud", false, "token-1"}, // within four fifths of the hour
		{2 * time.Minute, "aud", false, "token-2"},  // at 49 minutes: renewed
		{0, "aud", true, "token-3"},                 // refused: renewed at once
		{0, "other", false, "token-4"},              // another audience
		{0, "aud", false, "token-3"},
	}
	for i, s := range steps {
		clock.Step(s.step)
		if got := token(s.audience, s.renew); got != s.want {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
	}
	if len(issued) != 4 || issued[0] != "shop aud" || issued[3] != "shop other" {
		t.Errorf("TokenRequests %q", issued)
	}
}
