package consumer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesStayLight keeps the consumer library free of the engine's weight: whoever
// embeds it compiles the contract, the codec and their transports' clients, not Kubernetes,
// the CESQL parser or the engine's B-tree.
func TestDependenciesStayLight(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/event-mesh-broadcaster/broadcaster/codec/consumer").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"k8s.io/", "sigs.k8s.io/", "knative.dev/", "github.com/antlr/", "github.com/google/btree",
		"github.com/cloudevents/sdk-go/sql/",
		"github.com/event-mesh-broadcaster/broadcaster/mesh/", "github.com/event-mesh-broadcaster/broadcaster/source",
		"github.com/event-mesh-broadcaster/broadcaster/transports"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list printed %d packages; the check would prove nothing", len(deps))
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("codec/consumer depends on %s", dep)
			}
		}
	}
}
