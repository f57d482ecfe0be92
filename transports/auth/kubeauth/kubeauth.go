// Package kubeauth checks callers of the resync endpoints against the cluster itself
// (docs/protocol.md): a TokenReview says who holds a bearer token, and SubjectAccessReviews say in
// which namespaces that identity may list EventTypes. A caller sees those namespaces of the
// mesh and no others, so the broadcaster never shows more than `kubectl get eventtypes` would.
//
// Answers are cached briefly (a few seconds by default): a dashboard polling every second
// costs the API server one review per interval, not one per request, and a revoked permission
// or token still stops working within the interval. The caches are bounded, so a flood of
// made-up tokens cannot grow memory; concurrent requests with one token share one review, and
// reviews of tokens not in the cache are rate-limited (ErrBusy beyond the rate; tokens that are
// not JWTs, as made-up ones are, from a smaller budget of their own), so neither
// can a flood of them turn the broadcaster against the API server. What an identity may see
// is cached as one entry (the namespaces asked about and those allowed), so many namespaces
// and many callers do not thrash the cache.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
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
	views     *cache.LRUExpireCache // identity → *view
	newTokens *rate.Limiter         // TokenReviews of JWTs not in the cache
	newOpaque *rate.Limiter         // TokenReviews of other tokens not in the cache
	reviews   singleflight.Group    // per token
	asks      singleflight.Group    // per identity
	audiences []string
	clock     clock.PassiveClock
	parallel  int
	bindings  *RoleBindings // nil: ask about every namespace
}

// view is what one identity may see: every namespace, or some of those asked about.
type view struct {
	all     bool
	asked   map[string]bool // namespace → allowed
	expires time.Time
}

var _ auth.Authorizer = (*Authorizer)(nil)

type options struct {
	ttl          time.Duration
	cacheSize    int
	clock        clock.PassiveClock
	reviewRate   rate.Limit
	reviewBurst  int
	audiences    []string
	roleBindings *RoleBindings
}

// WithAudiences asks TokenReviews to authenticate tokens for these audiences and accepts a
// token only if the API server names one of them back (so a token minted for another service
// is refused).
func WithAudiences(audiences ...string) Option {
	return func(o *options) error {
		for _, a := range audiences {
			if strings.TrimSpace(a) == "" {
				return option.Invalid("token audience", "empty")
			}
		}
		o.audiences = audiences
		return nil
	}
}

// Option configures an Authorizer.
type Option = option.Func[options]

// Defaults of an Authorizer.
const (
	DefaultTTL       = 10 * time.Second
	DefaultCacheSize = 4096
	// TokenReviews per second of JWTs not in the cache (opaque tokens: a quarter of it, from a
	// budget of their own; expired JWTs are refused without one).
	DefaultReviewRate  = 20
	DefaultReviewBurst = 40
)

// WithReviewRate bounds the TokenReviews of tokens not in the cache to perSecond, with bursts
// of burst; beyond it Authorize answers auth.ErrBusy.
func WithReviewRate(perSecond float64, burst int) Option {
	return func(o *options) error {
		if perSecond <= 0 || burst < 1 {
			return option.Invalid("review rate", "%v per second, burst %d: want > 0 and ≥ 1", perSecond, burst)
		}
		o.reviewRate, o.reviewBurst = rate.Limit(perSecond), burst
		return nil
	}
}

// WithTTL sets how long a review's answer is reused.
func WithTTL(d time.Duration) Option {
	return func(o *options) (err error) { o.ttl, err = option.PositiveDuration("review ttl", d); return err }
}

// WithCacheSize bounds each cache to n entries.
func WithCacheSize(n int) Option {
	return func(o *options) (err error) { o.cacheSize, err = option.Positive("review cache size", n); return err }
}

// WithClock replaces the real clock (tests).
func WithClock(c clock.PassiveClock) Option {
	return func(o *options) (err error) { o.clock, err = option.Required("clock", c); return err }
}

// New returns an Authorizer that asks the API server behind client.
// Defaults: DefaultTTL, DefaultCacheSize entries per cache, the real clock.
func New(client kubernetes.Interface, opts ...Option) (*Authorizer, error) {
	o := options{ttl: DefaultTTL, cacheSize: DefaultCacheSize, clock: clock.RealClock{},
		reviewRate: DefaultReviewRate, reviewBurst: DefaultReviewBurst}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if _, err := option.Required("kubernetes client", client); err != nil {
		return nil, err
	}
	return &Authorizer{
		client:    client,
		ttl:       o.ttl,
		tokens:    cache.NewLRUExpireCacheWithClock(o.cacheSize, o.clock),
		views:     cache.NewLRUExpireCacheWithClock(o.cacheSize, o.clock),
		newTokens: rate.NewLimiter(o.reviewRate, o.reviewBurst),
		newOpaque: rate.NewLimiter(o.reviewRate/4, max(1, o.reviewBurst/4)),
		audiences: o.audiences,
		clock:     o.clock,
		parallel:  8,
		bindings:  o.roleBindings,
	}, nil
}

// reviewed is a TokenReview's answer.
type reviewed struct {
	ok   bool
	user authenticationv1.UserInfo
}

