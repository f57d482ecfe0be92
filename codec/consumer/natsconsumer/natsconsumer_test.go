package natsconsumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(brokers.StartNATS(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// reply is one message of a scripted snapshot responder.
type reply struct {
	header map[string]string
	data   string
}

func chunk(i, n int, seq, data string) reply {
	return reply{map[string]string{mesh.HeaderEpoch: "ep", mesh.HeaderSequence: seq, mesh.HeaderChunk: fmt.Sprintf("%d/%d", i, n)}, data}
}

// Snapshots reassembles a chunked reply and refuses what is not one whole snapshot.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	nc := connect(t)
	whole, _ := json.Marshal(mesh.Snapshot{Epoch: "ep", Sequence: 7, Mesh: mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{{Namespace: "ns", Name: "b", ProvidedEventTypes: []string{}}}}}})
	third := len(whole) / 3
	for _, tc := range []struct {
		name    string
		replies []reply // nil: nobody answers
		wantErr string  // empty: the snapshot is whole
	}{
		{"one chunk", []reply{chunk(1, 1, "7", string(whole))}, ""},
		{"three chunks", []reply{chunk(1, 3, "7", string(whole[:third])), chunk(2, 3, "7", string(whole[third:2*third])),
			chunk(3, 3, "7", string(whole[2*third:]))}, ""},
		{"still loading", []reply{{map[string]string{mesh.HeaderError: "still loading"}, ""}}, "nats snapshot: still loading"},
		{"a chunk missing", []reply{chunk(1, 3, "7", string(whole[:third])), chunk(3, 3, "7", string(whole[2*third:]))}, `chunk "3/3", want 2`},
		{"two snapshots mixed", []reply{chunk(1, 2, "7", string(whole[:third])), chunk(2, 2, "8", string(whole[third:]))}, "chunks of two snapshots mixed"},
		{"not JSON", []reply{chunk(1, 1, "7", "{")}, "nats snapshot: unexpected end of JSON input"},
		{"nobody answers", nil, "nats snapshot: chunk 1: nats: no responders available for request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("test.s%d.mesh-resync", rand.Int32())
			if tc.replies != nil {
				sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
					for _, r := range tc.replies {
						out := nats.NewMsg(m.Reply)
						for k, v := range r.header {
							out.Header.Set(k, v)
						}
						out.Data = []byte(r.data)
						nc.PublishMsg(out)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Unsubscribe()
				nc.Flush()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := natsconsumer.Snapshots(nc, subject).Snapshot(ctx)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && (got.Epoch != "ep" || got.Sequence != 7 || len(got.Mesh.Brokers) != 1):
				t.Fatalf("got %+v", got)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

// testBucket makes a KV bucket of its own for a test (deleted at its end), and a subject prefix
// of the same tag.
func testBucket(t *testing.T, nc *nats.Conn, tag string) (prefix string, kv jetstream.KeyValue) {
	t.Helper()
	n := rand.Int32()
	prefix, bucket := fmt.Sprintf("test.%s%d.mesh", tag, n), fmt.Sprintf("test_%s%d", tag, n)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { js.DeleteKeyValue(context.Background(), bucket) })
	return prefix, kv
}

// follow runs Follow until the end of the test.
func follow(t *testing.T, nc *nats.Conn, s natsconsumer.Stream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- natsconsumer.Follow(ctx, nc, s) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow: %v", err)
		}
	})
}

