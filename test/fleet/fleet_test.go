package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// The default names of the broadcasters' stream and bucket (their subject prefix is the
// default one).
var (
	stream = natspub.StreamName(natspub.DefaultSubjectPrefix)
	bucket = natspub.BucketName(natspub.DefaultSubjectPrefix)
)

var clusters = []string{"east", "west", "north"}

// Three broadcasters connected to every node of the cluster.
func TestFleetOnANATSCluster(t *testing.T) {
	nc := brokers.StartNATSCluster(t, 3)
	runFleet(t, nc, func(int) string { return nc.URL() })
}

// Three broadcasters, each connected to a leaf node of its own that joins the hub cluster (no
// JetStream on the leaves: their JetStream requests go to the hub's).
func TestFleetThroughLeafNodes(t *testing.T) {
	nc := brokers.StartNATSCluster(t, 3)
	var leaves []string
	for range clusters {
		leaves = append(leaves, nc.AddLeaf().URL)
	}
	runFleet(t, nc, func(i int) string { return leaves[i] }, "--nats-domain", brokers.Domain)
}

// runFleet runs a broadcaster per cluster against hub, the broadcaster of clusters[i]
// connecting to natsURL(i), and checks the stream and the bucket through the failures.
func runFleet(t *testing.T, hub *brokers.NATSCluster, natsURL func(i int) string, extra ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	var bs []*broadcaster
	for i, cluster := range clusters {
		dir := testkit.CopyDir(t, "../../examples/mesh") // the same names in every cluster
		bs = append(bs, startBroadcaster(t, cluster, dir, append([]string{"--nats", natsURL(i), "--nats-replicas", "3",
			"--nats-placement-cluster", hub.Name}, extra...)...))
	}
	for _, b := range bs {
		testkit.Eventually(t, b.cluster+" to load", 60*time.Second, func() bool { return b.ready(t) })
	}
	if r := streamReplicas(t, hub.URL(), stream); r != 3 {
		t.Fatalf("stream %s has %d replicas, want 3", stream, r)
	}
	if r := streamReplicas(t, hub.URL(), "KV_"+bucket); r != 3 {
		t.Fatalf("bucket %s has %d replicas, want 3", bucket, r)
	}
	live := follow(ctx, t, "live", hub.URL(), bs)
	testkit.Eventually(t, "the live consumer to receive every opening", 60*time.Second, func() bool {
		now := live.positions()
		for _, b := range bs {
			if now[b.cluster] < b.snapshot(t).Sequence {
				return false
			}
		}
		return true
	})
	t.Logf("%v: three broadcasters publish at three replicas", time.Since(started))

	var churning sync.WaitGroup
	churnCtx, stopChurn := context.WithCancel(ctx)
	for i, b := range bs {
		churning.Add(1)
		go func() { defer churning.Done(); churn(churnCtx, t, b.dir, rand.New(rand.NewPCG(uint64(i), 27))) }()
	}
	progress := func(what string) {
		t.Helper()
		from := live.positions()
		moved := func() bool {
			now := live.positions()
			for _, c := range clusters {
				if now[c] < from[c]+10 {
					return false
				}
			}
			return true
		}
		for deadline := time.Now().Add(90 * time.Second); !moved(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				for i, c := range clusters {
					t.Logf("through %s's NATS URL: %v", c, perCluster(natsURL(i), brokers.Domain))
				}
				t.Fatalf("every cluster's events through the stream %s: the live consumer went from %v to %v in 90 s (%d events, %v); the stream holds %v",
					what, from, live.positions(), live.count(), live.err(), perCluster(hub.URL(), ""))
			}
		}
	}
	progress("before any failure")
	for _, of := range []string{stream, "KV_" + bucket} {
		leader := hub.Node(streamLeader(t, hub.URL(), of))
		if leader == nil {
			t.Fatalf("no leader of %s", of)
		}
		leader.Kill()
		t.Logf("%v: killed %s, the leader of %s", time.Since(started), streamLeaderName(leader, hub), of)
		progress("with the leader of " + of + " killed")
		leader.Start()
		awaitCurrent(t, hub.URL(), of)
		t.Logf("%v: restarted, every replica of %s current", time.Since(started), of)
		progress("with the leader of " + of + " back")
	}
	stopChurn()
	churning.Wait()
	// A last Broker in every cluster, written after the churn: once a consumer has it, it has
	// every change before it (each source reads its directory in order).
	for _, b := range bs {
		if err := os.WriteFile(filepath.Join(b.dir, "shop", "end.yaml"), []byte(endOfChurn), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%v: churn stopped", time.Since(started))

	// Settled: the live consumer reaches each broadcaster's position, and its replica of each
	// cluster equals that cluster's GET /v1/mesh.
	final := map[string]mesh.Snapshot{}
	testkit.Eventually(t, "the live consumer at every broadcaster's position", 60*time.Second, func() bool {
		for _, b := range bs {
			final[b.cluster] = b.snapshot(t)
			if !hasEnd(final[b.cluster].Mesh) {
				return false
			}
			if epoch, seq := live.replicas[b.cluster].Position(); epoch != final[b.cluster].Epoch || seq != final[b.cluster].Sequence {
				return false
			}
		}
		return true
	})
	late := follow(ctx, t, "late", hub.URL(), bs) // reads the stream from its start, after everything
	at := func() bool {
		now := late.positions()
		for _, c := range clusters {
			if now[c] != final[c].Sequence {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !at(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			late.mu.Lock()
			t.Fatalf("the late consumer is at %v after %d events, the broadcasters at %v", late.last, late.events, positionsOf(final))
		}
	}
	for _, f := range []*follower{live, late} {
		if err := f.err(); err != nil {
			t.Error(err)
		}
		for _, c := range clusters {
			// The late consumer reads the stream after everything: it must hold every meshseq.
			// The live one may miss a few while the server it reads from is killed (the
			// client's consumer is made again); its replica heals them from the broadcaster,
			// and must end equal all the same.
			switch missing := f.missing(c, final[c].Sequence); {
			case len(missing) > 0 && f == late:
				t.Errorf("cluster %s: the stream lacks meshseq %v of 1..%d", c, missing, final[c].Sequence)
			case len(missing) > 0:
				t.Logf("live consumer: cluster %s: meshseq %v not received while servers were killed, healed by the replica", c, missing)
			}
			whole, err := f.replicas[c].Whole()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(whole, final[c].Mesh) {
				t.Errorf("%s consumer: cluster %s: the replica differs from GET /v1/mesh", f.name, c)
			}
		}
		// The merged replica is the union of the three GET /v1/mesh, each entity under its
		// cluster (the same names in every cluster stay apart).
		merged, union := f.fleet.Entities(), map[consumer.FleetEntityID]any{}
		for _, c := range clusters {
			for id, v := range entitiesByID(t, final[c].Mesh) {
				union[consumer.FleetEntityID{Cluster: c, EntityID: id}] = v
			}
		}
		got := map[consumer.FleetEntityID]any{}
		for id, raw := range merged {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			got[id] = v
		}
		if !reflect.DeepEqual(got, union) {
			t.Errorf("%s consumer: the merged replica (%d entities) differs from the union of the three GET /v1/mesh (%d)", f.name, len(got), len(union))
		}
		t.Logf("%s consumer: %d events, %d out of order, catch-ups %v, resyncs %v; merged replica of %d entities", f.name, f.events, f.outOfOrder,
			f.catchUps(), f.resyncs(), len(merged))
	}
	t.Logf("%v: consumers checked", time.Since(started))
	kv := readBucket(t, hub.URL())
	for _, c := range clusters {
		if want := entitiesOf(t, final[c].Mesh); !reflect.DeepEqual(kv[c], want) {
			t.Errorf("cluster %s: the KV bucket holds %d entities, the mesh %d, or they differ", c, len(kv[c]), len(want))
		}
	}
}

func streamLeaderName(n *brokers.NATS, hub *brokers.NATSCluster) string {
	for i, m := range hub.Nodes {
		if m == n {
			return fmt.Sprintf("n%d", i+1)
		}
	}
	return "?"
}

// perCluster counts the stream's messages by cluster, for a failure's message.
func perCluster(url, domain string) map[string]uint64 {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if domain != "" {
		js, _ = jetstream.NewWithDomain(nc, domain)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return nil
	}
	out := map[string]uint64{"leader:" + info.Cluster.Leader: info.State.LastSeq}
	for subject, n := range info.State.Subjects {
		parts := strings.SplitN(subject, ".", 4)
		if len(parts) == 4 {
			out[parts[2]] += n
		}
	}
	return out
}

func positionsOf(snaps map[string]mesh.Snapshot) map[string]uint64 {
	out := map[string]uint64{}
	for c, s := range snaps {
		out[c] = s.Sequence
	}
	return out
}

// endOfChurn is the last change of every cluster.
const endOfChurn = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: end-of-churn
  namespace: shop
`

func hasEnd(m mesh.Mesh) bool {
	for _, b := range m.Brokers {
		if b.Namespace == "shop" && b.Name == "end-of-churn" {
			return true
		}
	}
	return false
}

// churn adds, changes and deletes Brokers and EventTypes in dir until ctx ends.
func churn(ctx context.Context, t *testing.T, dir string, rnd *rand.Rand) {
	for n := 0; ctx.Err() == nil; n++ {
		i := rnd.IntN(8)
		path := filepath.Join(dir, "shop", fmt.Sprintf("churn-%d.yaml", i))
		var err error
		if rnd.IntN(4) == 0 {
			err = os.Remove(path)
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		} else {
			err = os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: churn-%d
  namespace: shop
  labels:
    round: "%d"
---
apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata:
  name: churn-%d-happened
  namespace: shop
spec:
  type: dev.example.churn.%d
  reference:
    apiVersion: eventing.knative.dev/v1
    kind: Broker
    name: churn-%d
`, i, n, i, i, i)), 0o644)
		}
		if err != nil {
			t.Error(err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond): // pacing only: the source debounces bursts
		}
	}
}

