package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestSubscriber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want ObjectRef
		ok   bool
	}{
		{"trigger, namespace defaulted", `{apiVersion: eventing.knative.dev/v1, kind: Trigger, metadata: {name: t, namespace: shop},
			spec: {broker: b, subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc}}}}`,
			ObjectRef{"serving.knative.dev", "Service", "shop", "svc"}, true},
		{"subscription, explicit namespace", `{apiVersion: messaging.knative.dev/v1, kind: Subscription, metadata: {name: s, namespace: shop},
			spec: {subscriber: {ref: {apiVersion: v1, kind: Service, name: svc, namespace: ops}}}}`,
			ObjectRef{"", "Service", "ops", "svc"}, true},
		{"uri subscriber", `{apiVersion: eventing.knative.dev/v1, kind: Trigger, metadata: {name: t, namespace: shop},
			spec: {subscriber: {uri: "http://x"}}}`, ObjectRef{}, false},
		{"other kind", `{apiVersion: eventing.knative.dev/v1, kind: Broker, metadata: {name: t, namespace: shop},
			spec: {subscriber: {ref: {apiVersion: v1, kind: Service, name: svc}}}}`, ObjectRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tt.doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			got, ok := Parse(u).Subscriber()
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
