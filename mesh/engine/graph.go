package engine

import (
	"encoding/json"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// The event graph: every object's edges (the references events follow), its readiness and its
// address, rendered as the mesh.Graph of the entity it stands for. An edge to an object the
// engine does not hold is dangling; the engine indexes edges by their target, so an object
// that appears or goes re-renders only the entities whose edges name it.

// graphPart is what an object says about its place in the event graph. It is shared with the
// Parsed it came from and never written to.
type graphPart struct {
	ready    *mesh.Readiness
	address  *mesh.Address
	edges    []edgeSpec
	delivers []ObjectRef // Kind.delivers of the edges
}

// edgeSpec is an edge as read from the object.
type edgeSpec struct {
	role     mesh.EdgeRole
	index    int // a step's or branch's, from 0; -1: none
	ref      *ObjectRef
	uri      string
	filter   json.RawMessage
	selector json.RawMessage
	subject  string
}

// Readiness statuses are interned: every object has one of these few.
var readyStatuses = map[string]string{"True": "True", "False": "False", "Unknown": "Unknown"}

// readGraph reads what every kind has in common (the Ready condition, status.address and
// spec.delivery.deadLetterSink) and the edges of edgesOf, if any; nil when there is nothing.
func readGraph(u *unstructured.Unstructured, edgesOf func(u *unstructured.Unstructured) []edgeSpec) *graphPart {
	var g graphPart
	o := u.Object
	if conds, ok := lookup(o, "status", "conditions"); ok {
		list, _ := conds.([]any)
		for _, c := range list {
			m, _ := c.(map[string]any)
			if str(m, "type") != "Ready" {
				continue
			}
			status, known := readyStatuses[str(m, "status")]
			if !known {
				status = "Unknown"
			}
			g.ready = &mesh.Readiness{Status: status, Reason: str(m, "reason")}
			break
		}
	}
	if url := str(o, "status", "address", "url"); url != "" {
		g.address = &mesh.Address{URL: url, Audience: str(o, "status", "address", "audience")}
	}
	if edgesOf != nil {
		g.edges = edgesOf(u)
	}
	if dls, ok := destination(o, u.GetNamespace(), mesh.RoleDeadLetterSink, -1, "spec", "delivery", "deadLetterSink"); ok {
		g.edges = append(g.edges, dls)
	}
	if g.ready == nil && g.address == nil && len(g.edges) == 0 {
		return nil
	}
	return &g
}

// destination reads a Knative Destination (ref and/or uri) at fields as an edge.
func destination(o map[string]any, namespace string, role mesh.EdgeRole, index int, fields ...string) (edgeSpec, bool) {
	v, ok := lookup(o, fields...)
	if !ok {
		return edgeSpec{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return edgeSpec{}, false
	}
	e := edgeSpec{role: role, index: index, uri: str(m, "uri")}
	if ref, ok := kref(m, namespace, "ref"); ok {
		e.ref = &ref
	}
	if e.ref == nil && e.uri == "" {
		return edgeSpec{}, false
	}
	return e, true
}

// rawJSON is the JSON of the value at fields as written, or nil.
func rawJSON(o map[string]any, fields ...string) json.RawMessage {
	v, ok := lookup(o, fields...)
	if !ok || v == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil // unstructured content always marshals
	}
	return data
}

// setGraph records an object's graph part (nil: none), re-indexes its edges by target and
// marks the entities the object stands for.
func (e *Engine) setGraph(ref ObjectRef, g *graphPart) {
	old := e.graphs[ref]
	if old == nil && g == nil {
		e.markEntitiesOf(ref)
		return
	}
	oldTargets, newTargets := old.targets(), g.targets()
	before := e.deliveries(ref)
	defer func() {
		after := e.deliveries(ref)
		if slices.Equal(before, after) {
			return
		}
		for _, t := range before {
			removeRef(e.deliveredBy, t, ref)
		}
		for _, t := range after {
			addRef(e.deliveredBy, t, ref)
		}
		for c := range e.consumersBySubscriber[ref].Keys() {
			e.refreshConsumer(c)
		}
	}()
	for _, t := range oldTargets {
		removeRef(e.referrers, t, ref)
		e.mark(mesh.KindSink, t)
	}
	if g == nil {
		delete(e.graphs, ref)
	} else {
		e.graphs[ref] = g
	}
	for _, t := range newTargets {
		addRef(e.referrers, t, ref)
		e.mark(mesh.KindSink, t)
	}
	e.markEntitiesOf(ref)
}

// targets lists the objects the edges name.
func (g *graphPart) targets() []ObjectRef {
	if g == nil {
		return nil
	}
	var out []ObjectRef
	for _, ed := range g.edges {
		if ed.ref != nil && !slices.Contains(out, *ed.ref) {
			out = append(out, *ed.ref)
		}
	}
	return out
}

// markEntitiesOf marks every entity ref may stand for.
func (e *Engine) markEntitiesOf(ref ObjectRef) {
	if k := declaredKind(ref.groupKind()); k != nil {
		if k.HasEntity {
			e.mark(k.Entity, ref)
		}
		return
	}
	e.mark(mesh.KindSubscribable, ref)
	e.mark(mesh.KindSource, ref)
	e.mark(mesh.KindSink, ref)
}

// exists reports whether the engine holds the object ref.
func (e *Engine) exists(ref ObjectRef) bool { return e.metaOf(ref) != nil }

// metaOf is what the engine keeps of an object's metadata; nil when it holds no such object.
func (e *Engine) metaOf(ref ObjectRef) *objectMeta {
	if m := e.brokers[ref]; m != nil {
		return m
	}
	if et := e.eventTypes[ref]; et != nil {
		return &et.objectMeta
	}
	if c := e.consumers[ref]; c != nil {
		return &c.objectMeta
	}
	if m := e.elements[ref]; m != nil {
		return m
	}
	if g := e.generics[ref]; g != nil {
		return &g.objectMeta
	}
	return nil
}

// touched re-renders what names ref after ref appeared or went: the edges' dangling flags.
func (e *Engine) touched(ref ObjectRef) {
	e.matching.provider(ref) // a Broker or channel that came or went
	for r := range e.referrers[ref].Keys() {
		e.markEntitiesOf(r)
	}
	e.mark(mesh.KindSink, ref)
}

// graphOf renders an object's graph part.
func (e *Engine) graphOf(ref ObjectRef) mesh.Graph {
	g := e.graphs[ref]
	if g == nil {
		return mesh.Graph{}
	}
	out := mesh.Graph{Ready: g.ready, Address: g.address}
	if len(g.edges) > 0 {
		out.Edges = make([]mesh.Edge, len(g.edges))
		refs := make([]mesh.GroupKindNamespacedName, len(g.edges)) // one allocation for every edge's ref
		for i, ed := range g.edges {
			edge := mesh.Edge{Role: ed.role, URI: ed.uri, Filter: ed.filter, Selector: ed.selector, Subject: ed.subject}
			if r := ed.ref; r != nil {
				refs[i] = mesh.GroupKindNamespacedName{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
				edge.Ref = &refs[i]
			}
			if ed.index >= 0 {
				edge.Index = &ed.index
			}
			if ed.ref != nil {
				edge.Dangling = !e.exists(*ed.ref)
			}
			out.Edges[i] = edge
		}
	}
	return out
}

// elementKind declares a kind of the graph that relates to the rest only through its edges:
// its objects are kept as their metadata and graph part, and rendered as mesh.Elements.
func elementKind(gk GroupKind, entity mesh.EntityKind, edges func(u *unstructured.Unstructured) []edgeSpec,
	validate func(spec map[string]any, u *unstructured.Unstructured) field.ErrorList) Kind {
	return Kind{
		Name:      gk.Kind,
		GroupKind: gk,
		Find:      FindAlways,
		Verbs:     readVerbs,
		Entity:    entity,
		HasEntity: true,
		read: func(u *unstructured.Unstructured) (any, error) {
			m := metaOf(u)
			return &m, nil
		},
		edges:    edges,
		validate: validate,
		upsert: func(e *Engine, ref ObjectRef, obj any) {
			e.elements[ref] = obj.(*objectMeta)
			e.mark(entity, ref)
		},
		remove: func(e *Engine, ref ObjectRef) {
			if _, ok := e.elements[ref]; ok {
				delete(e.elements, ref)
				e.mark(entity, ref)
			}
		},
		render: func(e *Engine, ref ObjectRef) (any, bool) {
			m := e.elements[ref]
			if m == nil {
				return nil, false
			}
			return e.renderElement(ref, m), true
		},
	}
}

// listAt is the list at fields of o, each item an object (nil for items that are not).
func listAt(o map[string]any, fields ...string) []map[string]any {
	v, _ := lookup(o, fields...)
	list, _ := v.([]any)
	out := make([]map[string]any, len(list))
	for i, item := range list {
		out[i], _ = item.(map[string]any)
	}
	return out
}

// requireList is a validation error unless spec.<name> is a non-empty list.
func requireList(spec map[string]any, name, what string) field.ErrorList {
	if list, _ := spec[name].([]any); len(list) == 0 {
		return field.ErrorList{field.Required(field.NewPath("spec", name), what)}
	}
	return nil
}

// delivering gives k a delivers rule: what reaches its objects goes as it is to the
// subscribers of the steps or branches whose index takes.
func delivering(takes func(index int) bool, k Kind) Kind {
	k.delivers = func(g *graphPart) []ObjectRef {
		var out []ObjectRef
		for _, ed := range g.edges {
			if ed.role == mesh.RoleSubscriber && ed.ref != nil && takes(ed.index) && !slices.Contains(out, *ed.ref) {
				out = append(out, *ed.ref)
			}
		}
		return out
	}
	return k
}

// deliveries is where what reaches ref goes on as it is (Kind.delivers), while it exists.
func (e *Engine) deliveries(ref ObjectRef) []ObjectRef {
	if g := e.graphs[ref]; g != nil {
		return g.delivers
	}
	return nil
}
