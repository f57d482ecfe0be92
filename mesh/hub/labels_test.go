package hub

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// 20,001 distinct kinds give at most the declared kinds, MaxKindLabels others and "other" as
// series of broadcaster_object_changes_total (before: one series per kind), and a kind with
// control characters never becomes a label.
func TestObjectKindLabelsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := testkit.Must(New(engine.New("e"), func() bool { return true }, WithMetrics(reg)))
	h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": "b", "namespace": "ns"}}}))
	h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Evil\x1b]0;t\a\n",
		"metadata": map[string]any{"name": "x", "namespace": "ns"}}}))
	const kinds = 20001
	for i := range kinds {
		h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": fmt.Sprint("K", i),
			"metadata": map[string]any{"name": "x", "namespace": "ns"}}}))
	}
	families := testkit.Must(reg.Gather())
	series, total := 0, 0.0
	labels := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "broadcaster_object_changes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			series++
			total += m.GetCounter().GetValue()
			labels[m.GetLabel()[0].GetValue()] = true
		}
	}
	declared := 0
	for _, k := range engine.Kinds() {
		if k.GroupKind != (engine.GroupKind{}) {
			declared++
		}
	}
	if max := declared + MaxKindLabels + 1; series > max {
		t.Errorf("%d series for %d kinds, want at most %d", series, kinds+2, max)
	}
	if total != kinds+2 || !labels["Broker.eventing.knative.dev"] || !labels[OtherKind] {
		t.Errorf("%v changes counted, labels %d; want %d with Broker's own and %q", total, len(labels), kinds+2, OtherKind)
	}
	for l := range labels {
		if strings.ContainsAny(l, "\x1b\a\n") {
			t.Errorf("a label carries control characters: %q", l)
		}
	}
}
