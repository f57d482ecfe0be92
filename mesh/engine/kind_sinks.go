package engine

import "github.com/event-mesh-broadcaster/broadcaster/mesh"

// GroupSinks is the group of Knative's own sinks.
const GroupSinks = "sinks.knative.dev"

// A JobSink is addressable: every event it receives starts a Job. An IntegrationSink is
// addressable: it hands what it receives to a Camel Kamelet (a log, S3, SQS, SNS). Neither
// sends events on.
var (
	jobSinkKind         = elementKind(GroupKind{GroupSinks, "JobSink"}, mesh.KindJobSink, nil, nil)
	integrationSinkKind = elementKind(GroupKind{GroupSinks, "IntegrationSink"}, mesh.KindIntegrationSink, nil, nil)
)