// Follow lists the bucket's entities first, then passes on the changes, dropping those the
// bucket already showed; what it cannot read it reports and skips.
func TestFollowListsThenChanges(t *testing.T) {
	t.Parallel()
	nc := connect(t)
	prefix, kv := testBucket(t, nc, "f")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv.Put(ctx, "broker.ns.a", testkit.Structured(t, testkit.BrokerChange(3, mesh.OpAdded, "a")))
	kv.Put(ctx, "broker.ns.b", testkit.Structured(t, testkit.BrokerChange(5, mesh.OpUpdated, "b")))
	kv.Put(ctx, "broker.ns.bad", []byte("not an event"))

	var r testkit.ChangeRecorder
	entity := r.Note("entity")
	published := false
	follow(t, nc, natsconsumer.Stream{Prefix: prefix, Bucket: kv.Bucket(), OnError: r.OnError, Change: r.Note("change"),
		Entity: func(c mesh.Change) error {
			if !published { // changes that arrive during the listing wait for it
				published = true
				nc.Publish(prefix+".broker.ns.b", testkit.Structured(t, testkit.BrokerChange(5, mesh.OpUpdated, "b"))) // the bucket shows it
				nc.Publish(prefix+".broker.ns.a", testkit.Structured(t, testkit.BrokerChange(6, mesh.OpDeleted, "a")))
				nc.Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return entity(c)
		}})
	testkit.Eventually(t, "the listing and the changes", 10*time.Second, func() bool {
		got, _ := r.Lines()
		return len(got) == 3
	})
	nc.Publish(prefix+".broker.ns.c", testkit.Structured(t, testkit.BrokerChange(7, mesh.OpAdded, "c")))
	nc.Publish(prefix+".broker.ns.c", []byte("{"))
	// The broadcaster restarted: a new epoch numbers from 1, below what the listing showed.
	reopened := testkit.BrokerChange(2, mesh.OpAdded, "b")
	reopened.Epoch = "ep2"
	nc.Publish(prefix+".broker.ns.b", testkit.Structured(t, reopened))
	testkit.Eventually(t, "later changes", 10*time.Second, func() bool {
		got, errs := r.Lines()
		return len(got) == 5 && len(errs) == 2
	})
	// A copy that comes once the listing has ended is passed on: Follow lets go of what the
	// listing showed after the changes read before its end (a Replica drops the copy by its
	// sequence). Sent again until it comes through: it is dropped until then.
	copied := testkit.Structured(t, testkit.BrokerChange(5, mesh.OpUpdated, "b"))
	testkit.Eventually(t, "a copy after the listing", 10*time.Second, func() bool {
		nc.Publish(prefix+".broker.ns.b", copied)
		nc.Flush()
		got, _ := r.Lines()
		return slices.Contains(got, "change b 5 updated")
	})
	got, errs := r.Lines()
	got = slices.DeleteFunc(got, func(l string) bool { return l == "change b 5 updated" })
	want := []string{"entity a 3 added", "entity b 5 updated", "change a 6 deleted", "change c 7 added", "change b 2 added"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	var bad *consumer.MessageError
	if !errors.As(errs[0], &bad) || bad.Source != "KV broker.ns.bad" || !strings.HasPrefix(errs[0].Error(), "KV broker.ns.bad: ") {
		t.Errorf("the bad entry: %v", errs[0])
	}
	if !errors.As(errs[1], &bad) || bad.Source != prefix+".broker.ns.c" || !errors.Is(errs[1], codec.ErrInvalidEvent) {
		t.Errorf("the bad message: %v", errs[1])
	}
}

// A bucket that cannot be listed is reported; the changes follow all the same. Without a
// bucket, Follow passes on changes only; a change its handler refuses is reported.
func TestFollowWithoutListing(t *testing.T) {
	t.Parallel()
	nc := connect(t)
	n := rand.Int32()
	for _, tc := range []struct {
		name, bucket string
		wantErrors   []string
	}{
		{"missing bucket", fmt.Sprintf("test_missing%d", n), []string{fmt.Sprintf("KV bucket test_missing%d: nats: bucket not found", n)}},
		{"no bucket", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("test.w%d.%s", n, strings.ReplaceAll(tc.name, " ", "-"))
			var r testkit.ChangeRecorder
			change := r.Note("change")
			follow(t, nc, natsconsumer.Stream{Prefix: prefix, Bucket: tc.bucket, ListTimeout: 2 * time.Second, OnError: r.OnError,
				Entity: r.Note("entity"),
				Change: func(c mesh.Change) error {
					if c.Sequence == 2 {
						return errors.New("refused")
					}
					return change(c)
				}})
			testkit.Eventually(t, "the changes", 10*time.Second, func() bool {
				for _, seq := range []uint64{1, 2} {
					nc.Publish(prefix+".broker.ns.a", testkit.Structured(t, testkit.BrokerChange(seq, mesh.OpAdded, "a")))
				}
				nc.Flush()
				got, _ := r.Lines()
				return len(got) > 0
			})
			got, errs := r.Lines()
			if got[0] != "change a 1 added" {
				t.Errorf("got %q", got)
			}
			var list *natsconsumer.ListError
			var messages []string
			for _, err := range errs {
				if errors.As(err, &list) {
					messages = append(messages, err.Error())
				} else if err.Error() != prefix+".broker.ns.a: refused" {
					t.Errorf("error %v", err)
				}
			}
			if !reflect.DeepEqual(messages, tc.wantErrors) {
				t.Errorf("listing errors %q, want %q", messages, tc.wantErrors)
			}
		})
	}
}

func TestFollowRejectsIncompleteStreams(t *testing.T) {
	t.Parallel()
	change := func(mesh.Change) error { return nil }
	for _, s := range []natsconsumer.Stream{
		{Change: change},
		{Prefix: "p"},
		{Prefix: "p", Change: change, Bucket: "b"},
	} {
		if err := natsconsumer.Follow(context.Background(), nil, s); !errors.Is(err, natsconsumer.ErrInvalidStream) {
			t.Errorf("Follow(%+v): %v", s, err)
		}
	}
}

// A fleet's cold start from the shared bucket: every cluster's entries go to its replica,
// which Listed places at the highest sequence its entries show, so each cluster's next change
// applies in order with no snapshot (nobody answers snapshot requests here). A listing that
// skipped an entry is not placed: Listed is not called.
func TestFollowIntoAFleet(t *testing.T) {
	t.Parallel()
	nc := connect(t)
	for _, tc := range []struct {
		name       string
		bad        bool // a KV entry that does not decode
		wantListed bool
	}{
		{"whole listing", false, true},
		{"an entry skipped", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix, kv := testBucket(t, nc, "l")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			put := func(cluster string, c mesh.Change) {
				t.Helper()
				enc, err := codec.NewEncoder("", codec.WithCluster(cluster))
				if err != nil {
					t.Fatal(err)
				}
				data, err := enc.Structured(c)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kv.Put(ctx, cluster+".broker.ns."+c.Key.Name, data); err != nil {
					t.Fatal(err)
				}
			}
			put("east", testkit.BrokerChange(3, mesh.OpAdded, "a"))
			put("east", testkit.BrokerChange(5, mesh.OpUpdated, "b"))
			put("west", testkit.BrokerChange(2, mesh.OpAdded, "a"))
			if tc.bad {
				kv.Put(ctx, "west.broker.ns.bad", []byte("not an event"))
			}

			fleet := consumer.NewFleet(natsconsumer.ClusterSnapshots(nc, prefix))
			var r testkit.ChangeRecorder
			fctx, stop := context.WithCancel(context.Background())
			defer stop()
			var listed atomic.Bool
			follow(t, nc, natsconsumer.Stream{Prefix: prefix, Bucket: kv.Bucket(), OnError: r.OnError,
				Entity: fleet.Hold,
				Listed: func() { listed.Store(true); fleet.Listed() },
				Change: func(c mesh.Change) error { return fleet.Apply(fctx, c) }})
			testkit.Eventually(t, "the listing", 10*time.Second, func() bool { return len(fleet.Entities()) == 3 })
			if !tc.wantListed {
				time.Sleep(100 * time.Millisecond) // Listed would come right after the last entry
				if want := (map[string]mesh.Position{"east": {}, "west": {}}); listed.Load() || !reflect.DeepEqual(fleet.Positions(), want) {
					t.Fatalf("a listing with an entry skipped was placed: listed %v, positions %v", listed.Load(), fleet.Positions())
				}
				return
			}
			want := map[string]mesh.Position{"east": {Epoch: "ep", Sequence: 5}, "west": {Epoch: "ep", Sequence: 2}}
			testkit.Eventually(t, "the listing placed", 10*time.Second, func() bool { return reflect.DeepEqual(fleet.Positions(), want) })
			enc, _ := codec.NewEncoder("", codec.WithCluster("west"))
			next, _ := enc.Structured(testkit.BrokerChange(3, mesh.OpAdded, "c"))
			nc.Publish(prefix+".west.broker.ns.c", next)
			testkit.Eventually(t, "west's next change", 10*time.Second, func() bool { return len(fleet.Entities()) == 4 })
			for _, c := range fleet.Clusters() {
				if rep, _ := fleet.Replica(c); rep.Resyncs() != 0 {
					t.Errorf("cluster %s took %d snapshots", c, rep.Resyncs())
				}
			}
			if _, errs := r.Lines(); len(errs) > 0 {
				t.Errorf("errors: %v", errs)
			}
		})
	}
}

