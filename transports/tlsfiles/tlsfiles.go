// Package tlsfiles serves a TLS certificate and key kept in files, reloaded when the files
// change: cert-manager and Kubernetes Secret volumes rotate them in place (a Secret volume by
// swapping a symlink), and a server that read them once would serve an expired certificate
// until restarted. Client is a transport client's TLS files as users set them: its settings,
// their checks and the client TLS configuration they make.
package tlsfiles

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Certificate is a certificate and key read from two files and read again when they change
// (checked at most once per interval, on a TLS handshake). A pair that does not load (a
// rotation half done) keeps the previous one in service, and is logged.
type Certificate struct {
	certFile, keyFile string
	interval          time.Duration
	clock             clock.PassiveClock
	log               *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string // the files' sizes and modification times when current was read
	checked time.Time
}

type options struct {
	interval time.Duration
	clock    clock.PassiveClock
	log      *slog.Logger
}

// Option configures a Certificate.
type Option = option.Func[options]

// DefaultInterval is how often the files are looked at, at most.
const DefaultInterval = time.Second

// WithLogger logs reloads and failed ones.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithClock replaces the real clock (tests).
func WithClock(c clock.PassiveClock) Option {
	return func(o *options) (err error) { o.clock, err = option.Required("clock", c); return err }
}

// Load reads the pair once; an error names the files.
func Load(certFile, keyFile string, opts ...Option) (*Certificate, error) {
	o := options{interval: DefaultInterval, clock: clock.RealClock{}, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, interval: o.interval, clock: o.clock, log: o.log}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", certFile, keyFile, err)
	}
	c.current, c.stamp, c.checked = &pair, stamp, o.clock.Now()
	return c, nil
}

// Config is a server TLS configuration that serves the current pair.
func (c *Certificate) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.get(), nil }}
}

// GetClientCertificate presents the current pair as a client certificate (for a client
// tls.Config's GetClientCertificate).
func (c *Certificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.get(), nil
}

func (c *Certificate) get() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.clock.Now(); now.Sub(c.checked) >= c.interval {
		c.checked = now
		c.reloadIfChanged()
	}
	return c.current
}

// reloadIfChanged reads the pair again when either file changed. c.mu is held.
func (c *Certificate) reloadIfChanged() {
	stamp, err := c.stampNow()
	if err != nil || stamp == c.stamp {
		return // gone for a moment (a symlink swap), or unchanged
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("tls: the certificate files changed but do not load; serving the previous pair", "cert", c.certFile, "key", c.keyFile, "err", err)
		return
	}
	c.current, c.stamp = &pair, stamp
	c.log.Info("tls: certificate reloaded", "cert", c.certFile)
}

func (c *Certificate) stampNow() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		info, err := os.Stat(f) // follows symlinks: a Secret volume swaps one
		if err != nil {
			return "", fmt.Errorf("tls file: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", info.Size(), info.ModTime().UnixNano())
	}
	return stamp, nil
}
