package engine

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
)

// LineageGraph is the engine's event graph as mesh/lineage walks it, read straight from the
// engine's state and indexes: use it only while nothing changes the engine (under the lock
// its owner applies changes under), for the length of one query.
func (e *Engine) LineageGraph() lineage.Graph { return lineageGraph{e} }

type lineageGraph struct{ e *Engine }

var _ lineage.Graph = lineageGraph{}

func (g lineageGraph) Node(k mesh.Key) (lineage.Node, bool) {
	e, ref := g.e, ObjectRef(k)
	n := lineage.Node{Kind: mesh.KindSink}
	switch {
	case e.brokers[ref] != nil:
		n.Kind = mesh.KindBroker
	case e.eventTypes[ref] != nil:
		n.Kind = mesh.KindEventType
		if r := e.eventTypes[ref].reference; r != nil {
			key := r.Key()
			n.Reference = &key
		}
	case e.consumers[ref] != nil, e.elements[ref] != nil:
		n.Kind = declaredKind(ref.groupKind()).Entity
	case e.generics[ref] != nil:
		switch {
		case e.isChannel(ref):
			n.Kind = mesh.KindSubscribable
		case e.isSource(ref):
			n.Kind = mesh.KindSource
		case !e.isSink(ref):
			// The mesh holds no entity for it (kind_sink.go), so the lineage, which speaks
			// of entities, knows it not.
			return lineage.Node{}, false
		}
	default:
		return lineage.Node{}, false
	}
	n.Graph = e.graphOf(ref)
	if n.Kind == mesh.KindSink {
		n.Graph.Edges = nil // a sink's entity carries none of its spec (kind_sink.go): it passes nothing on
	}
	return n, true
}

func (g lineageGraph) Referrers(k mesh.Key, fn func(mesh.Key) bool) {
	for r := range g.e.referrers[ObjectRef(k)].Keys() {
		if !fn(r.Key()) {
			return
		}
	}
}

// Match evaluates the consumer's filter as the engine does for consumedBy: against what the
// EventType declares, or against nothing known.
func (g lineageGraph) Match(consumer mesh.Key, eventType *mesh.Key) lineage.Match {
	c := g.e.consumers[ObjectRef(consumer)]
	if c == nil {
		return lineage.No
	}
	var attrs attributes
	if eventType != nil {
		if et := g.e.eventTypes[ObjectRef(*eventType)]; et != nil {
			attrs = et.attrs
		}
	}
	switch c.filter.eval(attrs) {
	case yes:
		return lineage.Yes
	case maybe:
		return lineage.Maybe
	}
	return lineage.No
}

// Producers are the sources of the EventType's namespace whose kind declares its type, and
// the objects owning it.
func (g lineageGraph) Producers(eventType mesh.Key, fn func(mesh.Key) bool) {
	ref := ObjectRef(eventType)
	et := g.e.eventTypes[ref]
	if et == nil {
		return
	}
	for s := range g.e.sourcesByNsType[nsType{ref.Namespace, et.typ}].Keys() {
		if g.e.isSource(s) && !fn(s.Key()) {
			return
		}
	}
	if gp := g.e.graphs[ref]; gp != nil {
		for _, ed := range gp.edges {
			if ed.role == mesh.RoleOwner && ed.ref != nil && g.e.exists(*ed.ref) && !fn(ed.ref.Key()) {
				return
			}
		}
	}
}

func (g lineageGraph) Policies(namespace string, fn func(mesh.Key) bool) {
	from := &record{id: entityID{mesh.KindEventPolicy, ObjectRef{Namespace: namespace}}}
	g.e.tree.AscendGreaterOrEqual(from, func(r *record) bool {
		if r.id.kind != mesh.KindEventPolicy || r.id.ref.Namespace != namespace {
			return false
		}
		return fn(r.id.ref.Key())
	})
}

// Selects reads an EventPolicy selector as Knative does: the kind its apiVersion and kind name
// (when given), and the labels it matches.
func (g lineageGraph) Selects(selector json.RawMessage, k mesh.Key) bool {
	var sel struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		metav1.LabelSelector
	}
	if err := json.Unmarshal(selector, &sel); err != nil {
		return false
	}
	if sel.Kind != "" && sel.Kind != k.Kind {
		return false
	}
	if sel.APIVersion != "" {
		if gv, err := schema.ParseGroupVersion(sel.APIVersion); err != nil || gv.Group != k.Group {
			return false
		}
	}
	s, err := metav1.LabelSelectorAsSelector(&sel.LabelSelector)
	if err != nil {
		return false
	}
	m := g.e.metaOf(ObjectRef(k))
	return m != nil && s.Matches(pairLabels(m.labels))
}

// pairLabels reads labels kept as pairs for a label selector.
type pairLabels pairs

var _ labels.Labels = pairLabels(nil)

func (p pairLabels) Has(label string) bool { _, ok := p.Lookup(label); return ok }
func (p pairLabels) Get(label string) string {
	v, _ := p.Lookup(label)
	return v
}

func (p pairLabels) Lookup(label string) (string, bool) {
	for i := 0; i+1 < len(p); i += 2 {
		if p[i] == label {
			return p[i+1], true
		}
	}
	return "", false
}

