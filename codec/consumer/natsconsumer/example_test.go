package natsconsumer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go"

	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A replica kept from NATS alone: the changes from the subjects, and snapshots over
// request-reply whenever it starts, sees a gap or a new epoch.
func ExampleFollow_replica() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const prefix = "knative.eventmesh" // the broadcaster's --nats-subject-prefix
	replica := consumer.NewReplica(natsconsumer.Snapshots(nc, mesh.NATSResyncSubject(prefix)))
	go natsconsumer.Follow(ctx, nc, natsconsumer.Stream{Prefix: prefix,
		Change:  func(c mesh.Change) error { return replica.Apply(ctx, c) },
		OnError: func(err error) { log.Print(err) },
	})
	if err := replica.Resync(ctx); err != nil { // load now rather than at the first change
		log.Fatal(err)
	}
	m, _ := replica.Mesh()
	fmt.Println(len(m.Brokers), "brokers")
}

// The mesh's latest states from the KV bucket, then every change, each entity shown once.
func ExampleFollow_bucket() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	err = natsconsumer.Follow(context.Background(), nc, natsconsumer.Stream{
		Prefix: "knative.eventmesh", Bucket: "knative_eventmesh", // the broadcaster's defaults
		Entity:  func(c mesh.Change) error { fmt.Println("is", c.Key); return nil },
		Change:  func(c mesh.Change) error { fmt.Println(c.Op, c.Key, c.Summary()); return nil },
		OnError: func(err error) { log.Print(err) },
	})
	log.Print(err)
}
