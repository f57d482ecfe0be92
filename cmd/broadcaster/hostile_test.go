package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// hostileDescription holds what the API server accepts in a string and a terminal must not
// get raw: an OSC title change, a screen clear, C1 controls (CSI, OSC, ST), DEL, a
// non-character, a bidi override and a newline that would forge an output line.
const hostileDescription = "x\x1b]0;owned\a\x1b[2J \u009b2J \u009d0;t\u009c \x7f \ufffe \u202egnp.exe\nforged line"

// hostileMesh is a manifests directory with one broker and two event types, one of them
// carrying hostileDescription.
func hostileMesh(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	quoted, _ := json.Marshal(hostileDescription)
	quoted = printable.JSON(quoted) // escaped, a JSON string is a YAML double-quoted scalar
	manifest := `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: b, namespace: ns}
---
apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: evil, namespace: ns}
spec:
  type: com.example.evil
  description: ` + string(quoted) + `
  reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b}
---
apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: plain, namespace: ns}
spec:
  type: com.example.plain
  description: plain
  reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: b}
`
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rawControls lists the unsafe characters that appear raw in out (newlines between lines
// aside), and bytes that are not UTF-8.
func rawControls(out string) []string {
	var found []string
	for i, r := range out {
		if r == utf8.RuneError && !strings.HasPrefix(out[i:], "\ufffd") {
			found = append(found, fmt.Sprintf("%q", out[i]))
			continue
		}
		if r != '\n' && printable.Unsafe(r) {
			found = append(found, string(r))
		}
	}
	return found
}

// A description with control characters neither breaks nor hides the mesh: snapshot -o yaml
// and -o json print every entity, the description reads back exactly, and nothing reaches the
// terminal raw. (Before: -o yaml exited 1 with "control characters are not allowed"; -o json
// passed the C1 controls raw.)
func TestSnapshotHostileStrings(t *testing.T) {
	t.Parallel()
	dir := hostileMesh(t)
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, err := runSnapshot(t, nil, "--manifests", dir, "-o", format)
			if err != nil {
				t.Fatalf("snapshot -o %s: %v", format, err)
			}
			if raw := rawControls(out); len(raw) > 0 {
				t.Errorf("raw control characters %q in:\n%s", raw, out)
			}
			var m struct {
				EventTypes []struct{ Name, Description string } `json:"eventTypes" yaml:"eventTypes"`
			}
			if format == "json" {
				err = json.Unmarshal([]byte(out), &m)
			} else {
				err = yaml.Unmarshal([]byte(out), &m)
			}
			if err != nil {
				t.Fatalf("the %s does not read back: %v\n%s", format, err, out)
			}
			if len(m.EventTypes) != 2 || m.EventTypes[0].Description != hostileDescription || m.EventTypes[1].Description != "plain" {
				t.Errorf("the %s lost data: %+v", format, m.EventTypes)
			}
		})
	}
	for _, format := range []string{"mermaid", "dot"} {
		out, err := runSnapshot(t, nil, "--manifests", dir, "-o", format)
		if err != nil {
			t.Fatalf("snapshot -o %s: %v", format, err)
		}
		if raw := rawControls(out); len(raw) > 0 {
			t.Errorf("-o %s: raw control characters %q in:\n%s", format, raw, out)
		}
	}
}

