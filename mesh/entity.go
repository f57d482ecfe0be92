package mesh

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The JSON shapes below are fixed by design.md §1: they are the upstream Knative Event Mesh
// backend's GET /v1/getEventMesh types, so the Backstage plugin reads them unchanged.

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
}

// GroupKindNamespacedName points at a Kubernetes object without its version.
type GroupKindNamespacedName struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// EntityKind names the four entity lists of the mesh. The values appear in event types
// (dev.knative.eventmesh.<kind>.<op>) and are fixed.
type EntityKind uint8

// Entity kinds, in the order of the EventMesh JSON lists.
const (
	KindBroker EntityKind = iota
	KindEventType
	KindSource
	KindSubscribable
)

var entityKindNames = []string{"broker", "eventtype", "source", "subscribable"}

func (k EntityKind) String() string { return enumName(entityKindNames, k, "EntityKind") }

// ParseEntityKind is the inverse of EntityKind.String.
func ParseEntityKind(s string) (EntityKind, error) {
	return parseEnum[EntityKind](entityKindNames, s, "entity kind")
}

// Op says what happened to an entity.
type Op uint8

// Entity operations; their names appear in event types and are fixed.
const (
	OpAdded Op = iota
	OpUpdated
	OpDeleted
)

var opNames = []string{"added", "updated", "deleted"}

func (o Op) String() string { return enumName(opNames, o, "Op") }

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) { return parseEnum[Op](opNames, s, "op") }

func enumName[T ~uint8](names []string, v T, typeName string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typeName, v)
}

func parseEnum[T ~uint8](names []string, s, what string) (T, error) {
	if i := slices.Index(names, s); i >= 0 {
		return T(i), nil
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

// Change is one entity change, numbered in the engine's epoch.
type Change struct {
	Epoch    string
	Sequence uint64
	Kind     EntityKind
	Op       Op
	// Key is the entity key, group/Kind/namespace/name.
	Key string
	// Entity is the entity JSON: the new one, or on OpDeleted the last known one.
	Entity json.RawMessage
	// Previous is the JSON before an OpUpdated; nil otherwise.
	Previous json.RawMessage
}

func (c Change) String() string {
	return fmt.Sprintf("#%d %s %s %s", c.Sequence, c.Kind, c.Op, c.Key)
}
