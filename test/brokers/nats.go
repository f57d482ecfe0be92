package brokers

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS is a NATS server with JetStream for one test.
type NATS struct {
	// URL is nats://host:port.
	URL    string
	t      testing.TB
	server *natsserver.Server
	opts   natsserver.Options
}

// StartNATS returns the server at NATS_URL, or an embedded one stopped at the end of the test.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	if u := os.Getenv("NATS_URL"); u != "" {
		return &NATS{URL: u, t: t}
	}
	return StartEmbeddedNATS(t)
}

// StartEmbeddedNATS always starts an embedded server (JetStream on disk in a temporary
// folder, so a restart keeps streams and KV buckets, as a real deployment's would).
func StartEmbeddedNATS(t testing.TB) *NATS {
	t.Helper()
	b := &NATS{t: t, opts: natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	b.start()
	b.opts.Port = b.server.Addr().(*net.TCPAddr).Port // a restart comes back on the same port
	t.Cleanup(b.Stop)
	return b
}

// StartEmbeddedNATSTLS starts an embedded server that requires TLS (URL is tls://).
func StartEmbeddedNATSTLS(t testing.TB, server *tls.Config) *NATS {
	t.Helper()
	b := &NATS{t: t, opts: natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, TLSConfig: server, TLS: true}}
	b.start()
	t.Cleanup(b.Stop)
	b.URL = strings.Replace(b.URL, "nats://", "tls://", 1)
	return b
}

func (b *NATS) start() {
	b.t.Helper()
	s, err := natsserver.NewServer(&b.opts)
	if err != nil {
		b.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.t.Fatal("embedded nats-server did not start")
	}
	b.server = s
	b.URL = s.ClientURL()
}

// Stop shuts the embedded server down.
func (b *NATS) Stop() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
		b.server = nil
	}
}

// Start starts a stopped embedded server again on the same port and store.
func (b *NATS) Start() { b.start() }
