package engine

import (
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Triggers consume from their Broker the EventTypes their filter can match, for their
// subscriber (consumers.go holds the rule they share with Subscriptions).
var triggerKind = Kind{
	Name:      "Trigger",
	GroupKind: gkTrigger,
	Find:      FindAlways,
	Verbs:     readVerbs,
	read: func(u *unstructured.Unstructured) (any, error) {
		c, problems := parseTrigger(u)
		return &c, errors.Join(problems...)
	},
	validate: func(spec map[string]any, u *unstructured.Unstructured) field.ErrorList {
		var errs field.ErrorList
		if s, _ := spec["broker"].(string); s == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "broker"), "a Trigger names its Broker"))
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
}

// consumerObject is a Trigger (provider: its Broker) or a Subscription (provider: its channel).
type consumerObject struct {
	provider   ObjectRef
	subscriber *ObjectRef
	filter     filter
}

func parseTrigger(u *unstructured.Unstructured) (consumerObject, []error) {
	o, ns := u.Object, u.GetNamespace()
	c := consumerObject{provider: ObjectRef{mesh.GroupEventing, mesh.KindBrokerObject, ns, str(o, "spec", "broker")}}
	if sub, ok := kref(o, ns, "spec", "subscriber", "ref"); ok {
		c.subscriber = &sub
	}
	var problems []error
	c.filter, problems = parseTriggerFilter(o)
	return c, problems
}
