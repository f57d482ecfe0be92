package httpsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// Sink publishes to one HTTP target: a URL, or the address of an object it follows.
type Sink struct {
	addresses  Addresses
	encoder    *codec.Encoder
	client     *http.Client
	ownsClient bool
	options
}

var _ transports.Publisher = (*Sink)(nil)

// Backoff shapes retries: the n-th retry waits a random time in [0, min(Max, Base·2ⁿ)]
// ("full jitter"), unless the sink's Retry-After asks for longer (up to Max).
type Backoff struct{ Base, Max time.Duration }

type options struct {
	structured bool
	client     *http.Client // injected; nil: the sink's own
	timeout    time.Duration
	caPEM      []byte
	tls        *tls.Config
	trust      *Trust
	clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	tokens     Tokens
	overrides  map[string]string
	backoff    Backoff
	sleep      func(context.Context, time.Duration) error
	log        *slog.Logger
}

// Option configures a Sink.
type Option = option.Func[options]

// WithStructured sends structured-mode events (one JSON document) instead of binary mode.
func WithStructured() Option { return func(o *options) error { o.structured = true; return nil } }

// WithHTTPClient sends through c, which the Sink neither changes nor closes.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) (err error) { o.client, err = option.Required("http client", c); return err }
}

// WithTimeout bounds each request, whichever client sends it.
func WithTimeout(d time.Duration) Option {
	return func(o *options) (err error) { o.timeout, err = option.PositiveDuration("timeout", d); return err }
}

// WithCACertificates trusts the PEM certificates in pem (in addition to the system's). It needs
// the sink's own client (not WithHTTPClient).
func WithCACertificates(pem []byte) Option {
	return func(o *options) error {
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return option.Invalid("CA certificates", "no PEM certificate found")
		}
		o.caPEM = pem
		return nil
	}
}

// WithTLS sends over TLS with c (CAs, a client certificate). It needs the sink's own client
// (not WithHTTPClient), and replaces WithCACertificates.
func WithTLS(c *tls.Config) Option {
	return func(o *options) (err error) { o.tls, err = option.Required("tls", c); return err }
}

// WithTrust verifies the sink's certificate against t, as it is at each TLS handshake, with
// the CACerts of the sink's address; cert, when not nil, presents a client certificate. It
// needs the sink's own client (not WithHTTPClient), and replaces WithCACertificates and
// WithTLS.
func WithTrust(t *Trust, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) Option {
	return func(o *options) (err error) {
		o.trust, err = option.Required("trust", t)
		o.clientCert = cert
		return err
	}
}

// WithTokens presents the bearer token t gives for the address's audience. A sink that
// answers 401 gets the event again at once with a renewed token; only a renewed token it
// refuses counts as a failure.
func WithTokens(t Tokens) Option {
	return func(o *options) (err error) { o.tokens, err = option.Required("tokens", t); return err }
}

// WithOverrides parses K_CE_OVERRIDES ({"extensions": {"name": "value"}}) and sets those
// extensions on every event. Names follow the CloudEvents rules (codec.CheckExtensionName); the
// mesh's own extensions cannot be overridden.
func WithOverrides(kCEOverrides string) Option {
	return func(o *options) error {
		if kCEOverrides == "" {
			return nil
		}
		var v struct {
			Extensions map[string]string `json:"extensions"`
		}
		if err := json.Unmarshal([]byte(kCEOverrides), &v); err != nil {
			return option.Invalid("K_CE_OVERRIDES", "%v", err)
		}
		for name := range v.Extensions {
			if err := codec.CheckExtensionName(name); err != nil {
				return option.Invalid("K_CE_OVERRIDES", "extension name %v", err)
			}
			if value := v.Extensions[name]; strings.ContainsFunc(value, unicode.IsControl) || !utf8.ValidString(value) {
				return option.Invalid("K_CE_OVERRIDES", "extension %q: the value %q holds control characters or is not UTF-8 (no HTTP header can carry it)", name, value)
			}
		}
		o.overrides = v.Extensions
		return nil
	}
}

// WithBackoff sets the retry backoff.
func WithBackoff(b Backoff) Option {
	return func(o *options) error {
		if b.Base <= 0 || b.Max < b.Base {
			return option.Invalid("backoff", "%+v: want 0 < Base <= Max", b)
		}
		o.backoff = b
		return nil
	}
}

// WithLogger logs failing deliveries: the first failure at once, then how long it has been
// failing, at most every 30 s.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithSleep replaces how the sink waits between retries (tests record the waits).
func WithSleep(sleep func(context.Context, time.Duration) error) Option {
	return func(o *options) (err error) { o.sleep, err = option.Required("sleep", sleep); return err }
}

// Defaults of a Sink.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
)

// New returns a sink for target, an absolute http(s) URL.
// Defaults: binary mode; its own http.Transport (keep-alive, 16 idle connections per host);
// DefaultTimeout per request; backoff DefaultBackoffBase..DefaultBackoffMax; no overrides; no
// token; the system's CAs.
func New(target string, enc *codec.Encoder, opts ...Option) (*Sink, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	return NewFor(staticAddress{Address{URL: target}}, enc, opts...)
}

