package engine

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// GroupSinks is the group of Knative's own sinks.
const GroupSinks = "sinks.knative.dev"

// A JobSink is addressable: every event it receives starts a Job. An IntegrationSink is
// addressable: it hands what it receives to a Camel Kamelet (a log, S3, SQS, SNS). Neither
// sends events on.
var (
	jobSinkKind = elementKind(GroupKind{GroupSinks, "JobSink"}, mesh.KindJobSink, nil,
		func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
			switch job := spec["job"]; job.(type) {
			case nil:
				return field.ErrorList{field.Required(field.NewPath("spec", "job"), "a JobSink has the Job it starts")}
			case map[string]any:
				return nil
			default:
				return field.ErrorList{field.Invalid(field.NewPath("spec", "job"), describeValue(job), "must be an object")}
			}
		})
	integrationSinkKind = elementKind(GroupKind{GroupSinks, "IntegrationSink"}, mesh.KindIntegrationSink, nil,
		func(spec map[string]any, _ *unstructured.Unstructured) field.ErrorList {
			var set []string
			for _, t := range [][]string{{"log"}, {"aws", "s3"}, {"aws", "sqs"}, {"aws", "sns"}} {
				if v, _ := lookup(spec, t...); v != nil {
					set = append(set, strings.Join(t, "."))
				}
			}
			switch len(set) {
			case 0:
				return field.ErrorList{field.Required(field.NewPath("spec"), "an IntegrationSink has a sink type: log, aws.s3, aws.sqs or aws.sns")}
			case 1:
				return nil
			default:
				return field.ErrorList{field.Invalid(field.NewPath("spec"), strings.Join(set, ", "), "only one sink type can be set")}
			}
		})
)