// tail prints every entity of a hostile mesh in YAML (before, the one with the description was
// dropped silently), JSON lines read back exactly, and the text format's update summary shows
// the control characters escaped on one line.
func TestTailHostileStrings(t *testing.T) {
	t.Parallel()
	dir := hostileMesh(t)
	base, _ := startRun(t, dir)
	yamlOut := startTail(t, nil, false, "--watch", base, "-o", "yaml")
	jsonOut := startTail(t, nil, false, "--watch", base, "-o", "json")
	text := startTail(t, nil, false, "--watch", base)
	testkit.Eventually(t, "every entity in YAML and JSON", 10*time.Second, func() bool {
		return strings.Count(yamlOut.String(), "kind: eventtype\n") == 2 && strings.Count(jsonOut.String(), `"kind":"eventtype"`) == 2 &&
			strings.Contains(text.String(), "3 entities (3 shown)")
	})
	for _, out := range []string{yamlOut.String(), jsonOut.String()} {
		if raw := rawControls(out); len(raw) > 0 {
			t.Errorf("raw control characters %q in:\n%s", raw, out)
		}
	}
	var descriptions []string
	dec := yaml.NewDecoder(strings.NewReader(yamlOut.String()))
	for {
		var doc struct {
			Entity struct{ Description string }
		}
		if dec.Decode(&doc) != nil {
			break
		}
		descriptions = append(descriptions, doc.Entity.Description)
	}
	if !strings.Contains(strings.Join(descriptions, "|"), hostileDescription) {
		t.Errorf("the YAML documents do not carry the description: %q", descriptions)
	}
	for _, line := range strings.Split(strings.TrimSpace(jsonOut.String()), "\n") {
		var doc struct{ Entity struct{ Description string } }
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Errorf("not a JSON line: %v: %q", err, line)
		}
	}
	if !strings.Contains(jsonOut.String(), `\u009b2J`) {
		t.Errorf("the C1 control is not escaped in the JSON:\n%s", jsonOut.String())
	}

	// An update: the summary line shows the old and new descriptions, escaped.
	path := filepath.Join(dir, "mesh.yaml")
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(raw, []byte("description: plain"), []byte(`description: "plain\u009b2J\u202e"`), 1), 0o644)
	testkit.Eventually(t, "the update line", 10*time.Second, func() bool { return strings.Contains(text.String(), "updated") })
	out := text.String()
	if raw := rawControls(out); len(raw) > 0 {
		t.Errorf("raw control characters %q in the text output:\n%s", raw, out)
	}
	if !strings.Contains(out, `\\u009b2J\\u202e`) && !strings.Contains(out, `\u009b2J\u202e`) {
		t.Errorf("the summary does not show the controls escaped:\n%s", out)
	}
	if strings.Contains(out, "forged line") {
		t.Errorf("a newline in a string forged an output line:\n%s", out)
	}
}

// In open mode (manifests, no tokens) a foreign Host is refused with a Problem, so a page
// rebinding its name to 127.0.0.1 reads neither the mesh, the page nor the metrics; loopback
// names and the names in server.allowedHosts are served. /metrics asks for the token of
// server.metricsTokenFile when one is set. (Before: every Host was served; /metrics was open.)
func TestOpenModeHostsAndMetricsToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(tokenFile, []byte("m3trics\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"), "--allowed-hosts", "mesh.example.com",
		"--metrics-token-file", tokenFile)
	for _, tt := range []struct {
		host, path, token string
		want              int
	}{
		{"rebind.attacker.example", "/v1/mesh", "", http.StatusForbidden},
		{"rebind.attacker.example:8080", "/", "", http.StatusForbidden},
		{"rebind.attacker.example", "/v1/watch", "", http.StatusForbidden},
		{"localhost:8080", "/healthz", "", http.StatusOK},
		{"mesh.example.com", "/healthz", "", http.StatusOK},
		{"127.0.0.1", "/healthz", "", http.StatusOK},
		{"localhost", "/metrics", "", http.StatusUnauthorized},
		{"localhost", "/metrics", "m3trics", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
		req.Host = tt.host
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %s, GET %s: %d, want %d: %s", tt.host, tt.path, resp.StatusCode, tt.want, body)
			continue
		}
		if tt.want >= 400 {
			var p mesh.Problem
			if json.Unmarshal(body, &p) != nil || p.Error == "" {
				t.Errorf("Host %s, GET %s: not a Problem body: %s", tt.host, tt.path, body)
			}
		}
	}
}

// The log's text format shows what users control (a kind, a description in a change's diff)
// quoted and escaped, never raw; and check-config shows a path with control characters escaped.
func TestLogAndCheckConfigEscape(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	newLogger(&logs, "text", slog.LevelInfo).Info("eventtype updated "+hostileDescription, "key", hostileDescription,
		hostileDescription, "diff")
	if raw := rawControls(strings.TrimSuffix(logs.String(), "\n")); len(raw) > 0 || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("the text log carries %q raw, or more than one line:\n%s", raw, logs.String())
	}
	dir := filepath.Join(t.TempDir(), "mesh\x1b]0;owned\a\u009b2J")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := runCommand(context.Background(), []string{"check-config", "--manifests", dir}, noEnv, &out, &errOut, false)
	if code != exitOK || !strings.Contains(out.String(), `\x1b]0;owned`) {
		t.Errorf("check-config: exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if raw := rawControls(out.String() + errOut.String()); len(raw) > 0 {
		t.Errorf("check-config wrote %q raw", raw)
	}
	code = runCommand(context.Background(), []string{"check-config", "--manifests", dir + "/missing\x1b[2J"}, noEnv, &out, &errOut, false)
	if raw := rawControls(errOut.String()); code != exitUsage || len(raw) > 0 {
		t.Errorf("check-config with a missing directory: exit %d, %q raw in:\n%s", code, raw, errOut.String())
	}
}
