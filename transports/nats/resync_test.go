package nats_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// A snapshot far larger than one message comes back whole over request-reply.
func TestResyncOverRequestReply(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	eng := engine.New("ep")
	for i := range 2000 {
		eng.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
			"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("broker-", i), "namespace": "ns"}}}))
	}
	n := unique()
	enc, _ := codec.NewEncoder("")
	p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithCoreOnly(), natspub.WithSubjectPrefix(n.prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready atomic.Bool
	go p.ServeResync(ctx, func() mesh.State { return eng.Snapshot() }, ready.Load, 16*1024) // the mesh is ~250 KB: about 16 chunks

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	snapshots := natsconsumer.Snapshots(nc, mesh.NATSResyncSubject(n.prefix))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = snapshots.Snapshot(ctx)
		if err != nil && strings.Contains(err.Error(), "still loading") {
			break // not ready: an error, never a partial mesh
		}
		if time.Now().After(deadline) {
			t.Fatalf("before ready: %v", err)
		}
	}
	ready.Store(true)
	var got mesh.Snapshot
	for {
		got, err = snapshots.Snapshot(ctx) // the responder may not be subscribed yet
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	want, _ := eng.Snapshot().Mesh()
	if got.Epoch != "ep" || got.Sequence != eng.Sequence() || !reflect.DeepEqual(got.Mesh, want) {
		t.Fatalf("snapshot at %s-%d with %d brokers, want ep-%d with %d", got.Epoch, got.Sequence, len(got.Mesh.Brokers), eng.Sequence(), len(want.Brokers))
	}
	// No reply claims to be a CloudEvent: a chunk is a piece of one JSON document.
	inbox := nats.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(mesh.NATSResyncSubject(n.prefix), inbox, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		m, err := replies.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i+1, err)
		}
		if ct := m.Header.Get("Content-Type"); ct != "" {
			t.Errorf("reply chunk %s has Content-Type %q", m.Header.Get(mesh.HeaderChunk), ct)
		}
		if c := m.Header.Get(mesh.HeaderChunk); strings.HasPrefix(c, fmt.Sprint(i+1, "/")) && strings.HasSuffix(c, fmt.Sprint("/", i+1)) {
			break // the last chunk
		}
	}
}

// A crowd of requests while a reply is being written costs at most the bounded queue: the
// requests beyond 256 (or beyond 1 MiB of request bodies) are dropped, not queued, and the
// responder answers again once it has caught up.
func TestResyncRequestQueueIsBounded(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	for _, tc := range []struct {
		name        string
		requests    int
		body        int // bytes per request
		maxAnswered int // of the flood, with one request in the handler meanwhile
	}{
		{name: "256 requests", requests: 1000, maxAnswered: 256},
		{name: "1 MiB of requests", requests: 400, body: 8 << 10, maxAnswered: (1 << 20) / (8 << 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := engine.New("ep")
			eng.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
				"kind": "Broker", "metadata": map[string]any{"name": "default", "namespace": "ns"}}}))
			n := unique()
			enc, _ := codec.NewEncoder("")
			p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithCoreOnly(), natspub.WithSubjectPrefix(n.prefix))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			// The first request holds the responder in its reply until the flood has arrived.
			entered, release := make(chan struct{}), make(chan struct{})
			var calls atomic.Int64
			snapshot := func() mesh.State {
				if calls.Add(1) == 1 {
					close(entered)
					<-release
				}
				return eng.Snapshot()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- p.ServeResync(ctx, snapshot, func() bool { return true }, 0) }()
			defer func() { cancel(); <-served }()

			nc, err := nats.Connect(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			// One subscription gets every reply, in the order the responder sent them: when a
			// probe's reply is handled, every earlier reply has been counted.
			inbox := nats.NewInbox()
			var answered atomic.Int64
			probed := make(chan struct{}, 1)
			if _, err := nc.Subscribe(inbox+".>", func(m *nats.Msg) {
				switch {
				case strings.HasPrefix(m.Subject, inbox+".flood."):
					answered.Add(1)
				case strings.HasPrefix(m.Subject, inbox+".probe."):
					select {
					case probed <- struct{}{}:
					default:
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			subject := mesh.NATSResyncSubject(n.prefix)
			deadline := time.Now().Add(30 * time.Second)
			for first := false; !first; { // the responder may not be subscribed yet
				if err := nc.PublishRequest(subject, inbox+".first", nil); err != nil {
					t.Fatal(err)
				}
				select {
				case <-entered:
					first = true
				case <-time.After(time.Second):
				}
				if time.Now().After(deadline) {
					t.Fatal("the responder never took a request")
				}
			}
			received := natspub.ReceivedMessages(p)
			body := make([]byte, tc.body)
			for i := range tc.requests {
				if err := nc.PublishRequest(subject, fmt.Sprint(inbox, ".flood.", i), body); err != nil {
					t.Fatal(err)
				}
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			for natspub.ReceivedMessages(p) < received+uint64(tc.requests) {
				if time.Now().After(deadline) {
					t.Fatalf("the responder received %d of %d requests", natspub.ReceivedMessages(p)-received, tc.requests)
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(release)
			// A requester whose request was dropped asks again, and is answered once the queue
			// has room.
			for i := 0; ; i++ {
				if err := nc.PublishRequest(subject, fmt.Sprint(inbox, ".probe.", i), nil); err != nil {
					t.Fatal(err)
				}
				select {
				case <-probed:
				case <-time.After(time.Second):
					if time.Now().After(deadline) {
						t.Fatal("no probe was answered after the flood")
					}
					continue
				}
				break
			}
			t.Logf("%d of %d flooding requests answered", answered.Load(), tc.requests)
			if got := int(answered.Load()); got > tc.maxAnswered || got == 0 {
				t.Fatalf("%d of %d flooding requests answered, want 1 to %d (the rest dropped)", got, tc.requests, tc.maxAnswered)
			}
		})
	}
}
