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

// batchRank orders a batch: EventTypes first, then the entities listing them, then the
// graph's other kinds in the order of their lists.
func batchRank(k mesh.EntityKind) int {
	switch k {
	case mesh.KindEventType:
		return 0
	case mesh.KindBroker:
		return 1
	case mesh.KindSubscribable:
		return 2
	case mesh.KindSource:
		return 3
	}
	return int(k)
}

// batchOrder orders the entities of a batch: by batchRank, then namespace, name, group, kind.
func batchOrder(a, b entityID) int {
	return cmp.Or(cmp.Compare(batchRank(a.kind), batchRank(b.kind)),
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
		rec := e.render(id)
		old := e.entities[id]
		var c mesh.Change
		switch {
		case rec != nil && old == nil:
			c = mesh.Change{Op: mesh.OpAdded, Key: id.ref.Key(), Entity: rec.json}
		case rec != nil && !bytes.Equal(old.json, rec.json):
			c = mesh.Change{Op: mesh.OpUpdated, Key: id.ref.Key(), Entity: rec.json, Previous: old.json}
		case rec == nil && old != nil:
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
			rec.seq, rec.op = c.Sequence, c.Op
			e.entities[id] = rec
			e.tree.ReplaceOrInsert(rec)
		}
		changes = append(changes, c)
	}
	return changes
}

// render builds an entity's record from the current state (json, foreign, upstream); nil when
// the entity does not exist.
func (e *Engine) render(id entityID) *record {
	ref := id.ref
	v, exists := entityKinds[id.kind].render(e, ref)
	if !exists {
		return nil
	}
	data, upstream, err := marshalEntity(id.kind, v)
	if err != nil {
		panic(fmt.Sprintf("mesh: entity %s does not marshal: %v", ref, err)) // only strings and maps
	}
	return &record{id: id, json: data, foreign: foreignOf(v), upstream: upstream}
}

// marshalEntity is json.Marshal(v) and record.upstream. An upstream kind's entity with a Graph
// is marshalled in two parts, without the Graph and the Graph alone, and spliced: its fields
// come last and are left out when empty, so that is what json.Marshal(v) writes, and the
// first part is the upstream JSON.
func marshalEntity(kind mesh.EntityKind, v any) (data []byte, upstream int32, err error) {
	g := graphPartOf(v)
	if !kind.Upstream() || g == nil || g.IsZero() {
		data, err = json.Marshal(v)
		return data, 0, err
	}
	graph := *g
	*g = mesh.Graph{}
	plain, err := json.Marshal(v)
	*g = graph
	if err != nil {
		return nil, 0, err
	}
	ext, err := json.Marshal(graph)
	if err != nil {
		return nil, 0, err
	}
	end := len(plain) - 1 // without the closing brace
	data = make([]byte, 0, end+len(ext))
	data = append(append(append(data, plain[:end]...), ','), ext[1:]...)
	return data, int32(end), nil
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

// graphHolder is an entity with a Graph part.
func graphPartOf(v any) *mesh.Graph {
	switch e := v.(type) {
	case *mesh.Broker:
		return &e.Graph
	case *mesh.EventType:
		return &e.Graph
	case *mesh.Source:
		return &e.Graph
	case *mesh.Subscribable:
		return &e.Graph
	case *mesh.Element:
		return &e.Graph
	}
	return nil
}

// upstreamLen is record.upstream for an entity as JSON (a mirrored one): 0 unless it is what
// marshalEntity writes.
func upstreamLen(kind mesh.EntityKind, data []byte) int32 {
	if !kind.Upstream() {
		return 0
	}
	v, err := decodeEntity(kind, data)
	if err != nil {
		return 0
	}
	again, n, err := marshalEntity(kind, v)
	if err != nil || !bytes.Equal(again, data) {
		return 0 // not what the types marshal: served as it came
	}
	return n
}