// Authorize reviews token, then asks whether its bearer may list EventTypes cluster-wide and,
// failing that, in each of namespaces (those not asked about within the TTL).
func (a *Authorizer) Authorize(ctx context.Context, token string, meshNamespaces func() []string) (auth.Access, error) {
	who, err := a.review(ctx, token)
	if err != nil {
		return auth.Access{}, err
	}
	id := identity(who)
	access := auth.Access{Subject: who.Username}
	// Shared work runs on its own deadline: one caller leaving must not fail the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	v, _ := a.views.Get(id)
	current, _ := v.(*view)
	if current == nil {
		// One cluster-wide question first, shared by concurrent requests of the identity.
		shared, err, _ := a.asks.Do("\x00all\x00"+id, func() (any, error) {
			all, err := a.allowed(ctx, who, "")
			if err != nil {
				return nil, err
			}
			fresh := &view{all: all, asked: map[string]bool{}, expires: a.clock.Now().Add(a.ttl)}
			a.views.Add(id, fresh, a.ttl)
			return fresh, nil
		})
		if err != nil {
			return auth.Access{}, err
		}
		current = shared.(*view)
	}
	if current.all {
		access.All = true
		return access, nil
	}
	namespaces := meshNamespaces()
	if missing := current.missing(namespaces); len(missing) > 0 {
		shared, err, _ := a.asks.Do(id, func() (any, error) { return a.widen(ctx, who, id, current, namespaces) })
		if err != nil {
			return auth.Access{}, err
		}
		current = shared.(*view)
	}
	access.Namespaces = map[string]bool{}
	for _, ns := range namespaces {
		if current.asked[ns] {
			access.Namespaces[ns] = true
		}
	}
	return access, nil
}

// missing lists the namespaces v has not asked about.
func (v *view) missing(namespaces []string) []string {
	var out []string
	for _, ns := range namespaces {
		if _, ok := v.asked[ns]; !ok && ns != "" { // cluster-scoped entities are not in the mesh
			out = append(out, ns)
		}
	}
	return out
}

// widen asks about the namespaces v lacks and caches the result as one entry, expiring with v.
func (a *Authorizer) widen(ctx context.Context, who authenticationv1.UserInfo, id string, v *view, namespaces []string) (*view, error) {
	wider := &view{asked: maps.Clone(v.asked), expires: v.expires}
	missing := v.missing(namespaces)
	if a.bindings != nil {
		if bound, ok := a.bindings.candidates(who); ok {
			ask := missing[:0:0]
			for _, ns := range missing {
				if bound[ns] {
					ask = append(ask, ns)
				} else {
					wider.asked[ns] = false // no RoleBinding there names the caller
				}
			}
			missing = ask
		}
	}
	allowed := make([]bool, len(missing))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.parallel)
	for i, ns := range missing {
		g.Go(func() error {
			ok, err := a.allowed(gctx, who, ns)
			allowed[i] = ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, ns := range missing {
		wider.asked[ns] = allowed[i]
	}
	if left := v.expires.Sub(a.clock.Now()); left > 0 {
		a.views.Add(id, wider, left)
	}
	return wider, nil
}

// sharedTimeout bounds reviews that concurrent requests share.
const sharedTimeout = 10 * time.Second

func (a *Authorizer) review(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	key := sha256.Sum256([]byte(token))
	if v, ok := a.tokens.Get(key); ok {
		return v.(reviewed).result()
	}
	shared, err, _ := a.reviews.Do(string(key[:]), func() (any, error) {
		limiter := a.newTokens
		switch shapeOf(token, a.clock.Now()) {
		case shapeExpired:
			r := reviewed{}
			a.tokens.Add(key, r, a.ttl)
			return r, nil // the API server would refuse it too
		case shapeOpaque:
			limiter = a.newOpaque
		}
		if !a.admit(ctx, limiter, limiter == a.newTokens) {
			return nil, auth.ErrBusy
		}
		tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token review: %w", err)
		}
		r := reviewed{ok: tr.Status.Authenticated && tr.Status.Error == "", user: tr.Status.User}
		if len(a.audiences) > 0 && !slices.ContainsFunc(tr.Status.Audiences, func(got string) bool { return slices.Contains(a.audiences, got) }) {
			r.ok = false // authenticated, but for some other audience
		}
		a.tokens.Add(key, r, a.ttl)
		return r, nil
	})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return shared.(reviewed).result()
}

// reviewQueue is how long a JWT not in the cache may wait for its turn when many arrive at
// once (callers starting together); beyond it, and for opaque tokens at once, ErrBusy.
const reviewQueue = 2 * time.Second

// admit takes a review from limiter, waiting up to reviewQueue when wait is set.
func (a *Authorizer) admit(ctx context.Context, limiter *rate.Limiter, wait bool) bool {
	if !wait {
		return limiter.Allow()
	}
	r := limiter.Reserve()
	if !r.OK() {
		return false
	}
	delay := r.Delay()
	if delay > reviewQueue {
		r.Cancel()
		return false
	}
	if delay == 0 {
		return true
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		r.Cancel()
		return false
	}
}

func (r reviewed) result() (authenticationv1.UserInfo, error) {
	if !r.ok {
		return r.user, auth.ErrUnauthenticated
	}
	return r.user, nil
}

// allowed asks one SubjectAccessReview: may who list EventTypes in namespace ("" for all)?
func (a *Authorizer) allowed(ctx context.Context, who authenticationv1.UserInfo, namespace string) (bool, error) {
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
