package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Well-known names the relation rules depend on.
const (
	GroupMessaging = "messaging.knative.dev"
	GroupCRD       = "apiextensions.k8s.io"

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

// scratchMap is p as the engine's scratch map slot (0: labels, 1: annotations), refilled for
// each entity rendered: valid until the next render. Like the upstream backend, none is nil
// (JSON null).
func (e *Engine) scratchMap(slot int, p pairs) map[string]string {
	if len(p) == 0 {
		return nil
	}
	m := e.scratchMaps[slot]
	if m == nil || len(m) > 64 { // an outsized one goes
		m = make(map[string]string, len(p)/2)
		e.scratchMaps[slot] = m
	} else {
		clear(m)
	}
	for i := 0; i < len(p); i += 2 {
		m[p[i]] = p[i+1]
	}
	return m
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
	v, ok := lookup(obj, fields...)
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

func lookup(obj map[string]any, fields ...string) (any, bool) {
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
	v, ok := lookup(obj, fields...)
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

// validateMeta judges an object's labels and annotations as the API server would.
func validateMeta(u *unstructured.Unstructured) field.ErrorList {
	meta := field.NewPath("metadata")
	errs := metav1validation.ValidateLabels(u.GetLabels(), meta.Child("labels"))
	return append(errs, apivalidation.ValidateAnnotations(u.GetAnnotations(), meta.Child("annotations"))...)
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprintf("%T", v)
}
