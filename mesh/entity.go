package mesh

import (
	"encoding/json"
	"fmt"
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

var entityKindNames = [...]string{"broker", "eventtype", "source", "subscribable"}

func (k EntityKind) String() string {
	if int(k) < len(entityKindNames) {
		return entityKindNames[k]
	}
	return fmt.Sprintf("EntityKind(%d)", k)
}

// ParseEntityKind is the inverse of EntityKind.String.
func ParseEntityKind(s string) (EntityKind, error) {
	for i, n := range entityKindNames {
		if n == s {
			return EntityKind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown entity kind %q (want broker, eventtype, subscribable or source)", s)
}

// Op says what happened to an entity.
type Op uint8

// Entity operations; their names appear in event types and are fixed.
const (
	OpAdded Op = iota
	OpUpdated
	OpDeleted
)

var opNames = [...]string{"added", "updated", "deleted"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", o)
}

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) {
	for i, n := range opNames {
		if n == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("unknown op %q (want added, updated or deleted)", s)
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
