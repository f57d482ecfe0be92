package destinations

import (
	"context"
	"fmt"

	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// Transport is one transport's settings, as config fills them in and the factory opens them:
// a pointer to the transport's Settings.
type Transport interface {
	// Describe describes the settings (keys, flags, help), bound to their fields.
	Describe() []option.Setting
	// Check says whether Open would accept them; each problem names its setting's key.
	Check() error
	// Destination names the destination in logs and metrics, or is "" when the settings name
	// none (the transport is not used).
	Destination() string
	// Open connects the publisher.
	Open(ctx context.Context, d transports.Deps) (transports.Publisher, error)
}

// all is every transport, in the order the help and the configuration show their settings
// and the order they open in.
var all = []func() Transport{
	fresh(httpsink.DefaultSettings),
	fresh(mqtt.DefaultSettings),
	fresh(nats.DefaultSettings),
}

// fresh makes a constructor of a transport's settings at their defaults.
func fresh[S any, T interface {
	*S
	Transport
}](defaults func() S) func() Transport {
	return func() Transport { s := defaults(); return T(&s) }
}

var _ config.Part = Transport(nil)

// Settings is every transport's settings at their defaults, for config to fill in (as
// config.Parts.Settings).
func Settings() []config.Part {
	out := make([]config.Part, len(all))
	for i, f := range all {
		out[i] = f()
	}
	return out
}

// Destination is one opened transport.
type Destination struct {
	Name      string // as Transport.Destination says
	Publisher transports.Publisher
}

// Open opens every transport whose settings in cfg name a destination, in order, each trusting
// cfg's CA certificates (transports.caFile) as d.CA. On failure it closes what it had opened.
func Open(ctx context.Context, cfg config.Config, d transports.Deps) (opened []Destination, err error) {
	defer func() {
		if err != nil {
			for _, o := range opened {
				o.Publisher.Close(context.WithoutCancel(ctx))
			}
			opened = nil
		}
	}()
	if d.CA, err = cfg.CACertificates(); err != nil {
		return nil, fmt.Errorf("transports CA file %s: %w", cfg.CAFile, err)
	}
	for _, part := range cfg.Parts() {
		s, ok := part.(Transport)
		if !ok {
			continue
		}
		name := s.Destination()
		if name == "" {
			continue
		}
		pub, err := s.Open(ctx, d)
		if err != nil {
			return opened, err
		}
		opened = append(opened, Destination{Name: name, Publisher: pub})
	}
	return opened, nil
}
