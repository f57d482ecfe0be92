package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// runSnapshot runs `broadcaster snapshot args` and returns what it printed.
func runSnapshot(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := snapshot(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("snapshot %q wrote on stderr:\n%s", args, errOut.String())
	}
	return out.String(), err
}

// TestSnapshotWholeGolden prints the example's whole event graph (--whole) against
// testdata/snapshot/example-whole.* (go test -update rewrites them): every kind, every edge.
func TestSnapshotWholeGolden(t *testing.T) {
	t.Parallel()
	for format, ext := range map[string]string{"json": "json", "mermaid": "mmd", "dot": "dot"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			got, err := runSnapshot(t, nil, "--manifests", "../../examples/mesh", "--whole", "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"fulfil-paid-orders", "notify-everywhere", "orders-senders", "invoice-printer"} {
				if !strings.Contains(got, want) {
					t.Errorf("the whole graph lacks %s", want)
				}
			}
			path := filepath.Join("testdata", "snapshot", "example-whole."+ext)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := mustRead(t, path); got != want {
				t.Errorf("%s differs (go test -run TestSnapshotWholeGolden -update rewrites it); got:\n%s", path, got)
			}
		})
	}
}

// TestSnapshotGolden prints the example mesh in every format, from the manifests directory,
// against testdata/snapshot/example.* (go test -update rewrites them).
func TestSnapshotGolden(t *testing.T) {
	t.Parallel()
	for format, ext := range map[string]string{"json": "json", "yaml": "yaml", "mermaid": "mmd", "dot": "dot"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			got, err := runSnapshot(t, nil, "--manifests", "../../examples/mesh", "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := runSnapshot(t, nil, "--manifests", "../../examples/mesh", "--output", format)
			if again != got {
				t.Errorf("two runs differ:\n%s\n---\n%s", got, again)
			}
			path := filepath.Join("testdata", "snapshot", "example."+ext)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := mustRead(t, path); got != want {
				t.Errorf("%s differs (go test -run TestSnapshotGolden -update rewrites it); got:\n%s", path, got)
			}
		})
	}
}

