package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// A RequestReply is addressable: it sends what it receives into its Broker (spec.brokerRef)
// and answers the caller with the event that carries the reply attribute.
var requestReplyKind = elementKind(GroupKind{mesh.GroupEventing, "RequestReply"}, mesh.KindRequestReply,
	func(u *unstructured.Unstructured) []edgeSpec {
		ref, ok := kref(u.Object, u.GetNamespace(), "spec", "brokerRef")
		if !ok {
			return nil
		}
		if ref.Group == "" {
			ref.Group = mesh.GroupEventing
		}
		return []edgeSpec{{role: mesh.RoleBroker, index: -1, ref: &ref}}
	},
	func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		if b, _ := spec["brokerRef"].(map[string]any); b == nil || b["name"] == nil {
			return field.ErrorList{field.Required(field.NewPath("spec", "brokerRef"), "a RequestReply names its Broker")}
		}
		return nil
	})
