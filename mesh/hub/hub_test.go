package hub

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// The hub is what sources feed.
var _ source.Sink = (*Hub)(nil)

func broker(name string, labels map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": name, "namespace": "ns", "labels": labels}}}
}

func TestHubAppliesBatches(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	synced := false
	h := testkit.Must(New(engine.New("e"), func() bool { return synced }, WithLogger(log)))
	var got []string
	h.Listen(func(batch mesh.Batch) {
		cs := batch.Changes

		for _, c := range cs {
			got = append(got, c.String())
		}
	})
	h.Listen(LogChanges(log))

	if h.Ready() {
		t.Fatal("ready before the source synced")
	}
	h.Apply(engine.Upserts(broker("a", nil)))
	h.Apply(engine.Upserts(broker("a", map[string]any{"tier": "gold"})))
	h.Apply(engine.Upserts(broker("a", map[string]any{"tier": "gold"}))) // no change
	h.Apply(engine.Upserts(broker("b", nil)))
	h.Apply(engine.Deletes(engine.RefOf(broker("b", nil))))
	h.Apply(engine.Deletes(engine.RefOf(broker("never-there", nil)))) // nothing to delete: no change
	h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1beta3",
		"kind": "EventType", "metadata": map[string]any{"name": "x", "namespace": "ns"},
		"spec": map[string]any{"attributes": "oops"}}}))
	synced = true

	want := []string{
		"#1 broker added eventing.knative.dev/Broker/ns/a",
		"#2 broker updated eventing.knative.dev/Broker/ns/a",
		"#3 broker added eventing.knative.dev/Broker/ns/b",
		"#4 broker deleted eventing.knative.dev/Broker/ns/b",
		"#5 eventtype added eventing.knative.dev/EventType/ns/x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes\n got %q\nwant %q", got, want)
	}
	if s := h.Snapshot(); s.Position().Sequence != 5 || s.Len() != 2 || !h.Ready() {
		t.Fatalf("snapshot at %d with %d entities, ready %v", s.Position().Sequence, s.Len(), h.Ready())
	}
	for _, line := range []string{
		`msg="broker updated" epoch=e seq=2 key=eventing.knative.dev/Broker/ns/a diff="labels: null → {\"tier\":\"gold\"}"`,
		`object partly ignored" object=eventing.knative.dev/EventType/ns/x problems="eventing.knative.dev/EventType/ns/x: spec.attributes: want a list, got string"`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s\n%s", line, logs.String())
		}
	}
}

func TestHubReplaceIsOneBatch(t *testing.T) {
	t.Parallel()
	h := testkit.Must(New(engine.New("e"), func() bool { return true }))
	var batches [][]string
	h.Listen(func(batch mesh.Batch) {
		cs := batch.Changes

		var b []string
		for _, c := range cs {
			b = append(b, c.String())
		}
		batches = append(batches, b)
	})
	h.Apply(engine.Listing(broker("a", nil), broker("b", nil)))
	h.Apply(engine.Listing(broker("b", nil)))
	want := [][]string{
		{"#1 broker added eventing.knative.dev/Broker/ns/a", "#2 broker added eventing.knative.dev/Broker/ns/b"},
		{"#3 broker deleted eventing.knative.dev/Broker/ns/a"},
	}
	if !reflect.DeepEqual(batches, want) {
		t.Fatalf("batches\n got %q\nwant %q", batches, want)
	}
}

// A follower that leads with no sequence space to continue opens an epoch with the whole
// mesh, and the first batch of each epoch says it opens it, even when the mesh was empty and
// the epoch's first batch comes later; removing a listener stops its deliveries.
func TestHubMarksTheBatchThatOpensAnEpoch(t *testing.T) {
	t.Parallel()
	var got, stopped []string
	record := func(into *[]string) Listener {
		return func(b mesh.Batch) {
			*into = append(*into, fmt.Sprintf("%s opens=%v n=%d", b.Changes[0].Epoch, b.Opens, len(b.Changes)))
		}
	}
	h := testkit.Must(New(engine.New("own"), func() bool { return true }))
	h.Follow()
	h.Listen(record(&got))
	remove := h.Listen(record(&stopped))
	h.Apply(engine.Listing(broker("a", nil), broker("b", nil))) // kept to itself while following
	if from, continued := h.Lead("e1", 0); continued || from != (mesh.Position{}) {
		t.Fatalf("Lead without a sequence space: from %v, continued %v", from, continued)
	}
	h.Apply(engine.Upserts(broker("c", nil)))
	remove()
	h.Apply(engine.Deletes(engine.RefOf(broker("a", nil))))

	empty := testkit.Must(New(engine.New("own"), func() bool { return true }))
	empty.Follow()
	empty.Listen(record(&got))
	empty.Lead("e2", 0) // an empty mesh: nothing to emit, so the next batch opens e2
	empty.Apply(engine.Upserts(broker("d", nil)))
	empty.Apply(engine.Upserts(broker("e", nil)))
	want := []string{"e1 opens=true n=2", "e1 opens=false n=1", "e1 opens=false n=1", "e2 opens=true n=1", "e2 opens=false n=1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batches\n got %q\nwant %q", got, want)
	}
	if want := want[:2]; !reflect.DeepEqual(stopped, want) {
		t.Errorf("removed listener got %q, want %q", stopped, want)
	}
}

