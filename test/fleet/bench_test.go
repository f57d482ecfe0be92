package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/delivery"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// BenchmarkFleet is a consumer's merged replica (consumer.Fleet) of a fleet of clusters that
// share one NATS JetStream, at several sizes (clusters × entities per cluster). For each size
// the stream and the KV bucket of a prefix of the benchmark's own are filled as broadcasters
// fill them: one cluster ("c00") is a broadcaster in process (engine, hub, change log,
// delivery worker and the NATS transport, as cmd/broadcaster wires them), the others are its
// opening batch published by a NATS transport of each cluster's own, in that cluster's epoch.
// Then:
//
//   - cold-sync: a new consumer connects and follows the prefix into a new Fleet, listing the
//     bucket (natsconsumer.Follow: Entity Fleet.Hold, Listed Fleet.Listed); an op ends when the
//     fleet holds every cluster's mesh at its position. Metrics: the fleet's live heap after
//     GC (fleet-MiB, fleet-B/entity; the consumer's connection closed), the heap while it
//     follows (following-B/entity: with Follow's own state), entities/s.
//   - change: a consumer synced that way follows; each op is one object change (a Broker
//     relabelled) applied to the in-process broadcaster's hub, timed until the consumer's
//     fleet has applied it. Metrics: p50-ms, p99-ms, max-ms over the ops.
//
// NATS_URL selects a server; without it the benchmark starts its own (brokers.StartNATS).
// The prefix, stream and bucket are the benchmark's own and deleted at the end.
func BenchmarkFleet(b *testing.B) {
	srv := brokers.StartNATS(b)
	for _, size := range []fleetSize{{clusters: 5, entities: 10_000}, {clusters: 50, entities: 1_000}, {clusters: 50, entities: 10_000}} {
		b.Run(fmt.Sprintf("size=%dx%d", size.clusters, size.entities), func(b *testing.B) {
			f := fillFleet(b, srv.URL, size)
			b.Run("cold-sync", f.coldSync)
			b.Run("change", f.change)
		})
	}
}

// fleetSize is how many clusters share the broker, and about how many entities each has.
type fleetSize struct{ clusters, entities int }

// filledFleet is a stream and bucket holding every cluster's mesh, with one broadcaster live.
type filledFleet struct {
	url, prefix, bucket string
	entities            int // in the bucket, every cluster's
	live                *liveBroadcaster
	follower            *coldConsumer // synced once, following, for the change benchmark
}

