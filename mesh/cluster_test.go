package mesh_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func TestCheckCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"east", true}, {"eu-west-1", true}, {"Prod", true}, {"7", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"-a", false}, {"a-", false}, {"a.b", false}, {"a_b", false},
		{"a/b", false}, {"a b", false}, {"*", false}, {">", false}, {"#", false}, {"+", false}, {"é", false}, {"a%20", false},
	}
	for _, tt := range tests {
		if err := mesh.CheckCluster(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckCluster(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// A valid cluster name is one token, one topic level and one path segment, unescaped.
func FuzzCheckCluster(f *testing.F) {
	for _, s := range []string{"east", "a.b", "-", "a-b", "x y", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if mesh.CheckCluster(name) != nil {
			return
		}
		if strings.ContainsAny(name, ".*>/#+ %_\x00") || name == "" || len(name) > mesh.MaxClusterLength {
			t.Fatalf("accepted %q", name)
		}
		if got := mesh.NATSClusterResyncSubject("p", name); got != "p-resync."+name {
			t.Fatalf("resync subject %q", got)
		}
	})
}

// Without a cluster every name is the single-broadcaster one; with one, the cluster is one
// more level or token, and the snapshot carries it before the mesh.
func TestClusterNames(t *testing.T) {
	t.Parallel()
	if mesh.MQTTClusterStatusTopic("k/m", "") != mesh.MQTTStatusTopic("k/m") || mesh.MQTTClusterInfoTopic("k/m", "") != mesh.MQTTInfoTopic("k/m") ||
		mesh.MQTTEntityRoot("k/m", "") != "k/m" || mesh.NATSClusterResyncSubject("k.m", "") != mesh.NATSResyncSubject("k.m") ||
		mesh.ClusterSource("/s", "") != "/s" {
		t.Error("an empty cluster changes a name")
	}
	for got, want := range map[string]string{
		mesh.MQTTClusterStatusTopic("k/m", "east"):   "k/m-status/east",
		mesh.MQTTClusterInfoTopic("k/m", "east"):     "k/m-info/east",
		mesh.MQTTEntityRoot("k/m", "east"):           "k/m/east",
		mesh.NATSClusterResyncSubject("k.m", "east"): "k.m-resync.east",
		mesh.ClusterSource("/s/", "east"):            "/s/east",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	h0, t0 := mesh.SnapshotEnvelope("e", 3)
	h1, t1 := mesh.ClusterSnapshotEnvelope("", "e", 3)
	if h0 != h1 || t0 != t1 {
		t.Error("an empty cluster changes the envelope")
	}
	head, tail := mesh.ClusterSnapshotEnvelope("east", "e", 3)
	var got mesh.Snapshot
	if err := json.Unmarshal([]byte(head+`{"brokers":[],"eventTypes":[],"sources":[],"subscribables":[]}`+tail), &got); err != nil {
		t.Fatal(err)
	}
	if got.Cluster != "east" || got.Epoch != "e" || got.Sequence != 3 {
		t.Fatalf("snapshot %+v", got)
	}
	again, _ := json.Marshal(got)
	if !strings.HasPrefix(string(again), head) {
		t.Errorf("json.Marshal and the envelope differ:\n%s\n%s", again, head)
	}
}
