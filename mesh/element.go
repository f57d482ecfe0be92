package mesh

import (
	"encoding/json"
	"slices"
)

// The event graph beyond the upstream model. Every entity may carry a Graph: where the object
// sends events (its edges), whether it is ready, and where it can be reached. The upstream
// kinds (Broker, EventType, source, channel) carry it after their upstream fields, all of them
// omitted when empty, so GET /v1/getEventMesh serves them without it, byte for byte as the
// upstream backend did; the other kinds are Elements.

// Graph is the part of an entity that places it in the event graph.
type Graph struct {
	// Ready is the object's Ready condition, when its status has one.
	Ready *Readiness `json:"ready,omitempty"`
	// Address is where the object receives events (status.address), when it has one.
	Address *Address `json:"address,omitempty"`
	// Edges are the object's references that events follow, in the order of its spec.
	Edges []Edge `json:"edges,omitempty"`
}

// GraphPart is the graph part itself. Every entity type embeds Graph, so this is how code that
// holds any entity reaches its graph part (mesh.Entity).
func (g *Graph) GraphPart() *Graph { return g }

// Entity is what every entity type is (a pointer to Broker, EventType, Source, Subscribable or
// Element): keyed, with a graph part, and writing its own JSON.
type Entity interface {
	Key() Key
	GraphPart() *Graph
	AppendJSON(dst []byte) ([]byte, error)
}

var _ = []Entity{&Broker{}, &EventType{}, &Source{}, &Subscribable{}, &Element{}}

// IsZero reports whether the graph part is empty (nothing beyond the upstream fields).
func (g Graph) IsZero() bool { return g.Ready == nil && g.Address == nil && len(g.Edges) == 0 }