// NewFor returns a sink that sends to the address a gives at each attempt (a followed
// object's); while it has none, sending fails and is retried. The defaults are New's; a is
// the caller's to close.
func NewFor(a Addresses, enc *codec.Encoder, opts ...Option) (*Sink, error) {
	if a == nil {
		return nil, option.Invalid("addresses", "nil")
	}
	o, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	s := &Sink{addresses: a, encoder: enc, client: o.client, options: o}
	if s.client != nil {
		return s, nil
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	switch {
	case o.trust != nil:
		extra := func() string {
			addr, _ := s.addresses.Address()
			return addr.CACerts
		}
		// Each new connection is verified against the certificates trusted then. Through an
		// HTTPS proxy net/http does the TLS itself, with the certificates trusted now.
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		transport.DialTLSContext = o.trust.DialTLS(dialer.DialContext, extra, o.clientCert)
		transport.TLSClientConfig = o.trust.Config("", extra(), o.clientCert)
	case o.tls != nil:
		transport.TLSClientConfig = o.tls
	case o.caPEM != nil:
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(o.caPEM)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// A redirect is a failure to retry, never followed: following would turn the POST into a
	// GET, count it as delivered, and let a sink point the broadcaster at any host.
	s.client, s.ownsClient = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, true
	return s, nil
}

// Target is the sink's URL without credentials (user information and query), or the object
// it follows, as logs show it.
func (s *Sink) Target() string { return s.addresses.Name() }

// Check says whether New would accept target and opts.
func Check(target string, opts ...Option) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	_, err := prepare(opts)
	return err
}

func checkTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return option.Invalid(fmt.Sprintf("sink %q", option.RedactURL(target)), "want an absolute http(s) URL")
	}
	return nil
}

// prepare applies the defaults and opts: everything New checks but the target.
func prepare(opts []Option) (options, error) {
	o := options{timeout: DefaultTimeout, backoff: Backoff{Base: DefaultBackoffBase, Max: DefaultBackoffMax}, sleep: sleepCtx,
		log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return o, err
	}
	if o.client != nil && (o.caPEM != nil || o.tls != nil || o.trust != nil) {
		return o, option.Invalid("CA certificates", "they need the sink's own client, not WithHTTPClient")
	}
	if o.trust != nil && (o.caPEM != nil || o.tls != nil) {
		return o, option.Invalid("trust", "give WithTrust, or WithTLS or WithCACertificates, not both")
	}
	return o, nil
}

// Publish sends each change in order; see the package invariant.
func (s *Sink) Publish(ctx context.Context, changes []mesh.Change) error {
	var rejected []error
	for _, c := range changes {
		ev, err := s.encoder.Event(c)
		if err != nil {
			rejected = append(rejected, fmt.Errorf("%w: %w", transports.ErrRejected, err))
			continue
		}
		for name, value := range s.overrides {
			ev.SetExtension(name, value)
		}
		if err := s.send(ctx, &ev); err != nil {
			if !errors.Is(err, transports.ErrRejected) {
				return err
			}
			rejected = append(rejected, err)
		}
	}
	return errors.Join(rejected...)
}

func (s *Sink) send(ctx context.Context, ev *event.Event) error {
	// Full jitter: the n-th wait is uniform in [0, min(Max, Base·2ⁿ)], which is the
	// exponential backoff randomised by ±100% around half of that ceiling.
	b := &backoff.ExponentialBackOff{InitialInterval: s.backoff.Base / 2, RandomizationFactor: 1, Multiplier: 2,
		MaxInterval: s.backoff.Max / 2}
	var failingSince, logged time.Time
	renew := false // the sink refused the last token: present a fresh one
	for attempt := 1; ; attempt++ {
		status, retryAfter, renewed, err := s.sendOnce(ctx, ev, renew)
		renew = status == http.StatusUnauthorized && s.tokens != nil
		switch {
		case err == nil && status/100 == 2:
			if !failingSince.IsZero() {
				s.log.Info("sink accepts events again", "sink", s.addresses.Name(), "event", ev.ID(), "after", time.Since(failingSince).Round(time.Millisecond))
			}
			return nil
		case renew && !renewed:
			// A token the sink no longer takes (rotated, expired): renewed and sent again at
			// once; this is no failure yet.
			continue
		case err == nil && status/100 == 4 && !retryable(status):
			return fmt.Errorf("%w: event %s: sink %s answered %d", transports.ErrRejected, ev.ID(), s.addresses.Name(), status)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(logged) >= 30*time.Second {
			logged = now
			s.log.Warn("sink does not accept events; retrying", "sink", s.addresses.Name(), "event", ev.ID(), "attempt", attempt,
				"failingFor", now.Sub(failingSince).Round(time.Millisecond), "status", status, "err", redactErr(err))
		}
		wait := min(max(b.NextBackOff(), retryAfter), s.backoff.Max)
		if err := s.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// retryable says whether a 4xx answer may change by itself: a timeout, a rate limit, and the
// refusals of a token or an identity (401, 403), which a renewed token or a new EventPolicy
// lifts; events are held rather than lost meanwhile.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// sendOnce makes one attempt; renewed says whether the token it presented was a renewed one
// (renew asked for it).
func (s *Sink) sendOnce(ctx context.Context, ev *event.Event, renew bool) (status int, retryAfter time.Duration, renewed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	addr, err := s.addresses.Address()
	if err != nil {
		return 0, 0, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr.URL, nil)
	if err != nil {
		return 0, 0, false, err
	}
	if s.tokens != nil {
		token, err := s.tokens.Token(ctx, addr.Audience, renew)
		if err != nil {
			return 0, 0, false, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		renewed = renew
	}
	msg := binding.ToMessage(ev)
	wctx := ctx
	if s.structured {
		wctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(wctx, msg, req); err != nil {
		return 0, 0, renewed, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, renewed, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), renewed, nil
}

// redactErr is err's text with the URL net/http quotes in it left out (it may hold
// credentials).
func redactErr(err error) string {
	var ue *url.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ue):
		return ue.Op + " " + option.RedactURL(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// Close releases idle connections of the sink's own transport.
func (s *Sink) Close(context.Context) error {
	if s.ownsClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