// A follower serves the leader's sequence space and keeps its engine's changes to itself;
// when it leads, it continues that space with only what differs, and after Stop it emits
// nothing.
func TestHubFollowsThenContinuesTheLeadersSequenceSpace(t *testing.T) {
	t.Parallel()
	leader := testkit.Must(New(engine.New("lead"), func() bool { return true }))
	var fromLeader []mesh.Change
	leader.Listen(func(b mesh.Batch) { fromLeader = append(fromLeader, b.Changes...) })
	leader.Apply(engine.Listing(broker("a", nil), broker("b", nil)))

	follower := testkit.Must(New(engine.New("own"), func() bool { return true }))
	follower.Follow()
	var got []string
	follower.Listen(func(b mesh.Batch) {
		if b.Resets {
			got = append(got, fmt.Sprintf("reset %s #%d", b.At.Epoch, b.At.Sequence))
		}
		for _, c := range b.Changes {
			got = append(got, c.Epoch+" "+c.String())
		}
	})
	follower.Apply(engine.Listing(broker("a", nil), broker("b", nil), broker("c", nil)))
	if follower.Ready() || follower.Snapshot().Len() != 0 {
		t.Fatalf("a follower without the leader's snapshot serves %d entities (ready %v)", follower.Snapshot().Len(), follower.Ready())
	}
	if err := follower.Load(leader.Snapshot().(engine.Snapshot).Raw()); err != nil {
		t.Fatal(err)
	}
	leader.Apply(engine.Upserts(broker("d", nil)))
	if err := follower.Replicate(fromLeader[len(fromLeader)-1]); err != nil {
		t.Fatal(err)
	}
	if err := follower.Replicate(fromLeader[0]); err == nil {
		t.Error("a change the follower already has was applied again")
	}
	if s, l := follower.Snapshot(), leader.Snapshot(); !follower.Ready() || s.Position() != l.Position() || s.Len() != l.Len() {
		t.Fatalf("the follower serves %v with %d entities, the leader %v with %d", s.Position(), s.Len(), l.Position(), l.Len())
	}

	from, continued := follower.Lead("fresh", 0)
	if !continued || from != leader.Snapshot().Position() {
		t.Fatalf("Lead: from %v continued %v, want from the leader's %v", from, continued, leader.Snapshot().Position())
	}
	if err := follower.Replicate(fromLeader[0]); !errors.Is(err, ErrNotFollowing) {
		t.Errorf("replicating while leading: %v", err)
	}
	follower.Apply(engine.Upserts(broker("e", nil)))
	follower.Stop()
	follower.Apply(engine.Upserts(broker("f", nil)))
	want := []string{
		"reset lead #2",
		"lead #3 broker added eventing.knative.dev/Broker/ns/d",
		// Leading: c is new to the sequence space, d is not in this replica's cluster view.
		"lead #4 broker added eventing.knative.dev/Broker/ns/c",
		"lead #5 broker deleted eventing.knative.dev/Broker/ns/d",
		"lead #6 broker added eventing.knative.dev/Broker/ns/e",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the follower emitted\n%q\nwant\n%q", got, want)
	}

	follower.Follow() // the term ended: it serves what it published until the next leader says otherwise
	if s := follower.Snapshot(); s.Position() != (mesh.Position{Epoch: "lead", Sequence: 7}) || s.Len() != 5 {
		t.Errorf("stepped down serving %v with %d entities, want lead #7 (f applied while stopped) with 5", s.Position(), s.Len())
	}
}
