// Package kubeauth checks callers of the resync endpoints against the cluster itself
// (docs/protocol.md): a TokenReview says who holds a bearer token, and SubjectAccessReviews say in
// which namespaces that identity may list EventTypes. A caller sees those namespaces of the
// mesh and no others, so the broadcaster never shows more than `kubectl get eventtypes` would.
//
// Answers are cached briefly (a few seconds by default): a dashboard polling every second
// costs the API server one review per interval, not one per request, and a revoked permission
// or token still stops working within the interval. The caches are bounded, so a flood of
// made-up tokens cannot grow memory.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

// Authorizer implements auth.Authorizer with TokenReview and SubjectAccessReview.
type Authorizer struct {
	client    kubernetes.Interface
	ttl       time.Duration
	tokens    *cache.LRUExpireCache // sha256(token) → reviewed
	decisions *cache.LRUExpireCache // decisionKey → bool
	parallel  int
}

var _ auth.Authorizer = (*Authorizer)(nil)

type options struct {
	ttl       time.Duration
	cacheSize int
	clock     clock.PassiveClock
}

// Option configures an Authorizer.
type Option = option.Func[options]

// Defaults of an Authorizer.
const (
	DefaultTTL       = 10 * time.Second
	DefaultCacheSize = 4096
)

// WithTTL sets how long a review's answer is reused.
func WithTTL(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return option.Invalid("review ttl", "%v: want > 0", d)
		}
		o.ttl = d
		return nil
	}
}

// WithCacheSize bounds each cache to n entries.
func WithCacheSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return option.Invalid("review cache size", "%d: want at least 1", n)
		}
		o.cacheSize = n
		return nil
	}
}

// WithClock replaces the real clock (tests).
func WithClock(c clock.PassiveClock) Option {
	return func(o *options) error {
		if c == nil {
			return option.Invalid("clock", "nil")
		}
		o.clock = c
		return nil
	}
}

// New returns an Authorizer that asks the API server behind client.
// Defaults: DefaultTTL, DefaultCacheSize entries per cache, the real clock.
func New(client kubernetes.Interface, opts ...Option) (*Authorizer, error) {
	o := options{ttl: DefaultTTL, cacheSize: DefaultCacheSize, clock: clock.RealClock{}}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, option.Invalid("kubernetes client", "nil")
	}
	return &Authorizer{
		client:    client,
		ttl:       o.ttl,
		tokens:    cache.NewLRUExpireCacheWithClock(o.cacheSize, o.clock),
		decisions: cache.NewLRUExpireCacheWithClock(o.cacheSize, o.clock),
		parallel:  8,
	}, nil
}

// reviewed is a TokenReview's answer.
type reviewed struct {
	ok   bool
	user authenticationv1.UserInfo
}

type decisionKey struct {
	user      string // the identity, in full (name, uid, groups, extra)
	namespace string // "" for every namespace
}

// Authorize reviews token, then asks whether its bearer may list EventTypes cluster-wide and,
// failing that, in each of namespaces.
func (a *Authorizer) Authorize(ctx context.Context, token string, meshNamespaces func() []string) (auth.Access, error) {
	who, err := a.review(ctx, token)
	if err != nil {
		return auth.Access{}, err
	}
	access := auth.Access{Subject: who.Username}
	all, err := a.allowed(ctx, who, "")
	if err != nil || all {
		access.All = all
		return access, err
	}
	namespaces := meshNamespaces()
	allowed := make([]bool, len(namespaces))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.parallel)
	for i, ns := range namespaces {
		if ns == "" {
			continue // cluster-scoped entities are not in the mesh; nothing to ask
		}
		g.Go(func() error {
			ok, err := a.allowed(gctx, who, ns)
			allowed[i] = ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return auth.Access{}, err
	}
	access.Namespaces = map[string]bool{}
	for i, ns := range namespaces {
		if allowed[i] {
			access.Namespaces[ns] = true
		}
	}
	return access, nil
}

func (a *Authorizer) review(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	if v, ok := a.tokens.Get(key); ok {
		r := v.(reviewed)
		if !r.ok {
			return r.user, auth.ErrUnauthenticated
		}
		return r.user, nil
	}
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("token review: %w", err)
	}
	r := reviewed{ok: tr.Status.Authenticated && tr.Status.Error == "", user: tr.Status.User}
	a.tokens.Add(key, r, a.ttl)
	if !r.ok {
		return r.user, auth.ErrUnauthenticated
	}
	return r.user, nil
}

func (a *Authorizer) allowed(ctx context.Context, who authenticationv1.UserInfo, namespace string) (bool, error) {
	key := decisionKey{user: identity(who), namespace: namespace}
	if v, ok := a.decisions.Get(key); ok {
		return v.(bool), nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(who.Extra))
	for k, v := range who.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: who.Username, UID: who.UID, Groups: who.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: "list", Group: mesh.GroupEventing, Resource: "eventtypes",
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	a.decisions.Add(key, sar.Status.Allowed, a.ttl)
	return sar.Status.Allowed, nil
}

// identity is a stable text form of everything a SubjectAccessReview is asked about.
func identity(u authenticationv1.UserInfo) string {
	var b strings.Builder
	b.WriteString(u.Username + "\x00" + u.UID + "\x00" + strings.Join(u.Groups, "\x01") + "\x00")
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + strings.Join(u.Extra[k], "\x01") + "\x02")
	}
	return b.String()
}
