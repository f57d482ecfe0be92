package destinations_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/destinations"
)

// Every transport's settings load through config and open as the destinations they name, in
// the list's order; a transport whose settings name none is not opened.
func TestOpen(t *testing.T) {
	t.Parallel()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer sink.Close()
	enc, err := codec.NewEncoder("")
	if err != nil {
		t.Fatal(err)
	}
	deps := transports.Deps{Encoder: enc, Epoch: "e", Latest: func() []mesh.Change { return nil }, Count: func() int { return 0 }}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"none", nil, nil},
		{"a sink", []string{"--sink", sink.URL + "/path?token=secret"}, []string{"http " + sink.URL + "/path?…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(append([]string{"--manifests", t.TempDir()}, tt.args...), func(string) string { return "" }, settings.All())
			if err != nil {
				t.Fatal(err)
			}
			d := deps
			d.Log = testLogger(t)
			opened, err := destinations.Open(context.Background(), cfg, d)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range opened {
				names = append(names, o.Name)
				if err := o.Publisher.Publish(context.Background(), nil); err != nil {
					t.Errorf("%s: %v", o.Name, err)
				}
				o.Publisher.Close(context.Background())
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("opened %q, want %q", names, tt.want)
			}
		})
	}
}

// Every transport's settings are a config.Part with its own keys, and a check that accepts
// their defaults.
func TestSettings(t *testing.T) {
	t.Parallel()
	keys := map[string]bool{}
	for _, s := range destinations.Settings() {
		if err := s.Check(); err != nil {
			t.Errorf("%T: the defaults are rejected: %v", s, err)
		}
		if s.(destinations.Transport).Destination() != "" {
			t.Errorf("%T: the defaults name a destination", s)
		}
		for _, d := range s.Describe() {
			if keys[d.Key] {
				t.Errorf("%s: described twice", d.Key)
			}
			keys[d.Key] = true
		}
	}
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }
