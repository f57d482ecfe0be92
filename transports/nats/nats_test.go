package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

func TestEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, tokens string }{
		{"eventing.knative.dev/Broker/shop/orders", "eventing_2Eknative_2Edev.Broker.shop.orders"},
		{"eventing.knative.dev/EventType/shop/order.created.v1", "eventing_2Eknative_2Edev.EventType.shop.order_2Ecreated_2Ev1"},
		{"messaging.knative.dev/InMemoryChannel/ops/a_b", "messaging_2Eknative_2Edev.InMemoryChannel.ops.a_5Fb"},
		{"/Service/ns/x", "_.Service.ns.x"},
	}
	for _, tt := range tests {
		got := natspub.KeyTokens(mesh.MustParseKey(tt.key))
		if got != tt.tokens {
			t.Errorf("KeyTokens(%q) = %q; want %q", tt.key, got, tt.tokens)
		}
		back, err := natspub.KeyFromTokens(got)
		if err != nil || back.String() != tt.key {
			t.Errorf("KeyFromTokens(%q) = %q, %v; want %q", got, back, err, tt.key)
		}
	}
	// Names that differ only in where their dots are never share a subject.
	a := natspub.KeyTokens(mesh.MustParseKey("a.b/K/ns/c"))
	b := natspub.KeyTokens(mesh.MustParseKey("a/K/ns/b.c"))
	if a == b {
		t.Errorf("ambiguous: %q", a)
	}
	for _, bad := range []string{"x", "a.b.c", "a_Z.b.c.d", "a_4.b.c.d"} {
		if _, err := natspub.KeyFromTokens(bad); err == nil {
			t.Errorf("KeyFromTokens(%q) accepted", bad)
		}
	}
}

func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "a.b", "_", "_2E", "é", "a b>*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := natspub.EscapeToken(s)
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c == '.' || c == '*' || c == '>' || c <= ' ' || c >= 0x7f {
				t.Fatalf("token %q has %q", tok, c)
			}
		}
		back, err := natspub.UnescapeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q → %q → %q, %v", s, tok, back, err)
		}
	})
}

type names struct{ prefix, stream, bucket string }

func unique() names {
	n := rand.Int32()
	return names{fmt.Sprintf("test.n%d.mesh", n), fmt.Sprintf("TEST_%d", n), fmt.Sprintf("test_%d", n)}
}

// dial dials url with the names of n (and opts), and removes the stream and bucket afterwards,
// so a shared server is left as it was.
func dial(t *testing.T, url string, n names, coreOnly bool, opts ...natspub.Option) *natspub.Publisher {
	t.Helper()
	opts = append([]natspub.Option{natspub.WithSubjectPrefix(n.prefix), natspub.WithStream(n.stream), natspub.WithBucket(n.bucket)}, opts...)
	if coreOnly {
		opts = append(opts, natspub.WithCoreOnly())
	}
	enc, _ := codec.NewEncoder("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := natspub.Dial(ctx, url, enc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	if !coreOnly {
		t.Cleanup(func() { testkit.DeleteJetStream(url, n.stream, n.bucket) })
	}
	return p
}

// replay reads the whole stream from the start, decoding each event.
func replay(t *testing.T, url string, n names, want int) []mesh.Change {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, n.stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []mesh.Change
	for len(got) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), want, err)
		}
		c, err := codec.DecodeStructured(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != mesh.EventID(c.Epoch, c.Sequence) {
			t.Fatalf("Nats-Msg-Id %q for event %d", id, c.Sequence)
		}
		if subj := natspub.KeyTokens(c.Key); msg.Subject() != n.prefix+"."+subj {
			t.Fatalf("subject %q for key %q", msg.Subject(), c.Key)
		}
		got = append(got, c)
	}
	if extra, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); err == nil {
		c, _ := codec.DecodeStructured(extra.Data())
		t.Fatalf("the stream holds more than %d events: %v", want, c)
	}
	return got
}

// kvState rebuilds the mesh from the KV bucket, as a late consumer would.
func kvState(t *testing.T, url string, n names) map[string]string {
	t.Helper()
	state, err := readKV(url, n)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// readKV reads the bucket as a late consumer would (key → entity), checking every key.
func readKV(url string, n names) (map[string]string, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, n.bucket)
	if err != nil {
		return nil, err
	}
	state := map[string]string{}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for k := range lister.Keys() {
		entry, err := kv.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		c, err := codec.DecodeStructured(entry.Value())
		if err != nil {
			return nil, err
		}
		if tokens := natspub.KeyTokens(c.Key); tokens != k {
			return nil, fmt.Errorf("kv key %q holds %q", k, c.Key)
		}
		state[c.Key.String()] = string(c.Entity)
	}
	return state, nil
}

