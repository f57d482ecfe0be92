package resync

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// A broadcaster with a cluster name says it in every snapshot envelope (GET /v1/mesh, the
// watch stream's first event), in a Mesh-Cluster header, and in every delta; one without
// says nothing of a cluster.
func TestClusterInSnapshotsAndDeltas(t *testing.T) {
	t.Parallel()
	for _, cluster := range []string{"east", ""} {
		t.Run("cluster="+cluster, func(t *testing.T) {
			t.Parallel()
			h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
			deltaLog, _ := changelog.New("ep")
			var opts []codec.EncoderOption
			if cluster != "" {
				opts = append(opts, codec.WithCluster(cluster))
			}
			enc := testkit.Must(codec.NewEncoder("", opts...))
			watchers := testkit.Must(NewWatchers(enc))
			h.Listen(deltaLog.Append, watchers.Publish)
			handler := testkit.Must(New(h, WithDeltaLog(deltaLog, enc), WithWatch(watchers, time.Hour)))
			srv := httptest.NewServer(handler)
			t.Cleanup(srv.Close)
			for i := range 3 {
				h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
					"metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "shop"}}}))
			}
			for _, path := range []string{mesh.PathMesh, mesh.PathGetEventMesh, mesh.PathDeltas + "?epoch=ep&since=0"} {
				resp, body := get(t, srv.URL+path, "")
				if resp.StatusCode != 200 || resp.Header.Get(mesh.HeaderCluster) != cluster {
					t.Fatalf("%s: %d, %s %q", path, resp.StatusCode, mesh.HeaderCluster, resp.Header.Get(mesh.HeaderCluster))
				}
				switch {
				case strings.HasPrefix(path, mesh.PathDeltas):
					var batch []json.RawMessage
					if err := json.Unmarshal([]byte(body), &batch); err != nil || len(batch) != 3 {
						t.Fatalf("batch %s: %v", body, err)
					}
					for _, raw := range batch {
						if c, err := codec.DecodeStructured(raw); err != nil || c.Cluster != cluster {
							t.Fatalf("delta %s: %+v %v", raw, c, err)
						}
					}
				case path == mesh.PathMesh:
					var s mesh.Snapshot
					if err := json.Unmarshal([]byte(body), &s); err != nil || s.Cluster != cluster || s.Sequence != 3 {
						t.Fatalf("snapshot %s: %v", body, err)
					}
					if cluster == "" && strings.Contains(body, `"cluster"`) {
						t.Fatalf("a snapshot without a cluster names one: %s", body)
					}
				case strings.Contains(body, `"cluster"`):
					t.Fatalf("getEventMesh changed: %s", body)
				}
			}
			resp := open(t, srv.URL, "")
			if resp.Header.Get(mesh.HeaderCluster) != cluster {
				t.Fatalf("watch %s %q", mesh.HeaderCluster, resp.Header.Get(mesh.HeaderCluster))
			}
			events := collect(t, resp, func(got []consumer.SSEEvent) bool { return len(got) == 1 })
			var s mesh.Snapshot
			if err := json.Unmarshal(events[0].Data, &s); err != nil || events[0].Type != mesh.SSESnapshot || s.Cluster != cluster {
				t.Fatalf("first event %+v: %v", events[0], err)
			}
		})
	}
}
