package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// /metrics moves with the mesh: scraped during a run on the example, then after a manifest
// adds an EventType, a file stops parsing, and a watcher connects.
func TestMetricsFollowTheMesh(t *testing.T) {
	t.Parallel()
	dir := testkit.CopyDir(t, "../../examples/mesh")
	base, _ := startRun(t, dir)
	testkit.Eventually(t, "the mesh loaded", 30*time.Second, func() bool { return scrape(t, base)["broadcaster_source_synced"] == 1 })
	get := func(path string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/v1/getEventMesh")
	before := scrape(t, base)
	for series, want := range map[string]float64{
		`broadcaster_mesh_entities{kind="broker"}`:                             2,
		`broadcaster_mesh_entities{kind="eventtype"}`:                          10,
		`broadcaster_mesh_entities{kind="source"}`:                             2,
		`broadcaster_mesh_entities{kind="subscribable"}`:                       1,
		`broadcaster_mesh_entities{kind="trigger"}`:                            13,
		`broadcaster_mesh_entities{kind="jobsink"}`:                            1,
		`broadcaster_mesh_entities{kind="integrationsink"}`:                    0,
		`broadcaster_mesh_sequence`:                                            exampleEntities,
		`broadcaster_entity_changes_total{kind="eventtype",op="added"}`:        10,
		`broadcaster_object_changes_total{kind="Broker.eventing.knative.dev"}`: 2,
		`broadcaster_http_requests_total{code="200",endpoint="getEventMesh"}`:  1,
		`broadcaster_manifests_problems{problem="unparsable_files"}`:           0,
		`broadcaster_watchers`:                                                 0,
	} {
		if got := before[series]; got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// An EventType more: an entity in, the Broker providing it updated, the sequence on.
	eventType := "apiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: refunded, namespace: payments}\n" +
		"spec: {type: com.example.payments.refunded, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}\n"
	if err := os.WriteFile(filepath.Join(dir, "payments", "refunded.yaml"), []byte(eventType), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the new EventType counted", 30*time.Second, func() bool {
		return scrape(t, base)[`broadcaster_mesh_entities{kind="eventtype"}`] == 11
	})
	after := scrape(t, base)
	for series, more := range map[string]float64{
		`broadcaster_entity_changes_total{kind="eventtype",op="added"}`:           1,
		`broadcaster_object_changes_total{kind="EventType.eventing.knative.dev"}`: 1,
	} {
		if got := after[series] - before[series]; got != more {
			t.Errorf("%s moved by %v, want %v", series, got, more)
		}
	}
	if after[`broadcaster_mesh_sequence`] <= before[`broadcaster_mesh_sequence`] {
		t.Errorf("the sequence did not move: %v → %v", before[`broadcaster_mesh_sequence`], after[`broadcaster_mesh_sequence`])
	}

	if err := os.WriteFile(filepath.Join(dir, "payments", "broken.yaml"), []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the broken file counted", 30*time.Second, func() bool {
		return scrape(t, base)[`broadcaster_manifests_problems{problem="unparsable_files"}`] == 1
	})

	resp, err := http.Get(base + "/v1/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testkit.Eventually(t, "the watcher counted", 30*time.Second, func() bool { return scrape(t, base)[`broadcaster_watchers`] == 1 })
}
