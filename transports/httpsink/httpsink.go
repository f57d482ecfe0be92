package httpsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// Sink publishes to one HTTP target.
type Sink struct {
	target     string
	encoder    *codec.Encoder
	client     *http.Client
	ownsClient bool
	structured bool
	overrides  map[string]string
	backoff    Backoff
	sleep      func(context.Context, time.Duration) error
}

var _ transports.Publisher = (*Sink)(nil)

// Backoff shapes retries: the n-th retry waits a random time in [0, min(Max, Base·2ⁿ)]
// ("full jitter"), unless the sink's Retry-After asks for longer (up to Max).
type Backoff struct{ Base, Max time.Duration }

// ErrInvalidOption wraps every rejected option.
var ErrInvalidOption = errors.New("invalid option")

// Option configures a Sink.
type Option func(*Sink) error

// WithStructured sends structured-mode events (one JSON document) instead of binary mode.
func WithStructured() Option { return func(s *Sink) error { s.structured = true; return nil } }

// WithHTTPClient sends through c, which the Sink will not close.
func WithHTTPClient(c *http.Client) Option {
	return func(s *Sink) error {
		if c == nil {
			return fmt.Errorf("%w: http client is nil", ErrInvalidOption)
		}
		s.client, s.ownsClient = c, false
		return nil
	}
}

// WithTimeout bounds each request (default 10s).
func WithTimeout(d time.Duration) Option {
	return func(s *Sink) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v: want > 0", ErrInvalidOption, d)
		}
		s.client.Timeout = d
		return nil
	}
}

// WithCACertificates trusts the PEM certificates in pem (in addition to the system's).
func WithCACertificates(pem []byte) Option {
	return func(s *Sink) error {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: CA certificates: no PEM certificate found", ErrInvalidOption)
		}
		t, ok := s.client.Transport.(*http.Transport)
		if !ok {
			return fmt.Errorf("%w: CA certificates need the sink's own transport", ErrInvalidOption)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		return nil
	}
}

// WithOverrides parses K_CE_OVERRIDES ({"extensions": {"name": "value"}}) and sets those
// extensions on every event. The mesh's own extensions cannot be overridden.
func WithOverrides(kCEOverrides string) Option {
	return func(s *Sink) error {
		if kCEOverrides == "" {
			return nil
		}
		var o struct {
			Extensions map[string]string `json:"extensions"`
		}
		if err := json.Unmarshal([]byte(kCEOverrides), &o); err != nil {
			return fmt.Errorf("%w: K_CE_OVERRIDES: %w", ErrInvalidOption, err)
		}
		for name := range o.Extensions {
			if name == mesh.ExtensionEpoch || name == mesh.ExtensionSequence {
				return fmt.Errorf("%w: K_CE_OVERRIDES: extension %q belongs to the mesh contract", ErrInvalidOption, name)
			}
			probe := event.New()
			if err := probe.Context.SetExtension(name, "x"); err != nil {
				return fmt.Errorf("%w: K_CE_OVERRIDES: extension %q: %w", ErrInvalidOption, name, err)
			}
		}
		s.overrides = o.Extensions
		return nil
	}
}

// WithBackoff sets the retry backoff (default Base 100ms, Max 30s).
func WithBackoff(b Backoff) Option {
	return func(s *Sink) error {
		if b.Base <= 0 || b.Max < b.Base {
			return fmt.Errorf("%w: backoff %+v: want 0 < Base <= Max", ErrInvalidOption, b)
		}
		s.backoff = b
		return nil
	}
}

// WithSleep replaces how the sink waits between retries (tests record the waits).
func WithSleep(sleep func(context.Context, time.Duration) error) Option {
	return func(s *Sink) error { s.sleep = sleep; return nil }
}

// New returns a sink for target, an absolute http(s) URL.
// Defaults: binary mode, its own http.Transport (keep-alive, 16 idle connections per host),
// 10s request timeout, backoff 100ms..30s, no overrides.
func New(target string, enc *codec.Encoder, opts ...Option) (*Sink, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: sink %q: want an absolute http(s) URL", ErrInvalidOption, target)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	s := &Sink{target: target, encoder: enc, ownsClient: true,
		client:  &http.Client{Transport: transport, Timeout: 10 * time.Second},
		backoff: Backoff{Base: 100 * time.Millisecond, Max: 30 * time.Second}, sleep: sleepCtx}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
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
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := s.sendOnce(ctx, ev)
		switch {
		case err == nil && status/100 == 2:
			return nil
		case err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			return fmt.Errorf("%w: event %s: sink %s answered %d", transports.ErrRejected, ev.ID(), s.target, status)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		wait := s.wait(attempt, retryAfter)
		if err := s.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (s *Sink) sendOnce(ctx context.Context, ev *event.Event) (status int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target, nil)
	if err != nil {
		return 0, 0, err
	}
	msg := binding.ToMessage(ev)
	wctx := ctx
	if s.structured {
		wctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(wctx, msg, req); err != nil {
		return 0, 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), nil
}

func (s *Sink) wait(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := s.backoff.Max
	if attempt < 30 {
		ceiling = min(s.backoff.Max, s.backoff.Base<<attempt)
	}
	wait := rand.N(ceiling + 1)
	return min(max(wait, retryAfter), s.backoff.Max)
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
