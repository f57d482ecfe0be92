package codec

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// An encoder with a cluster names it in the meshcluster extension and in the source, in every
// encoding, and the decoder gives it back on the change.
func TestClusterRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, source, cluster string
		wantSource            string
	}{
		{name: "default source", cluster: "east", wantSource: "/event-mesh-broadcaster/east"},
		{name: "source with a slash", source: "https://mesh.example/", cluster: "eu-west-1", wantSource: "https://mesh.example/eu-west-1"},
		{name: "upper case", source: "/fleet", cluster: "Prod7", wantSource: "/fleet/Prod7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			enc, err := NewEncoder(tt.source, WithCluster(tt.cluster))
			if err != nil {
				t.Fatal(err)
			}
			if enc.Cluster() != tt.cluster {
				t.Fatalf("Cluster() = %q", enc.Cluster())
			}
			c := change(mesh.KindBroker, mesh.OpUpdated, 7)
			ev, err := enc.Event(c)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Source() != tt.wantSource || ev.Extensions()[mesh.ExtensionCluster] != tt.cluster {
				t.Fatalf("source %q, extensions %v", ev.Source(), ev.Extensions())
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
			want := c
			want.Cluster = tt.cluster
			direct, err := enc.Structured(c)
			if err != nil {
				t.Fatal(err)
			}
			viaSDK, _ := EncodeStructured(ev)
			for mode, decode := range map[string]func() (mesh.Change, error){
				"event":      func() (mesh.Change, error) { return Decode(ev) },
				"structured": func() (mesh.Change, error) { return DecodeStructured(viaSDK) },
				"direct":     func() (mesh.Change, error) { return DecodeStructured(direct) },
				"http binary": func() (mesh.Change, error) {
					req, _ := http.NewRequest(http.MethodPost, "http://sink", nil)
					if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req); err != nil {
						return mesh.Change{}, err
					}
					if req.Header.Get("Ce-Meshcluster") != tt.cluster {
						t.Errorf("binary mode header Ce-Meshcluster = %q", req.Header.Get("Ce-Meshcluster"))
					}
					got, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
					if err != nil {
						return mesh.Change{}, err
					}
					return Decode(*got)
				},
			} {
				got, err := decode()
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %v\n got %+v\nwant %+v", mode, err, got, want)
				}
			}
			if !strings.Contains(string(direct), `"meshcluster":"`+tt.cluster+`","meshepoch":`) {
				t.Errorf("structured member order: %s", direct)
			}
		})
	}
}

// Without a cluster nothing changes on the wire: no extension, the source as configured.
func TestNoClusterNoExtension(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("")
	c := change(mesh.KindBroker, mesh.OpAdded, 1)
	ev, _ := enc.Event(c)
	direct, _ := enc.Structured(c)
	if _, ok := ev.Extensions()[mesh.ExtensionCluster]; ok || ev.Source() != DefaultSource || strings.Contains(string(direct), "meshcluster") {
		t.Fatalf("event %s\nstructured %s", ev, direct)
	}
}

// A change decoded from another broadcaster keeps its own cluster when encoded again (a relay),
// under the encoder's configured source.
func TestChangeKeepsItsCluster(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("/relay", WithCluster("hub"))
	c := change(mesh.KindBroker, mesh.OpAdded, 1)
	c.Cluster = "west"
	ev, err := enc.Event(c)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source() != "/relay/west" || ev.Extensions()[mesh.ExtensionCluster] != "west" {
		t.Fatalf("event %s", ev)
	}
	c.Cluster = "not.a.token"
	if _, err := enc.Structured(c); err == nil {
		t.Fatal("a change naming an invalid cluster was encoded")
	}
}

func TestClusterRejected(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "a.b", "a b", "a/b", "*", ">", "#", "+", "-east", "east-", "ost\u00e9", strings.Repeat("x", 64)} {
		if _, err := NewEncoder("", WithCluster(bad)); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithCluster(%q): %v", bad, err)
		}
	}
	enc, _ := NewEncoder("", WithCluster("east"))
	good, _ := enc.Structured(change(mesh.KindBroker, mesh.OpAdded, 1))
	for _, bad := range []string{`"a.b"`, `""`, `"x y"`, `7`} {
		raw := strings.Replace(string(good), `"meshcluster":"east"`, `"meshcluster":`+bad, 1)
		if _, err := DecodeStructured([]byte(raw)); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("meshcluster %s decoded: %v", bad, err)
		}
	}
	if err := CheckExtensionName(mesh.ExtensionCluster); err == nil {
		t.Error("K_CE_OVERRIDES could override meshcluster")
	}
}
