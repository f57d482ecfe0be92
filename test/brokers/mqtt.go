package brokers

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MQTT is an MQTT v5 broker for one test.
type MQTT struct {
	// URL is mqtt://host:port (mqtts:// for TLS).
	URL string

	t       testing.TB
	args    []string // of the mqttbroker process, but -addr
	address string
	cmd     *exec.Cmd
}

// StartMQTT returns the broker at MQTT_URL, or a local one stopped at the end of the test.
func StartMQTT(t testing.TB) *MQTT {
	t.Helper()
	if u := os.Getenv("MQTT_URL"); u != "" {
		return &MQTT{URL: u, t: t}
	}
	return StartEmbeddedMQTT(t)
}

// StartEmbeddedMQTT always starts a broker of the test's own (mochi-mqtt, in a process of its
// own: see test/brokers/mqttbroker), for tests that stop and restart it.
func StartEmbeddedMQTT(t testing.TB) *MQTT { return startMQTT(t, nil) }

// StartEmbeddedMQTTTLS starts a broker that only speaks TLS with the certificate in c.
func StartEmbeddedMQTTTLS(t testing.TB, c TLS) *MQTT {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, cert, c.CertPEM)
	writeFile(t, key, c.KeyPEM)
	return startMQTT(t, []string{"-tls-cert", cert, "-tls-key", key})
}

// StartEmbeddedMQTTWithUsers starts a broker that admits only these users (name → password).
func StartEmbeddedMQTTWithUsers(t testing.TB, users map[string]string) *MQTT {
	var lines []string
	for u, p := range users {
		lines = append(lines, u+":"+p)
	}
	file := filepath.Join(t.TempDir(), "users")
	writeFile(t, file, []byte(strings.Join(lines, "\n")))
	return startMQTT(t, []string{"-users", file})
}

func startMQTT(t testing.TB, args []string) *MQTT {
	t.Helper()
	b := &MQTT{t: t, args: args, address: "127.0.0.1:0"}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Restart stops the broker and starts a new one on the same address: connections drop, and
// (mochi keeping nothing on disk) retained messages and sessions are lost.
func (b *MQTT) Restart() {
	b.Stop()
	b.Start()
}

// Start starts the broker (again, on the same address after a Stop).
func (b *MQTT) Start() {
	b.t.Helper()
	bin, err := mqttBrokerBinary()
	if err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command(bin, append([]string{"-addr", b.address}, b.args...)...)
		cmd.Stderr = os.Stderr
		// The broker dies with the test process, even one killed before its clean-up ran.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil {
			b.cmd, b.address = cmd, strings.TrimSpace(line)
			scheme := "mqtt://"
			if len(b.args) > 0 && b.args[0] == "-tls-cert" {
				scheme = "mqtts://"
			}
			b.URL = scheme + b.address
			return
		}
		cmd.Wait() // the port of a stopped broker may linger a moment
		if time.Now().After(deadline) {
			b.t.Fatalf("mqtt broker on %s did not start", b.address)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pause freezes the broker's process (SIGSTOP): connections stay open and nothing answers,
// as with a broker that hangs.
func (b *MQTT) Pause() { b.signal(syscall.SIGSTOP) }

// Resume lets a paused broker go on (SIGCONT).
func (b *MQTT) Resume() { b.signal(syscall.SIGCONT) }

func (b *MQTT) signal(sig syscall.Signal) {
	b.t.Helper()
	if b.cmd == nil {
		b.t.Fatal("only a broker of the test's own can be paused")
	}
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatal(err)
	}
}

// Stop stops the broker.
func (b *MQTT) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// mqttBrokerBinary builds test/brokers/mqttbroker once per test process (the Go build cache
// makes later processes fast).
var mqttBrokerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mqttbroker")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mqttbroker")
	build := exec.Command("go", "build", "-o", bin, "github.com/event-mesh-broadcaster/broadcaster/test/brokers/mqttbroker")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test MQTT broker: %v\n%s", err, out)
	}
	return bin, nil
})

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
