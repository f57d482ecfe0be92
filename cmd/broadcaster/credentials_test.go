package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// Credentials given as files (mounted Secrets) reach the brokers: an MQTT user name and
// password, a NATS user and password, a NATS token. The brokers want them, so the mesh
// arriving proves they were presented.
func TestTransportCredentialsFromFiles(t *testing.T) {
	t.Parallel()
	secrets := t.TempDir()
	secret := func(name, value string) string {
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := testkit.CopyDir(t, "../../examples/mesh")

	t.Run("mqtt user and password", func(t *testing.T) {
		t.Parallel()
		broker := brokers.StartEmbeddedMQTTWithUsers(t, map[string]string{"mesh": "s3cret"})
		prefix := fmt.Sprintf("creds/%d", rand.Int())
		base, _ := startRun(t, dir, "--mqtt", broker.URL, "--mqtt-topic-prefix", prefix, "--mqtt-username", "mesh",
			"--mqtt-password-file", secret("mqtt-password", "s3cret"))
		series := fmt.Sprintf(`broadcaster_transport_behind_changes{transport="mqtt %s/#"}`, prefix)
		testkit.Eventually(t, "the MQTT broker to take every change", 30*time.Second, func() bool {
			m := scrape(t, base)
			behind, ok := m[series]
			return ok && behind == 0 && m[fmt.Sprintf(`broadcaster_transport_last_delivery_timestamp_seconds{transport="mqtt %s/#"}`, prefix)] > 0
		})
	})

	for _, tt := range []struct {
		name, login string
		server      []string
		flags       []string
	}{
		{"nats user and password", "nats:s3cret@", []string{"--user", "nats", "--pass", "s3cret"},
			[]string{"--nats-user", "nats", "--nats-password-file", secret("nats-password", "s3cret")}},
		{"nats token", "t0ken@", []string{"--auth", "t0ken"}, []string{"--nats-token-file", secret("nats-token", "t0ken")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			server := brokers.StartEmbeddedNATSWithAuth(t, tt.server...)
			prefix := fmt.Sprintf("creds.n%d", rand.Int())
			startRun(t, dir, append([]string{"--nats", server.URL, "--nats-subject-prefix", prefix}, tt.flags...)...)
			withLogin := strings.Replace(server.URL, "nats://", "nats://"+tt.login, 1)
			testkit.Eventually(t, "the mesh in the KV bucket", 30*time.Second, func() bool {
				entities, err := testkit.KVEntities(withLogin, nats.BucketName(prefix))
				return err == nil && len(entities) == exampleEntities
			})
		})
	}
}
