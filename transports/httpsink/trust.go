package httpsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Trust is the CA certificates a sink trusts, as Knative's own sources build them: the
// system's, PEM given inline (K_CA_CERTS, the CAs every transport trusts), CA files, every PEM
// file under trust-bundle directories (Knative mounts its bundles under /knative-custom-certs),
// and the CACerts of the sink's current address. The files are looked at again at most once
// per interval, on a TLS handshake, so a rotated bundle is trusted from the next connection
// on without a restart.
type Trust struct {
	inline   []byte   // PEM
	files    []string // CA files; each must exist
	dirs     []string // trust-bundle directories; a missing one holds nothing
	interval time.Duration
	clock    clock.PassiveClock
	log      *slog.Logger

	mu      sync.Mutex
	pool    *x509.CertPool
	stamp   string // the files' names, sizes and modification times when pool was built
	extra   string // the address's CACerts in pool
	checked time.Time
}

// TrustOption configures a Trust.
type TrustOption = option.Func[trustOptions]

type trustOptions struct {
	inline   []byte
	files    []string
	dirs     []string
	interval time.Duration
	clock    clock.PassiveClock
	log      *slog.Logger
}

// TrustPEM trusts the PEM certificates in pem (K_CA_CERTS); empty adds nothing.
func TrustPEM(pem []byte) TrustOption {
	return func(o *trustOptions) error {
		if len(pem) == 0 {
			return nil
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return option.Invalid("CA certificates", "no PEM certificate found")
		}
		o.inline = append(append(o.inline, pem...), '\n')
		return nil
	}
}

// TrustFile trusts the PEM certificates in file, read again when it changes; "" adds nothing.
func TrustFile(file string) TrustOption {
	return func(o *trustOptions) error {
		if file == "" {
			return nil
		}
		if _, err := readPEMFile(file); err != nil {
			return option.Invalid("CA file "+file, "%v", err)
		}
		o.files = append(o.files, file)
		return nil
	}
}

// TrustDirectory trusts every PEM file under dir (hidden entries aside: a Kubernetes volume
// keeps its versions there), read again when they change. A directory that does not exist
// holds nothing; "" adds nothing.
func TrustDirectory(dir string) TrustOption {
	return func(o *trustOptions) error {
		if dir != "" {
			o.dirs = append(o.dirs, dir)
		}
		return nil
	}
}

// TrustInterval sets how often the files are looked at, at most (default DefaultTrustInterval).
func TrustInterval(d time.Duration) TrustOption {
	return func(o *trustOptions) (err error) {
		o.interval, err = option.PositiveDuration("trust interval", d)
		return err
	}
}

// TrustClock replaces the real clock (tests).
func TrustClock(c clock.PassiveClock) TrustOption {
	return func(o *trustOptions) (err error) { o.clock, err = option.Required("clock", c); return err }
}

// TrustLogger logs reloads, and files that hold no certificate.
func TrustLogger(l *slog.Logger) TrustOption {
	return func(o *trustOptions) (err error) { o.log, err = option.Logger(l); return err }
}

// DefaultTrustInterval is how often a Trust looks at its files, at most.
const DefaultTrustInterval = time.Second

// NewTrust reads the certificates once; an error names the file.
func NewTrust(opts ...TrustOption) (*Trust, error) {
	o := trustOptions{interval: DefaultTrustInterval, clock: clock.RealClock{}, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	t := &Trust{inline: o.inline, files: o.files, dirs: o.dirs, interval: o.interval, clock: o.clock, log: o.log}
	t.mu.Lock()
	defer t.mu.Unlock()
	paths, stamp := t.look()
	t.pool, t.stamp, t.checked = t.build(paths, ""), stamp, t.clock.Now()
	return t, nil
}

// Pool is the certificates trusted now, with extra (PEM: the address's CACerts).
func (t *Trust) Pool(extra string) *x509.CertPool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	rebuild := extra != t.extra
	var paths []string
	if now.Sub(t.checked) >= t.interval {
		t.checked = now
		var stamp string
		paths, stamp = t.look()
		if stamp != t.stamp {
			if t.stamp != "" || stamp != "" {
				t.log.Info("sink trust: CA certificates reloaded", "files", len(paths))
			}
			t.stamp, rebuild = stamp, true
		}
	}
	if rebuild {
		if paths == nil {
			paths, _ = t.look()
		}
		t.pool, t.extra = t.build(paths, extra), extra
	}
	return t.pool
}

// look lists the files and stamps them (names, sizes, modification times). t.mu is held.
func (t *Trust) look() (paths []string, stamp string) {
	paths = append(paths, t.files...)
	for _, dir := range t.dirs {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return nil // gone, or unreadable: it holds nothing
			case strings.HasPrefix(d.Name(), ".") && path != dir:
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			case !d.IsDir():
				paths = append(paths, path)
			}
			return nil
		})
	}
	sort.Strings(paths[len(t.files):])
	var b strings.Builder
	for _, p := range paths {
		info, err := os.Stat(p) // follows symlinks: a ConfigMap volume swaps them
		if err != nil || info.IsDir() {
			continue
		}
		fmt.Fprintf(&b, "%s:%d/%d;", p, info.Size(), info.ModTime().UnixNano())
	}
	return paths, b.String()
}

// build is the pool of the system's certificates, the inline ones, those in paths and extra.
func (t *Trust) build(paths []string, extra string) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(t.inline)
	for _, p := range paths {
		raw, err := readPEMFile(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) || slices.Contains(t.files, p) { // not one a bundle swap removed
				t.log.Warn("sink trust: a CA file is left out", "file", p, "err", err)
			}
			continue
		}
		pool.AppendCertsFromPEM(raw)
	}
	if extra != "" && !pool.AppendCertsFromPEM([]byte(extra)) {
		t.log.Warn("sink trust: the sink's address has CACerts without a PEM certificate")
	}
	return pool
}

// DialTLS dials a TLS connection whose server certificate is verified against the
// certificates trusted at the time (extra: the address's CACerts then), presenting cert, when
// not nil, as the client certificate: for http.Transport.DialTLSContext, so that every new
// connection sees a rotated bundle.
func (t *Trust) DialTLS(dial func(ctx context.Context, network, addr string) (net.Conn, error), extra func() string,
	cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, t.Config(host, extra(), cert))
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

// Config is a client TLS configuration for serverName trusting t's certificates now, with
// extra's.
func (t *Trust) Config(serverName, extra string, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: t.Pool(extra), GetClientCertificate: cert}
}

// readPEMFile reads a file that must hold PEM certificates.
func readPEMFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return raw, nil
}
