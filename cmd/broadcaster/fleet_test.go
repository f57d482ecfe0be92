package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// TestSnapshotOfAFleet reads three broadcasters at once: two named by their events.cluster,
// one by NAME= of its --url. The JSON holds each cluster's mesh exactly as a snapshot of that
// broadcaster alone prints it; the pictures draw each cluster's namespaces apart and the
// Backstage consumers once.
func TestSnapshotOfAFleet(t *testing.T) {
	t.Parallel()
	westDir := testkit.CopyDir(t, "../../examples/mesh")
	if err := os.RemoveAll(filepath.Join(westDir, "payments")); err != nil { // west differs from east
		t.Fatal(err)
	}
	east, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"), "--cluster-name", "east")
	west, _ := startRun(t, westDir, "--cluster-name", "west")
	unnamed, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"))
	fleet := []string{"--url", west, "--url", east, "--url", "north=" + unnamed}

	for _, whole := range []bool{false, true} {
		extra := []string{}
		if whole {
			extra = []string{"--whole"}
		}
		var got struct {
			Clusters map[string]json.RawMessage `json:"clusters"`
		}
		out, err := runSnapshot(t, nil, slices.Concat(fleet, extra)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if names := slices.Sorted(maps.Keys(got.Clusters)); !slices.Equal(names, []string{"east", "north", "west"}) {
			t.Fatalf("clusters %q", names)
		}
		if i, j := strings.Index(out, `"east"`), strings.Index(out, `"west"`); i > j {
			t.Errorf("clusters out of order:\n%s", out)
		}
		for name, base := range map[string]string{"east": east, "west": west, "north": unnamed} {
			alone, err := runSnapshot(t, nil, slices.Concat([]string{"--url", base}, extra)...)
			if err != nil {
				t.Fatal(err)
			}
			if compact(t, string(got.Clusters[name])) != compact(t, alone) {
				t.Errorf("whole=%v: cluster %s's mesh differs from its broadcaster's own snapshot", whole, name)
			}
		}
		if compact(t, string(got.Clusters["east"])) == compact(t, string(got.Clusters["west"])) {
			t.Errorf("whole=%v: east and west print the same mesh, although west has no payments", whole)
		}
	}

	alone, err := runSnapshot(t, nil, "--url", east, "-o", "mermaid")
	if err != nil {
		t.Fatal(err)
	}
	picture, err := runSnapshot(t, nil, slices.Concat(fleet, []string{"-o", "mermaid"})...)
	if err != nil {
		t.Fatal(err)
	}
	namespaces := strings.Count(alone, "subgraph ns")
	for _, cluster := range []string{"east", "north"} {
		if n := strings.Count(picture, "[\"cluster "+cluster+", namespace "); n != namespaces {
			t.Errorf("cluster %s has %d namespaces in the picture, want %d:\n%s", cluster, n, namespaces, picture)
		}
	}
	if n := strings.Count(picture, `subgraph consumers`); n != 1 {
		t.Errorf("%d consumer subgraphs, want one for every cluster", n)
	}
	if n, each := strings.Count(picture, ":::consumer"), strings.Count(alone, ":::consumer"); n != each {
		t.Errorf("%d consumers in the picture, want %d: a Backstage entity is one node whatever its clusters", n, each)
	}
	dot, err := runSnapshot(t, nil, slices.Concat(fleet, []string{"-o", "dot", "--whole"})...)
	if err != nil || !strings.Contains(dot, `label="cluster west, namespace shop"`) {
		t.Errorf("dot: %v\n%s", err, dot)
	}

	for _, tt := range []struct {
		name  string
		args  []string
		usage bool
		says  []string
	}{
		{"unnamed", []string{"--url", east, "--url", unnamed}, true, []string{"--url " + unnamed, "no cluster name", "NAME=" + unnamed}},
		{"twice", []string{"--url", east, "--url", east}, true, []string{"--url " + east + " and --url " + east, `cluster "east"`}},
		{"named twice", []string{"--url", east, "--url", "east=" + unnamed}, true, []string{`cluster "east"`}},
		{"misnamed", []string{"--url", east, "--url", "north=" + west}, false, []string{"--url north=" + west, `of cluster "west"`}},
		{"bad name", []string{"--url", "no_such=" + east}, true, []string{`"no_such=` + east, "--url", "cluster name"}},
		{"bad URL", []string{"--url", east, "--url", "east=ftp://x"}, true, []string{"--url", `"east=ftp://x"`, "after NAME="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runSnapshot(t, nil, tt.args...)
			if err == nil || errors.Is(err, errUsage) != tt.usage {
				t.Fatalf("err = %v, want usage error %v", err, tt.usage)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
	if _, err := runLineage(t, "--url", east, "--url", west, "--broken"); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "one --url") {
		t.Errorf("lineage over two broadcasters: %v, want a usage error", err)
	}
}

// jsonDocs reads tail's JSON lines.
func jsonDocs(t *testing.T, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		docs = append(docs, doc)
	}
	return docs
}

// entitiesByCluster counts the entity documents of each cluster.
func entitiesByCluster(t *testing.T, out string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, doc := range jsonDocs(t, out) {
		if doc["entity"] != nil && doc["op"] == nil {
			cluster, _ := doc["cluster"].(string)
			n[cluster]++
		}
	}
	return n
}

// TestTailOfAFleet follows three broadcasters at once with --watch: every entity and change
// is printed with its cluster, the same keys in several clusters stay apart (an update in one
// says what changed in that one), --cluster keeps one, and broadcasters that cannot be told
// apart are refused.
func TestTailOfAFleet(t *testing.T) {
	t.Parallel()
	eastDir, westDir := testkit.CopyDir(t, "../../examples/mesh"), testkit.CopyDir(t, "../../examples/mesh")
	east, _ := startRun(t, eastDir, "--cluster-name", "east")
	west, _ := startRun(t, westDir, "--cluster-name", "west")
	unnamed, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"))
	unnamedToo, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"))

	all := startTail(t, nil, false, "--watch", east, "--watch", west, "--watch", "north="+unnamed, "-o", "json")
	text := startTail(t, nil, false, "--watch", east, "--watch", west+"/v1/watch", "--watch", "north="+unnamed)
	onlyWest := startTail(t, nil, false, "--watch", east, "--watch", west, "--cluster", "west", "-o", "json")
	want := map[string]int{"east": exampleEntities, "west": exampleEntities, "north": exampleEntities}
	testkit.Eventually(t, "every cluster's snapshot", 20*time.Second, func() bool {
		return reflect.DeepEqual(entitiesByCluster(t, all.String()), want) &&
			strings.Count(text.String(), "snapshot of cluster ") == 3 &&
			reflect.DeepEqual(entitiesByCluster(t, onlyWest.String()), map[string]int{"west": exampleEntities})
	})
	for _, cluster := range []string{"east", "west", "north"} {
		if !strings.Contains(text.String(), "  ["+cluster+"] broker       eventing.knative.dev/Broker/payments/default\n") {
			t.Errorf("no text line of cluster %s's payments/default Broker:\n%s", cluster, text.String())
		}
	}

	payments := filepath.Join(westDir, "payments", "payments.yaml")
	os.WriteFile(payments, []byte(strings.ReplaceAll(mustRead(t, payments), "billing-service", "billing-v2")), 0o644)
	testkit.Eventually(t, "west's update", 20*time.Second, func() bool {
		return strings.Contains(text.String(), "[west] eventtype    updated eventing.knative.dev/EventType/payments/refund-issued  "+
			`consumedBy: ["billing-service"] → ["billing-v2"]`) &&
			strings.Contains(onlyWest.String(), `"op":"updated"`)
	})
	for _, doc := range jsonDocs(t, all.String()) {
		if doc["op"] != nil && doc["cluster"] != "west" {
			t.Errorf("a change of cluster %v, want only west's: %v", doc["cluster"], doc)
		}
	}
	if strings.Contains(text.String(), "[east] eventtype    updated") {
		t.Errorf("east printed an update it never had:\n%s", text.String())
	}

	for _, tt := range []struct {
		name string
		args []string
		says string
	}{
		{"two unnamed", []string{"--watch", unnamed, "--watch", unnamedToo}, "no cluster name"},
		{"one name twice", []string{"--watch", east, "--watch", "east=" + unnamed}, `both cluster "east"`},
		{"misnamed", []string{"--watch", "north=" + west}, `of cluster "west"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := tail(ctx, tt.args, noEnv, io.Discard, io.Discard, false)
			if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("tail %q: %v, want a failure saying %q", tt.args, err, tt.says)
			}
		})
	}
	for _, args := range [][]string{{"--watch", "no_such=" + east}, {"--watch", east, "--cluster", "not a name"},
		{"--watch", east, "--watch", "other=" + east + "/v1/watch"}} {
		if err := tail(context.Background(), args, noEnv, io.Discard, io.Discard, false); !errors.Is(err, errUsage) {
			t.Errorf("tail %q: %v, want a usage error", args, err)
		}
	}
}

// TestTailFleetOnOneBroker: two broadcasters share one NATS server and one MQTT broker (one
// prefix each); a tail of the broker shows both clusters apart, and --cluster keeps one, by
// subscribing to its subjects or topics only (one --cluster) or by filtering (several).
func TestTailFleetOnOneBroker(t *testing.T) {
	t.Parallel()
	natsServer, mqttBroker := brokers.StartEmbeddedNATS(t), brokers.StartEmbeddedMQTT(t)
	prefix := fmt.Sprintf("fleet%d", rand.Int())
	var bases []string
	for _, cluster := range []string{"east", "west"} {
		base, _ := startRun(t, testkit.CopyDir(t, "../../examples/mesh"), "--cluster-name", cluster,
			"--nats", natsServer.URL, "--nats-subject-prefix", prefix, "--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", prefix+"/mesh")
		bases = append(bases, base)
	}
	for _, base := range bases {
		testkit.Eventually(t, "both carriers filled", 30*time.Second, func() bool {
			m := scrape(t, base)
			return m[`broadcaster_transport_behind_changes{transport="nats `+prefix+`.>"}`] == 0 &&
				m[`broadcaster_transport_last_delivery_timestamp_seconds{transport="nats `+prefix+`.>"}`] > 0 &&
				m[`broadcaster_transport_last_delivery_timestamp_seconds{transport="mqtt `+prefix+`/mesh/#"}`] > 0
		})
	}
	both := map[string]int{"east": exampleEntities, "west": exampleEntities}
	for _, tt := range []struct {
		name string
		args []string
		want map[string]int
	}{
		{"nats", []string{"--nats", natsServer.URL, "--nats-subject-prefix", prefix}, both},
		{"nats one cluster", []string{"--nats", natsServer.URL, "--nats-subject-prefix", prefix, "--cluster", "west"}, map[string]int{"west": exampleEntities}},
		{"nats two clusters", []string{"--nats", natsServer.URL, "--nats-subject-prefix", prefix, "--cluster", "west,east"}, both},
		{"mqtt", []string{"--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", prefix + "/mesh"}, both},
		{"mqtt one cluster", []string{"--mqtt", mqttBroker.URL, "--mqtt-topic-prefix", prefix + "/mesh", "--cluster", "east"}, map[string]int{"east": exampleEntities}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := startTail(t, nil, false, append(tt.args, "-o", "json")...)
			testkit.Eventually(t, "the clusters' entities", 20*time.Second, func() bool {
				return reflect.DeepEqual(entitiesByCluster(t, out.String()), tt.want)
			})
		})
	}
}