// ListTimeout bounds the wait for each entry, not the whole listing: a listing that takes
// longer than it in all, entry after entry, is whole.
func TestFollowListTimeoutIsPerEntry(t *testing.T) {
	t.Parallel()
	nc := connect(t)
	prefix, kv := testBucket(t, nc, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// More entries than the watch buffers, so that they keep coming after the timeout.
	const entries, timeout, perEntry = 1000, 300 * time.Millisecond, time.Millisecond // over a second in all
	for i := range entries {
		name := fmt.Sprint("b", i)
		if _, err := kv.Put(ctx, "broker.ns."+name, testkit.Structured(t, testkit.BrokerChange(uint64(i+1), mesh.OpAdded, name))); err != nil {
			t.Fatal(err)
		}
	}
	var r testkit.ChangeRecorder
	entity := r.Note("entity")
	var listed atomic.Bool
	follow(t, nc, natsconsumer.Stream{Prefix: prefix, Bucket: kv.Bucket(), ListTimeout: timeout, OnError: r.OnError,
		Entity: func(c mesh.Change) error { time.Sleep(perEntry); return entity(c) },
		Listed: func() { listed.Store(true) },
		Change: r.Note("change")})
	testkit.Eventually(t, "the listing to end", 10*time.Second, func() bool {
		_, errs := r.Lines()
		return listed.Load() || len(errs) > 0
	})
	if got, errs := r.Lines(); len(got) != entries || len(errs) > 0 || !listed.Load() {
		t.Fatalf("%d entities listed, listed %v, errors %v", len(got), listed.Load(), errs)
	}
}
