package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// Settings are the publisher's settings as users give them (under transports.mqtt).
// DefaultSettings publishes nowhere, under DefaultTopicPrefix once a URL is set.
type Settings struct {
	URL          string // the broker (mqtt://, mqtts://); "" publishes nowhere
	TopicPrefix  string
	ClientID     string // "": ClientID(TopicPrefix)
	Username     string
	Password     string // a secret; prefer PasswordFile
	PasswordFile string
	TLS          tlsfiles.Client
}

// DefaultSettings publishes nowhere, under DefaultTopicPrefix once a URL is set.
func DefaultSettings() Settings { return Settings{TopicPrefix: DefaultTopicPrefix} }

// Describe describes the settings, bound to s's fields.
func (s *Settings) Describe() []option.Setting {
	return append([]option.Setting{
		{Key: "transports.mqtt.url", Flag: "mqtt", Placeholder: "url", Help: "publish mesh deltas to this MQTT v5 broker (mqtt://host:1883, mqtts://...)", Field: &s.URL},
		{Key: "transports.mqtt.topicPrefix", Flag: "mqtt-topic-prefix", Placeholder: "prefix", Help: "MQTT topic prefix", Field: &s.TopicPrefix},
		{Key: "transports.mqtt.clientID", Flag: "mqtt-client-id", Placeholder: "id", Help: "MQTT client id (default from the topic prefix and events.cluster)", Field: &s.ClientID},
		{Key: "transports.mqtt.username", Flag: "mqtt-username", Placeholder: "name", Help: "MQTT user name", Field: &s.Username},
		{Key: "transports.mqtt.password", Secret: true, Help: "MQTT password (prefer passwordFile)", Field: &s.Password},
		{Key: "transports.mqtt.passwordFile", Flag: "mqtt-password-file", Placeholder: "file", Help: "read the MQTT password from this file", Field: &s.PasswordFile},
	}, s.TLS.Describe("transports.mqtt", "the MQTT broker")...)
}

// Check says whether Open would accept the settings, without connecting; each problem names
// its setting.
func (s Settings) Check() error {
	var errs []error
	if s.URL != "" {
		errs = append(errs, option.ForSetting("transports.mqtt.url", Check(s.URL)))
	}
	errs = append(errs, option.ForSetting("transports.mqtt.topicPrefix", option.Check(WithTopicPrefix(s.TopicPrefix))))
	if s.ClientID != "" {
		errs = append(errs, option.ForSetting("transports.mqtt.clientID", option.Check(WithClientID(s.ClientID))))
	}
	if s.PasswordFile != "" {
		errs = append(errs, option.ForSetting("transports.mqtt.passwordFile",
			transports.CheckSecretFile(s.Password, s.PasswordFile, "transports.mqtt.password")))
	}
	errs = append(errs, s.TLS.Check("transports.mqtt"))
	if s.Username == "" {
		switch {
		case s.Password != "":
			errs = append(errs, option.Incomplete("transports.mqtt.password", "needs a user name (transports.mqtt.username)"))
		case s.PasswordFile != "":
			errs = append(errs, option.Incomplete("transports.mqtt.passwordFile", "needs a user name (transports.mqtt.username)"))
		}
	}
	return errors.Join(errs...)
}

// Destination names the publisher in logs and metrics ("mqtt" and its topic filter), or is ""
// when the settings name no broker.
func (s Settings) Destination() string {
	if s.URL == "" {
		return ""
	}
	return "mqtt " + strings.TrimSuffix(s.TopicPrefix, "/") + "/#"
}

// Open starts the publisher the settings name (see New): it opens d.Epoch, republishes from
// d.Latest and counts entities with d.Count.
func (s Settings) Open(ctx context.Context, d transports.Deps) (transports.Publisher, error) {
	tlsConfig, err := s.TLS.Config(d.CA)
	if err != nil {
		return nil, fmt.Errorf("mqtt TLS: %w", err)
	}
	opts := []Option{WithTopicPrefix(s.TopicPrefix), WithTLS(tlsConfig), WithLatest(d.Latest), WithLogger(d.Log), WithEpoch(d.Epoch),
		WithEntityCount(d.Count)}
	if s.ClientID != "" {
		opts = append(opts, WithClientID(s.ClientID))
	}
	if s.Username != "" {
		password, err := transports.Secret(s.Password, s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt password file %s: %w", s.PasswordFile, err)
		}
		opts = append(opts, WithCredentials(s.Username, password))
	}
	p, err := New(ctx, s.URL, d.Encoder, opts...)
	if err != nil {
		return nil, err
	}
	return p, nil
}
