package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// An EventTransform is addressable: it rewrites what it receives (a JSONata expression; the
// event's type may change here) and sends the result to spec.sink, or without a sink answers
// with it. spec.reply transforms the sink's replies; it names no destination.
var eventTransformKind = elementKind(GroupKind{mesh.GroupEventing, "EventTransform"}, mesh.KindEventTransform,
	func(u *unstructured.Unstructured) []edgeSpec {
		if sink, ok := destination(u.Object, u.GetNamespace(), mesh.RoleSink, -1, "spec", "sink"); ok {
			return []edgeSpec{sink}
		}
		return nil
	}, nil)
