package brokers

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// MQTT is an MQTT v5 broker for one test.
type MQTT struct {
	// URL is mqtt://host:port (mqtts:// for TLS).
	URL string

	process
	args    []string // of the mqttbroker process, but -addr
	address string
}

// StartMQTT returns the broker at MQTT_URL, or a local one stopped at the end of the test.
func StartMQTT(t testing.TB) *MQTT {
	t.Helper()
	if u := os.Getenv("MQTT_URL"); u != "" {
		return &MQTT{URL: u, process: process{t: t}}
	}
	return StartEmbeddedMQTT(t)
}

// StartEmbeddedMQTT always starts a broker of the test's own (mochi-mqtt, in a process of its
// own: see test/brokers/mqttbroker), for tests that stop and restart it.
func StartEmbeddedMQTT(t testing.TB) *MQTT { return startMQTT(t, nil) }

// StartEmbeddedMQTTTLS starts a broker that only speaks TLS with the certificate in c.
func StartEmbeddedMQTTTLS(t testing.TB, c TLS) *MQTT {
	cert, key := c.files(t)
	return startMQTT(t, []string{"-tls-cert", cert, "-tls-key", key})
}

// StartEmbeddedMQTTDropping starts a broker that drops what exceeds pending messages queued
// for one client, as Mosquitto does beyond max_queued_messages (1,000 by default): a new
// subscription to many retained messages gets only part of them.
func StartEmbeddedMQTTDropping(t testing.TB, pending int) *MQTT {
	return startMQTT(t, []string{"-max-pending", fmt.Sprint(pending)})
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
	b := &MQTT{process: process{t: t}, args: args, address: "127.0.0.1:0"}
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
		cmd := command(bin, append([]string{"-addr", b.address}, b.args...)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.t.Fatal(err)
		}
		b.launch(cmd)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil {
			b.address = strings.TrimSpace(line)
			scheme := "mqtt://"
			if len(b.args) > 0 && b.args[0] == "-tls-cert" {
				scheme = "mqtts://"
			}
			b.URL = scheme + b.address
			return
		}
		b.kill() // the port of a stopped broker may linger a moment
		if time.Now().After(deadline) {
			b.t.Fatalf("mqtt broker on %s did not start", b.address)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var mqttBrokerBinary = testkit.NewBinary("github.com/event-mesh-broadcaster/broadcaster/test/brokers/mqttbroker", "mqttbroker").Build

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
