package engine

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestReferencedKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []GroupKind
	}{
		{"trigger: its subscriber's kind and its dead-letter sink's; the Broker is declared", `{apiVersion: eventing.knative.dev/v1, kind: Trigger, metadata: {name: t, namespace: shop},
			spec: {broker: b, subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc}},
			delivery: {deadLetterSink: {ref: {apiVersion: v1, kind: Service, name: dls}}}}}`,
			[]GroupKind{{"serving.knative.dev", "Service"}, {"", "Service"}}},
		{"subscription: each kind once", `{apiVersion: messaging.knative.dev/v1, kind: Subscription, metadata: {name: s, namespace: shop},
			spec: {channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: c}, subscriber: {ref: {apiVersion: v1, kind: Service, name: svc, namespace: ops}},
			reply: {ref: {apiVersion: v1, kind: Service, name: other}}}}`,
			[]GroupKind{{"messaging.knative.dev", "InMemoryChannel"}, {"", "Service"}}},
		{"uri subscriber", `{apiVersion: eventing.knative.dev/v1, kind: Trigger, metadata: {name: t, namespace: shop},
			spec: {broker: b, subscriber: {uri: "http://x"}}}`, nil},
		{"a Sequence's steps", `{apiVersion: flows.knative.dev/v1, kind: Sequence, metadata: {name: q, namespace: shop},
			spec: {steps: [{ref: {apiVersion: v1, kind: Service, name: a}}, {ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: EventTransform, name: t}}]}}`,
			[]GroupKind{{"", "Service"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tt.doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			if got := Parse(u).ReferencedKinds(); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