// The JSON is GET /v1/getEventMesh's document: the golden equals the golden run_test.go keeps
// of what the endpoint serves, up to indentation.
func TestSnapshotJSONIsTheEndpointsDocument(t *testing.T) {
	t.Parallel()
	got, err := runSnapshot(t, nil, "--manifests", "../../examples/mesh")
	if err != nil {
		t.Fatal(err)
	}
	if compact(t, got) != compact(t, mustRead(t, filepath.Join("testdata", "examples-mesh.json"))) {
		t.Errorf("snapshot -o json is not the served mesh:\n%s", got)
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestSnapshotFromBroadcaster reads a running broadcaster with and without token auth and
// over TLS, and prints what the manifests give; a missing or wrong token is a clear error.
func TestSnapshotFromBroadcaster(t *testing.T) {
	t.Parallel()
	want, err := runSnapshot(t, nil, "--manifests", "../../examples/mesh", "-o", "mermaid")
	if err != nil {
		t.Fatal(err)
	}
	open, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"))
	tmp := t.TempDir()
	tokens, tokenFile := filepath.Join(tmp, "tokens"), filepath.Join(tmp, "token")
	os.WriteFile(tokens, []byte("# the test's token\ns3cret\n"), 0o600)
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	guarded, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"), "--tokens-file", tokens)

	certs := brokers.NewTLS(t)
	target, _ := url.Parse(guarded)
	tlsFront := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	tlsFront.TLS = certs.Server
	tlsFront.StartTLS()
	defer tlsFront.Close()
	caFile := filepath.Join(tmp, "ca.pem")
	os.WriteFile(caFile, certs.CAPEM, 0o644)

	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"open", nil, []string{"--url", open}},
		{"an endpoint URL", nil, []string{"--url", open + "/v1/getEventMesh"}},
		{"--token", nil, []string{"--url", guarded, "--token", "s3cret"}},
		{"--token-file", nil, []string{"--url", guarded, "--token-file", tokenFile}},
		{"$BROADCASTER_TOKEN", map[string]string{"BROADCASTER_TOKEN": "s3cret"}, []string{"--url", guarded}},
		{"https with --ca-file", nil, []string{"--url", tlsFront.URL, "--token-file", tokenFile, "--ca-file", caFile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The broadcaster answers 503 until loaded; snapshot waits for it.
			got, err := runSnapshot(t, tt.env, append(tt.args, "-o", "mermaid")...)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}

	for _, tt := range []struct {
		name string
		args []string
		says []string
	}{
		{"no token", []string{"--url", guarded}, []string{"--url " + guarded, "401", "--token-file", "BROADCASTER_TOKEN"}},
		{"wrong token", []string{"--url", guarded, "--token", "nope"}, []string{"--url " + guarded, "401", "refused the token"}},
		{"unknown CA", []string{"--url", tlsFront.URL, "--token", "s3cret"}, []string{"--url " + tlsFront.URL, "certificate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runSnapshot(t, nil, tt.args...)
			if err == nil || errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a run-time failure", err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
}

// TestSnapshotErrors: bad usage is errUsage (exit 2) naming the flag; what fails at run time
// (nothing listening, a kubeconfig whose server does not answer) is not, and names the URL or
// file.
func TestSnapshotErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	emptyToken := filepath.Join(tmp, "empty")
	os.WriteFile(emptyToken, []byte("\n"), 0o600)
	notPEM := filepath.Join(tmp, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	deadServer := filepath.Join(tmp, "kubeconfig")
	os.WriteFile(deadServer, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	ln := httptest.NewServer(nil)
	closed := ln.URL
	ln.Close()

	usage := []struct {
		args []string
		says string
	}{
		{nil, "exactly one of --manifests"},
		{[]string{"--manifests", "a", "--url", "http://x"}, "exactly one of"},
		{[]string{"--manifests", "../../examples/mesh", "-o", "svg"}, `-o "svg"`},
		{[]string{"--manifests", "../../examples/mesh", "--token", "x"}, "go with --url"},
		{[]string{"--manifests", "../../examples/mesh", "extra"}, `unexpected arguments "extra"`},
		{[]string{"--manifests", "../../examples/mesh", "--timeout", "0s"}, "--timeout"},
		{[]string{"--manifests", filepath.Join(tmp, "missing")}, "--manifests " + filepath.Join(tmp, "missing")},
		{[]string{"--kubeconfig", filepath.Join(tmp, "missing")}, "--kubeconfig " + filepath.Join(tmp, "missing")},
		{[]string{"--url", "127.0.0.1:8080"}, `--url: not a broadcaster URL: "127.0.0.1:8080"`},
		{[]string{"--url", "ftp://x"}, `--url: not a broadcaster URL: "ftp://x"`},
		{[]string{"--url", "http://x", "--token", "a", "--token-file", "b"}, "not both"},
		{[]string{"--url", "http://x", "--token-file", filepath.Join(tmp, "missing")}, "--token-file"},
		{[]string{"--url", "http://x", "--token-file", emptyToken}, "--token-file " + emptyToken},
		{[]string{"--url", "http://x", "--ca-file", notPEM}, "--ca-file " + notPEM},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	}
	for _, tt := range usage {
		_, err := runSnapshot(t, nil, tt.args...)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("snapshot %q: %v; want a usage error saying %q", tt.args, err, tt.says)
		}
	}

	failures := []struct {
		args []string
		says string
	}{
		{[]string{"--url", closed}, "--url " + closed},
		{[]string{"--kubeconfig", deadServer, "--timeout", "2s"}, "--kubeconfig " + deadServer},
	}
	for _, tt := range failures {
		_, err := runSnapshot(t, nil, tt.args...)
		if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("snapshot %q: %v; want a run-time failure saying %q", tt.args, err, tt.says)
		}
	}

	if _, err := runSnapshot(t, nil, "-h"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// TestSnapshotFromCluster reads a real API server's initial listing through a kubeconfig file
// and prints its graph; the command stops once the listing is in.
func TestSnapshotFromCluster(t *testing.T) {
	t.Parallel()
	cfg := testkube.Start(t)
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop"}}}
	if _, err := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []struct {
		gvr schema.GroupVersionResource
		obj map[string]any
	}{
		{schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"},
			map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": map[string]any{"name": "orders", "namespace": "shop"}}},
		{schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1beta2", Resource: "eventtypes"},
			map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType", "metadata": map[string]any{"name": "order-paid", "namespace": "shop"},
				"spec": map[string]any{"type": "com.example.order.paid", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"}}}},
	} {
		if _, err := client.Resource(obj.gvr).Namespace("shop").Create(ctx, &unstructured.Unstructured{Object: obj.obj}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	path := testkube.WriteKubeconfig(t, cfg)
	got, err := runSnapshot(t, nil, "--kubeconfig", path, "-o", "mermaid", "--timeout", "2m")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`subgraph ns0["namespace shop"]`, `n0[["orders"]]:::broker`, `n1["order-paid<br/>com.example.order.paid"]:::eventtype`, "n0 --> n1"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}