// follower reads the whole shared stream from its start with an ordered consumer, as a
// consumer of the fleet does: each cluster's changes go to a replica of that cluster, which
// heals a gap from that cluster's broadcaster (GET /v1/deltas, else a snapshot).
type follower struct {
	name     string
	fleet    *consumer.Fleet // one replica per cluster, keyed by the events' meshcluster
	replicas map[string]*consumer.Replica

	mu         sync.Mutex
	seen       map[string]map[uint64]bool
	last       map[string]uint64
	events     int
	outOfOrder int
	errs       []error
}

func follow(ctx context.Context, t *testing.T, name, url string, bs []*broadcaster) *follower {
	t.Helper()
	urls := map[string]string{}
	for _, b := range bs {
		urls[b.cluster] = b.base
	}
	f := &follower{name: name, fleet: consumer.HTTPFleet(urls, ""), replicas: map[string]*consumer.Replica{},
		seen: map[string]map[uint64]bool{}, last: map[string]uint64{}}
	for _, b := range bs {
		r, err := f.fleet.Replica(b.cluster)
		if err != nil {
			t.Fatal(err)
		}
		f.replicas[b.cluster] = r
		f.seen[b.cluster] = map[uint64]bool{}
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	rctx, stop := context.WithCancel(ctx)
	t.Cleanup(func() { stop(); <-done })
	go func() { defer close(done); f.read(rctx, js) }()
	return f
}

// read reads the stream from its start with ordered consumers until ctx ends. When one stops
// delivering (its server was killed; nothing came within a second), it makes another that
// starts after the last message read, so no message is skipped or read twice.
func (f *follower) read(ctx context.Context, js jetstream.JetStream) {
	var next uint64 = 1
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := js.OrderedConsumer(cctx, stream, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: next,
			MaxResetAttempts: 2}) // then Next fails and a new one is made here, within a bounded request
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		for ctx.Err() == nil && f.fetch(ctx, cons, &next) {
		}
	}
}

