package ha

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/prometheus/client_golang/prometheus"
)

// replica is a broadcaster's serving side over real HTTP: hub, change log, watch streams.
type replica struct {
	hub      *hub.Hub
	watchers *resync.Watchers
	url      string
}

// newReplica serves a hub that leads, or follows (as New makes it) when following.
func newReplica(t *testing.T, epoch string, following bool) *replica {
	t.Helper()
	r := &replica{hub: testkit.Must(hub.New(engine.New(epoch), func() bool { return true }))}
	if following {
		r.hub.Follow()
	}
	enc := testkit.Must(codec.NewEncoder(""))
	deltaLog := testkit.Must(changelog.New(epoch))
	r.watchers = testkit.Must(resync.NewWatchers(enc))
	r.hub.Listen(deltaLog.Append, r.watchers.Publish)
	h := testkit.Must(resync.New(r.hub, resync.WithDeltaLog(deltaLog, enc), resync.WithWatch(r.watchers, time.Second)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func brokerObject(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": name, "namespace": "ns"}}}
}

func (r *replica) add(names ...string) {
	for _, n := range names {
		r.hub.Apply(engine.Upserts(brokerObject(n)))
	}
}

// newTestFollower is a follower into target, as New makes it with opts.
func newTestFollower(t *testing.T, target Mirror, opts ...Option) *follower {
	t.Helper()
	return newFollower(target, testkit.Must(newOptions(opts...)))
}

func samePosition(a, b *replica) func() bool {
	return func() bool {
		return a.hub.Position() == b.hub.Position() && a.hub.Snapshot().Len() == b.hub.Snapshot().Len()
	}
}

// A follower loads the leader's snapshot, follows its changes, and hears a clean handover
// (the leader stops, and its last sequence is the follower's); when the leader just vanishes,
// the follower knows it was not handed over.
func TestFollowerReplicatesAndHearsTheHandover(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			leader := newReplica(t, "lead", false)
			leader.hub.Apply(engine.Listing(brokerObject("a"), brokerObject("b")))
			follower := newReplica(t, "own", true)
			registry := prometheus.NewRegistry()
			f := newTestFollower(t, follower.hub, WithMetrics(registry))
			ctx := t.Context()
			go f.run(ctx)
			f.setLeader(leader.url)
			testkit.Eventually(t, "the follower to load the leader's snapshot", 10*time.Second, samePosition(follower, leader))
			leader.add("c", "d")
			testkit.Eventually(t, "the follower to follow", 10*time.Second, samePosition(follower, leader))

			if got := counted(t, registry); got["broadcaster_follow_snapshots_total"] != 1 || got["broadcaster_follow_changes_total"] != 2 ||
				got["broadcaster_follow_streaming"] != 1 {
				t.Errorf("metrics %v, want one snapshot, two changes, streaming", got)
			}
			if clean {
				leader.hub.Stop()
				leader.watchers.Close()
			}
			handedOver := f.pause(300 * time.Millisecond)
			if handedOver != clean {
				t.Fatalf("Pause: handed over %v, want %v", handedOver, clean)
			}
			from, continued := follower.hub.Lead("fresh", 0)
			if !continued || from != leader.hub.Position() {
				t.Errorf("lead from %v (continued %v), want the leader's %v", from, continued, leader.hub.Position())
			}
		})
	}
}

// A follower whose position the leader's stream does not continue (it led before, and its
// last changes never reached the new leader) starts over from the new leader's snapshot.
func TestFollowerStartsOverWhenItDiverged(t *testing.T) {
	leader := newReplica(t, "lead", false)
	leader.hub.Apply(engine.Listing(brokerObject("a")))
	follower := newReplica(t, "own", true)
	f := newTestFollower(t, follower.hub)
	go f.run(t.Context())
	f.setLeader(leader.url)
	testkit.Eventually(t, "the follower to load the leader's snapshot", 10*time.Second, samePosition(follower, leader))

	// The follower leads for a while and publishes changes the other never sees...
	f.pause(0)
	follower.hub.Lead("fresh", 0)
	follower.add("x", "y", "z")
	follower.hub.Follow()
	// ...while the other, leading again after a crash, skips ahead in the same epoch.
	leader.hub.Follow()
	if err := leader.hub.Load(leader.hub.Snapshot().(engine.Snapshot).Raw()); err != nil {
		t.Fatal(err)
	}
	leader.hub.Lead("unused", 1000)
	leader.add("b")
	f.resume()
	testkit.Eventually(t, "the follower to start over from the leader's snapshot", 10*time.Second, samePosition(follower, leader))
	if got := follower.hub.Position(); got.Sequence < 1000 {
		t.Errorf("the follower is at %v", got)
	}
}

// counted reads every gauge and counter of registry by name.
func counted(t *testing.T, registry *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			out[f.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}
