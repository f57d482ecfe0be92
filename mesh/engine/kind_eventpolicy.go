package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
	}, nil)
