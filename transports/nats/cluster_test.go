package nats_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// Broadcasters of two clusters share one prefix, one stream and one bucket: each publishes
// under <prefix>.<cluster>., keeps its entities under <cluster>. keys, reconciles only its own
// keys, and answers snapshot requests for its own cluster.
func TestClustersShareAPrefix(t *testing.T) {
	t.Parallel()
	srv := brokers.StartNATS(t)
	n := unique()
	states := map[string]map[string]string{}
	pubs := map[string]*natspub.Publisher{}
	for i, cluster := range []string{"east", "west"} {
		enc, err := codec.NewEncoder("", codec.WithCluster(cluster))
		if err != nil {
			t.Fatal(err)
		}
		changes, state := transporttest.Stream(rand.New(rand.NewPCG(uint64(i), 9)), "ep-"+cluster, "b.%d", 200)
		var latest []mesh.Change
		p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithSubjectPrefix(n.prefix), natspub.WithStream(n.stream),
			natspub.WithBucket(n.bucket), natspub.WithLatest(func() []mesh.Change { return latest }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		publishAll(t, p, changes)
		latest = latestOf(changes)
		states[cluster], pubs[cluster] = state, p
	}
	t.Cleanup(func() { testkit.DeleteJetStream(srv.URL, n.stream, n.bucket) })

	// Reconciling one cluster leaves the other's keys alone.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pubs["east"].Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}

	entries, err := testkit.KVChanges(srv.URL, n.bucket)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{"east": {}, "west": {}}
	for _, e := range entries {
		c := e.Change
		if e.Key != c.Cluster+"."+natspub.KeyTokens(c.Key) {
			t.Fatalf("kv key %q holds %s of cluster %q", e.Key, c.Key, c.Cluster)
		}
		got[c.Cluster][c.Key.String()] = string(c.Entity)
	}
	if !reflect.DeepEqual(got, states) {
		t.Fatalf("kv bucket per cluster differs:\n%v\n%v", got, states)
	}

	// The stream holds both clusters' events, each on its cluster's subjects and in its
	// cluster's order.
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cons, err := js.OrderedConsumer(ctx, n.stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for range 400 {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		c, err := codec.DecodeStructured(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject() != n.prefix+"."+c.Cluster+"."+natspub.KeyTokens(c.Key) || c.Sequence != last[c.Cluster]+1 {
			t.Fatalf("event %s of %q on %q after %d", c, c.Cluster, msg.Subject(), last[c.Cluster])
		}
		last[c.Cluster] = c.Sequence
	}

	// A snapshot request names its cluster and gets that cluster's mesh.
	for _, cluster := range []string{"east", "west"} {
		eng := engine.New("snap-" + cluster)
		sctx, stop := context.WithCancel(context.Background())
		defer stop()
		go pubs[cluster].ServeResync(sctx, func() mesh.State { return eng.Snapshot() }, func() bool { return true }, 0)
	}
	for _, cluster := range []string{"east", "west"} {
		var s mesh.Snapshot
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err = natsconsumer.Snapshots(nc, mesh.NATSClusterResyncSubject(n.prefix, cluster)).Snapshot(ctx)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // the responder may not be subscribed yet
		}
		if err != nil || s.Cluster != cluster || s.Epoch != "snap-"+cluster {
			t.Fatalf("snapshot of %s: %+v, %v", cluster, s, err)
		}
	}
	if strings.Contains(mesh.NATSClusterResyncSubject(n.prefix, "east"), n.prefix+".") {
		t.Fatal("the resync subject is inside the stream's subjects")
	}
}

// latestOf is each entity's last change, the deleted left out (what mesh/hub's Latest gives).
func latestOf(changes []mesh.Change) []mesh.Change {
	byKey := map[mesh.Key]mesh.Change{}
	for _, c := range changes {
		if c.Op == mesh.OpDeleted {
			delete(byKey, c.Key)
			continue
		}
		byKey[c.Key] = c
	}
	out := make([]mesh.Change, 0, len(byKey))
	for _, c := range byKey {
		out = append(out, c)
	}
	return out
}
