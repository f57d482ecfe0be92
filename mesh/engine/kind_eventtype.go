package engine

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// EventTypes name a type of event and the Broker or channel that provides it (spec.reference,
// or spec.broker before v1beta2); a source kind provides the EventTypes of its namespace whose
// type its CRD lists; Triggers and Subscriptions whose filter can match one consume it.
var eventTypeKind = Kind{
	Name:      "EventType",
	GroupKind: gkEventType,
	Find:      FindAlways,
	Verbs:     readVerbs,
	Entity:    mesh.KindEventType,
	HasEntity: true,
	read: func(u *unstructured.Unstructured) (any, error) {
		et, err := parseEventType(u)
		return &et, err
	},
	// An EventType Knative created for what it saw pass is owned by the source or Broker.
	edges: func(u *unstructured.Unstructured) []edgeSpec {
		for _, owner := range u.GetOwnerReferences() {
			if owner.Controller != nil && *owner.Controller {
				ref := ObjectRef{GroupOf(owner.APIVersion), owner.Kind, u.GetNamespace(), owner.Name}
				return []edgeSpec{{role: mesh.RoleOwner, index: -1, ref: &ref}}
			}
		}
		return nil
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertEventType(ref, obj.(*eventTypeObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteEventType(ref) },
	render: func(e *Engine, ref ObjectRef) (any, bool) {
		et := e.eventTypes[ref]
		if et == nil {
			return nil, false
		}
		entity := et.entity(ref, e.scratchMap(0, et.labels), e.scratchMap(1, et.annotations))
		entity.Graph = e.graphOf(ref)
		return &entity, true
	},
}

// eventTypeObject is what the engine needs from an EventType of any served version.
type eventTypeObject struct {
	objectMeta
	typ         string
	description string
	schemaURL   string
	schemaData  string
	reference   *ObjectRef
	attrs       attributes
}

// parseEventType reads v1beta1/v1beta2 (spec.type, spec.source, spec.schema, spec.broker) and
// v1beta3 (spec.attributes) shapes. The shape is told by the fields, not the apiVersion,
// so objects stored at one version and served at another read the same.
func parseEventType(u *unstructured.Unstructured) (eventTypeObject, error) {
	o := u.Object
	et := eventTypeObject{objectMeta: metaOf(u), description: str(o, "spec", "description")}
	ns := u.GetNamespace()
	if ref, ok := kref(o, ns, "spec", "reference"); ok {
		et.reference = &ref
	} else if b := str(o, "spec", "broker"); b != "" {
		et.reference = &ObjectRef{mesh.GroupEventing, mesh.KindBrokerObject, ns, b}
	}
	if raw, ok := lookup(o, "spec", "attributes"); ok {
		list, ok := raw.([]any)
		if !ok {
			return et, fmt.Errorf("spec.attributes: want a list, got %T", raw)
		}
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				return et, fmt.Errorf("spec.attributes[%d]: want an object, got %T", i, item)
			}
			name, value := strings.ToLower(str(m, "name")), str(m, "value")
			switch name {
			case "":
				return et, fmt.Errorf("spec.attributes[%d]: name is empty", i)
			case "type":
				et.typ = value
			case "dataschema", "schemadata":
				// Knative's v1beta2→v1beta3 conversion names the schema URL "schemadata".
				if et.schemaURL == "" {
					et.schemaURL = value
				}
			}
			et.attrs = et.attrs.with(name, value)
		}
		return et, nil
	}
	et.typ = str(o, "spec", "type")
	et.schemaURL = str(o, "spec", "schema")
	et.schemaData = str(o, "spec", "schemaData")
	et.attrs = et.attrs.with("type", et.typ).with("source", str(o, "spec", "source")).with("dataschema", et.schemaURL)
	return et, nil
}

func (e *Engine) upsertEventType(ref ObjectRef, obj *eventTypeObject) {
	et, existed := e.eventTypes[ref]
	if !existed {
		et = &eventTypeState{ref: ref}
		e.eventTypes[ref] = et
	}
	var oldProvider *ObjectRef
	var oldType string
	if existed {
		oldProvider, oldType = et.reference, et.typ
	}
	providerChanged := !existed || !equalRef(oldProvider, obj.reference)
	typeChanged := !existed || oldType != obj.typ
	if existed && providerChanged {
		e.unindexProvided(et, oldProvider)
	}
	if existed && typeChanged {
		e.unindexType(et, oldType)
	}
	et.eventTypeObject = obj
	e.matching.eventType(ref)
	if providerChanged {
		e.indexProvided(et, obj.reference)
	}
	if typeChanged {
		e.indexType(et, obj.typ)
	}
	e.mark(mesh.KindEventType, ref)

	// Re-ask the consumers it had and those of its (possibly new) provider.
	for c := range et.consumedBy.Keys() {
		e.reconsider(c, et)
	}
	if obj.reference != nil {
		for c := range e.consumersByProvider[*obj.reference].Keys() {
			e.reconsider(c, et)
		}
	}
}

func (e *Engine) deleteEventType(ref ObjectRef) {
	et, ok := e.eventTypes[ref]
	if !ok {
		return
	}
	e.unindexProvided(et, et.reference)
	e.unindexType(et, et.typ)
	for c := range et.consumedBy.Keys() {
		c.targets.Delete(et)
	}
	delete(e.eventTypes, ref)
	e.matching.eventType(ref)
	e.mark(mesh.KindEventType, ref)
}

func (e *Engine) indexProvided(et *eventTypeState, provider *ObjectRef) {
	if provider != nil {
		addRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) unindexProvided(et *eventTypeState, provider *ObjectRef) {
	if provider != nil {
		removeRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) indexType(et *eventTypeState, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.ref.Namespace, typ}
	addRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k].Keys() {
		e.mark(mesh.KindSource, s)
	}
}

func (e *Engine) unindexType(et *eventTypeState, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.ref.Namespace, typ}
	removeRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k].Keys() {
		e.mark(mesh.KindSource, s)
	}
}

// entity is the EventType as its entity, with these labels and annotations.
func (et *eventTypeState) entity(ref ObjectRef, labels, annotations map[string]string) mesh.EventType {
	consumed := make([]string, 0, et.consumedBy.Len())
	for _, ids := range et.consumedBy.All() {
		if strings.IndexByte(ids, '\n') < 0 {
			consumed = append(consumed, ids) // one id: the common case
		} else {
			consumed = append(consumed, strings.Split(ids, "\n")...)
		}
	}
	slices.Sort(consumed)
	return mesh.EventType{Namespace: ref.Namespace, Name: ref.Name, Type: et.typ, UID: et.uid,
		Description: optional(et.description), SchemaURL: optional(et.schemaURL),
		SchemaData: optional(et.schemaData), Labels: labels, Annotations: annotations,
		Reference: gknn(et.reference), ConsumedBy: slices.Compact(consumed)}
}
