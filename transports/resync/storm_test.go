package resync

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// Snapshots taken while changes pour in are each consistent with exactly one sequence: they
// equal the state replayed from the changes up to their Mesh-Sequence.
func TestSnapshotDuringStormIsConsistent(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	var mu sync.Mutex
	var all []mesh.Change
	h.Listen(func(batch mesh.Batch) {
		cs := batch.Changes
		mu.Lock()
		all = append(all, cs...)
		mu.Unlock()
	})
	handler, _ := New(h)
	srv := httptest.NewServer(handler)
	defer srv.Close()

	stop := make(chan struct{})
	var storm sync.WaitGroup
	storm.Add(1)
	go func() { // Brokers and EventTypes appearing, moving and disappearing as fast as possible
		defer storm.Done()
		rnd := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprint("x", rnd.IntN(40))
			broker := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
				"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("b", rnd.IntN(5)), "namespace": "ns"}}}
			et := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1beta2",
				"kind": "EventType", "metadata": map[string]any{"name": name, "namespace": "ns"},
				"spec": map[string]any{"type": "t", "reference": map[string]any{"apiVersion": "eventing.knative.dev/v1",
					"kind": "Broker", "name": fmt.Sprint("b", rnd.IntN(5))}}}}
			switch rnd.IntN(4) {
			case 0:
				h.Apply(engine.Deletes(engine.RefOf(broker)))
			case 1:
				h.Apply(engine.Deletes(engine.RefOf(et)))
			case 2:
				h.Apply(engine.Upserts(broker))
			default:
				h.Apply(engine.Upserts(et))
			}
		}
	}()

	for i := range 40 {
		resp, err := http.Get(srv.URL + "/v1/getEventMesh")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seq, _ := strconv.Atoi(resp.Header.Get(mesh.HeaderSequence))
		var got mesh.EventMesh
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		upTo := append([]mesh.Change(nil), all[:seq]...)
		mu.Unlock()
		if want := replay(t, upTo); !reflect.DeepEqual(got, want) {
			t.Fatalf("snapshot %d at sequence %d is not the state after change %d", i, seq, seq)
		}
	}
	close(stop)
	storm.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(all) < 100 {
		t.Fatalf("only %d changes: no storm", len(all))
	}
}

// replay builds the mesh from changes 1..n.
func replay(t *testing.T, changes []mesh.Change) mesh.EventMesh {
	t.Helper()
	m := mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}}
	state := map[string]mesh.Change{}
	for i, c := range changes {
		if c.Sequence != uint64(i+1) {
			t.Fatalf("change %d has sequence %d", i, c.Sequence)
		}
		if c.Op == mesh.OpDeleted {
			delete(state, c.Kind.String()+c.Key.String())
		} else {
			state[c.Kind.String()+c.Key.String()] = c
		}
	}
	for _, c := range state {
		var err error
		switch c.Kind {
		case mesh.KindBroker:
			var b mesh.Broker
			err = json.Unmarshal(c.Entity, &b)
			m.Brokers = append(m.Brokers, b)
		case mesh.KindEventType:
			var e mesh.EventType
			err = json.Unmarshal(c.Entity, &e)
			m.EventTypes = append(m.EventTypes, e)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	m.Sort()
	return m
}
