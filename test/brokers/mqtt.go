package brokers

import (
	"crypto/tls"
	"log/slog"
	"os"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// MQTT is an MQTT v5 broker for one test.
type MQTT struct {
	// URL is mqtt://host:port.
	URL      string
	t        testing.TB
	server   *mochi.Server
	address  string
	external bool
	tls      *tls.Config
	users    map[string]string
}

// StartEmbeddedMQTTWithUsers starts an embedded broker that admits only these users
// (username → password).
func StartEmbeddedMQTTWithUsers(t testing.TB, users map[string]string) *MQTT {
	t.Helper()
	b := &MQTT{t: t, address: "127.0.0.1:0", users: users}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// StartEmbeddedMQTTTLS starts an embedded broker that only speaks TLS (URL is mqtts://).
func StartEmbeddedMQTTTLS(t testing.TB, server *tls.Config) *MQTT {
	t.Helper()
	b := &MQTT{t: t, address: "127.0.0.1:0", tls: server}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// StartMQTT returns the broker at MQTT_URL, or an embedded one stopped at the end of the test.
func StartMQTT(t testing.TB) *MQTT {
	t.Helper()
	if u := os.Getenv("MQTT_URL"); u != "" {
		return &MQTT{URL: u, t: t, external: true}
	}
	return StartEmbeddedMQTT(t)
}

// StartEmbeddedMQTT always starts an embedded broker, for tests that stop and restart it.
func StartEmbeddedMQTT(t testing.TB) *MQTT {
	t.Helper()
	b := &MQTT{t: t, address: "127.0.0.1:0"}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// Restart stops the embedded broker and starts a new one on the same address, as a broker
// restart would: connections drop, and (mochi keeping nothing on disk) retained messages and
// sessions are lost.
func (b *MQTT) Restart() {
	b.t.Helper()
	if b.external {
		b.t.Fatal("cannot restart the broker at MQTT_URL")
	}
	b.stop()
	b.start()
}

// Stop stops the embedded broker (Start brings it back on the same address).
func (b *MQTT) Stop() { b.stop() }

// Start starts a stopped embedded broker again.
func (b *MQTT) Start() { b.start() }

func (b *MQTT) start() {
	b.t.Helper()
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	var err error
	if b.users == nil {
		err = s.AddHook(new(auth.AllowHook), nil)
	} else {
		var rules auth.AuthRules
		for user, password := range b.users {
			rules = append(rules, auth.AuthRule{Username: auth.RString(user), Password: auth.RString(password), Allow: true})
		}
		err = s.AddHook(new(auth.Hook), &auth.Options{Ledger: &auth.Ledger{Auth: rules,
			ACL: auth.ACLRules{{Filters: auth.Filters{"#": auth.ReadWrite}}}}})
	}
	if err != nil {
		b.t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: b.address, TLSConfig: b.tls})
	if err := s.AddListener(tcp); err != nil {
		b.t.Fatalf("mqtt broker on %s: %v", b.address, err)
	}
	go s.Serve()
	b.server, b.address = s, tcp.Address()
	b.URL = "mqtt://" + b.address
	if b.tls != nil {
		b.URL = "mqtts://" + b.address
	}
}

func (b *MQTT) stop() {
	if b.server != nil {
		b.server.Close()
		b.server = nil
	}
}