func applyAll(t *testing.T, changes []mesh.Change) map[string]string {
	t.Helper()
	state := map[string]string{}
	for i, c := range changes {
		if c.Sequence != uint64(i+1) {
			t.Fatalf("event %d has meshseq %d: out of order or duplicated", i, c.Sequence)
		}
		if c.Op == mesh.OpDeleted {
			delete(state, c.Key.String())
		} else {
			state[c.Key.String()] = string(c.Entity)
		}
	}
	return state
}

func publishAll(t *testing.T, p *natspub.Publisher, changes []mesh.Change) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(changes); i += 9 {
		if err := p.Publish(ctx, changes[i:min(i+9, len(changes))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJetStreamReplayAndKV(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	n := unique()
	p := dial(t, srv.URL, n, false)
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(5, 6)), "ep", "b.%d", 400)
	publishAll(t, p, changes)
	publishAll(t, p, changes[390:]) // a retry of already stored events: deduplicated
	if got := applyAll(t, replay(t, srv.URL, n, len(changes))); !reflect.DeepEqual(got, state) {
		t.Fatalf("replayed stream differs from the state")
	}
	if got := kvState(t, srv.URL, n); !reflect.DeepEqual(got, state) {
		t.Fatalf("kv bucket differs from the state:\n%v\n%v", got, state)
	}
}

// Publishing waits out a server restart; the stream and the bucket end up exact.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t) // stopped and restarted: never the shared one
	n := unique()
	p := dial(t, srv.URL, n, false)
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(7, 8)), "ep", "b.%d", 300)
	publishAll(t, p, changes[:150])
	srv.Stop()
	done := make(chan struct{})
	go func() { defer close(done); publishAll(t, p, changes[150:]) }()
	testkit.Eventually(t, "the publisher to see the outage", 20*time.Second, func() bool { return !p.Connected() })
	srv.Start()
	<-done
	if got := applyAll(t, replay(t, srv.URL, n, len(changes))); !reflect.DeepEqual(got, state) {
		t.Fatalf("replayed stream differs from the state")
	}
	if got := kvState(t, srv.URL, n); !reflect.DeepEqual(got, state) {
		t.Fatalf("kv bucket differs from the state")
	}
}

// A server that comes back without its store (no stream, no bucket) gets both set up again
// and every entity's latest state written back, with no change needed; later changes flow.
func TestServerRestartsEmpty(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	n := unique()
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(11, 12)), "ep", "b.%d", 300)
	var mu sync.Mutex
	published := changes[:150]
	latest := func() []mesh.Change {
		mu.Lock()
		defer mu.Unlock()
		last := map[mesh.Key]mesh.Change{}
		for _, c := range published {
			last[c.Key] = c
		}
		var out []mesh.Change
		for _, c := range last {
			if c.Op != mesh.OpDeleted {
				out = append(out, c)
			}
		}
		return out
	}
	p := dial(t, srv.URL, n, false, natspub.WithLatest(latest))
	publishAll(t, p, changes[:150])
	srv.RestartEmpty()
	want := applyAll(t, changes[:150])
	testkit.Eventually(t, "the bucket written back", 20*time.Second, func() bool {
		got, err := readKV(srv.URL, n)
		return err == nil && reflect.DeepEqual(got, want)
	})
	mu.Lock()
	published = changes
	mu.Unlock()
	publishAll(t, p, changes[150:])
	if got := kvState(t, srv.URL, n); !reflect.DeepEqual(got, state) {
		t.Fatalf("kv bucket differs from the state")
	}
}

