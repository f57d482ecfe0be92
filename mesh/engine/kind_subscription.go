package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Subscriptions consume every EventType their channel provides, for their subscriber
// (consumers.go holds the rule they share with Triggers).
var subscriptionKind = Kind{
	Name:      "Subscription",
	GroupKind: gkSubscription,
	Find:      FindAlways,
	Verbs:     readVerbs,
	read: func(u *unstructured.Unstructured) (any, error) {
		c := parseSubscription(u)
		return &c, nil
	},
	validate: func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		if ch, _ := spec["channel"].(map[string]any); ch == nil || ch["kind"] == nil || ch["name"] == nil {
			return field.ErrorList{field.Required(field.NewPath("spec", "channel"), "a Subscription names its channel (kind and name)")}
		}
		return nil
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertConsumer(ref, obj.(*consumerObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteConsumer(ref) },
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
