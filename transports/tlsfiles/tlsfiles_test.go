package tlsfiles

import (
	"bytes"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// A rotated pair is served from the next handshake after the interval; a pair that does not
// load leaves the previous one in service.
func TestReloadsWhenTheFilesChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(cert, key []byte) {
		t.Helper()
		for f, data := range map[string][]byte{certFile: cert, keyFile: key} {
			if err := os.WriteFile(f, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, second := brokers.NewTLS(t), brokers.NewTLS(t)
	write(first.CertPEM, first.KeyPEM)
	clock := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	logs := &testkit.Buffer{}
	c := testkit.Must(Load(certFile, keyFile, WithClock(clock), WithLogger(slog.New(slog.NewTextHandler(logs, nil)))))
	serves := func(want brokers.TLS) bool {
		got := c.get()
		return len(got.Certificate) > 0 && bytes.Equal(got.Certificate[0], der(t, want.CertPEM))
	}
	if !serves(first) {
		t.Fatal("not serving the first pair")
	}
	write(second.CertPEM, second.KeyPEM)
	if !serves(first) {
		t.Error("reloaded before the interval")
	}
	clock.Step(DefaultInterval)
	if !serves(second) {
		t.Fatal("the rotated pair is not served")
	}
	write([]byte("half a certificate"), second.KeyPEM)
	clock.Step(DefaultInterval)
	if !serves(second) || !strings.Contains(logs.String(), "do not load") {
		t.Errorf("a broken pair: not the previous one served, or not logged:\n%s", logs.String())
	}
}

func TestLoadNamesTheFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := Load(certFile, keyFile); err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("missing files: %v", err)
	}
	os.WriteFile(certFile, []byte("x"), 0o600)
	os.WriteFile(keyFile, []byte("y"), 0o600)
	if _, err := Load(certFile, keyFile); err == nil || !strings.Contains(err.Error(), "tls.crt") || !strings.Contains(err.Error(), "tls.key") {
		t.Errorf("bad files: %v", err)
	}
}

// der is the first certificate of a PEM file, as tls.Certificate holds it.
func der(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}
