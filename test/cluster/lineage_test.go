package cluster

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
)

// `broadcaster lineage --kubeconfig` answers from the cluster's initial listing: an EventType's
// events go through its Broker and the Trigger whose filter matches to the Service, and not
// through the Trigger whose filter cannot match; the missing dead-letter Service is broken.
func TestLineageCommandOnTheCluster(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	const ns = "shop"
	trigger := func(name, typ string) map[string]any {
		return map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{"broker": "orders", "filter": map[string]any{"attributes": map[string]any{"type": typ}},
				"subscriber": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": "svc"}},
				"delivery":   map[string]any{"deadLetterSink": map[string]any{"ref": map[string]any{"apiVersion": "v1", "kind": "Service", "name": "gone"}}}}}
	}
	c.mustApply(broker(ns, "orders"), eventType(ns, "created", "order.created", "orders", ""), service(ns, "svc", ""),
		trigger("on-created", "order.created"), trigger("on-paid", "order.paid"))
	kubeconfig := testkube.WriteKubeconfig(t, cfg)
	ask := func(args ...string) lineage.Answer {
		t.Helper()
		var out, stderr bytes.Buffer
		cmd := exec.Command(broadcasterBinary.Path(t), append([]string{"lineage", "--kubeconfig", kubeconfig, "-o", "json"}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("lineage %q: %v\n%s", args, err, stderr.String())
		}
		var a lineage.Answer
		if err := json.Unmarshal(out.Bytes(), &a); err != nil {
			t.Fatalf("%v:\n%s", err, out.String())
		}
		return a
	}
	where := ask("--event-type", ns+"/created")
	want := "eventing.knative.dev/EventType/shop/created eventing.knative.dev/Broker/shop/orders eventing.knative.dev/Trigger/shop/on-created /Service/shop/svc"
	if len(where.Paths) != 1 || strings.Join(where.Paths[0].Keys, " ") != want || where.Paths[0].End != lineage.EndSink ||
		where.Paths[0].Hops[2].DeadLetterSink != "/Service/shop/gone" {
		t.Errorf("where shop/created goes: %+v", where.Paths)
	}
	broken := ask("--broken")
	dangling := 0
	for _, p := range broken.Broken {
		if p.Problem == lineage.ProblemDangling && p.Ref == "/Service/shop/gone" {
			dangling++
		}
	}
	if dangling != 2 {
		t.Errorf("want both Triggers' dead-letter sinks dangling: %+v", broken.Broken)
	}
}
