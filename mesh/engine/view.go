package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/google/btree"
)

// Namespaced views. A caller allowed only some namespaces sees the entities of those
// namespaces, and in them nothing that names another namespace: provided event types listed
// as "namespace/name" elsewhere, a sink or reference elsewhere, or a consumer's Backstage id
// that no object of a visible namespace carries.

// idInNamespace counts the objects of one namespace labelled with one Backstage id. Items are
// never mutated (copy-on-write), so a cloned index is a consistent snapshot.
type idInNamespace struct {
	id, namespace string
	objects       int
}

func idLess(a, b idInNamespace) bool {
	return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.namespace, b.namespace)) < 0
}

func newIDIndex() *btree.BTreeG[idInNamespace] { return btree.NewG(16, idLess) }

// countID adds delta objects of namespace carrying id.
func (e *Engine) countID(id, namespace string, delta int) {
	item := idInNamespace{id: id, namespace: namespace}
	if old, ok := e.idIndex.Get(item); ok {
		item.objects = old.objects
	}
	item.objects += delta
	if item.objects <= 0 {
		e.idIndex.Delete(item)
		return
	}
	e.idIndex.ReplaceOrInsert(item)
}

// idVisible reports whether an object of a namespace the caller sees carries id.
func (s Snapshot) idVisible(id string, sees func(string) bool) bool {
	if s.ids == nil {
		return false // nothing known of the id: not shown
	}
	visible := false
	s.ids.AscendGreaterOrEqual(idInNamespace{id: id}, func(it idInNamespace) bool {
		if it.id != id {
			return false
		}
		visible = sees(it.namespace)
		return !visible
	})
	return visible
}

// WithIDsOf takes the Backstage ids index of another snapshot: a follower serves the leader's
// entities and scopes them for namespaced callers with what its own engine knows of the ids.
func (s Snapshot) WithIDsOf(o Snapshot) Snapshot {
	s.ids = o.ids
	return s
}

// foreignOf reports whether an entity may show a namespaced caller something of another
// namespace. Consumers' ids always count: their objects may live anywhere.
func foreignOf(v any) bool {
	if g := graphPartOf(v); g != nil {
		ns := entityNamespace(v)
		for _, ed := range g.Edges {
			if ed.Ref != nil && ed.Ref.Namespace != ns {
				return true
			}
		}
	}
	switch e := v.(type) {
	case *mesh.Broker:
		return foreignNames(e.ProvidedEventTypes, e.Namespace)
	case *mesh.Subscribable:
		return foreignNames(e.ProvidedEventTypes, e.Namespace)
	case *mesh.Source:
		return foreignNames(e.ProvidedEventTypes, e.Namespace) || e.Sink != nil && e.Sink.Namespace != e.Namespace
	case *mesh.EventType:
		return len(e.ConsumedBy) > 0 || e.Reference != nil && e.Reference.Namespace != e.Namespace
	}
	return false
}

// entityNamespace is the namespace of an entity (a pointer to its mesh type).
func entityNamespace(v any) string {
	if e, ok := v.(mesh.Entity); ok {
		return e.Key().Namespace
	}
	return ""
}

func foreignNames(names []string, namespace string) bool {
	for _, n := range names {
		if !strings.HasPrefix(n, namespace+"/") {
			return true
		}
	}
	return false
}

// decodeEntity reads an entity JSON into its mesh type (a pointer).
func decodeEntity(kind mesh.EntityKind, data []byte) (any, error) {
	var v any
	switch kind {
	case mesh.KindBroker:
		v = new(mesh.Broker)
	case mesh.KindEventType:
		v = new(mesh.EventType)
	case mesh.KindSource:
		v = new(mesh.Source)
	case mesh.KindSubscribable:
		v = new(mesh.Subscribable)
	default:
		if !kind.Known() {
			return nil, fmt.Errorf("%w %d", mesh.ErrUnknownKind, kind)
		}
		v = new(mesh.Element)
	}
	return v, json.Unmarshal(data, v)
}

// foreignJSON is foreignOf for an entity as JSON (a mirrored one); an entity that does not
// decode counts as foreign, so a namespaced view never shows it unscoped.
func foreignJSON(kind mesh.EntityKind, data []byte) bool {
	v, err := decodeEntity(kind, data)
	return err != nil || foreignOf(v)
}

// ForView returns an entity as a caller seeing only the namespaces sees accepts may see it:
// without what names other namespaces. It returns data itself when nothing is hidden, and
// nil when the entity does not decode.
func (s Snapshot) ForView(kind mesh.EntityKind, data json.RawMessage, sees func(string) bool) json.RawMessage {
	return s.forView(kind, data, sees, false)
}

// forView is ForView, and with upstreamOnly the entity without its Graph.
func (s Snapshot) forView(kind mesh.EntityKind, data json.RawMessage, sees func(string) bool, upstreamOnly bool) json.RawMessage {
	v, err := decodeEntity(kind, data)
	if err != nil {
		return nil
	}
	changed := s.scope(v, sees)
	if g := graphPartOf(v); upstreamOnly && g != nil && !g.IsZero() {
		*g, changed = mesh.Graph{}, true
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil // only strings and maps: cannot happen
	}
	return out
}

// scope removes from v what the caller may not see; false when there was nothing.
func (s Snapshot) scope(v any, sees func(string) bool) (changed bool) {
	names := func(list *[]string) {
		kept := (*list)[:0:0]
		for _, n := range *list {
			if ns, _, _ := strings.Cut(n, "/"); sees(ns) {
				kept = append(kept, n)
			}
		}
		changed = changed || len(kept) != len(*list)
		*list = kept
	}
	ref := func(r **mesh.GroupKindNamespacedName) {
		if *r != nil && !sees((*r).Namespace) {
			*r, changed = nil, true
		}
	}
	if g := graphPartOf(v); g != nil {
		for i := range g.Edges {
			if ed := &g.Edges[i]; ed.Ref != nil && !sees(ed.Ref.Namespace) {
				ed.Ref, ed.URI, ed.Dangling, ed.Hidden, changed = nil, "", false, true, true
			}
		}
	}
	switch e := v.(type) {
	case *mesh.Broker:
		names(&e.ProvidedEventTypes)
	case *mesh.Subscribable:
		names(&e.ProvidedEventTypes)
	case *mesh.Source:
		names(&e.ProvidedEventTypes)
		ref(&e.Sink)
	case *mesh.EventType:
		ref(&e.Reference)
		kept := make([]string, 0, len(e.ConsumedBy))
		for _, id := range e.ConsumedBy {
			if s.idVisible(id, sees) {
				kept = append(kept, id)
			}
		}
		changed = changed || len(kept) != len(e.ConsumedBy)
		e.ConsumedBy = kept
	}
	return changed
}