func TestCoreOnly(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	n := unique()
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var got []mesh.Change
	sub, err := nc.Subscribe(n.prefix+".>", func(m *nats.Msg) {
		c, err := codec.DecodeStructured(m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	p := dial(t, srv.URL, n, true)
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(9, 10)), "ep", "b.%d", 100)
	publishAll(t, p, changes)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		l := len(got)
		mu.Unlock()
		if l == len(changes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d events", l, len(changes))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := applyAll(t, got); !reflect.DeepEqual(s, state) {
		t.Fatal("core subscriber's state differs")
	}
}

// A new epoch (a restart, a leader change) deletes the KV entries of entities deleted while
// nobody published, and keeps everything else.
func TestNewEpochDeletesKVGhosts(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	n := unique()
	broker := func(name, epoch string, seq uint64) mesh.Change {
		return mesh.Change{Epoch: epoch, Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`)}
	}
	publishAll(t, dial(t, srv.URL, n, false), []mesh.Change{broker("kept", "ep1", 1), broker("ghost", "ep1", 2)})
	opening := []mesh.Change{broker("kept", "ep2", 1), broker("new", "ep2", 2)}
	p := dial(t, srv.URL, n, false, natspub.WithLatest(func() []mesh.Change { return opening }))
	publishAll(t, p, opening)
	if err := p.Reconcile(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{opening[0].Key.String(): string(opening[0].Entity), opening[1].Key.String(): string(opening[1].Entity)}
	if got := kvState(t, srv.URL, n); !reflect.DeepEqual(got, want) {
		t.Fatalf("kv bucket %v, want %v", got, want)
	}
}

// A server that is not there at start-up holds nothing up: Dial returns at once, and the
// stream and bucket are set up, and catch up exactly, when the server comes.
func TestServerUnreachableAtStart(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	srv.Stop()
	n := unique()
	enc, _ := codec.NewEncoder("")
	// Dial returns while the server is away (with no deadline on its context, waiting for the
	// server would hang the test).
	p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithSubjectPrefix(n.prefix),
		natspub.WithStream(n.stream), natspub.WithBucket(n.bucket))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	changes, state := transporttest.Stream(rand.New(rand.NewPCG(21, 22)), "ep", "b.%d", 60)
	done := make(chan struct{})
	go func() { defer close(done); publishAll(t, p, changes) }()
	srv.Start()
	<-done
	if got := applyAll(t, replay(t, srv.URL, n, len(changes))); !reflect.DeepEqual(got, state) {
		t.Fatal("the stream differs from the state")
	}
	if got := kvState(t, srv.URL, n); !reflect.DeepEqual(got, state) {
		t.Fatalf("kv bucket %v, want %v", got, state)
	}
}

// Core mode reports what it delivered: a publish without a deadline succeeds.
func TestCoreModeDelivers(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	p := dial(t, srv.URL, unique(), true)
	if err := p.Publish(context.Background(), transporttest.Changes(20)); err != nil {
		t.Fatalf("core publish: %v", err)
	}
}

// Two broadcasters with different prefixes share a server: each has its own stream and bucket
// by default, and neither touches the other's. A name taken by the other is an error naming
// both, never rewritten.
func TestSharedServer(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	a, b := unique(), unique()
	enc, _ := codec.NewEncoder("")
	dialPrefix := func(prefix string, opts ...natspub.Option) (*natspub.Publisher, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return natspub.Dial(ctx, srv.URL, enc, append([]natspub.Option{natspub.WithSubjectPrefix(prefix)}, opts...)...)
	}
	for _, n := range []names{a, b} {
		t.Cleanup(func() {
			testkit.DeleteJetStream(srv.URL, natspub.StreamName(n.prefix), natspub.BucketName(n.prefix))
		})
	}
	pa, err := dialPrefix(a.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close(context.Background())
	pb, err := dialPrefix(b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close(context.Background())
	changesA, stateA := transporttest.Stream(rand.New(rand.NewPCG(31, 32)), "ea", "a%d", 40)
	changesB, stateB := transporttest.Stream(rand.New(rand.NewPCG(33, 34)), "eb", "b%d", 40)
	publishAll(t, pa, changesA)
	publishAll(t, pb, changesB)
	// b's new epoch has none of a's entities: reconciling must not touch a's bucket.
	if err := pb.Reconcile(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	aNames := names{a.prefix, natspub.StreamName(a.prefix), natspub.BucketName(a.prefix)}
	bNames := names{b.prefix, natspub.StreamName(b.prefix), natspub.BucketName(b.prefix)}
	if got := kvState(t, srv.URL, aNames); !reflect.DeepEqual(got, stateA) {
		t.Fatalf("a's bucket %v, want %v", got, stateA)
	}
	if got := kvState(t, srv.URL, bNames); !reflect.DeepEqual(got, stateB) {
		t.Fatalf("b's bucket %v, want %v", got, stateB)
	}
	if got := applyAll(t, replay(t, srv.URL, aNames, len(changesA))); !reflect.DeepEqual(got, stateA) {
		t.Fatal("a's stream differs")
	}
	_, err = dialPrefix(b.prefix, natspub.WithStream(aNames.stream))
	if !errors.Is(err, natspub.ErrConflict) || !strings.Contains(err.Error(), aNames.stream) || !strings.Contains(err.Error(), a.prefix) {
		t.Errorf("b on a's stream: %v, want a conflict naming the stream and a's subjects", err)
	}
	_, err = dialPrefix(b.prefix, natspub.WithBucket(aNames.bucket))
	if !errors.Is(err, natspub.ErrConflict) || !strings.Contains(err.Error(), aNames.bucket) || !strings.Contains(err.Error(), a.prefix) {
		t.Errorf("b on a's bucket: %v, want a conflict naming the bucket and a's prefix", err)
	}
}
