package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A Parallel is addressable: what it receives goes to every branch whose filter service
// accepts it; each branch's subscriber answers to the branch's reply (else the Parallel's).
// What reaches it goes to every branch's subscriber as it is (a filter service may keep it out).
var parallelKind = delivering(func(int) bool { return true }, elementKind(GroupKind{GroupFlows, "Parallel"}, mesh.KindParallel,
	func(u *unstructured.Unstructured) []edgeSpec {
		o, ns := u.Object, u.GetNamespace()
		var edges []edgeSpec
		for i, branch := range listAt(o, "spec", "branches") {
			for _, d := range []struct {
				role   mesh.EdgeRole
				fields []string
			}{
				{mesh.RoleFilter, []string{"filter"}},
				{mesh.RoleSubscriber, []string{"subscriber"}},
				{mesh.RoleReply, []string{"reply"}},
				{mesh.RoleDeadLetterSink, []string{"delivery", "deadLetterSink"}},
			} {
				if edge, ok := destination(branch, ns, d.role, i, d.fields...); ok {
					edges = append(edges, edge)
				}
			}
		}
		if reply, ok := destination(o, ns, mesh.RoleReply, -1, "spec", "reply"); ok {
			edges = append(edges, reply)
		}
		return edges
	},
	func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		errs := requireList(spec, "branches", "a Parallel has at least one branch")
		for i, branch := range listAt(spec, "branches") {
			if branch == nil || branch["subscriber"] == nil {
				errs = append(errs, field.Required(field.NewPath("spec", "branches").Index(i).Child("subscriber"),
					"every branch has a subscriber"))
			}
		}
		return errs
	}))
