package consumer_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
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

// startBroadcaster serves the resync endpoints of a broadcaster watching the manifests in dir,
// once they are loaded; stop shuts it down.
func startBroadcaster(dir string) (baseURL string, stop func()) {
	src, err := manifests.New(dir)
	if err != nil {
		panic(err)
	}
	meshHub := testkit.Must(hub.New(engine.New("example"), src.Listed))
	enc, _ := codec.NewEncoder("")
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
