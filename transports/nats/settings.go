package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// Settings are the publisher's settings as users give them (under transports.nats).
// DefaultSettings publishes nowhere, under DefaultSubjectPrefix once a URL is set.
type Settings struct {
	URL           string // the server (nats://, tls://), or every server of a cluster comma-separated; "" publishes nowhere
	SubjectPrefix string
	Stream        string // "": StreamName(SubjectPrefix)
	KVBucket      string // "": BucketName(SubjectPrefix)
	CoreOnly      bool   // plain NATS messages: no stream, no KV bucket
	CredsFile     string
	User          string
	Password      string // a secret; prefer PasswordFile
	PasswordFile  string
	Token         string // a secret; prefer TokenFile
	TokenFile     string
	TLS           tlsfiles.Client
	// Replicas of the stream and the bucket on a JetStream cluster; PlacementCluster and
	// PlacementTags say where ("" and none: where the server chooses).
	Replicas         int
	PlacementCluster string
	PlacementTags    []string
	// Domain is the JetStream domain of the stream and the bucket ("": the server's own).
	Domain string
}

// DefaultSettings publishes nowhere, under DefaultSubjectPrefix once a URL is set, with one
// replica of the stream and the bucket.
func DefaultSettings() Settings { return Settings{SubjectPrefix: DefaultSubjectPrefix, Replicas: 1} }

// DialTimeout bounds how long Open waits to set the stream and the bucket up.
const DialTimeout = 30 * time.Second

// Describe describes the settings, bound to s's fields.
func (s *Settings) Describe() []option.Setting {
	return append([]option.Setting{
		{Key: "transports.nats.url", Flag: "nats", Placeholder: "url", Help: "publish mesh deltas to this NATS server (a JetStream stream and a KV bucket); the servers of a cluster comma-separated", Field: &s.URL},
		{Key: "transports.nats.subjectPrefix", Flag: "nats-subject-prefix", Placeholder: "prefix", Help: "NATS subject prefix", Field: &s.SubjectPrefix},
		{Key: "transports.nats.stream", Flag: "nats-stream", Placeholder: "name", Help: "JetStream stream name (default from the subject prefix)", Field: &s.Stream},
		{Key: "transports.nats.kvBucket", Flag: "nats-kv-bucket", Placeholder: "name", Help: "KV bucket name (default from the subject prefix)", Field: &s.KVBucket},
		{Key: "transports.nats.coreOnly", Flag: "nats-core", Help: "publish plain NATS messages (no JetStream stream or KV bucket)", Field: &s.CoreOnly},
		{Key: "transports.nats.replicas", Flag: "nats-replicas", Placeholder: "n", Help: "copies of the stream and the KV bucket on a JetStream cluster (1 to 5; an existing stream or bucket is updated)", Field: &s.Replicas},
		{Key: "transports.nats.domain", Flag: "nats-domain", Placeholder: "domain", Help: "the JetStream domain of the stream and the KV bucket: the hub cluster's, for a broadcaster connected to a leaf node", Field: &s.Domain},
		{Key: "transports.nats.placement.cluster", Flag: "nats-placement-cluster", Placeholder: "name", Help: "place the stream and the KV bucket in this JetStream cluster", Field: &s.PlacementCluster},
		{Key: "transports.nats.placement.tags", Flag: "nats-placement-tags", Placeholder: "tags", Help: "place the stream and the KV bucket on servers with all these tags (comma-separated)", Field: &s.PlacementTags},
		{Key: "transports.nats.credsFile", Flag: "nats-creds", Placeholder: "file", Help: "NATS credentials file (JWT and NKey seed)", Field: &s.CredsFile},
		{Key: "transports.nats.user", Flag: "nats-user", Placeholder: "name", Help: "NATS user name", Field: &s.User},
		{Key: "transports.nats.password", Secret: true, Help: "NATS password (prefer passwordFile)", Field: &s.Password},
		{Key: "transports.nats.passwordFile", Flag: "nats-password-file", Placeholder: "file", Help: "read the NATS password from this file", Field: &s.PasswordFile},
		{Key: "transports.nats.token", Secret: true, Help: "NATS authentication token (prefer tokenFile)", Field: &s.Token},
		{Key: "transports.nats.tokenFile", Flag: "nats-token-file", Placeholder: "file", Help: "read the NATS authentication token from this file", Field: &s.TokenFile},
	}, s.TLS.Describe("transports.nats", "the NATS server")...)
}

