package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

func startTail(t *testing.T, env map[string]string, terminal bool, args ...string) *testkit.Buffer {
	t.Helper()
	out := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tail(ctx, args, func(k string) string { return env[k] }, out, io.Discard, terminal) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tail: %v", err)
		}
	})
	return out
}

// --watch lists the snapshot's entities, then prints each change in colour.
func TestTailWatchText(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir)
	out := startTail(t, nil, false, "--watch", base+"/v1/watch?epoch=old", "--color", "always") // a full endpoint URL works too, its query dropped
	testkit.Eventually(t, "the snapshot and its entities", 10*time.Second, func() bool {
		return strings.Contains(out.String(), "snapshot: epoch ") && strings.Contains(out.String(), fmt.Sprintf("%d entities (%d shown)", exampleEntities, exampleEntities)) &&
			strings.Contains(out.String(), "  broker       eventing.knative.dev/Broker/payments/default\n")
	})
	os.WriteFile(filepath.Join(dir, "payments", "payments.yaml"), []byte(strings.ReplaceAll(
		mustRead(t, filepath.Join(dir, "payments", "payments.yaml")), "billing-service", "billing-v2")), 0o644)
	testkit.Eventually(t, "the update line", 10*time.Second, func() bool {
		return strings.Contains(out.String(), "eventing.knative.dev/EventType/payments/refund-issued") &&
			strings.Contains(out.String(), `consumedBy: ["billing-service"] → ["billing-v2"]`)
	})
	if !strings.Contains(out.String(), ansiYellow+"eventtype    updated") {
		t.Errorf("updates are not yellow:\n%q", out.String())
	}
}

// Filters by namespace and kind apply to the snapshot and the changes; YAML documents carry
// timestamps; a token comes from a file.
func TestTailFiltersYAMLAndToken(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _ := startRun(t, dir, "--tokens-file", tokens)
	out := startTail(t, nil, false, "--watch", base, "--token-file", tokens, "--namespace", "payments", "--kind", "eventtype",
		"-o", "yaml", "--timestamps")
	testkit.Eventually(t, "the payments event types", 10*time.Second, func() bool {
		return strings.Count(out.String(), "kind: eventtype\n") == 2
	})
	if strings.Contains(out.String(), "kind: broker") || strings.Contains(out.String(), "/shop/") || !strings.Contains(out.String(), "\ntime: ") {
		t.Errorf("the filters or timestamps do not hold:\n%s", out.String())
	}
	env := map[string]string{"BROADCASTER_TOKEN": "s3cret"}
	fromEnv := startTail(t, env, false, "--watch", base, "--kind", "broker", "-o", "json")
	testkit.Eventually(t, "the brokers as JSON lines", 10*time.Second, func() bool { return strings.Count(fromEnv.String(), `"kind":"broker"`) == 2 })

	err := tail(context.Background(), []string{"--watch", base}, noEnv, io.Discard, io.Discard, false)
	if err == nil || !strings.Contains(err.Error(), "answered 401") {
		t.Errorf("without a token: %v", err)
	}
}

// A tail started after the broadcaster published lists NATS's KV bucket (the mesh), then
// follows the changes; JSON lines.
func TestTailLateNATS(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir, "--nats", srv.URL)
	testkit.Eventually(t, "the KV filled", 30*time.Second, func() bool {
		return scrape(t, base)[`broadcaster_transport_behind_changes{transport="nats knative.eventmesh.>"}`] == 0 &&
			scrape(t, base)[`broadcaster_transport_last_delivery_timestamp_seconds{transport="nats knative.eventmesh.>"}`] > 0
	})
	out := startTail(t, nil, false, "--nats", srv.URL, "--output", "json")
	testkit.Eventually(t, "the mesh listed", 10*time.Second, func() bool { return strings.Count(out.String(), `"entity":`) >= 15 })
	churn(t, dir, 0)
	testkit.Eventually(t, "a change after the listing", 10*time.Second, func() bool { return strings.Contains(out.String(), `"op":"`) })
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil || doc["key"] == nil || doc["entity"] == nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
}

// Unreachable destinations fail at once, not after retrying for ever.
func TestTailFailsFast(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{
		{"--watch", "http://" + closed},
		{"--mqtt", "mqtt://" + closed},
		{"--nats", "nats://" + closed},
	} {
		start := time.Now()
		err := tail(context.Background(), append(args, "--connect-timeout", "2s"), noEnv, io.Discard, io.Discard, false)
		if err == nil || !strings.Contains(err.Error(), "cannot reach") || errors.Is(err, errUsage) {
			t.Errorf("tail %q: %v", args, err)
		}
		t.Logf("tail %q failed after %v: %v", args, time.Since(start).Round(time.Millisecond), err)
	}
}

// NO_COLOR turns colour off on a terminal, unless asked for.
func TestTailNoColor(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"))
	plain := startTail(t, map[string]string{"NO_COLOR": "1"}, true, "--watch", base)
	coloured := startTail(t, nil, true, "--watch", base)
	testkit.Eventually(t, "both snapshots", 10*time.Second, func() bool {
		return strings.Contains(plain.String(), "snapshot") && strings.Contains(coloured.String(), "snapshot")
	})
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(coloured.String(), "\x1b[") {
		t.Errorf("NO_COLOR: %q; a terminal without it: %q", plain.String()[:40], coloured.String()[:40])
	}
}

func TestTailRejects(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"--watch", "http://x", "--nats", "nats://y"}, {"--nats", "nats://y", "--output", "xml"},
		{"--nats", "nats://y", "--color", "pink"}, {"--watch", "127.0.0.1:8080"}, {"--mqtt", "http://broker"}, {"--nats", "broker:4222"},
		{"--nats", "nats://y", "--kind", "pod"}, {"--watch", "http://x", "--cert-file", "a"}, {"--watch", "http://x", "--token-file", "/nonexistent"}} {
		if err := tail(context.Background(), args, noEnv, io.Discard, io.Discard, false); !errors.Is(err, errUsage) {
			t.Errorf("tail %q: %v, want a usage error", args, err)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A tail of MQTT lists the retained messages as the mesh's entities, then prints changes.
func TestTailMQTTRetained(t *testing.T) {
	t.Parallel()
	broker := brokers.StartMQTT(t)
	prefix := fmt.Sprintf("tail/%d/mesh", rand.Int())
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir, "--mqtt", broker.URL, "--mqtt-topic-prefix", prefix)
	testkit.Eventually(t, "the retained messages", 30*time.Second, func() bool {
		return scrape(t, base)[fmt.Sprintf(`broadcaster_transport_last_delivery_timestamp_seconds{transport="mqtt %s/#"}`, prefix)] > 0
	})
	out := startTail(t, nil, false, "--mqtt", broker.URL, "--mqtt-topic-prefix", prefix)
	testkit.Eventually(t, "the mesh listed", 10*time.Second, func() bool {
		return strings.Count(out.String(), "\n  ") >= 14 && strings.Contains(out.String(), "  broker       eventing.knative.dev/Broker/shop/")
	})
	churn(t, dir, 0)
	testkit.Eventually(t, "a change line", 10*time.Second, func() bool { return strings.Contains(out.String(), " added ") })
}
