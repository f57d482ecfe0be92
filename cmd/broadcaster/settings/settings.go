package settings

import (
	"fmt"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/destinations"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// All is what config needs of every part of the broadcaster.
func All() config.Parts {
	return config.Parts{Settings: destinations.Settings, Defaults: defaults, Checks: checks}
}

// defaults are the parts' defaults of the settings config holds for them.
func defaults(c *config.Config) {
	c.EventSource = codec.DefaultSource
	c.DeltaLogSize, c.DeltaLogBytes = changelog.DefaultMaxChanges, changelog.DefaultMaxBytes
	c.MaxWatchers, c.MaxWatchersPerIdentity = resync.DefaultMaxWatchers, resync.DefaultMaxWatchersPerIdentity
	c.MaxDeltaRequests, c.MaxConnections = resync.DefaultMaxDeltaRequests, resync.DefaultMaxConnections
}

// checks are the parts' checks of the settings config holds for them.
var checks = []config.Check{
	{Key: "source.manifests", Err: func(c config.Config) error {
		if c.Manifests == "" {
			return nil
		}
		return manifests.Check(c.Manifests)
	}},
	{Key: "source.namespaces", Err: func(c config.Config) error { return option.Check(kube.WithNamespaces(c.Namespaces...)) }},
	{Key: "source.labelSelector", Err: func(c config.Config) error { return option.Check(kube.WithLabelSelector(c.LabelSelector)) }},
	{Key: "server.deltaLog.size", Err: func(c config.Config) error { return option.Check(changelog.WithMaxChanges(c.DeltaLogSize)) }},
	{Key: "server.maxWatchers", Err: func(c config.Config) error { return option.Check(resync.WithMaxWatchers(c.MaxWatchers)) }},
	{Key: "server.maxWatchersPerIdentity", Err: func(c config.Config) error {
		return option.Check(resync.WithMaxWatchersPerIdentity(c.MaxWatchersPerIdentity))
	}},
	{Key: "server.maxDeltaRequests", Err: func(c config.Config) error { return option.Check(resync.WithMaxDeltaRequests(c.MaxDeltaRequests)) }},
	{Key: "server.maxConnections", Err: func(c config.Config) error {
		_, err := option.Positive("max connections", c.MaxConnections)
		return err
	}},
	{Key: "server.metricsTokenFile", Err: func(c config.Config) error {
		if c.MetricsTokenFile == "" {
			return nil
		}
		_, err := auth.ReadTokens(c.MetricsTokenFile)
		return err
	}},
	{Key: "server.deltaLog.bytes", Err: func(c config.Config) error { return option.Check(changelog.WithMaxBytes(c.DeltaLogBytes)) }},
	{Key: "access.tokensFile", Err: func(c config.Config) error {
		if c.TokensFile == "" {
			return nil
		}
		_, err := auth.ReadTokens(c.TokensFile)
		return err
	}},
	{Key: "server.tls.certFile", Err: func(c config.Config) error {
		switch {
		case c.TLSCertFile == "" && c.TLSKeyFile == "":
			return nil
		case c.TLSCertFile == "" || c.TLSKeyFile == "":
			return fmt.Errorf("give both the certificate and the key (server.tls.certFile and keyFile), or neither")
		}
		_, err := tlsfiles.Load(c.TLSCertFile, c.TLSKeyFile)
		return err
	}},
	{Key: "events.source", Err: func(c config.Config) error { _, err := codec.NewEncoder(c.EventSource); return err }},
	{Key: "events.cluster", Err: func(c config.Config) error {
		if c.ClusterName == "" {
			return nil
		}
		return mesh.CheckCluster(c.ClusterName)
	}},
}
