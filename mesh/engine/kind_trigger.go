package engine

import (
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// KindTriggerObject is the Kubernetes kind of Triggers.
const KindTriggerObject = "Trigger"

// Triggers consume from their Broker the EventTypes their filter can match, for their
// subscriber (consumers.go holds the rule they share with Subscriptions). The entity is the
// edge from the Broker (spec.broker, or spec.brokerRef in another namespace) to the
// subscriber, with the filter as written, and where failed deliveries go.
var triggerKind = Kind{
	Name:      "Trigger",
	GroupKind: gkTrigger,
	Find:      FindAlways,
	Verbs:     readVerbs,
	Entity:    mesh.KindTrigger,
	HasEntity: true,
	read: func(u *unstructured.Unstructured) (any, error) {
		c, problems := parseTrigger(u)
		return &c, errors.Join(problems...)
	},
	edges: func(u *unstructured.Unstructured) []edgeSpec {
		o, ns := u.Object, u.GetNamespace()
		broker := triggerBroker(o, ns)
		edges := []edgeSpec{{role: mesh.RoleBroker, index: -1, ref: &broker}}
		if sub, ok := destination(o, ns, mesh.RoleSubscriber, -1, "spec", "subscriber"); ok {
			if sub.filter = rawJSON(o, "spec", "filters"); sub.filter == nil {
				sub.filter = rawJSON(o, "spec", "filter")
			}
			edges = append(edges, sub)
		}
		return edges
	},
	validate: func(spec map[string]any, u *unstructured.Unstructured) field.ErrorList {
		var errs field.ErrorList
		if s, _ := spec["broker"].(string); s == "" && spec["brokerRef"] == nil {
			errs = append(errs, field.Required(field.NewPath("spec", "broker"), "a Trigger names its Broker (broker or brokerRef)"))
		}
		if spec["subscriber"] == nil {
			errs = append(errs, field.Required(field.NewPath("spec", "subscriber"), "a Trigger has a subscriber (ref or uri)"))
		}
		if spec != nil {
			if _, problems := parseTriggerFilter(u.Object); len(problems) > 0 {
				errs = append(errs, field.Invalid(field.NewPath("spec"), "filters",
					objectProblem(RefOf(u), errors.Join(problems...)).Error()))
			}
		}
		return errs
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.upsertConsumer(ref, obj.(*consumerObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.deleteConsumer(ref) },
	render: renderConsumer,
}

// consumerObject is a Trigger (provider: its Broker) or a Subscription (provider: its channel).
type consumerObject struct {
	objectMeta
	provider   ObjectRef
	subscriber *ObjectRef
	filter     filter
}

func renderConsumer(e *Engine, ref ObjectRef) (any, bool) {
	c := e.consumers[ref]
	if c == nil {
		return nil, false
	}
	return e.renderElement(ref, &c.objectMeta), true
}

// triggerBroker is the Broker a Trigger reads from: spec.brokerRef (in any namespace, with
// cross-namespace-event-links) or spec.broker in the Trigger's namespace.
func triggerBroker(o map[string]any, ns string) ObjectRef {
	if ref, ok := kref(o, ns, "spec", "brokerRef"); ok {
		if ref.Group == "" {
			ref.Group = mesh.GroupEventing
		}
		return ref
	}
	return ObjectRef{mesh.GroupEventing, mesh.KindBrokerObject, ns, str(o, "spec", "broker")}
}

func parseTrigger(u *unstructured.Unstructured) (consumerObject, []error) {
	o, ns := u.Object, u.GetNamespace()
	c := consumerObject{objectMeta: metaOf(u), provider: triggerBroker(o, ns)}
	if sub, ok := kref(o, ns, "spec", "subscriber", "ref"); ok {
		c.subscriber = &sub
	}
	var problems []error
	c.filter, problems = parseTriggerFilter(o)
	return c, problems
}
