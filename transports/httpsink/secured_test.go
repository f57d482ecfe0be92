package httpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// tlsSink is a real HTTPS sink whose certificate can be swapped while it runs. Every request
// comes on a new connection, so every event is a new handshake against the sink's trust.
type tlsSink struct {
	*recordingSink
	srv  *httptest.Server
	cert atomic.Pointer[tls.Certificate]
}

func newTLSSink(t *testing.T, c brokers.TLS, answer func(uint64, int, http.ResponseWriter) bool) *tlsSink {
	t.Helper()
	s := &tlsSink{recordingSink: &recordingSink{attempts: map[string]int{}, answer: answer}}
	s.serve(c)
	s.srv = httptest.NewUnstartedServer(s.recordingSink)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
	s.srv.Config.SetKeepAlivesEnabled(false)
	// Without SNI (an IP address) a server presents its first certificate, which StartTLS
	// fills in: the certificate of the moment comes with a configuration per handshake.
	s.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*s.cert.Load()}}, nil
	}}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// serve presents c's certificate from the next handshake on.
func (s *tlsSink) serve(c brokers.TLS) { s.cert.Store(&c.Server.Certificates[0]) }

func (s *tlsSink) got() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.accepted...)
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// openSettings opens s as the broadcaster does (manifests mode), logging into logs.
func openSettings(t *testing.T, s Settings, logs io.Writer) transports.Publisher {
	t.Helper()
	pub, err := s.Open(context.Background(), transports.Deps{Encoder: encoder(t), Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	return pub
}

// noKnativeMounts are settings without the default trust-bundle directory and token file,
// so that a machine that has them does not change the test.
func noKnativeMounts(t *testing.T) Settings {
	return Settings{TrustBundles: filepath.Join(t.TempDir(), "absent"), TokenFile: ""}
}

// A sink whose private CA is given only by K_CA_CERTS (transports.http.caCerts) is trusted;
// without it, it is not.
func TestTrustsKCACerts(t *testing.T) {
	t.Parallel()
	ca := brokers.NewTLS(t)
	sink := newTLSSink(t, ca, nil)

	untrusted := noKnativeMounts(t)
	untrusted.Sink = sink.srv.URL
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := openSettings(t, untrusted, io.Discard).Publish(ctx, changes(1, 1)); err == nil {
		t.Fatal("a sink with a private CA was trusted without K_CA_CERTS")
	}

	s := noKnativeMounts(t)
	s.Sink, s.CACerts = sink.srv.URL, string(ca.CAPEM)
	if err := openSettings(t, s, io.Discard).Publish(context.Background(), changes(1, 20)); err != nil {
		t.Fatal(err)
	}
	if got := sink.got(); !reflect.DeepEqual(got, seqs(1, 20)) {
		t.Fatalf("accepted %v, want 1..20", got)
	}
}

// bundleDir is a trust-bundle directory laid out as Kubernetes mounts a ConfigMap: the files
// are symlinks into ..data, itself a symlink to a hidden versioned directory, swapped at once
// on an update.
type bundleDir struct {
	dir     string
	version int
}

func (b *bundleDir) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	b.version++
	versioned := filepath.Join(b.dir, ".."+time.Now().Format("2006_01_02_15_04_05.")+string(rune('a'+b.version)))
	if err := os.Mkdir(versioned, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(versioned, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(b.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(versioned), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(b.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(b.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A sink whose CA is only in a trust-bundle directory is trusted, and stays trusted while the
// bundle and the sink's certificate rotate to a new CA: every event arrives once, in order.
func TestTrustBundleRotatedWhileRunning(t *testing.T) {
	t.Parallel()
	first, second := brokers.NewTLS(t), brokers.NewTLS(t)
	sink := newTLSSink(t, first, nil)
	bundles := &bundleDir{dir: t.TempDir()}
	bundles.write(t, map[string][]byte{"kn-combined-kne-bundle.pem": first.CAPEM})

	s := noKnativeMounts(t)
	s.Sink, s.TrustBundles = sink.srv.URL, bundles.dir
	logs := &testkit.Buffer{}
	pub := openSettings(t, s, logs)
	if err := pub.Publish(context.Background(), changes(1, 10)); err != nil {
		t.Fatal(err)
	}

	// The rotation: a bundle with the new CA only, and the sink's certificate from it.
	bundles.write(t, map[string][]byte{"kn-combined-kne-bundle.pem": second.CAPEM})
	sink.serve(second)
	if err := pub.Publish(context.Background(), changes(11, 30)); err != nil {
		t.Fatal(err)
	}
	if got := sink.got(); !reflect.DeepEqual(got, seqs(1, 30)) {
		t.Fatalf("accepted %v, want 1..30 once each", got)
	}
	if !strings.Contains(logs.String(), "CA certificates reloaded") {
		t.Errorf("the reload was not logged:\n%s", logs)
	}

	// The old CA is no longer trusted.
	sink.serve(first)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := pub.Publish(ctx, changes(31, 31)); err == nil {
		t.Error("the rotated-out CA is still trusted")
	}
}

// tokenSink accepts events presenting the current token only, and counts refusals.
type tokenSink struct {
	mu      sync.Mutex
	token   string
	refused int
}

func (s *tokenSink) set(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

func (s *tokenSink) check(r *http.Request, w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.refused++
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}

// A sink that requires a bearer token from a file that rotates (the old token refused at
// once): every event arrives once, in order; a refused token is read again and the event sent
// again at once, with no backoff; no token is ever logged.
func TestTokenFileRotates(t *testing.T) {
	t.Parallel()
	const oldToken, newToken = "eyJ-old-token-aaaaaaaaaa", "eyJ-new-token-bbbbbbbbbb"
	auth := &tokenSink{token: oldToken}
	rs := &recordingSink{attempts: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.check(r, w) {
			rs.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(oldToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s := noKnativeMounts(t)
	s.Sink, s.TokenFile = srv.URL, tokenFile
	logs := &testkit.Buffer{}
	pub := openSettings(t, s, logs)
	if err := pub.Publish(context.Background(), changes(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth.set(newToken)
	if err := pub.Publish(context.Background(), changes(11, 20)); err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	accepted := append([]uint64(nil), rs.accepted...)
	rs.mu.Unlock()
	if !reflect.DeepEqual(accepted, seqs(1, 20)) {
		t.Fatalf("accepted %v, want 1..20", accepted)
	}
	auth.mu.Lock()
	refused := auth.refused
	auth.mu.Unlock()
	if refused != 1 {
		t.Errorf("%d refusals, want 1: the first event after the rotation, sent again with the new token", refused)
	}
	if strings.Contains(logs.String(), "token-") {
		t.Errorf("a token was logged:\n%s", logs)
	}
}

// A 401 is answered by renewing the token and sending again at once, without waiting; a
// renewed token that is refused too is a failure, retried with backoff, not a rejection.
func TestUnauthorizedRenewsBeforeCounting(t *testing.T) {
	t.Parallel()
	var tokens atomic.Int32 // how many tokens were handed out; the n-th is "tN"
	var accept atomic.Int32 // the token number the sink accepts
	accept.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if want := "Bearer t" + string(rune('0'+accept.Load())); r.Header.Get("Authorization") != want {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	var waits int
	s, err := New(srv.URL, encoder(t), WithTokens(tokenFunc(func(renew bool) string {
		if renew || tokens.Load() == 0 {
			tokens.Add(1)
		}
		return "t" + string(rune('0'+tokens.Load()))
	})), WithSleep(func(context.Context, time.Duration) error { waits++; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), changes(1, 1)); err != nil {
		t.Fatal(err)
	}
	if waits != 0 || tokens.Load() != 2 {
		t.Fatalf("%d waits and %d tokens; want the refused token renewed at once, no wait", waits, tokens.Load())
	}
	accept.Store(4) // t3 is refused too: one wait, then t4
	if err := s.Publish(context.Background(), changes(2, 2)); err != nil {
		t.Fatal(err)
	}
	if waits != 1 || tokens.Load() != 4 {
		t.Fatalf("%d waits and %d tokens; want a renewed token refused to count once, then t4", waits, tokens.Load())
	}
}

type tokenFunc func(renew bool) string

func (f tokenFunc) Token(_ context.Context, _ string, renew bool) (string, error) {
	return f(renew), nil
}

// Every problem names its setting.
func TestSecuredSettingsCheck(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o600)
	for _, tt := range []struct {
		name string
		s    Settings
		key  string
	}{
		{"sink and ref", Settings{Sink: "http://a", SinkRef: "eventing.knative.dev/Broker/shop/default"}, "transports.http.sinkRef"},
		{"bad ref", Settings{SinkRef: "Broker/default"}, "transports.http.sinkRef"},
		{"bad CA", Settings{Sink: "http://a", CACerts: "not PEM"}, "transports.http.caCerts"},
		{"missing bundles", Settings{Sink: "http://a", TrustBundles: file + "-absent"}, "transports.http.trustBundles"},
		{"bundles a file", Settings{Sink: "http://a", TrustBundles: file}, "transports.http.trustBundles"},
		{"missing token file", Settings{Sink: "http://a", TokenFile: file + "-absent"}, "transports.http.tokenFile"},
		{"bad service account", Settings{Sink: "http://a", OIDCServiceAccount: "a/b/c"}, "transports.http.oidcServiceAccount"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var invalid *option.InvalidError
			if err := tt.s.Check(); !errors.As(err, &invalid) || invalid.Setting != tt.key {
				t.Errorf("%+v: %v, want a problem of %s", tt.s, err, tt.key)
			}
		})
	}
	if err := DefaultSettings().Check(); err != nil {
		t.Errorf("the defaults (absent Knative mounts included): %v", err)
	}
	for _, s := range []Settings{{Sink: "http://a", Audience: "x"}, {SinkRef: "eventing.knative.dev/Broker/shop/default"}} {
		if _, err := s.Open(context.Background(), transports.Deps{Encoder: encoder(t), Log: option.Discard()}); err == nil ||
			!strings.Contains(err.Error(), "needs cluster mode") {
			t.Errorf("%+v without a cluster: %v", s, err)
		}
	}
}
