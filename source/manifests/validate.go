package manifests

import (
	"fmt"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

// validate judges an object as the API server (and Knative's webhooks) would, for what the
// mesh reads: label and annotation syntax and size, spec an object, and the fields a Knative
// object cannot go without. It returns every problem found.
func validate(u *unstructured.Unstructured) []string {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	errs = append(errs, metav1validation.ValidateLabels(u.GetLabels(), meta.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(u.GetAnnotations(), meta.Child("annotations"))...)
	spec, hasSpec := u.Object["spec"]
	specMap, isMap := spec.(map[string]any)
	if hasSpec && !isMap {
		errs = append(errs, field.Invalid(field.NewPath("spec"), describeValue(spec), "must be an object"))
	}
	gk := engine.RefOf(u)
	switch {
	case gk.Group == "eventing.knative.dev" && gk.Kind == "Trigger":
		if s, _ := specMap["broker"].(string); s == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "broker"), "a Trigger names its Broker"))
		}
		if specMap["subscriber"] == nil {
			errs = append(errs, field.Required(field.NewPath("spec", "subscriber"), "a Trigger has a subscriber (ref or uri)"))
		}
		if isMap {
			if err := engine.Parse(u).Problems(); err != nil {
				errs = append(errs, field.Invalid(field.NewPath("spec"), "filters", err.Error()))
			}
		}
	case gk.Group == engine.GroupMessaging && gk.Kind == "Subscription":
		if ch, _ := specMap["channel"].(map[string]any); ch == nil || ch["kind"] == nil || ch["name"] == nil {
			errs = append(errs, field.Required(field.NewPath("spec", "channel"), "a Subscription names its channel (kind and name)"))
		}
	}
	problems := make([]string, len(errs))
	for i, e := range errs {
		problems[i] = e.Error()
	}
	return problems
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprintf("%T", v)
}
