package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// On a three-node JetStream cluster, given every node's URL: an existing one-replica stream and
// bucket are updated to three replicas, and placement by tags puts a stream where it says.
func TestReplicasAndPlacementOnACluster(t *testing.T) {
	t.Parallel()
	cluster := brokers.StartNATSCluster(t, 3)
	enc, _ := codec.NewEncoder("")
	open := func(n names, opts ...natspub.Option) *natspub.Publisher {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := natspub.Dial(ctx, cluster.URL(), enc, append([]natspub.Option{natspub.WithSubjectPrefix(n.prefix),
			natspub.WithStream(n.stream), natspub.WithBucket(n.bucket)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	n := unique()
	open(n).Close(context.Background()) // one replica, as earlier broadcasters made them
	if got := replicasOf(t, cluster.URL(), n); got != [2]int{1, 1} {
		t.Fatalf("replicas of the stream and the bucket %v, want 1", got)
	}
	p := open(n, natspub.WithReplicas(3), natspub.WithPlacement(cluster.Name, nil))
	defer p.Close(context.Background())
	if got := replicasOf(t, cluster.URL(), n); got != [2]int{3, 3} {
		t.Fatalf("replicas of the stream and the bucket %v, want 3", got)
	}

	placed := unique()
	q := open(placed, natspub.WithPlacement("", []string{"node:n2"}))
	defer q.Close(context.Background())
	if leader := leaderOf(t, cluster.URL(), placed.stream); leader != "n2" {
		t.Fatalf("stream placed on %q, want n2", leader)
	}
}

// A server that cannot keep the replicas asked for (a single server) is reported clearly, as a
// conflict naming what was asked, not retried for ever.
func TestReplicasRefused(t *testing.T) {
	t.Parallel()
	srv := brokers.StartEmbeddedNATS(t)
	enc, _ := codec.NewEncoder("")
	n := unique()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := natspub.Dial(ctx, srv.URL, enc, natspub.WithSubjectPrefix(n.prefix), natspub.WithStream(n.stream),
		natspub.WithBucket(n.bucket), natspub.WithReplicas(3))
	if !errors.Is(err, natspub.ErrConflict) || !strings.Contains(err.Error(), "3 replicas") || !strings.Contains(err.Error(), "transports.nats.replicas") {
		t.Fatalf("got %v, want a conflict naming 3 replicas and the setting", err)
	}
}

func TestReplicasOption(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		opt natspub.Option
		ok  bool
	}{
		{natspub.WithReplicas(1), true}, {natspub.WithReplicas(5), true}, {natspub.WithReplicas(0), false}, {natspub.WithReplicas(6), false},
		{natspub.WithPlacement("c", nil), true}, {natspub.WithPlacement("", []string{"a", "b"}), true}, {natspub.WithPlacement("", nil), false},
		{natspub.WithPlacement("a b", nil), false}, {natspub.WithPlacement("", []string{""}), false},
	} {
		if err := natspub.Check("nats://a:4222,nats://b:4222", tt.opt); (err == nil) != tt.ok {
			t.Errorf("option: %v, want ok %v", err, tt.ok)
		}
	}
	for _, bad := range []string{"nats://a:4222,b:4222", "nats://a:4222,", "http://a"} {
		if err := natspub.Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

// replicasOf is the replica count of n's stream and of its bucket.
func replicasOf(t *testing.T, url string, n names) [2]int {
	return [2]int{streamInfo(t, url, n.stream).Config.Replicas, streamInfo(t, url, "KV_"+n.bucket).Config.Replicas}
}

// leaderOf is the server leading a stream ("" outside a cluster).
func leaderOf(t *testing.T, url, stream string) string {
	if info := streamInfo(t, url, stream); info.Cluster != nil {
		return info.Cluster.Leader
	}
	return ""
}

// streamInfo is what the server says of a stream.
func streamInfo(t *testing.T, url, stream string) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo()
}
