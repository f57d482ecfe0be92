package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/google/btree"
)

// Mirror is a sequence space another replica numbers: the entities as published, loaded from
// one of its snapshots and kept up to date with its changes. A follower serves it, so that
// every replica answers in the leader's epoch and sequence; a new leader continues it
// (Engine.Continue). It is not safe for concurrent use.
type Mirror struct {
	epoch    string
	seq      uint64
	entities map[entityID]*record
	tree     *btree.BTreeG[*record]
}

// Raw is the snapshot as a follower receives it: each entity's JSON in its list.
func (s Snapshot) Raw() mesh.RawSnapshot {
	raw := mesh.RawSnapshot{Epoch: s.Epoch, Sequence: s.Sequence, Mesh: mesh.RawMesh{}}
	for _, k := range mesh.UpstreamKinds() {
		raw.Mesh[k.List()] = []json.RawMessage{}
	}
	s.Each(func(en Entity) bool {
		raw.Mesh[en.Kind.List()] = append(raw.Mesh[en.Kind.List()], en.JSON)
		return true
	})
	return raw
}

// NewMirror loads a snapshot. A snapshot does not say which change made each entity, so
// every entity counts as added by the snapshot's last change.
func NewMirror(s mesh.RawSnapshot) (*Mirror, error) {
	if s.Epoch == "" {
		return nil, fmt.Errorf("snapshot: no epoch")
	}
	m := &Mirror{epoch: s.Epoch, seq: s.Sequence, entities: map[entityID]*record{}, tree: btree.NewG(32, recordLess)}
	for _, kind := range mesh.EntityKinds() {
		for i, raw := range s.Mesh[kind.List()] {
			key, foreign, err := readEntity(kind, raw)
			if err != nil {
				return nil, fmt.Errorf("snapshot: %s %d: %w", kind, i, err)
			}
			m.put(&record{id: entityID{kind, ObjectRef(key)}, json: bytes.Clone(raw), seq: s.Sequence, op: mesh.OpAdded,
				foreign: foreign, upstream: upstreamLen(kind, raw)})
		}
	}
	return m, nil
}

// MirrorOf starts a mirror from an engine's snapshot: a leader stepping down keeps serving
// what it published while it follows the next one.
func MirrorOf(s Snapshot) *Mirror {
	m := &Mirror{epoch: s.Epoch, seq: s.Sequence, entities: map[entityID]*record{}, tree: btree.NewG(32, recordLess)}
	if s.tree != nil {
		s.tree.Ascend(func(r *record) bool {
			m.put(r)
			return true
		})
	}
	return m
}

// readEntity reads the key an entity JSON stands for, and whether it may name another
// namespace (foreignOf).
func readEntity(kind mesh.EntityKind, raw json.RawMessage) (key mesh.Key, foreign bool, err error) {
	v, err := decodeEntity(kind, raw)
	if err != nil {
		return mesh.Key{}, false, err
	}
	key = v.(interface{ Key() mesh.Key }).Key()
	switch {
	case key.Namespace == "" || key.Name == "":
		return mesh.Key{}, false, fmt.Errorf("entity without namespace or name")
	case key.Kind == "":
		return mesh.Key{}, false, fmt.Errorf("%s/%s: entity without kind", key.Namespace, key.Name)
	}
	return key, foreignOf(v), nil
}

func (m *Mirror) put(r *record) {
	m.entities[r.id] = r
	m.tree.ReplaceOrInsert(r)
}

// Position is where the mirror is.
func (m *Mirror) Position() mesh.Position { return mesh.Position{Epoch: m.epoch, Sequence: m.seq} }

// Apply applies the next change of the sequence space. A change of another epoch, or not the
// next one, is refused: the mirror then needs a new snapshot.
func (m *Mirror) Apply(c mesh.Change) error {
	switch {
	case c.Epoch != m.epoch:
		return fmt.Errorf("change %s of epoch %q: the mirror is in %q", c, c.Epoch, m.epoch)
	case c.Sequence != m.seq+1:
		return fmt.Errorf("change %s: the mirror is at %d", c, m.seq)
	}
	id := entityID{c.Kind, ObjectRef(c.Key)}
	old := m.entities[id]
	switch {
	case c.Op == mesh.OpDeleted && old != nil:
		delete(m.entities, id)
		m.tree.Delete(old)
	case c.Op != mesh.OpDeleted:
		m.put(&record{id: id, json: c.Entity, seq: c.Sequence, op: c.Op, foreign: foreignJSON(c.Kind, c.Entity),
			upstream: upstreamLen(c.Kind, c.Entity)})
	}
	m.seq = c.Sequence
	return nil
}

// Advance moves the mirror to seq of its epoch without a change (a position event).
func (m *Mirror) Advance(p mesh.Position) {
	if p.Epoch == m.epoch && p.Sequence > m.seq {
		m.seq = p.Sequence
	}
}

// Snapshot is the mirror's mesh; like Engine.Snapshot it is immutable and cheap.
func (m *Mirror) Snapshot() Snapshot {
	return Snapshot{Epoch: m.epoch, Sequence: m.seq, tree: m.tree.Clone()}
}

// Continue makes the engine carry on the sequence space of base (what another replica
// published, as mirrored): it returns the changes that turn base into the engine's mesh,
// numbered from base.Sequence+skip+1, and from then on numbers its changes in base's epoch.
// Entities that did not change keep base's records. skip leaves room for changes the other
// replica may have published without base seeing them (it crashed): consumers see the jump as
// a gap instead of two different changes under one number.
func (e *Engine) Continue(base Snapshot, skip uint64) []mesh.Change {
	if base.tree == nil {
		base.tree = btree.NewG(32, recordLess)
	}
	var changes []mesh.Change
	tree := btree.NewG(32, recordLess)
	e.tree.Ascend(func(r *record) bool {
		was, ok := base.tree.Get(r)
		switch {
		case !ok:
			changes = append(changes, mesh.Change{Op: mesh.OpAdded, Kind: r.id.kind, Key: r.id.ref.Key(), Entity: r.json})
		case !bytes.Equal(was.json, r.json):
			changes = append(changes, mesh.Change{Op: mesh.OpUpdated, Kind: r.id.kind, Key: r.id.ref.Key(), Entity: r.json, Previous: was.json})
		default:
			e.entities[r.id] = was
			tree.ReplaceOrInsert(was)
		}
		return true
	})
	base.tree.Ascend(func(r *record) bool {
		if _, ok := e.entities[r.id]; !ok {
			changes = append(changes, mesh.Change{Op: mesh.OpDeleted, Kind: r.id.kind, Key: r.id.ref.Key(), Entity: r.json})
		}
		return true
	})
	slices.SortFunc(changes, func(a, b mesh.Change) int {
		return batchOrder(entityID{a.Kind, ObjectRef(a.Key)}, entityID{b.Kind, ObjectRef(b.Key)})
	})
	e.epoch, e.seq = base.Epoch, base.Sequence+skip
	for i := range changes {
		e.seq++
		c := &changes[i]
		c.Epoch, c.Sequence = e.epoch, e.seq
		if c.Op != mesh.OpDeleted {
			own := e.entities[entityID{c.Kind, ObjectRef(c.Key)}]
			rec := &record{id: own.id, json: c.Entity, seq: c.Sequence, op: c.Op, foreign: own.foreign, upstream: own.upstream}
			e.entities[rec.id] = rec
			tree.ReplaceOrInsert(rec)
		}
	}
	e.tree = tree // snapshots taken before keep the old tree: records are never mutated
	return changes
}
