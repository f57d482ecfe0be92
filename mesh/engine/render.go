package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Output: entities marked dirty by a change are rendered, compared with what was last
// emitted, and numbered.

func (e *Engine) mark(kind mesh.EntityKind, ref ObjectRef) {
	e.dirty[entityID{kind, ref}] = struct{}{}
}

// batchRank orders a batch: EventTypes first, then the entities listing them.
var batchRank = [...]int{mesh.KindEventType: 0, mesh.KindBroker: 1, mesh.KindSubscribable: 2, mesh.KindSource: 3}

// batchOrder orders the entities of a batch: by batchRank, then namespace, name, group, kind.
func batchOrder(a, b entityID) int {
	return cmp.Or(cmp.Compare(batchRank[a.kind], batchRank[b.kind]),
		cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name),
		cmp.Compare(a.ref.Group, b.ref.Group), cmp.Compare(a.ref.Kind, b.ref.Kind))
}

func (e *Engine) flush() []mesh.Change {
	if len(e.dirty) == 0 {
		return nil
	}
	ids := make([]entityID, 0, len(e.dirty))
	for id := range e.dirty {
		ids = append(ids, id)
	}
	if len(ids) > 1024 {
		e.dirty = map[entityID]struct{}{} // a map keeps its size: let a large batch's go
	} else {
		clear(e.dirty)
	}
	slices.SortFunc(ids, batchOrder)
	var changes []mesh.Change
	for _, id := range ids {
		data, foreign, exists := e.render(id)
		old := e.entities[id]
		var c mesh.Change
		switch {
		case exists && old == nil:
			c = mesh.Change{Op: mesh.OpAdded, Key: id.ref.Key(), Entity: data}
		case exists && !bytes.Equal(old.json, data):
			c = mesh.Change{Op: mesh.OpUpdated, Key: id.ref.Key(), Entity: data, Previous: old.json}
		case !exists && old != nil:
			c = mesh.Change{Op: mesh.OpDeleted, Key: id.ref.Key(), Entity: old.json}
		default:
			continue
		}
		e.seq++
		c.Epoch, c.Sequence, c.Kind = e.epoch, e.seq, id.kind
		if c.Op == mesh.OpDeleted {
			delete(e.entities, id)
			e.tree.Delete(old)
		} else {
			rec := &record{id: id, json: data, seq: c.Sequence, op: c.Op, foreign: foreign}
			e.entities[id] = rec
			e.tree.ReplaceOrInsert(rec)
		}
		changes = append(changes, c)
	}
	return changes
}

// render builds an entity's JSON from the current state, and says whether it may name another
// namespace (foreignOf); exists is false when the entity does not exist.
func (e *Engine) render(id entityID) (data []byte, foreign, exists bool) {
	ref := id.ref
	v, exists := entityKinds[id.kind].render(e, ref)
	if !exists {
		return nil, false, false
	}
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("mesh: entity %s does not marshal: %v", ref, err)) // only strings and maps
	}
	return data, foreignOf(v), true
}

func namesOf(s *smallSet[*eventTypeState]) []string {
	names := make([]string, 0, s.Len())
	for et := range s.Keys() {
		names = append(names, et.ref.NamespacedName())
	}
	slices.Sort(names)
	return names
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func gknn(r *ObjectRef) *mesh.GroupKindNamespacedName {
	if r == nil {
		return nil
	}
	return &mesh.GroupKindNamespacedName{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

func equalRef(a, b *ObjectRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
