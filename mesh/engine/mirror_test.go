package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A follower mirrors the leader from a snapshot and its later changes, while its own engine
// sees the cluster at another moment; taking over, its engine continues the leader's sequence
// space. For random pairs of moments:
//   - the mirror equals the leader's snapshot, entity for entity, byte for byte;
//   - the changes Continue returns turn the mirror into the follower's mesh, each entity at
//     most once, each a real difference, numbered right after the mirror (plus the skip);
//   - entities that did not change keep the leader's sequence and op;
//   - the engine numbers its later changes after them, in the leader's epoch.
func TestContinueAnotherReplicasSequenceSpace(t *testing.T) {
	t.Parallel()
	for seed := range uint64(40) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			g := &generator{rnd: newRand(seed)}
			leader, follower := New("leader"), New("follower-own")
			var shared []*unstructured.Unstructured
			for range 30 + g.rnd.IntN(60) {
				shared = append(shared, g.object())
			}
			mark := g.rnd.IntN(len(shared))
			leaderChanges := feed(leader, shared[:mark])
			mirror := mirrorOfJSON(t, leader.Snapshot())
			if raw, err := NewMirror(leader.Snapshot().Raw()); err != nil {
				t.Fatal(err)
			} else {
				sameEntities(t, "a mirror of Raw against one of the wire form", raw.Snapshot(), mirror.Snapshot(), true)
			}
			for _, c := range feed(leader, shared[mark:]) { // the leader goes on; the follower hears it
				if err := mirror.Apply(c); err != nil {
					t.Fatal(err)
				}
				leaderChanges = append(leaderChanges, c)
			}
			sameEntities(t, "mirror", mirror.Snapshot(), leader.Snapshot(), false)
			if len(leaderChanges) == 0 {
				return
			}

			// The follower's own view: the same objects, then some the leader never saw.
			feed(follower, shared)
			for range g.rnd.IntN(10) {
				feed(follower, []*unstructured.Unstructured{g.object()})
			}
			skip := uint64(g.rnd.IntN(2) * 1000)
			base, own := mirror.Snapshot(), follower.Snapshot()
			changes := follower.Continue(base, skip)

			held := map[entityID][]byte{}
			base.Each(func(en Entity) bool { held[entityID{en.Kind, ObjectRef(en.Key)}] = en.JSON; return true })
			next := base.Sequence + skip + 1
			seen := map[entityID]bool{}
			for _, c := range changes {
				id := entityID{c.Kind, ObjectRef(c.Key)}
				old, had := held[id]
				switch {
				case c.Epoch != "leader" || c.Sequence != next:
					t.Fatalf("change %v in %q, want #%d in the leader's epoch", c, c.Epoch, next)
				case seen[id]:
					t.Fatalf("%v: entity changed twice", c)
				case c.Op == mesh.OpAdded && had, c.Op != mesh.OpAdded && !had:
					t.Fatalf("%v: the mirror had it: %v", c, had)
				case c.Op == mesh.OpUpdated && bytes.Equal(old, c.Entity):
					t.Fatalf("%v: no difference", c)
				case c.Op == mesh.OpDeleted:
					delete(held, id)
				default:
					held[id] = c.Entity
				}
				seen[id] = true
				next++
			}
			after := follower.Snapshot()
			if after.Epoch != "leader" || after.Sequence != next-1 {
				t.Fatalf("after Continue at %s #%d, want leader #%d", after.Epoch, after.Sequence, next-1)
			}
			own.Epoch, own.Sequence = after.Epoch, after.Sequence
			sameEntities(t, "the engine after Continue, against its own mesh before", after, own, false)
			if after.Len() != len(held) {
				t.Fatalf("the changes make %d entities, the engine holds %d", len(held), after.Len())
			}
			leaderRecords := map[entityID]Entity{}
			base.Each(func(en Entity) bool { leaderRecords[entityID{en.Kind, ObjectRef(en.Key)}] = en; return true })
			after.Each(func(en Entity) bool {
				id := entityID{en.Kind, ObjectRef(en.Key)}
				if !bytes.Equal(held[id], en.JSON) {
					t.Fatalf("%s %s: changes make %s, engine has %s", en.Kind, en.Key, held[id], en.JSON)
				}
				if !seen[id] && (en.Sequence != leaderRecords[id].Sequence || en.Op != leaderRecords[id].Op) {
					t.Fatalf("%s %s unchanged but renumbered: #%d %s, the leader's #%d %s", en.Kind, en.Key,
						en.Sequence, en.Op, leaderRecords[id].Sequence, leaderRecords[id].Op)
				}
				return true
			})
			for range 5 {
				for _, c := range feed(follower, []*unstructured.Unstructured{g.object()}) {
					if c.Epoch != "leader" || c.Sequence != next {
						t.Fatalf("a later change %v in %q, want #%d in the leader's epoch", c, c.Epoch, next)
					}
					next++
				}
			}
		})
	}
}

func feed(e *Engine, objs []*unstructured.Unstructured) []mesh.Change {
	var all []mesh.Change
	for _, u := range objs {
		changes, _ := e.upsert(u)
		all = append(all, changes...)
	}
	return all
}

// mirrorOfJSON loads a mirror the way a follower does: from the snapshot as sent.
func mirrorOfJSON(t *testing.T, s Snapshot) *Mirror {
	t.Helper()
	var buf bytes.Buffer
	head, tail := mesh.SnapshotEnvelope(s.Epoch, s.Sequence)
	buf.WriteString(head)
	if err := s.WriteMeshOf(&buf, nil); err != nil {
		t.Fatal(err)
	}
	buf.WriteString(tail)
	var raw mesh.RawSnapshot
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	m, err := NewMirror(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameEntities compares two snapshots' entities byte for byte (and their positions).
func sameEntities(t *testing.T, what string, got, want Snapshot, records bool) {
	t.Helper()
	if got.Position() != want.Position() || got.Len() != want.Len() {
		t.Fatalf("%s at %v with %d entities, want %v with %d", what, got.Position(), got.Len(), want.Position(), want.Len())
	}
	w := map[entityID]Entity{}
	want.Each(func(en Entity) bool { w[entityID{en.Kind, ObjectRef(en.Key)}] = en; return true })
	got.Each(func(en Entity) bool {
		o := w[entityID{en.Kind, ObjectRef(en.Key)}]
		if !bytes.Equal(o.JSON, en.JSON) || records && (o.Sequence != en.Sequence || o.Op != en.Op) {
			t.Fatalf("%s: %s %s = #%d %s %s, want #%d %s %s", what, en.Kind, en.Key, en.Sequence, en.Op, en.JSON, o.Sequence, o.Op, o.JSON)
		}
		return true
	})
}

func TestMirrorRefusesWhatDoesNotContinueIt(t *testing.T) {
	m := mirrorOfJSON(t, New("e").Snapshot())
	entity := json.RawMessage(`{"namespace":"a","name":"x"}`)
	key := mesh.Key{Group: mesh.GroupEventing, Kind: mesh.KindBrokerObject, Namespace: "a", Name: "x"}
	for _, c := range []mesh.Change{
		{Epoch: "other", Sequence: 1, Key: key, Entity: entity},
		{Epoch: "e", Sequence: 2, Key: key, Entity: entity},
	} {
		if err := m.Apply(c); err == nil {
			t.Errorf("%v of %q applied to a mirror of e at 0", c, c.Epoch)
		}
	}
	if _, err := NewMirror(mesh.RawSnapshot{}); err == nil {
		t.Error("a snapshot without an epoch loaded")
	}
}
