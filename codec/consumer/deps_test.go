package consumer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// maxHTTPOnlyDeps bounds the packages outside the standard library that an HTTP-only
// consumer compiles (package consumer, the codec, the contract and their dependencies: the
// CloudEvents SDK's event package, not its clients and protocols): 13 when measured with
// go list -deps, plus a little headroom. docs/consumers.md states it too.
const maxHTTPOnlyDeps = 18

const module = "github.com/event-mesh-broadcaster/broadcaster/"

// heavy is what no part of the consumer library may compile: Kubernetes, the CESQL parser,
// the engine and its B-tree, the sources, the broadcaster's own transports.
var heavy = []string{"k8s.io/", "sigs.k8s.io/", "knative.dev/", "github.com/antlr/", "github.com/google/btree",
	"github.com/cloudevents/sdk-go/sql/", module + "mesh/", module + "source", module + "transports"}

const (
	natsClient   = "github.com/nats-io/"
	mqttClient   = "github.com/eclipse/paho"
	sdkClients   = "github.com/cloudevents/sdk-go/v2/client" // and zap with them
	sdkProtocols = "github.com/cloudevents/sdk-go/v2/protocol"
)

// TestDependenciesStayLight keeps the consumer library free of the engine's weight, and each
// consumer free of the broker clients it does not use: package consumer (the replica, the
// HTTP watch and resync) compiles neither nats.go nor paho, nor the CloudEvents SDK's clients
// (it needs its event type only); natsconsumer and mqttconsumer add one client each.
func TestDependenciesStayLight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		max       int // of packages outside the standard library; 0: not counted
	}{
		{"codec/consumer", append([]string{natsClient, mqttClient, sdkClients, sdkProtocols}, heavy...), maxHTTPOnlyDeps},
		{"codec/consumer/natsconsumer", append([]string{mqttClient}, heavy...), 0},
		{"codec/consumer/mqttconsumer", append([]string{natsClient}, heavy...), 0},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+tc.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 3 {
				t.Fatalf("go list printed %d packages; the check would prove nothing", len(deps))
			}
			for _, dep := range deps {
				for _, f := range tc.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
			}
			if tc.max > 0 && len(deps) > tc.max {
				t.Errorf("%s compiles %d packages outside the standard library, more than %d:\n%s",
					tc.pkg, len(deps), tc.max, strings.Join(deps, "\n"))
			}
			t.Logf("%s compiles %d packages outside the standard library", tc.pkg, len(deps))
		})
	}
}
