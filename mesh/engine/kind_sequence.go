package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// GroupFlows is the group of Sequence and Parallel.
const GroupFlows = "flows.knative.dev"

// A Sequence is addressable: what it receives goes through its steps in order (each step's
// reply is the next step's input), and the last reply goes to spec.reply. Each step has its own
// dead-letter sink. What reaches it goes to the first step as it is.
var sequenceKind = delivering(func(index int) bool { return index == 0 }, elementKind(GroupKind{GroupFlows, "Sequence"}, mesh.KindSequence,
	func(u *unstructured.Unstructured) []edgeSpec {
		o, ns := u.Object, u.GetNamespace()
		var edges []edgeSpec
		for i, step := range listAt(o, "spec", "steps") {
			if edge, ok := destination(step, ns, mesh.RoleSubscriber, i); ok {
				edges = append(edges, edge)
			}
			if dls, ok := destination(step, ns, mesh.RoleDeadLetterSink, i, "delivery", "deadLetterSink"); ok {
				edges = append(edges, dls)
			}
		}
		if reply, ok := destination(o, ns, mesh.RoleReply, -1, "spec", "reply"); ok {
			edges = append(edges, reply)
		}
		return edges
	},
	func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		return requireList(spec, "steps", "a Sequence has at least one step")
	}))