// fetch reads a batch from cons, advancing next past each message handled; false when the
// consumer delivered nothing (idle, or gone: the caller makes another).
func (f *follower) fetch(ctx context.Context, cons jetstream.Consumer, next *uint64) bool {
	batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return false
	}
	n := 0
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			return false
		}
		f.handle(ctx, msg)
		*next = meta.Sequence.Stream + 1
		n++
	}
	return n > 0 && batch.Error() == nil
}

func (f *follower) handle(ctx context.Context, m jetstream.Msg) {
	c, err := codec.DecodeStructured(m.Data())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events++
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s: %w", m.Subject(), err))
		return
	}
	if _, ok := f.replicas[c.Cluster]; !ok {
		f.errs = append(f.errs, fmt.Errorf("%s: an event of unknown cluster %q", m.Subject(), c.Cluster))
		return
	}
	if want := natspub.DefaultSubjectPrefix + "." + c.Cluster + "." + natspub.KeyTokens(c.Key); m.Subject() != want {
		f.errs = append(f.errs, fmt.Errorf("event %s of %s on %s, want %s", c, c.Cluster, m.Subject(), want))
	}
	if c.Sequence != f.last[c.Cluster]+1 {
		f.outOfOrder++
	}
	f.seen[c.Cluster][c.Sequence] = true
	f.last[c.Cluster] = max(f.last[c.Cluster], c.Sequence)
	if err := f.fleet.Apply(ctx, c); err != nil && ctx.Err() == nil {
		f.errs = append(f.errs, fmt.Errorf("cluster %s: %s: %w", c.Cluster, c, err))
	}
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events
}

// positions is the highest meshseq received of each cluster.
func (f *follower) positions() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]uint64{}
	for c, s := range f.last {
		out[c] = s
	}
	return out
}

// missing are the meshseqs of 1..n of cluster the stream did not deliver.
func (f *follower) missing(cluster string, n uint64) []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for s := uint64(1); s <= n; s++ {
		if !f.seen[cluster][s] {
			out = append(out, s)
		}
	}
	return out
}

