package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// Two broadcasters with different prefixes share one MQTT broker and one NATS server while
// their meshes change for a minute: each ends exact on both, neither knocks the other off or
// touches the other's stream, bucket, keys or session.
func TestTwoBroadcastersShareBrokers(t *testing.T) {
	t.Parallel()
	mqttBroker, natsServer := brokers.StartMQTT(t), brokers.StartNATS(t)
	type instance struct {
		dir, base, mqttPrefix, natsPrefix string
		logs                              *testkit.Buffer
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	var all []*instance
	for _, name := range []string{"left", "right"} {
		in := &instance{dir: testkit.CopyDir(t, "../../examples/mesh"), mqttPrefix: "shared/" + name + suffix, natsPrefix: "shared." + name + suffix}
		in.base, in.logs = startRun(t, in.dir, "--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", in.mqttPrefix,
			"--nats", natsServer.URL, "--nats-subject-prefix", in.natsPrefix)
		t.Cleanup(func() {
			testkit.DeleteJetStream(natsServer.URL, natspub.StreamName(in.natsPrefix), natspub.BucketName(in.natsPrefix))
		})
		all = append(all, in)
	}
	deadline := time.Now().Add(time.Minute)
	for round := 0; time.Now().Before(deadline); round++ {
		for i, in := range all {
			churn(t, in.dir, round+i) // different changes in each mesh
		}
		time.Sleep(50 * time.Millisecond) // pace the churn: this is load, not synchronisation
	}
	for _, in := range all {
		testkit.Eventually(t, "the mesh loaded", 20*time.Second, func() (ok bool) { _, ok = getMesh(t, in.base); return ok })
		late := testkit.SubscribeRetained(t, mqttBroker.URL, in.mqttPrefix)
		testkit.Eventually(t, in.mqttPrefix+": MQTT and NATS equal to the mesh", 60*time.Second, func() bool {
			_, want := entitiesOf(t, in.base)
			mq, err := late.Entities()
			if err != nil {
				t.Fatal(err)
			}
			kv, err := testkit.KVEntities(natsServer.URL, natspub.BucketName(in.natsPrefix))
			return err == nil && mapsEqual(mq, want) && mapsEqual(kv, want)
		})
		if n := strings.Count(in.logs.String(), `msg="mqtt connected"`); n != 1 {
			t.Errorf("%s: connected %d times, want once", in.mqttPrefix, n)
		}
		if n := strings.Count(in.logs.String(), `msg="nats reconnected"`); n != 0 {
			t.Errorf("%s: reconnected to NATS %d times, want never", in.natsPrefix, n)
		}
		if strings.Contains(in.logs.String(), "level=ERROR") {
			t.Errorf("%s: errors:\n%s", in.mqttPrefix, in.logs.String())
		}
	}
}
