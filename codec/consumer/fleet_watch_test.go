package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
)

// A fleet told that cluster east's broadcaster is at west's URL stops watching it with
// ErrOtherCluster at west's first snapshot and loads nothing into east's replica; an unnamed
// broadcaster is no cluster's either.
func TestFleetWatchRefusesAnotherCluster(t *testing.T) {
	t.Parallel()
	west, stopWest := startBroadcaster("../../examples/mesh", codec.WithCluster("west"))
	defer stopWest()
	unnamed, stopUnnamed := startBroadcaster("../../examples/mesh")
	defer stopUnnamed()
	fleet := consumer.HTTPFleet(map[string]string{"east": west, "north": unnamed}, "")
	for cluster, url := range map[string]string{"east": west, "north": unnamed} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := fleet.Watch(ctx, cluster, url, "", nil)
		cancel()
		if !errors.Is(err, consumer.ErrOtherCluster) {
			t.Errorf("%s at %s: %v, want ErrOtherCluster", cluster, url, err)
		}
		r, _ := fleet.Replica(cluster)
		if n := len(r.Entities()); n != 0 {
			t.Errorf("%s's replica holds %d entities of another cluster", cluster, n)
		}
	}
	if _, err := fleet.Replica("south"); !errors.Is(err, consumer.ErrUnknownCluster) {
		t.Errorf("a cluster without a URL: %v", err)
	}
}
