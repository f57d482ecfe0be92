package engine

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// An EventPolicy says who may send to what: its targets (spec.to, by reference or by label
// selector; none: every addressable of its namespace) admit its senders (spec.from, by
// reference or OIDC subject glob) when the event passes spec.filters.
var eventPolicyKind = elementKind(GroupKind{mesh.GroupEventing, "EventPolicy"}, mesh.KindEventPolicy,
	func(u *unstructured.Unstructured) []edgeSpec {
		o, ns := u.Object, u.GetNamespace()
		var edges []edgeSpec
		for _, to := range listAt(o, "spec", "to") {
			if ref, ok := kref(to, ns, "ref"); ok {
				ref.Namespace = ns // a policy applies in its own namespace
				edges = append(edges, edgeSpec{role: mesh.RoleTo, index: -1, ref: &ref})
			} else if sel := rawJSON(to, "selector"); sel != nil {
				edges = append(edges, edgeSpec{role: mesh.RoleTo, index: -1, selector: sel})
			}
		}
		filters := rawJSON(o, "spec", "filters")
		for _, from := range listAt(o, "spec", "from") {
			if ref, ok := kref(from, ns, "ref"); ok {
				edges = append(edges, edgeSpec{role: mesh.RoleFrom, index: -1, ref: &ref, filter: filters})
			} else if sub := str(from, "sub"); sub != "" {
				edges = append(edges, edgeSpec{role: mesh.RoleFrom, index: -1, subject: sub, filter: filters})
			}
		}
		return edges
	},
	func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		// As Knative's webhook: each target is a ref or a selector, each sender a ref or a
		// subject, a ref names its kind, apiVersion and name, a subject glob ends in its one '*'.
		var errs field.ErrorList
		for i, to := range listAt(spec, "to") {
			errs = append(errs, policyPeer(field.NewPath("spec", "to").Index(i), to, "selector")...)
		}
		for i, from := range listAt(spec, "from") {
			path := field.NewPath("spec", "from").Index(i)
			errs = append(errs, policyPeer(path, from, "sub")...)
			if sub := str(from, "sub"); strings.Contains(strings.TrimSuffix(sub, "*"), "*") {
				errs = append(errs, field.Invalid(path.Child("sub"), sub, "'*' is only allowed as the last character"))
			}
		}
		return errs
	})

// policyPeer judges one of an EventPolicy's targets or senders: a ref, or else (other) a
// selector or a subject, not both.
func policyPeer(path *field.Path, peer map[string]any, other string) field.ErrorList {
	ref, hasOther := peer["ref"], peer[other] != nil && peer[other] != ""
	switch {
	case ref == nil && !hasOther:
		return field.ErrorList{field.Required(path, "one of ref and "+other)}
	case ref != nil && hasOther:
		return field.ErrorList{field.Invalid(path, "ref and "+other, "only one of ref and "+other)}
	case ref == nil:
		return nil
	}
	r, _ := ref.(map[string]any)
	var errs field.ErrorList
	for _, name := range []string{"kind", "apiVersion", "name"} {
		if s, _ := r[name].(string); s == "" {
			errs = append(errs, field.Required(path.Child("ref", name), "a reference names its kind, apiVersion and name"))
		}
	}
	return errs
}
