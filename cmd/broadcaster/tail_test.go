package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

func startTail(t *testing.T, args ...string) *testkit.Buffer {
	t.Helper()
	out := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tail(ctx, args, out, io.Discard, false) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tail: %v", err)
		}
	})
	return out
}

func TestTailWatchText(t *testing.T) {
	t.Parallel()
	dir := copyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir)
	out := startTail(t, "--watch", base, "--color", "always")
	testkit.Eventually(t, "the snapshot line", 10*time.Second, func() bool { return strings.Contains(out.String(), "snapshot: epoch ") })

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

func TestTailNATSJSON(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	out := startTail(t, "--nats", srv.URL, "--output", "json")
	dir := copyDir(t, "../../examples/mesh")
	startRun(t, dir, "--nats", srv.URL)
	round := 0
	testkit.Eventually(t, "json lines", 10*time.Second, func() bool {
		if strings.Count(out.String(), "\n") >= 5 {
			return true
		}
		churn(t, dir, round) // in case tail subscribed after the opening events went by
		round++
		return false
	})
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[:5] {
		var d mesh.EventData
		if err := json.Unmarshal([]byte(line), &d); err != nil || d.Key == "" || d.Sequence == 0 || len(d.Entity) == 0 {
			t.Fatalf("line %q: %+v %v", line, d, err)
		}
	}
}

func TestTailRejects(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"--watch", "x", "--nats", "y"}, {"--nats", "y", "--output", "yaml"}, {"--nats", "y", "--color", "pink"}} {
		if err := tail(context.Background(), args, io.Discard, io.Discard, false); err == nil {
			t.Errorf("tail %q accepted", args)
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