func fillFleet(b *testing.B, url string, size fleetSize) *filledFleet {
	b.Helper()
	prefix := "bench.fleet" + newEpoch()[:8]
	f := &filledFleet{url: url, prefix: prefix, bucket: natspub.BucketName(prefix)}
	b.Cleanup(func() { testkit.DeleteJetStream(url, natspub.StreamName(prefix), f.bucket) })
	started := time.Now()
	f.live = startLive(b, url, prefix, "c00", size.entities)
	opening := f.live.hub.Snapshot().Latest()
	f.entities = len(opening) * size.clusters
	var g errgroup.Group
	g.SetLimit(4)
	for i := 1; i < size.clusters; i++ {
		g.Go(func() error { return publishOpening(url, prefix, fmt.Sprintf("c%02d", i), opening) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d clusters × %d entities in the stream and bucket %s in %v", size.clusters, len(opening), f.bucket, time.Since(started).Round(time.Millisecond))
	f.follower = startConsumer(b, f.url, f.prefix, f.bucket, f.live.cluster)
	b.Cleanup(f.follower.stop)
	return f
}

// publishOpening publishes opening (one cluster's changes 1..n) as cluster's broadcaster
// would, in an epoch of its own, through the NATS transport in batches of the delivery
// worker's size.
func publishOpening(url, prefix, cluster string, opening []mesh.Change) error {
	enc, err := codec.NewEncoder("", codec.WithCluster(cluster))
	if err != nil {
		return err
	}
	ctx := context.Background()
	p, err := natspub.Dial(ctx, url, enc, natspub.WithSubjectPrefix(prefix))
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	epoch := newEpoch()
	changes := make([]mesh.Change, len(opening))
	for i, c := range opening {
		c.Epoch = epoch
		changes[i] = c
	}
	for batch := range slices.Chunk(changes, delivery.DefaultBatch) {
		if err := p.Publish(ctx, batch); err != nil {
			return fmt.Errorf("cluster %s: %w", cluster, err)
		}
	}
	return nil
}

// liveBroadcaster is one cluster's broadcaster in process, publishing through NATS as
// cmd/broadcaster does.
type liveBroadcaster struct {
	cluster string
	hub     *hub.Hub
	brokers []*unstructured.Unstructured
	round   int
}

func startLive(b *testing.B, url, prefix, cluster string, entities int) *liveBroadcaster {
	b.Helper()
	epoch := newEpoch()
	h := testkit.Must(hub.New(engine.New(epoch), func() bool { return true }))
	log := testkit.Must(changelog.New(epoch))
	h.Listen(log.Append)
	enc := testkit.Must(codec.NewEncoder("", codec.WithCluster(cluster)))
	ctx, cancel := context.WithCancel(context.Background())
	p, err := natspub.Dial(ctx, url, enc, natspub.WithSubjectPrefix(prefix),
		natspub.WithLatest(func() []mesh.Change { return h.Snapshot().Latest() }))
	if err != nil {
		b.Fatal(err)
	}
	w := testkit.Must(delivery.New("nats", log, p))
	var running sync.WaitGroup
	running.Add(2)
	go func() { defer running.Done(); w.Run(ctx) }()
	go func() { defer running.Done(); p.ServeResync(ctx, h.Snapshot, h.Ready, 0) }()
	b.Cleanup(func() { cancel(); running.Wait(); p.Close(context.Background()) })

	objs, brokerObjs := meshObjects(entities)
	h.Apply(engine.Listing(objs...))
	n := uint64(h.Snapshot().Len())
	testkit.Eventually(b, cluster+"'s opening delivered", 5*time.Minute, func() bool {
		delivered, _, _ := w.Stats()
		return delivered >= n
	})
	return &liveBroadcaster{cluster: cluster, hub: h, brokers: brokerObjs}
}

// relabel applies the next change: a Broker relabelled, cycling through the Brokers.
func (l *liveBroadcaster) relabel() {
	l.round++
	u := l.brokers[l.round%len(l.brokers)].DeepCopy()
	u.SetLabels(map[string]string{"app": "shop", "round": fmt.Sprint(l.round)})
	l.hub.Apply(engine.Upserts(u))
}

// meshObjects is a mesh of about entities entities: Brokers of nine EventTypes each, ten
// Brokers a namespace (test/load/genmesh's shape).
func meshObjects(entities int) (objs, brokerObjs []*unstructured.Unstructured) {
	for i := range max(entities/10, 1) {
		ns, broker := fmt.Sprint("ns-", i/10), fmt.Sprint("broker-", i%10)
		bo := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": map[string]any{"name": broker, "namespace": ns, "labels": map[string]any{"app": "shop"}}}}
		objs, brokerObjs = append(objs, bo), append(brokerObjs, bo)
		for j := range 9 {
			objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
				"metadata": map[string]any{"name": fmt.Sprintf("%s-et-%d", broker, j), "namespace": ns},
				"spec": map[string]any{"type": fmt.Sprintf("com.example.t%d", j), "description": "an event type",
					"reference": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": broker}}}})
		}
	}
	return objs, brokerObjs
}

// coldConsumer is a consumer of the whole fleet that started from the bucket.
type coldConsumer struct {
	fleet   *consumer.Fleet
	live    string      // the cluster whose changes arrived reports
	arrived chan uint64 // the sequences of live's changes, once applied
	stop    func()      // ends Follow and closes the connection
	failed  atomic.Pointer[error]
}

// startConsumer connects to url and follows prefix into a new Fleet from bucket; it returns
// once the fleet holds the listing of every cluster, placed.
func startConsumer(b *testing.B, url, prefix, bucket, live string) *coldConsumer {
	b.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	c := &coldConsumer{fleet: consumer.NewFleet(natsconsumer.ClusterSnapshots(nc, prefix)), live: live, arrived: make(chan uint64, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	listed, ended := make(chan struct{}), make(chan error, 1)
	go func() {
		ended <- natsconsumer.Follow(ctx, nc, natsconsumer.Stream{Prefix: prefix, Bucket: bucket, // the default ListTimeout, as a consumer has it
			Entity: c.fleet.Hold,
			Listed: func() { c.fleet.Listed(); close(listed) },
			Change: func(ch mesh.Change) error {
				err := c.fleet.Apply(ctx, ch)
				if ch.Cluster == c.live {
					select {
					case c.arrived <- ch.Sequence:
					case <-ctx.Done():
					}
				}
				return err
			},
			OnError: func(err error) { c.failed.CompareAndSwap(nil, &err) },
		})
	}()
	c.stop = func() {
		cancel()
		<-ended
		nc.Close()
	}
	select {
	case <-listed:
	case err := <-ended:
		b.Fatalf("Follow ended before the listing was placed: %v (%v)", err, c.err())
	case <-time.After(10 * time.Minute):
		b.Fatalf("no listing placed within 10 minutes (%v)", c.err())
	}
	if err := c.err(); err != nil {
		b.Fatal(err)
	}
	return c
}

func (c *coldConsumer) err() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// check fails b unless the fleet holds want entities, every replica placed without a snapshot.
func (c *coldConsumer) check(b *testing.B, want int) {
	b.Helper()
	n := 0
	for _, cluster := range c.fleet.Clusters() {
		r, _ := c.fleet.Replica(cluster)
		n += len(r.Entities())
		if epoch, _ := r.Position(); epoch == "" || r.Resyncs() != 0 {
			b.Fatalf("cluster %s: at epoch %q after %d snapshots, want its listing placed", cluster, epoch, r.Resyncs())
		}
	}
	if n != want {
		b.Fatalf("the fleet holds %d entities, want %d", n, want)
	}
}

// liveHeap is the live heap after two collections (the second empties what sync.Pools kept
// through the first).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// coldSync: each op a new consumer, from connecting until its fleet holds the whole bucket.
func (f *filledFleet) coldSync(b *testing.B) {
	var fleetBytes, followingBytes int64
	b.StopTimer()
	for range b.N {
		before := liveHeap()
		b.StartTimer()
		c := startConsumer(b, f.url, f.prefix, f.bucket, f.live.cluster)
		b.StopTimer()
		followingBytes += liveHeap() - before
		c.stop()
		fleetBytes += liveHeap() - before
		c.check(b, f.entities)
		runtime.KeepAlive(c.fleet)
	}
	n := float64(b.N)
	b.ReportMetric(float64(fleetBytes)/n/float64(f.entities), "fleet-B/entity")
	b.ReportMetric(float64(fleetBytes)/n/(1<<20), "fleet-MiB")
	b.ReportMetric(float64(followingBytes)/n/float64(f.entities), "following-B/entity")
	b.ReportMetric(float64(f.entities)*n/b.Elapsed().Seconds(), "entities/s")
}

// change: each op one object change in the live broadcaster, until the following fleet has it.
func (f *filledFleet) change(b *testing.B) {
	c, l := f.follower, f.live
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		l.relabel()
		want := l.hub.Position().Sequence
		for seq := uint64(0); seq < want; {
			select {
			case seq = <-c.arrived:
			case <-time.After(30 * time.Second):
				b.Fatalf("change %d of %s not in the fleet after 30 s (%v)", want, l.cluster, c.err())
			}
		}
		latencies = append(latencies, time.Since(start))
	}
	b.StopTimer()
	if err := c.err(); err != nil {
		b.Fatal(err)
	}
	r, _ := c.fleet.Replica(l.cluster)
	if _, seq := r.Position(); seq != l.hub.Position().Sequence || r.Resyncs() != 0 {
		b.Fatalf("the replica of %s is at %d after %d snapshots, the broadcaster at %d", l.cluster, seq, r.Resyncs(), l.hub.Position().Sequence)
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[min(int(q*float64(len(latencies))), len(latencies)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(at(1), "max-ms")
}

// newEpoch is a random epoch name, as a broadcaster's.
func newEpoch() string {
	p := make([]byte, 8)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}
