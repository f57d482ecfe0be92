package httpsink

import (
	"context"
	"errors"
	"fmt"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// Settings are the sink's settings as users give them (under transports.http). The zero value,
// DefaultSettings, sends nowhere.
type Settings struct {
	Sink        string // the target URL ($K_SINK); "" sends nowhere
	CEOverrides string // Knative's $K_CE_OVERRIDES (see WithOverrides)
	TLS         tlsfiles.Client
}

// DefaultSettings sends nowhere.
func DefaultSettings() Settings { return Settings{} }

// Describe describes the settings, bound to s's fields.
func (s *Settings) Describe() []option.Setting {
	return append([]option.Setting{
		{Key: "transports.http.sink", Flag: "sink", FallbackEnv: "K_SINK", Placeholder: "url", Help: "send mesh-delta CloudEvents to this HTTP URL (default $K_SINK)",
			Field: &s.Sink},
		{Key: "transports.http.ceOverrides", FallbackEnv: "K_CE_OVERRIDES", Placeholder: "json",
			Help:  "extensions set on every event sent to the sink, as Knative's K_CE_OVERRIDES: {\"extensions\": {...}}",
			Field: &s.CEOverrides},
	}, s.TLS.Describe("transports.http", "the sink")...)
}

// Check says whether Open would accept the settings, without sending; each problem names its
// setting.
func (s Settings) Check() error {
	var errs []error
	if s.Sink != "" {
		errs = append(errs, option.ForSetting("transports.http.sink", Check(s.Sink)))
	}
	if s.CEOverrides != "" {
		errs = append(errs, option.ForSetting("transports.http.ceOverrides", option.Check(WithOverrides(s.CEOverrides))))
	}
	return errors.Join(append(errs, s.TLS.Check("transports.http"))...)
}

// Destination names the sink in logs and metrics ("http " and its URL without credentials), or
// is "" when the settings name none.
func (s Settings) Destination() string {
	if s.Sink == "" {
		return ""
	}
	return "http " + option.RedactURL(s.Sink)
}

// Open returns the sink the settings name (see New), with its own TLS configuration when the
// settings or d.CA change the system's.
func (s Settings) Open(_ context.Context, d transports.Deps) (transports.Publisher, error) {
	opts := []Option{WithOverrides(s.CEOverrides), WithLogger(d.Log)}
	if s.TLS.Customised(d.CA) {
		tlsConfig, err := s.TLS.Config(d.CA)
		if err != nil {
			return nil, fmt.Errorf("sink TLS: %w", err)
		}
		opts = append(opts, WithTLS(tlsConfig))
	}
	sink, err := New(s.Sink, d.Encoder, opts...)
	if err != nil {
		return nil, err
	}
	return sink, nil
}
