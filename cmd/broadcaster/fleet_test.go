package main

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
