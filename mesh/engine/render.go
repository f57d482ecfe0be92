package engine

import (
	"bytes"
	"cmp"
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
	ids := e.dirtyIDs[:0]
	defer func() {
		if cap(ids) <= 1024 { // a large batch's list goes with it
			e.dirtyIDs = ids[:0]
		}
	}()
	for id := range e.dirty {
		ids = append(ids, id)
	}
	if len(ids) > 1024 {
		e.dirty = map[entityID]struct{}{} // a map keeps its size: let a large batch's go
	} else {
		clear(e.dirty)
	}
	slices.SortFunc(ids, batchOrder)
	changes := make([]mesh.Change, 0, len(ids))
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
		e.noteSuspect(old, -1)
		e.noteSuspect(rec, +1)
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
	data, upstream, err := marshalEntity(id.kind, v, &e.scratch)
	if err != nil {
		panic(fmt.Sprintf("mesh: entity %s does not marshal: %v", ref, err)) // only strings and maps
	}
	return &record{id: id, json: data, foreign: foreignOf(v), suspect: suspect(graphPartOf(v)), upstream: upstream}
}

// suspect reports whether a graph part may be broken: an edge dangles, or Ready is not True.
func suspect(g *mesh.Graph) bool {
	if g == nil {
		return false
	}
	if g.Ready != nil && g.Ready.Status != "True" {
		return true
	}
	for _, ed := range g.Edges {
		if ed.Dangling {
			return true
		}
	}
	return false
}

// noteSuspect counts a suspect record of an object in (+1) or out (-1).
func (e *Engine) noteSuspect(r *record, by int) {
	if r == nil || !r.suspect {
		return
	}
	if n := e.suspects[r.id.ref] + by; n > 0 {
		e.suspects[r.id.ref] = n
	} else {
		delete(e.suspects, r.id.ref)
	}
}

// marshalEntity is json.Marshal(v) and record.upstream, written through scratch (kept between
// calls, so only the result is allocated). An upstream kind's Graph comes last and is left
// out when empty, so its entity is written without the Graph, then the Graph's fields
// replace the closing brace: what comes before is the upstream JSON.
func marshalEntity(kind mesh.EntityKind, v any, scratch *[]byte) (data []byte, upstream int32, err error) {
	buf := (*scratch)[:0]
	defer func() {
		if cap(buf) <= 64<<10 { // an outsized entity's buffer goes with it
			*scratch = buf
		}
	}()
	g := graphPartOf(v)
	if !kind.Upstream() || g == nil || g.IsZero() {
		if buf, err = v.(mesh.Entity).AppendJSON(buf); err != nil {
			return nil, 0, err
		}
		return bytes.Clone(buf), 0, nil
	}
	graph := *g
	*g = mesh.Graph{}
	buf, err = v.(mesh.Entity).AppendJSON(buf)
	*g = graph
	if err != nil {
		return nil, 0, err
	}
	end := len(buf) - 1 // without the closing brace
	if buf, err = g.AppendJSONFields(buf[:end]); err != nil {
		return nil, 0, err
	}
	return bytes.Clone(buf), int32(end), nil
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

// graphPartOf is an entity's graph part (nil for a value that is no entity).
func graphPartOf(v any) *mesh.Graph {
	if e, ok := v.(mesh.Entity); ok {
		return e.GraphPart()
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
	var scratch []byte
	again, n, err := marshalEntity(kind, v, &scratch)
	if err != nil || !bytes.Equal(again, data) {
		return 0 // not what the types marshal: served as it came
	}
	return n
}
