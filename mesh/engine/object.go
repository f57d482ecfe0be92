package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Well-known names the relation rules depend on.
const (
	GroupMessaging = "messaging.knative.dev"
	GroupCRD       = "apiextensions.k8s.io"

	KindTriggerObject      = "Trigger"
	KindSubscriptionObject = "Subscription"
	KindCRDObject          = "CustomResourceDefinition"

	LabelBackstageID    = "backstage.io/kubernetes-id"
	LabelSubscribable   = "messaging.knative.dev/subscribable"
	LabelSource         = "duck.knative.dev/source"
	AnnotationEventType = "registry.knative.dev/eventTypes"

	annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"
)

// ObjectRef identifies a Kubernetes object without its version. It is comparable, so it keys maps.
type ObjectRef struct {
	Group, Kind, Namespace, Name string
}

// Key is the key of the entity the object stands for.
func (r ObjectRef) Key() mesh.Key { return mesh.Key(r) }

// String is the key form, group/Kind/namespace/name.
func (r ObjectRef) String() string { return r.Key().String() }

// NamespacedName is the namespace/name form used in providedEventTypes.
func (r ObjectRef) NamespacedName() string { return r.Key().NamespacedName() }

// GroupKind is an object kind without its version.
type GroupKind struct{ Group, Kind string }

func (r ObjectRef) groupKind() GroupKind { return GroupKind{r.Group, r.Kind} }

// GroupOf returns the group of an apiVersion ("apps/v1" → "apps", "v1" → "").
func GroupOf(apiVersion string) string {
	if i := strings.IndexByte(apiVersion, '/'); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// RefOf returns the reference of an object.
func RefOf(u *unstructured.Unstructured) ObjectRef {
	return ObjectRef{GroupOf(u.GetAPIVersion()), u.GetKind(), u.GetNamespace(), u.GetName()}
}

// objectMeta is the metadata every entity carries. The annotations leave out kubectl's
// last-applied copy, which the mesh never shows.
type objectMeta struct {
	uid         string
	labels      pairs
	annotations pairs
}

func metaOf(u *unstructured.Unstructured) objectMeta {
	return objectMeta{
		uid:         string(u.GetUID()),
		labels:      pairsOf(u.GetLabels(), ""),
		annotations: pairsOf(u.GetAnnotations(), annotationLastApplied),
	}
}

// pairs is a string map kept as key, value, key, value... sorted by key: a Go map costs some
// 300 bytes even for one label, and the engine keeps the labels and annotations of every
// object it shows.
type pairs []string

// pairsOf is m without the key skip.
func pairsOf(m map[string]string, skip string) pairs {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != skip {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	p := make(pairs, 0, 2*len(keys))
	for _, k := range keys {
		p = append(p, k, m[k])
	}
	return p
}

// Map is the pairs as a map; like the upstream backend, none is nil (JSON null).
func (p pairs) Map() map[string]string {
	if len(p) == 0 {
		return nil
	}
	m := make(map[string]string, len(p)/2)
	for i := 0; i < len(p); i += 2 {
		m[p[i]] = p[i+1]
	}
	return m
}

// str reads a string field, tolerating absence and wrong types (validation is the webhook's job).
func str(obj map[string]any, fields ...string) string {
	v, ok := field(obj, fields...)
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

func field(obj map[string]any, fields ...string) (any, bool) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[f]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// kref reads a Knative KReference (apiVersion or group, kind, namespace, name) at fields,
// defaulting the namespace like Knative's webhook does. ok is false when there is no usable ref.
func kref(obj map[string]any, defaultNamespace string, fields ...string) (ObjectRef, bool) {
	v, ok := field(obj, fields...)
	if !ok {
		return ObjectRef{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return ObjectRef{}, false
	}
	r := ObjectRef{Kind: str(m, "kind"), Namespace: str(m, "namespace"), Name: str(m, "name")}
	if av := str(m, "apiVersion"); av != "" {
		r.Group = GroupOf(av)
	} else {
		r.Group = str(m, "group")
	}
	if r.Namespace == "" {
		r.Namespace = defaultNamespace
	}
	if r.Kind == "" || r.Name == "" {
		return ObjectRef{}, false
	}
	return r, true
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
	if raw, ok := field(o, "spec", "attributes"); ok {
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

// consumerObject is a Trigger (provider: its Broker) or a Subscription (provider: its channel).
type consumerObject struct {
	provider   ObjectRef
	subscriber *ObjectRef
	filter     filter
}

func parseTrigger(u *unstructured.Unstructured) (consumerObject, []error) {
	o, ns := u.Object, u.GetNamespace()
	c := consumerObject{provider: ObjectRef{mesh.GroupEventing, mesh.KindBrokerObject, ns, str(o, "spec", "broker")}}
	if sub, ok := kref(o, ns, "spec", "subscriber", "ref"); ok {
		c.subscriber = &sub
	}
	var problems []error
	c.filter, problems = parseTriggerFilter(o)
	return c, problems
}

func parseSubscription(u *unstructured.Unstructured) consumerObject {
	o, ns := u.Object, u.GetNamespace()
	c := consumerObject{filter: matchAll{}}
	// A Subscription's channel is always in its own namespace.
	if ch, ok := kref(o, ns, "spec", "channel"); ok {
		ch.Namespace = ns
		c.provider = ch
	}
	if sub, ok := kref(o, ns, "spec", "subscriber", "ref"); ok {
		c.subscriber = &sub
	}
	return c
}

// crdObject is what the engine needs from a CustomResourceDefinition.
type crdObject struct {
	gk           GroupKind
	subscribable bool
	source       bool
	eventTypes   []string // sorted, unique, non-empty
}

func parseCRD(u *unstructured.Unstructured) (crdObject, error) {
	o := u.Object
	c := crdObject{gk: GroupKind{str(o, "spec", "group"), str(o, "spec", "names", "kind")}}
	labels := u.GetLabels()
	c.subscribable = labels[LabelSubscribable] == "true"
	c.source = labels[LabelSource] == "true"
	if c.gk.Group == "" || c.gk.Kind == "" {
		return c, fmt.Errorf("spec.group and spec.names.kind are required")
	}
	raw, ok := u.GetAnnotations()[AnnotationEventType]
	if !ok || !c.source {
		return c, nil
	}
	var entries []struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationEventType, err)
	}
	for _, e := range entries {
		if e.Type != "" {
			c.eventTypes = append(c.eventTypes, e.Type)
		}
	}
	slices.Sort(c.eventTypes)
	c.eventTypes = slices.Compact(c.eventTypes)
	return c, nil
}

// genericObject is any other object: a possible channel, source or subscriber.
type genericObject struct {
	objectMeta
	sink *ObjectRef
}

func parseGeneric(u *unstructured.Unstructured) genericObject {
	g := genericObject{objectMeta: metaOf(u)}
	if s, ok := kref(u.Object, u.GetNamespace(), "spec", "sink", "ref"); ok {
		g.sink = &s
	}
	return g
}
