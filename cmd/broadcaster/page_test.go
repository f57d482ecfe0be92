package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
)

// namedBroadcaster answers GET /v1/mesh like a broadcaster of cluster name (none when empty),
// and says what Authorization it was given.
func namedBroadcaster(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name != "" {
			w.Header().Set(mesh.HeaderCluster, name)
		}
		w.Header().Set("Content-Type", mesh.ContentTypeJSON)
		io.WriteString(w, `{"path":"`+r.URL.Path+`","authorization":"`+r.Header.Get("Authorization")+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Usage errors of `broadcaster page` exit 2 and name the flag or the URLs at fault; a
// broadcaster that never answers is a failure (1).
func TestPageCommandErrors(t *testing.T) {
	t.Parallel()
	east, anonymous := namedBroadcaster(t, "east"), namedBroadcaster(t, "")
	noToken := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		name   string
		args   []string
		status int
		says   []string
	}{
		{"no url", []string{"page"}, exitUsage, []string{"give at least one --url"}},
		{"not a url", []string{"page", "--url", "east.mesh:8080"}, exitUsage, []string{"--url", `"east.mesh:8080"`}},
		{"not a cluster name", []string{"page", "--url", "east_1=http://127.0.0.1:1"}, exitUsage, []string{"--url", "east_1"}},
		{"no cluster name", []string{"page", "--url", east, "--url", anonymous}, exitUsage, []string{anonymous, "no cluster name", "NAME=URL"}},
		{"one name twice", []string{"page", "--url", east, "--url", "east=" + anonymous}, exitUsage, []string{east, "east=" + anonymous, `both cluster "east"`}},
		{"a token file missing", []string{"page", "--url", east, "--token-file", noToken}, exitUsage, []string{"--token-file", noToken}},
		{"bad timeout", []string{"page", "--url", east, "--connect-timeout", "0s"}, exitUsage, []string{"--connect-timeout"}},
		{"a certificate without its key", []string{"page", "--url", east, "--tls-cert-file", noToken}, exitUsage, []string{"--tls-cert-file and --tls-key-file"}},
		{"a certificate missing", []string{"page", "--url", "east=" + east, "--tls-cert-file", noToken, "--tls-key-file", noToken, "--listen", "127.0.0.1:0"}, exitUsage, []string{"--tls-cert-file", noToken}},
		{"arguments", []string{"page", "--url", east, "extra"}, exitUsage, []string{`unexpected arguments "extra"`}},
		{"never answers", []string{"page", "--url", "http://127.0.0.1:1", "--connect-timeout", "300ms"}, exitFailure, []string{"http://127.0.0.1:1", "--connect-timeout 300ms"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			status := runCommand(ctx, tt.args, noEnv, &stdout, &stderr, false)
			if status != tt.status {
				t.Errorf("status %d, want %d; stderr %s", status, tt.status, stderr.String())
			}
			for _, s := range tt.says {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not say %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

// `broadcaster page` learns a name, takes another from NAME=, serves the page listing both
// and forwards each cluster's endpoints with the token of $BROADCASTER_TOKEN; it stops with
// its context.
func TestPageCommandServes(t *testing.T) {
	t.Parallel()
	east, unnamed := namedBroadcaster(t, "east"), namedBroadcaster(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	getenv := func(k string) string { return map[string]string{envToken: "env-token"}[k] }
	go func() {
		done <- pageCommand(ctx, []string{"--url", east, "--url", "west=" + unnamed, "--listen", "127.0.0.1:0"}, getenv, &stderr,
			func(addr string) { addrs <- addr })
	}()
	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("page: %v", err)
	}
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	if doc := get("/"); !strings.Contains(doc, `id="clusters">["east","west"]<`) {
		t.Error("the page does not list east and west")
	}
	if got := get("/clusters/west/v1/getEventMesh"); got != `{"path":"/v1/getEventMesh","authorization":"Bearer env-token"}` {
		t.Errorf("west's snapshot: %s", got)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Host = "rebound.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign Host name: %v %v, want 403", resp.StatusCode, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after the stop: %v", err)
	}
	if !strings.Contains(stderr.String(), "clusters=\"east ("+east+"), west ("+unnamed+")\"") {
		t.Errorf("the log does not say what is served:\n%s", stderr.String())
	}
}

// Over https both ways: an https broadcaster trusted through --ca-file, and the page served
// with --tls-cert-file over HTTP/2, so that every cluster's watch stream shares one connection.
func TestPageCommandTLS(t *testing.T) {
	t.Parallel()
	certs := brokers.NewTLS(t)
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(mesh.HeaderCluster, "east")
		io.WriteString(w, `{}`)
	}))
	upstream.TLS = certs.Server
	upstream.StartTLS()
	defer upstream.Close()
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": certs.CAPEM, "cert.pem": certs.CertPEM, "key.pem": certs.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- pageCommand(ctx, []string{"--url", upstream.URL, "--ca-file", filepath.Join(dir, "ca.pem"), "--listen", "127.0.0.1:0",
			"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem")}, noEnv, &stderr,
			func(addr string) { addrs <- addr })
	}()
	var base string
	select {
	case addr := <-addrs:
		base = "https://" + addr
	case err := <-done:
		t.Fatalf("page: %v\n%s", err, stderr.String())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(), ForceAttemptHTTP2: true}}
	resp, err := client.Get(base + "/clusters/east/v1/mesh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /clusters/east/v1/mesh: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after the stop: %v", err)
	}
}
