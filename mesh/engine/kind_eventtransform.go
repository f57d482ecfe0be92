package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

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
	},
	func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		var errs field.ErrorList
		if spec["jsonata"] == nil { // the one transformation Knative has
			errs = append(errs, field.Required(field.NewPath("spec", "jsonata"), "an EventTransform has a transformation (jsonata)"))
		}
		if spec["reply"] != nil && spec["sink"] == nil {
			errs = append(errs, field.Required(field.NewPath("spec", "sink"), "spec.reply transforms the sink's replies: it needs a sink"))
		}
		return errs
	})