// Readiness is an object's Ready condition.
type Readiness struct {
	// Status is "True", "False" or "Unknown".
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Address is where an object receives events.
type Address struct {
	URL string `json:"url"`
	// Audience is the OIDC audience a sender's token must name.
	Audience string `json:"audience,omitempty"`
}

// EdgeRole says what an edge means for the events that follow it.
type EdgeRole string

// Edge roles. An edge goes from the entity that carries it to what it names.
const (
	// RoleBroker: a Trigger or RequestReply reads from (or sends through) this Broker.
	RoleBroker EdgeRole = "broker"
	// RoleChannel: a Subscription reads from this channel.
	RoleChannel EdgeRole = "channel"
	// RoleSubscriber: events are delivered here (a Trigger's or Subscription's subscriber, a
	// Sequence step, a Parallel branch). Filter is what must match first.
	RoleSubscriber EdgeRole = "subscriber"
	// RoleFilter: a Parallel branch's filter service decides whether the branch gets an event.
	RoleFilter EdgeRole = "filter"
	// RoleReply: what the subscriber (or transform) answers goes here.
	RoleReply EdgeRole = "reply"
	// RoleDeadLetterSink: events whose delivery failed go here.
	RoleDeadLetterSink EdgeRole = "deadLetterSink"
	// RoleSink: a source or transform sends here.
	RoleSink EdgeRole = "sink"
	// RoleTo: an EventPolicy applies to this target (Ref, or Selector of the same kind).
	RoleTo EdgeRole = "to"
	// RoleFrom: an EventPolicy admits this sender (Ref, or Subject: an OIDC subject glob),
	// when the event passes Filter.
	RoleFrom EdgeRole = "from"
	// RoleOwner: the object that owns an EventType (an auto-created one's source or Broker).
	RoleOwner EdgeRole = "owner"
)

// Edge is one reference of an entity's object that events follow.
type Edge struct {
	Role EdgeRole `json:"role"`
	// Index numbers a Sequence step or a Parallel branch from 0.
	Index *int `json:"index,omitempty"`
	// Ref is the object named, its namespace defaulted as Knative defaults it.
	Ref *GroupKindNamespacedName `json:"ref,omitempty"`
	// URI is the address given instead of, or relative to, Ref.
	URI string `json:"uri,omitempty"`
	// Dangling says Ref names an object that does not exist: a broken route.
	Dangling bool `json:"dangling,omitempty"`
	// Hidden says Ref was left out: it names a namespace the caller may not see.
	Hidden bool `json:"hidden,omitempty"`
	// Filter is the filter on the edge as written in the object (a Trigger's filter or
	// filters, an EventPolicy's filters).
	Filter json.RawMessage `json:"filter,omitempty"`
	// Selector picks EventPolicy targets by label (RoleTo), as written.
	Selector json.RawMessage `json:"selector,omitempty"`
	// Subject is the OIDC subject (a glob) an EventPolicy admits (RoleFrom).
	Subject string `json:"sub,omitempty"`
}

// Element is an entity of the graph's kinds beyond the upstream four: a Trigger,
// Subscription, Sequence, Parallel, EventTransform, RequestReply, EventPolicy, JobSink,
// IntegrationSink, or a sink (any other Addressable an edge names, with its address only).
type Element struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Group       string            `json:"group"`
	Kind        string            `json:"kind"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Graph
}

// Key of the element.
func (e Element) Key() Key { return Key{e.Group, e.Kind, e.Namespace, e.Name} }

// Mesh is the whole mesh as GET /v1/mesh, the watch stream and a NATS snapshot carry it: the
// upstream lists (EventMesh, each entity with its Graph) and one list per other kind. A list of
// a kind the mesh has none of is left out.
type Mesh struct {
	EventMesh
	Triggers         []Element `json:"triggers,omitempty"`
	Subscriptions    []Element `json:"subscriptions,omitempty"`
	Sequences        []Element `json:"sequences,omitempty"`
	Parallels        []Element `json:"parallels,omitempty"`
	EventTransforms  []Element `json:"eventTransforms,omitempty"`
	RequestReplies   []Element `json:"requestReplies,omitempty"`
	EventPolicies    []Element `json:"eventPolicies,omitempty"`
	JobSinks         []Element `json:"jobSinks,omitempty"`
	IntegrationSinks []Element `json:"integrationSinks,omitempty"`
	Sinks            []Element `json:"sinks,omitempty"`
}

// Elements is the list of the mesh holding kind (nil for the upstream kinds).
func (m *Mesh) Elements(kind EntityKind) *[]Element {
	switch kind {
	case KindTrigger:
		return &m.Triggers
	case KindSubscription:
		return &m.Subscriptions
	case KindSequence:
		return &m.Sequences
	case KindParallel:
		return &m.Parallels
	case KindEventTransform:
		return &m.EventTransforms
	case KindRequestReply:
		return &m.RequestReplies
	case KindEventPolicy:
		return &m.EventPolicies
	case KindJobSink:
		return &m.JobSinks
	case KindIntegrationSink:
		return &m.IntegrationSinks
	case KindSink:
		return &m.Sinks
	}
	return nil
}

// Sort puts every list in the order of GET /v1/mesh: by namespace, name, group, kind.
func (m *Mesh) Sort() {
	m.EventMesh.Sort()
	for _, kind := range EntityKinds() {
		if list := m.Elements(kind); list != nil {
			slices.SortFunc(*list, func(a, b Element) int { return a.Key().Compare(b.Key()) })
		}
	}
}

// Each calls fn for every entity of the mesh, list by list (a pointer to its value).
func (m *Mesh) Each(fn func(kind EntityKind, key Key, entity any)) {
	for i := range m.Brokers {
		fn(KindBroker, m.Brokers[i].Key(), &m.Brokers[i])
	}
	for i := range m.EventTypes {
		fn(KindEventType, m.EventTypes[i].Key(), &m.EventTypes[i])
	}
	for i := range m.Sources {
		fn(KindSource, m.Sources[i].Key(), &m.Sources[i])
	}
	for i := range m.Subscribables {
		fn(KindSubscribable, m.Subscribables[i].Key(), &m.Subscribables[i])
	}
	for _, kind := range EntityKinds() {
		if list := m.Elements(kind); list != nil {
			for i := range *list {
				fn(kind, (*list)[i].Key(), &(*list)[i])
			}
		}
	}
}