func (f *follower) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

func (f *follower) catchUps() map[string]int {
	out := map[string]int{}
	for c, r := range f.replicas {
		out[c] = r.CatchUps()
	}
	return out
}

func (f *follower) resyncs() map[string]int {
	out := map[string]int{}
	for c, r := range f.replicas {
		out[c] = r.Resyncs()
	}
	return out
}

// readBucket is the bucket's entities by cluster: (kind, key) → the entity, decoded. Each
// entry must be under its cluster's key.
func readBucket(t *testing.T, url string) map[string]map[string]any {
	t.Helper()
	entries, err := testkit.KVChanges(url, bucket)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, c := range clusters {
		out[c] = map[string]any{}
	}
	for _, e := range entries {
		c := e.Change
		if e.Key != c.Cluster+"."+natspub.KeyTokens(c.Key) {
			t.Fatalf("KV key %s holds %s of cluster %q", e.Key, c.Key, c.Cluster)
		}
		var v any
		if err := json.Unmarshal(c.Entity, &v); err != nil {
			t.Fatal(err)
		}
		out[c.Cluster][c.Kind.String()+"|"+c.Key.String()] = v
	}
	return out
}

// entitiesOf is m's entities as readBucket has them. Entities of one key and two kinds (a
// channel that is also a source) share a KV key: none is in the example.
func entitiesOf(t *testing.T, m mesh.Mesh) map[string]any {
	t.Helper()
	out := map[string]any{}
	for id, v := range entitiesByID(t, m) {
		out[id.Kind.String()+"|"+id.Key.String()] = v
	}
	return out
}

// entitiesByID is m's entities, decoded, by kind and key.
func entitiesByID(t *testing.T, m mesh.Mesh) map[consumer.EntityID]any {
	t.Helper()
	out := map[consumer.EntityID]any{}
	m.Each(func(kind mesh.EntityKind, key mesh.Key, e any) {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		out[consumer.EntityID{Kind: kind, Key: key}] = v
	})
	return out
}

// streamReplicas is the replica count of a stream.
func streamReplicas(t *testing.T, url, name string) int {
	t.Helper()
	return streamInfo(t, url, name).Config.Replicas
}

// streamLeader is the server leading a stream's replicas.
func streamLeader(t *testing.T, url, name string) string {
	t.Helper()
	info := streamInfo(t, url, name)
	if info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// awaitCurrent waits until a stream has a leader and every replica is current again.
func awaitCurrent(t *testing.T, url, name string) {
	t.Helper()
	testkit.Eventually(t, "every replica of "+name+" current", 60*time.Second, func() bool {
		info, err := tryStreamInfo(url, name)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != info.Config.Replicas-1 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})
}

func streamInfo(t *testing.T, url, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	testkit.Eventually(t, "the info of stream "+name, 30*time.Second, func() bool {
		var err error
		info, err = tryStreamInfo(url, name)
		return err == nil
	})
	return info
}

func tryStreamInfo(url, name string) (*jetstream.StreamInfo, error) {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// broadcasterBinary is cmd/broadcaster, built once per run.
var broadcasterBinary = testkit.NewBinary(testkit.BroadcasterPackage, "broadcaster")

// broadcaster is one run of the binary for one cluster.
type broadcaster struct {
	*testkit.Process
	cluster, dir, base string
}

// startBroadcaster runs the binary for cluster on the manifests in dir until the end of the
// test.
func startBroadcaster(t *testing.T, cluster, dir string, extra ...string) *broadcaster {
	t.Helper()
	addr := testkit.FreeAddr(t)
	cmd := exec.Command(broadcasterBinary.Path(t), append([]string{"--manifests", dir, "--listen", addr, "--cluster-name", cluster}, extra...)...)
	return &broadcaster{Process: testkit.StartProcess(t, "broadcaster "+cluster, cmd), cluster: cluster, dir: dir, base: "http://" + addr}
}

func (b *broadcaster) ready(t *testing.T) bool {
	t.Helper()
	b.Running()
	return testkit.HTTPOK(b.base + "/readyz")
}

// snapshot is the broadcaster's GET /v1/mesh, which must name its cluster.
func (b *broadcaster) snapshot(t *testing.T) mesh.Snapshot {
	t.Helper()
	resp, err := http.Get(b.base + mesh.PathMesh)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s mesh.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Cluster != b.cluster || resp.Header.Get(mesh.HeaderCluster) != b.cluster {
		t.Fatalf("%s: GET /v1/mesh names cluster %q (header %q)", b.cluster, s.Cluster, resp.Header.Get(mesh.HeaderCluster))
	}
	return s
}
