package engine

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// KindSubscriptionObject is the Kubernetes kind of Subscriptions.
const KindSubscriptionObject = "Subscription"

// Subscriptions consume every EventType their channel provides, for their subscriber
// (consumers.go holds the rule they share with Triggers).
// The entity is the edge from the channel to the subscriber, where replies go, and where
// failed deliveries go.
var subscriptionKind = Kind{
	Name:      "Subscription",
	GroupKind: gkSubscription,
	Find:      FindAlways,
	Verbs:     readVerbs,
	Entity:    mesh.KindSubscription,
	HasEntity: true,
	read: func(u *unstructured.Unstructured) (any, error) {
		c := parseSubscription(u)
		return &c, nil
	},
	edges: func(u *unstructured.Unstructured) []edgeSpec {
		o, ns := u.Object, u.GetNamespace()
		var edges []edgeSpec
		if ch, ok := kref(o, ns, "spec", "channel"); ok {
			ch.Namespace = ns
			edges = append(edges, edgeSpec{role: mesh.RoleChannel, index: -1, ref: &ch})
		}
		for _, d := range []struct {
			role  mesh.EdgeRole
			field string
		}{{mesh.RoleSubscriber, "subscriber"}, {mesh.RoleReply, "reply"}} {
			if edge, ok := destination(o, ns, d.role, -1, "spec", d.field); ok {
				edges = append(edges, edge)
			}
		}
		return edges
	},
	validate: func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
		if ch, _ := spec["channel"].(map[string]any); ch == nil || ch["kind"] == nil || ch["name"] == nil {
			return field.ErrorList{field.Required(field.NewPath("spec", "channel"), "a Subscription names its channel (kind and name)")}
		}
		return nil
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertConsumer(ref, obj.(*consumerObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteConsumer(ref) },
	render: renderConsumer,
}

func parseSubscription(u *unstructured.Unstructured) consumerObject {
	o, ns := u.Object, u.GetNamespace()
	c := consumerObject{objectMeta: metaOf(u), filter: matchAll{}}
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
