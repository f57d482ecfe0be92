package brokers

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// NATS is a NATS server with JetStream for one test.
type NATS struct {
	// URL is nats://host:port (tls:// for TLS).
	URL string

	process
	args  []string // of nats-server, but the port
	port  int      // 0 until the first start picked one
	store string   // "": no JetStream (a leaf node that uses its hub's)
	log   string   // nats-server's log file
}

// StartNATS returns the server at NATS_URL, or one of the test's own stopped at the end of
// the test.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	if u := os.Getenv("NATS_URL"); u != "" {
		return &NATS{URL: u, process: process{t: t}}
	}
	return StartEmbeddedNATS(t)
}

// StartEmbeddedNATS always starts a server of the test's own: nats-server built from the
// module this project pins, in a process of its own, JetStream on disk in a temporary folder
// (so a Restart keeps streams and KV buckets, as a real deployment's would).
func StartEmbeddedNATS(t testing.TB) *NATS { return startNATS(t, nil) }

// StartEmbeddedNATSTLS starts a server that only speaks TLS with the certificate in c (URL
// is tls://).
func StartEmbeddedNATSTLS(t testing.TB, c TLS) *NATS {
	cert, key := c.files(t)
	return startNATS(t, []string{"--tls", "--tlscert", cert, "--tlskey", key})
}

// StartEmbeddedNATSWithAuth starts a server that wants a login, given as nats-server's flags
// (--user U --pass P, or --auth TOKEN).
func StartEmbeddedNATSWithAuth(t testing.TB, authArgs ...string) *NATS { return startNATS(t, authArgs) }

func startNATS(t testing.TB, args []string) *NATS { return startNATSOn(t, 0, args) }

// startNATSOn starts a server on port (0: any free port).
func startNATSOn(t testing.TB, port int, args []string) *NATS {
	t.Helper()
	b := &NATS{process: process{t: t}, args: args, store: t.TempDir(), port: port}
	b.log = filepath.Join(t.TempDir(), "nats-server.log")
	b.Start()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() { // the server's side of the story
			if data, err := os.ReadFile(b.log); err == nil {
				t.Logf("nats-server log:\n%s", data)
			}
		}
	})
	return b
}

// Start starts the server (again, on the same port and store after a Stop).
func (b *NATS) Start() {
	b.t.Helper()
	bin, err := natsServerBinary()
	if err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		portsDir := b.t.TempDir()
		port := strconv.Itoa(b.port)
		if b.port == 0 {
			port = "-1" // any free port
		}
		args := []string{"-a", "127.0.0.1", "-p", port, "--ports_file_dir", portsDir, "-l", b.log}
		if b.store != "" {
			args = append(args, "-js", "-sd", b.store)
		}
		cmd := command(bin, append(args, b.args...)...)
		exited := b.launch(cmd)
		if address, err := awaitPortsFile(portsDir, exited); err == nil {
			b.port = address.Port
			scheme := "nats://"
			if len(b.args) > 0 && b.args[0] == "--tls" {
				scheme = "tls://"
			}
			b.URL = scheme + address.String()
			return
		} else if time.Now().After(deadline) {
			b.t.Fatalf("nats-server on port %s did not start: %v", port, err)
		}
		b.kill()
		time.Sleep(50 * time.Millisecond) // the port of a stopped server may linger a moment
	}
}

// Kill ends the server at once (SIGKILL), as a crash or a lost machine does; Start brings it
// back with its store.
func (b *NATS) Kill() {
	if b.cmd != nil {
		b.kill()
	}
}

// Restart stops the server and starts it again on the same port, keeping its store.
func (b *NATS) Restart() {
	b.Stop()
	b.Start()
}

// RestartEmpty stops the server, deletes its store (every stream, KV bucket and message),
// and starts it again on the same port, as a server without persistence comes back.
func (b *NATS) RestartEmpty() {
	b.Stop()
	if err := os.RemoveAll(b.store); err != nil {
		b.t.Fatal(err)
	}
	b.Start()
}

// awaitPortsFile reads the client address from the ports file nats-server writes once it
// listens.
func awaitPortsFile(dir string, exited <-chan struct{}) (*net.TCPAddr, error) {
	for range 200 {
		select {
		case <-exited:
			return nil, fmt.Errorf("nats-server exited")
		case <-time.After(50 * time.Millisecond):
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
		if len(files) == 0 {
			continue
		}
		data, err := os.ReadFile(files[0])
		var ports struct{ Nats []string }
		if err != nil || json.Unmarshal(data, &ports) != nil || len(ports.Nats) == 0 {
			continue // written but not yet complete
		}
		_, hostPort, _ := strings.Cut(ports.Nats[0], "://")
		return net.ResolveTCPAddr("tcp", hostPort)
	}
	return nil, fmt.Errorf("no ports file after 10 s")
}

// nats-server is a tool of this module (go.mod), so its version is pinned there.
var natsServerBinary = testkit.NewBinary("github.com/nats-io/nats-server/v2", "nats-server").Build
