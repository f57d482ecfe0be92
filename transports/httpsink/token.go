package httpsink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Tokens supply the bearer token a sink presents (Authorization: Bearer).
type Tokens interface {
	// Token is the token to present to a sink whose address names audience ("" when it names
	// none); "" sends no Authorization header. renew says the sink refused the last token: a
	// fresh one is wanted, not a cached one. Errors never hold a token.
	Token(ctx context.Context, audience string, renew bool) (string, error)
}

// TokenFile is the token in a file (a SinkBinding mounts its OIDC token at /oidc/token, and
// Knative renews it there), read again when the file changes, looked at most once per
// DefaultTrustInterval, and whenever the sink refused the token.
type TokenFile struct {
	path     string
	optional bool
	clock    clock.PassiveClock

	mu      sync.Mutex
	token   string
	stamp   string
	checked time.Time
}

var _ Tokens = (*TokenFile)(nil)

// NewTokenFile reads the token in path. When optional, a file that does not exist means no
// token (until it appears); otherwise it is an error.
func NewTokenFile(path string, optional bool, c clock.PassiveClock) (*TokenFile, error) {
	f := &TokenFile{path: path, optional: optional, clock: c}
	if _, err := f.Token(context.Background(), "", true); err != nil {
		return nil, err
	}
	return f, nil
}

// Token is the file's token; the audience is the file's affair.
func (f *TokenFile) Token(_ context.Context, _ string, renew bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	if !renew && now.Sub(f.checked) < DefaultTrustInterval {
		return f.token, nil
	}
	f.checked = now
	info, err := os.Stat(f.path) // follows the symlink a Secret volume swaps
	switch {
	case errors.Is(err, fs.ErrNotExist) && f.optional:
		f.token, f.stamp = "", ""
		return "", nil
	case err != nil:
		return "", fmt.Errorf("token file %s: %w", f.path, unwrapPath(err))
	}
	stamp := fmt.Sprintf("%d/%d", info.Size(), info.ModTime().UnixNano())
	if stamp == f.stamp && !renew {
		return f.token, nil
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", f.path, unwrapPath(err))
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("token file %s: empty", f.path)
	}
	f.token, f.stamp = token, stamp
	return token, nil
}

// TokenRequests are tokens for the sink's audience that the API server issues for a
// ServiceAccount (a TokenRequest, as Knative's adapters make with K_AUDIENCE and
// K_OIDC_SERVICE_ACCOUNT): one per audience, kept until a fifth of its lifetime is left, then
// renewed on the next use, and renewed at once when the sink refuses it.
type TokenRequests struct {
	client    kubernetes.Interface
	namespace string // of the ServiceAccount
	name      string // "" until known: the broadcaster's own, asked with a SelfSubjectReview
	lifetime  time.Duration
	clock     clock.PassiveClock

	mu     sync.Mutex
	issued map[string]issuedToken // by audience
}

type issuedToken struct {
	token          string
	renewAt, until time.Time
}

var _ Tokens = (*TokenRequests)(nil)

// DefaultTokenLifetime is the lifetime asked of a TokenRequest (Knative's adapters ask the same).
const DefaultTokenLifetime = time.Hour

// NewTokenRequests issues tokens for the ServiceAccount serviceAccount ("NAME" in namespace,
// or "NAMESPACE/NAME"; "" is the identity of client's credentials, which must be a
// ServiceAccount's).
func NewTokenRequests(client kubernetes.Interface, namespace, serviceAccount string, c clock.PassiveClock) (*TokenRequests, error) {
	r := &TokenRequests{client: client, namespace: namespace, lifetime: DefaultTokenLifetime, clock: c, issued: map[string]issuedToken{}}
	if serviceAccount != "" {
		ns, name, err := ParseServiceAccount(serviceAccount, namespace)
		if err != nil {
			return nil, err
		}
		r.namespace, r.name = ns, name
	}
	return r, nil
}

// ParseServiceAccount reads "NAME" (in namespace) or "NAMESPACE/NAME".
func ParseServiceAccount(s, namespace string) (ns, name string, err error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = namespace, s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", option.Invalid("service account "+s, "want NAME or NAMESPACE/NAME")
	}
	return ns, name, nil
}

// Token is a token for audience; none when audience is "".
func (r *TokenRequests) Token(ctx context.Context, audience string, renew bool) (string, error) {
	if audience == "" {
		return "", nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	if t, ok := r.issued[audience]; ok && !renew && now.Before(t.renewAt) {
		return t.token, nil
	}
	if r.name == "" {
		if err := r.whoAmI(ctx); err != nil {
			return "", err
		}
	}
	seconds := int64(r.lifetime / time.Second)
	resp, err := r.client.CoreV1().ServiceAccounts(r.namespace).CreateToken(ctx, r.name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		if t, ok := r.issued[audience]; ok && now.Before(t.until) && !renew {
			return t.token, nil // renewal failed; the token still holds
		}
		return "", fmt.Errorf("TokenRequest for ServiceAccount %s/%s, audience %q: %w", r.namespace, r.name, audience, err)
	}
	until := resp.Status.ExpirationTimestamp.Time
	lifetime := until.Sub(now)
	r.issued[audience] = issuedToken{token: resp.Status.Token, until: until, renewAt: until.Add(-lifetime / 5)}
	return resp.Status.Token, nil
}

// whoAmI learns the ServiceAccount of the client's credentials. r.mu is held.
func (r *TokenRequests) whoAmI(ctx context.Context) error {
	review, err := r.client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("finding the broadcaster's own ServiceAccount (SelfSubjectReview): %w", err)
	}
	user := review.Status.UserInfo.Username
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	ns, name, found := strings.Cut(rest, ":")
	if !ok || !found {
		return fmt.Errorf("the broadcaster runs as %q, not a ServiceAccount: set transports.http.oidcServiceAccount (K_OIDC_SERVICE_ACCOUNT)", user)
	}
	r.namespace, r.name = ns, name
	return nil
}

// eitherTokens asks requests when the address names an audience and there are requests,
// and otherwise file; with neither, no token.
type eitherTokens struct {
	requests *TokenRequests
	file     *TokenFile
}

func (e eitherTokens) Token(ctx context.Context, audience string, renew bool) (string, error) {
	switch {
	case e.requests != nil && audience != "":
		return e.requests.Token(ctx, audience, renew)
	case e.file != nil:
		return e.file.Token(ctx, audience, renew)
	}
	return "", nil
}

func unwrapPath(err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}
