package consumer_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// A replica that follows a broadcaster's GET /v1/watch: one connection takes it from cold to
// live, and it reconnects and resumes by itself until its context ends.
func ExampleReplica_Watch() {
	baseURL, stop := startBroadcaster("../../examples/mesh") // e.g. "http://event-mesh-broadcaster.knative-eventing"
	defer stop()

	replica := consumer.NewReplica(consumer.HTTPSnapshots(baseURL, "", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go replica.Watch(ctx, baseURL, "", nil)

	<-replica.Loaded()
	m, _ := replica.Mesh()
	for _, b := range m.Brokers {
		fmt.Println(b.Key(), "provides", len(b.ProvidedEventTypes), "event types")
	}
	for _, et := range m.EventTypes[:3] {
		fmt.Println(et.Type, "is consumed by", et.ConsumedBy)
	}
	// Output:
	// eventing.knative.dev/Broker/payments/default provides 2 event types
	// eventing.knative.dev/Broker/shop/orders provides 6 event types
	// dev.knative.apiserver.resource.add is consumed by [pager-duty-bridge]
	// com.example.ops.disk.full is consumed by [pager-duty-bridge]
	// com.example.payments.chargeback is consumed by [audit-log]
}

// A merged view of a fleet over HTTP: one replica per cluster, each following its own
// broadcaster's GET /v1/watch, the same Broker in two clusters two entities.
func ExampleFleet_Watch() {
	east, stopEast := startBroadcaster("../../examples/mesh", codec.WithCluster("east"))
	defer stopEast()
	west, stopWest := startBroadcaster("../../examples/mesh", codec.WithCluster("west"))
	defer stopWest()
	broadcasters := map[string]string{"east": east, "west": west} // cluster → its broadcaster

	fleet := consumer.HTTPFleet(broadcasters, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for cluster, baseURL := range broadcasters {
		go fleet.Watch(ctx, cluster, baseURL, "", nil)
	}
	for _, cluster := range []string{"east", "west"} {
		r, _ := fleet.Replica(cluster)
		<-r.Loaded()
	}

	orders := mesh.Key{Group: mesh.GroupEventing, Kind: "Broker", Namespace: "shop", Name: "orders"}
	entities := fleet.Entities()
	for _, cluster := range fleet.Clusters() {
		_, ok := entities[consumer.FleetEntityID{Cluster: cluster, EntityID: consumer.EntityID{Kind: mesh.KindBroker, Key: orders}}]
		fmt.Println(cluster, "has", orders, ok)
	}
	fmt.Println(len(entities), "entities in all")
	// Output:
	// east has eventing.knative.dev/Broker/shop/orders true
	// west has eventing.knative.dev/Broker/shop/orders true
	// 82 entities in all
}

// startBroadcaster serves the resync endpoints of a broadcaster watching the manifests in dir,
// once they are loaded; stop shuts it down. opts name its cluster.
func startBroadcaster(dir string, opts ...codec.EncoderOption) (baseURL string, stop func()) {
	src, err := manifests.New(dir)
	if err != nil {
		panic(err)
	}
	meshHub := testkit.Must(hub.New(engine.New("example"), src.Listed))
	enc, _ := codec.NewEncoder("", opts...)
	deltas, _ := changelog.New("example")
	watchers, _ := resync.NewWatchers(enc, resync.WithWatchBuffer(64))
	meshHub.Listen(deltas.Append)
	meshHub.Listen(watchers.Publish)
	handler, err := resync.New(meshHub, resync.WithDeltaLog(deltas, enc), resync.WithWatch(watchers, time.Minute))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, meshHub) }()
	for !src.Listed() {
		select {
		case err := <-done:
			panic(err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	srv := httptest.NewServer(handler)
	return srv.URL, func() {
		watchers.Close()
		srv.Close()
		cancel()
		<-done
	}
}
