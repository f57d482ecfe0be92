package mesh

import (
	"cmp"
	"slices"
)

// The JSON shapes below are fixed: they are the upstream Knative Event Mesh backend's
// GET /v1/getEventMesh types, so the Backstage plugin reads them unchanged. Each ends with the
// entity's Graph, which that endpoint never carries.

// EventMesh is the whole mesh as served by GET /v1/getEventMesh.
type EventMesh struct {
	Brokers       []Broker       `json:"brokers"`
	EventTypes    []EventType    `json:"eventTypes"`
	Sources       []Source       `json:"sources"`
	Subscribables []Subscribable `json:"subscribables"`
}

// Sort puts every list in the order of GET /v1/getEventMesh: by namespace, name, group, kind.
func (m *EventMesh) Sort() {
	byName := func(ns1, n1, g1, k1, ns2, n2, g2, k2 string) int {
		return cmp.Or(cmp.Compare(ns1, ns2), cmp.Compare(n1, n2), cmp.Compare(g1, g2), cmp.Compare(k1, k2))
	}
	slices.SortFunc(m.Brokers, func(a, b Broker) int { return byName(a.Namespace, a.Name, "", "", b.Namespace, b.Name, "", "") })
	slices.SortFunc(m.EventTypes, func(a, b EventType) int {
		return byName(a.Namespace, a.Name, "", "", b.Namespace, b.Name, "", "")
	})
	slices.SortFunc(m.Sources, func(a, b Source) int {
		return byName(a.Namespace, a.Name, a.Group, a.Kind, b.Namespace, b.Name, b.Group, b.Kind)
	})
	slices.SortFunc(m.Subscribables, func(a, b Subscribable) int {
		return byName(a.Namespace, a.Name, a.Group, a.Kind, b.Namespace, b.Name, b.Group, b.Kind)
	})
}

// Broker is a Knative Broker with the EventTypes that reference it.
type Broker struct {
	Namespace          string            `json:"namespace"`
	Name               string            `json:"name"`
	UID                string            `json:"uid"`
	Labels             map[string]string `json:"labels"`
	Annotations        map[string]string `json:"annotations"`
	ProvidedEventTypes []string          `json:"providedEventTypes"`
	Graph
}

// EventType is a Knative EventType with the Backstage ids of the services consuming it.
type EventType struct {
	Namespace   string                   `json:"namespace"`
	Name        string                   `json:"name"`
	Type        string                   `json:"type"`
	UID         string                   `json:"uid"`
	Description *string                  `json:"description,omitempty"`
	SchemaURL   *string                  `json:"schemaURL,omitempty"`
	SchemaData  *string                  `json:"schemaData,omitempty"`
	Labels      map[string]string        `json:"labels"`
	Annotations map[string]string        `json:"annotations"`
	Reference   *GroupKindNamespacedName `json:"reference,omitempty"`
	ConsumedBy  []string                 `json:"consumedBy"`
	Graph
}

// Subscribable is a channel: an object whose CRD is labelled messaging.knative.dev/subscribable=true.
type Subscribable struct {
	Namespace          string            `json:"namespace"`
	Name               string            `json:"name"`
	UID                string            `json:"uid"`
	Labels             map[string]string `json:"labels"`
	Annotations        map[string]string `json:"annotations"`
	Group              string            `json:"group"`
	Kind               string            `json:"kind"`
	ProvidedEventTypes []string          `json:"providedEventTypes"`
	Graph
}

// Source is an event source: an object whose CRD is labelled duck.knative.dev/source=true.
type Source struct {
	Namespace              string                   `json:"namespace"`
	Name                   string                   `json:"name"`
	UID                    string                   `json:"uid"`
	Labels                 map[string]string        `json:"labels"`
	Annotations            map[string]string        `json:"annotations"`
	Group                  string                   `json:"group"`
	Kind                   string                   `json:"kind"`
	ProvidedEventTypeTypes []string                 `json:"providedEventTypeTypes"`
	ProvidedEventTypes     []string                 `json:"providedEventTypes"`
	Sink                   *GroupKindNamespacedName `json:"sink,omitempty"`
	Graph
}

// GroupKindNamespacedName points at a Kubernetes object without its version.
type GroupKindNamespacedName struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Group and kind of the entities that stand for Knative's own objects.
const (
	GroupEventing       = "eventing.knative.dev"
	KindBrokerObject    = "Broker"
	KindEventTypeObject = "EventType"
)

// Key of the Broker entity.
func (b Broker) Key() Key { return Key{GroupEventing, KindBrokerObject, b.Namespace, b.Name} }

// Key of the EventType entity.
func (e EventType) Key() Key { return Key{GroupEventing, KindEventTypeObject, e.Namespace, e.Name} }

// Key of the channel entity.
func (s Subscribable) Key() Key { return Key{s.Group, s.Kind, s.Namespace, s.Name} }

// Key of the source entity.
func (s Source) Key() Key { return Key{s.Group, s.Kind, s.Namespace, s.Name} }