// Check says whether Open would accept the settings, without connecting; each problem names
// its setting.
func (s Settings) Check() error {
	var errs []error
	if s.URL != "" {
		errs = append(errs, option.ForSetting("transports.nats.url", Check(s.URL)))
	}
	errs = append(errs, option.ForSetting("transports.nats.subjectPrefix", option.Check(WithSubjectPrefix(s.SubjectPrefix))))
	if s.Stream != "" {
		errs = append(errs, option.ForSetting("transports.nats.stream", option.Check(WithStream(s.Stream))))
	}
	errs = append(errs, option.ForSetting("transports.nats.replicas", option.Check(WithReplicas(s.Replicas))))
	if s.PlacementCluster != "" || len(s.PlacementTags) > 0 {
		key := "transports.nats.placement.cluster"
		if s.PlacementCluster == "" {
			key = "transports.nats.placement.tags"
		}
		errs = append(errs, option.ForSetting(key, option.Check(WithPlacement(s.PlacementCluster, s.PlacementTags))))
	}
	if s.Domain != "" {
		errs = append(errs, option.ForSetting("transports.nats.domain", option.Check(WithDomain(s.Domain))))
	}
	if s.CoreOnly && (s.Replicas != 1 || s.PlacementCluster != "" || len(s.PlacementTags) > 0) {
		errs = append(errs, option.ForSetting("transports.nats.replicas", errors.New("replicas and placement are for JetStream, not with transports.nats.coreOnly")))
	}
	if s.KVBucket != "" {
		errs = append(errs, option.ForSetting("transports.nats.kvBucket", option.Check(WithBucket(s.KVBucket))))
	}
	if s.CredsFile != "" {
		errs = append(errs, option.ForSetting("transports.nats.credsFile", option.Check(WithCredsFile(s.CredsFile))))
	}
	if s.PasswordFile != "" {
		errs = append(errs, option.ForSetting("transports.nats.passwordFile",
			transports.CheckSecretFile(s.Password, s.PasswordFile, "transports.nats.password")))
	}
	if s.TokenFile != "" {
		errs = append(errs, option.ForSetting("transports.nats.tokenFile", transports.CheckSecretFile(s.Token, s.TokenFile, "transports.nats.token")))
	}
	errs = append(errs, s.TLS.Check("transports.nats"))
	if s.User != "" && s.Password == "" && s.PasswordFile == "" {
		errs = append(errs, option.Incomplete("transports.nats.user", "needs a password (transports.nats.passwordFile or password)"))
	}
	if s.User == "" {
		switch {
		case s.Password != "":
			errs = append(errs, option.Incomplete("transports.nats.password", "needs a user name (transports.nats.user)"))
		case s.PasswordFile != "":
			errs = append(errs, option.Incomplete("transports.nats.passwordFile", "needs a user name (transports.nats.user)"))
		}
	}
	return errors.Join(errs...)
}

// Destination names the publisher in logs and metrics ("nats" and its subjects), or is ""
// when the settings name no server.
func (s Settings) Destination() string {
	if s.URL == "" {
		return ""
	}
	return "nats " + s.SubjectPrefix + ".>"
}

// Open connects the publisher the settings name (see Dial), setting the stream and the bucket
// up within DialTimeout; with d.Latest, Reconcile deletes the entries of entities that are gone.
func (s Settings) Open(ctx context.Context, d transports.Deps) (transports.Publisher, error) {
	opts := []Option{WithSubjectPrefix(s.SubjectPrefix), WithLatest(d.Latest), WithLogger(d.Log), WithReplicas(s.Replicas)}
	if s.PlacementCluster != "" || len(s.PlacementTags) > 0 {
		opts = append(opts, WithPlacement(s.PlacementCluster, s.PlacementTags))
	}
	if s.Domain != "" {
		opts = append(opts, WithDomain(s.Domain))
	}
	if s.CoreOnly {
		opts = append(opts, WithCoreOnly())
	}
	if s.Stream != "" {
		opts = append(opts, WithStream(s.Stream))
	}
	if s.KVBucket != "" {
		opts = append(opts, WithBucket(s.KVBucket))
	}
	if s.CredsFile != "" {
		opts = append(opts, WithCredsFile(s.CredsFile))
	}
	if s.User != "" {
		password, err := transports.Secret(s.Password, s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("nats password file %s: %w", s.PasswordFile, err)
		}
		opts = append(opts, WithUserInfo(s.User, password))
	}
	if s.Token != "" || s.TokenFile != "" {
		token, err := transports.Secret(s.Token, s.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("nats token file %s: %w", s.TokenFile, err)
		}
		opts = append(opts, WithToken(token))
	}
	// For nats:// the client negotiates TLS only when the server requires it, with the
	// system's CAs unless TLS settings add some or a client certificate.
	if strings.HasPrefix(s.URL, "tls://") || s.TLS.Customised(d.CA) {
		tlsConfig, err := s.TLS.Config(d.CA)
		if err != nil {
			return nil, fmt.Errorf("nats TLS: %w", err)
		}
		opts = append(opts, WithTLS(tlsConfig))
	}
	dialCtx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	p, err := Dial(dialCtx, s.URL, d.Encoder, opts...)
	if err != nil {
		return nil, err
	}
	return p, nil
}