// Suspects names the objects that may be broken without looking at every object: those with a
// suspect entity (an edge dangling, not Ready; kept as entities render), the EventTypes whose
// Broker or channel is missing or has no consumer that can take them (evaluated here, without
// allocating), and the addressables of the namespaces that have EventPolicies.
func (g lineageGraph) Suspects(fn func(mesh.Key) bool) {
	e := g.e
	for ref := range e.suspects {
		if !fn(ref.Key()) {
			return
		}
	}
	e.matching.refresh(e)
	for ref := range e.matching.unmatched {
		if !fn(ref.Key()) {
			return
		}
	}
	var namespaces []string
	e.tree.AscendGreaterOrEqual(&record{id: entityID{kind: mesh.KindEventPolicy}}, func(r *record) bool {
		if r.id.kind != mesh.KindEventPolicy {
			return false
		}
		if n := len(namespaces); n == 0 || namespaces[n-1] != r.id.ref.Namespace {
			namespaces = append(namespaces, r.id.ref.Namespace)
		}
		return true
	})
	for _, ns := range namespaces {
		var policies []*graphPart
		g.Policies(ns, func(p mesh.Key) bool {
			if gp := e.graphs[ObjectRef(p)]; gp != nil {
				policies = append(policies, gp)
			} else {
				policies = append(policies, &graphPart{}) // no edges: it applies to every addressable
			}
			return true
		})
		for _, kind := range mesh.EntityKinds() {
			if !kind.EnforcesPolicies() {
				continue
			}
			more := true
			e.tree.AscendGreaterOrEqual(&record{id: entityID{kind, ObjectRef{Namespace: ns}}}, func(r *record) bool {
				if r.id.kind != kind || r.id.ref.Namespace != ns {
					return false
				}
				if g.mayRefuse(r.id.ref, policies) {
					more = fn(r.id.ref.Key())
				}
				return more
			})
			if !more {
				return
			}
		}
	}
}

// mayRefuse reports whether some sender to ref may be one that no EventPolicy applying to it
// admits: policies apply (their "to" names or selects it, or is empty), none of them admits
// OIDC subjects (which make every sender a "maybe"), and something sends to it.
func (g lineageGraph) mayRefuse(ref ObjectRef, policies []*graphPart) bool {
	applies := false
	for _, p := range policies {
		targeted, hit, subjects := false, false, false
		for _, ed := range p.edges {
			switch ed.role {
			case mesh.RoleTo:
				targeted = true
				if (ed.ref != nil && *ed.ref == ref) || (ed.ref == nil && len(ed.selector) > 0 && g.Selects(ed.selector, ref.Key())) {
					hit = true
				}
			case mesh.RoleFrom:
				subjects = subjects || ed.ref == nil
			}
		}
		if hit || !targeted {
			if subjects {
				return false
			}
			applies = true
		}
	}
	return applies && g.e.referrers[ref].Len() > 0
}

// matching keeps the EventTypes nothing takes from their Broker or channel, for lineage's
// broken query. Computing it means a filter evaluation per EventType and consumer of its
// provider, too much for every ask at 100k EventTypes and too much for every change on a
// Broker with thousands of them; so changes only mark what they touch (a consumer's provider,
// an EventType, an object that came or went) and an ask recomputes what is marked. Until the
// first ask, and when the marks outgrow a bound, everything is recomputed instead.
type matching struct {
	stale     bool // recompute everything (nobody asked yet, or too much changed)
	providers map[ObjectRef]struct{}
	types     map[ObjectRef]struct{}
	unmatched map[ObjectRef]struct{}
}

// maxMarks bounds the marks kept between asks; beyond it the next ask recomputes everything.
const maxMarks = 4096

func newMatching() matching {
	return matching{stale: true, providers: map[ObjectRef]struct{}{}, types: map[ObjectRef]struct{}{}, unmatched: map[ObjectRef]struct{}{}}
}

// provider marks what a consumer change on provider, or provider coming or going, may change.
func (m *matching) provider(ref ObjectRef) { m.mark(m.providers, ref) }

// eventType marks an EventType that changed, came or went.
func (m *matching) eventType(ref ObjectRef) { m.mark(m.types, ref) }

func (m *matching) mark(set map[ObjectRef]struct{}, ref ObjectRef) {
	if m.stale {
		return
	}
	set[ref] = struct{}{}
	if len(m.providers)+len(m.types) > maxMarks {
		m.stale = true
		clear(m.providers)
		clear(m.types)
	}
}

// refresh brings unmatched up to date with the engine.
func (m *matching) refresh(e *Engine) {
	check := func(ref ObjectRef) {
		if et := e.eventTypes[ref]; et != nil && et.reference != nil && !e.takes(*et.reference, et) {
			m.unmatched[ref] = struct{}{}
		} else {
			delete(m.unmatched, ref)
		}
	}
	if m.stale {
		clear(m.unmatched)
		for ref := range e.eventTypes {
			check(ref)
		}
		m.stale = false
		return
	}
	for p := range m.providers {
		for et := range e.eventTypesByProvider[p].Keys() {
			check(et.ref)
		}
	}
	for ref := range m.types {
		check(ref)
	}
	clear(m.providers)
	clear(m.types)
}

// takes reports whether something takes the EventType's events from provider: a Trigger on
// the Broker whose filter can match it, or any Subscription to the channel.
func (e *Engine) takes(provider ObjectRef, et *eventTypeState) bool {
	if !e.exists(provider) {
		return false
	}
	for c := range e.consumersByProvider[provider].Keys() {
		if c.ref.Kind != KindTriggerObject || c.filter.eval(et.attrs) != no {
			return true
		}
	}
	return false
}

// Each walks the objects that stand for entities, in the order of the entity lists (an object
// that is several entities once).
func (g lineageGraph) Each(fn func(mesh.Key) bool) {
	seen := map[ObjectRef]bool{}
	g.e.tree.Ascend(func(r *record) bool {
		if seen[r.id.ref] {
			return true
		}
		seen[r.id.ref] = true
		return fn(r.id.ref.Key())
	})
}
