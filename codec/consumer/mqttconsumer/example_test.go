package mqttconsumer_test

import (
	"context"
	"fmt"
	"log"
	"net/url"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/mqttconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A replica kept from MQTT: the retained messages bring the first event (and with it a
// snapshot from GET /v1/mesh), live ones every change after.
func ExampleConnect() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	replica := consumer.NewReplica(consumer.HTTPSnapshots("http://event-mesh-broadcaster.knative-eventing", "", nil))

	broker, _ := url.Parse("mqtt://127.0.0.1:1883")
	cm, err := mqttconsumer.Connect(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{broker}, KeepAlive: 20,
		CleanStartOnInitialConnection: true}, mqttconsumer.Stream{
		Prefix:  "knative/eventmesh", // the broadcaster's --mqtt-topic-prefix
		Change:  func(c mesh.Change) error { return replica.Apply(ctx, c) },
		OnError: func(err error) { log.Print(err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	<-replica.Loaded()
	m, _ := replica.Mesh()
	fmt.Println(len(m.Brokers), "brokers")
	cancel()
	<-cm.Done()
}
