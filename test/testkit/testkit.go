package testkit

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Must returns v, and panics if err is set: for set-up steps that cannot fail unless the test
// itself is wrong.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Eventually waits until cond holds, checking every few milliseconds, and fails the test
// naming what when it has not within timeout. It returns how long it waited.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// Buffer is a bytes.Buffer that a logger and a test may use at once.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// DecodeRequest reads the mesh-delta CloudEvent an HTTP sink received (binary or structured).
func DecodeRequest(r *http.Request) (mesh.Change, error) {
	ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
	if err != nil {
		return mesh.Change{}, err
	}
	return codec.Decode(*ev)
}

// DeleteJetStream removes a stream and a KV bucket a test created on a shared server.
func DeleteJetStream(url, stream, bucket string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = js.DeleteStream(ctx, stream)
	_ = js.DeleteKeyValue(ctx, bucket)
}
