package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// Config is the broadcaster's whole configuration.
type Config struct {
	// Manifests is the directory of manifests to watch.
	Manifests string `json:"manifests,omitempty"`
	// Kubeconfig is a kubeconfig file of the cluster to watch (default $KUBECONFIG; in a pod,
	// the in-cluster config).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Namespaces restricts the cluster source to these namespaces (default all).
	Namespaces []string `json:"namespaces,omitempty"`
	// LabelSelector restricts the cluster source's Knative objects.
	LabelSelector string `json:"labelSelector,omitempty"`
	// LeaderElect makes replicas elect one publisher through a Lease; all serve snapshots.
	LeaderElect bool `json:"leaderElect,omitempty"`
	// LeaderElectionNamespace holds the Lease (default $POD_NAMESPACE, else the pod's service
	// account namespace, else default).
	LeaderElectionNamespace string `json:"leaderElectionNamespace,omitempty"`
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election (client-go's meanings).
	LeaseDuration Duration `json:"leaseDuration,omitempty"`
	RenewDeadline Duration `json:"renewDeadline,omitempty"`
	RetryPeriod   Duration `json:"retryPeriod,omitempty"`
	// AdvertiseURL is where the other replicas reach this one's endpoints under leader
	// election: the leader writes it into the Lease, and followers replicate its sequence
	// space from there (default: http(s)://$POD_IP:<port>, else the listening address).
	AdvertiseURL string `json:"advertiseURL,omitempty"`
	// Listen is the address of the resync endpoints.
	Listen string `json:"listen,omitempty"`
	// TokensFile holds static bearer tokens, one per line; none means the endpoints are open.
	TokensFile string `json:"tokensFile,omitempty"`
	// TokenAudiences, in cluster mode, are the audiences callers' tokens must be for
	// (TokenReview audiences); none accepts the API server's own.
	TokenAudiences []string `json:"tokenAudiences,omitempty"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"logLevel,omitempty"`
	// Sink is a CloudEvents HTTP target for mesh deltas (default $K_SINK).
	Sink string `json:"sink,omitempty"`
	// MQTT is an MQTT v5 broker URL (mqtt://, mqtts://) for mesh deltas.
	MQTT string `json:"mqtt,omitempty"`
	// MQTTTopicPrefix is the topic prefix of MQTT deltas.
	MQTTTopicPrefix string `json:"mqttTopicPrefix,omitempty"`
	// NATS is a NATS server URL for mesh deltas.
	NATS string `json:"nats,omitempty"`
	// NATSCoreOnly publishes plain NATS messages instead of JetStream + KV.
	NATSCoreOnly bool `json:"natsCoreOnly,omitempty"`
	// NATSSubjectPrefix is the subject prefix of NATS deltas.
	NATSSubjectPrefix string `json:"natsSubjectPrefix,omitempty"`
	// NATSStream and NATSKVBucket name the JetStream stream and KV bucket (default: derived from
	// the subject prefix).
	NATSStream   string `json:"natsStream,omitempty"`
	NATSKVBucket string `json:"natsKVBucket,omitempty"`
	// MQTTClientID is the MQTT client id (default: derived from the topic prefix).
	MQTTClientID string `json:"mqttClientID,omitempty"`
	// CAFile holds PEM CA certificates trusted (beside the system's) by every TLS transport.
	CAFile string `json:"caFile,omitempty"`
	// TLSCertFile and TLSKeyFile make the endpoints serve HTTPS with this PEM certificate and
	// key, read again when the files change.
	TLSCertFile string `json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty"`
	// NATSCreds is a NATS credentials file (JWT and NKey seed).
	NATSCreds string `json:"natsCreds,omitempty"`
	// EventSource is the CloudEvents source attribute of mesh deltas.
	EventSource string `json:"eventSource,omitempty"`
	// DeltaLogBytes bounds the change log in memory: GET /v1/deltas and every transport read
	// from it, so a transport further behind than the log holds gets a declared gap.
	DeltaLogBytes int64 `json:"deltaLogBytes,omitempty"`
	// DeltaLogSize is how many recent changes GET /v1/deltas can serve.
	DeltaLogSize int `json:"deltaLogSize,omitempty"`
	// MaxWatchers bounds the GET /v1/watch streams served at once, in all and per caller
	// identity (with access control).
	MaxWatchers            int `json:"maxWatchers,omitempty"`
	MaxWatchersPerIdentity int `json:"maxWatchersPerIdentity,omitempty"`

	// CEOverrides is $K_CE_OVERRIDES, applied to events sent to Sink.
	CEOverrides string `json:"-"`

	// PodIP is $POD_IP (Kubernetes' downward API): the default host of AdvertiseURL.
	PodIP string `json:"-"`

	// InCluster is set by Load when the cluster is the one the process runs in.
	InCluster bool `json:"-"`
}

// DefaultListen is loopback: with no tokens, manifests mode must not be reachable from outside.
const DefaultListen = "127.0.0.1:8080"

// DefaultClusterListen is every interface: cluster mode always checks callers' tokens.
const DefaultClusterListen = ":8080"

// Leader election defaults: client-go's recommended lease and renew deadline.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	// A follower sees the Lease expire within about a retry period (client-go waits up to 2.2
	// of them between tries), so a crashed leader is replaced about lease + 1 s after it died,
	// for two small Lease requests a second per replica.
	DefaultRetryPeriod = 500 * time.Millisecond
	DefaultLeaseName   = "event-mesh-broadcaster"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ErrUsage marks errors in the command line or settings (exit status 2).
var ErrUsage = errors.New("usage")

// defaults is the configuration before the file and the flags: the packages' own defaults and
// the environment's K_SINK and K_CE_OVERRIDES.
func defaults(getenv func(string) string) Config {
	return Config{
		LogLevel: "info", Sink: getenv("K_SINK"), CEOverrides: getenv("K_CE_OVERRIDES"), PodIP: getenv("POD_IP"),
		MQTTTopicPrefix: mqtt.DefaultTopicPrefix, NATSSubjectPrefix: nats.DefaultSubjectPrefix,
		EventSource: codec.DefaultSource, DeltaLogSize: changelog.DefaultMaxChanges, DeltaLogBytes: changelog.DefaultMaxBytes,
		MaxWatchers: resync.DefaultMaxWatchers, MaxWatchersPerIdentity: resync.DefaultMaxWatchersPerIdentity,
		LeaseDuration: Duration(DefaultLeaseDuration), RenewDeadline: Duration(DefaultRenewDeadline),
		RetryPeriod: Duration(DefaultRetryPeriod),
	}
}

// Load reads args (without the program name), the YAML file named by --config and the
// environment through getenv. A flag given on the command line wins over the file, even to
// turn a boolean off or clear a string; the file wins over the environment (K_SINK,
// K_CE_OVERRIDES), which wins over the defaults. Help output goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	// The first pass checks the command line, answers --help (showing the defaults) and finds
	// --config; the second writes the flags given over the defaults and the file.
	shown, cfgFile := defaults(func(string) string { return "" }), ""
	fs := flagSet(&shown, &cfgFile, out)
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	cfg := defaults(getenv)
	if cfgFile != "" {
		if err := readFile(cfgFile, &cfg); err != nil {
			return Config{}, err
		}
	}
	if err := flagSet(&cfg, new(string), io.Discard).Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err) // the first pass took the same args
	}
	if err := cfg.chooseSource(getenv); err != nil {
		return Config{}, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// flagSet binds the flags to c; a flag's default is what c holds when it is called.
func flagSet(c *Config, cfgFile *string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(cfgFile, "config", "", "YAML `file` with settings (flags win over it)")
	fs.StringVar(&c.Manifests, "manifests", c.Manifests, "watch this `dir`ectory of YAML/JSON manifests")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "watch the cluster of this kubeconfig `file` (default $KUBECONFIG, or in-cluster)")
	given := false
	fs.Func("namespaces", "watch only these comma-separated `namespaces` (cluster mode; default all)", func(v string) error {
		if !given { // the first --namespaces replaces the file's list; more of them add to it
			c.Namespaces, given = nil, true
		}
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				c.Namespaces = append(c.Namespaces, ns)
			}
		}
		return nil
	})
	fs.StringVar(&c.LabelSelector, "label-selector", c.LabelSelector, "watch only Knative objects matching this label `selector` (cluster mode)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "elect one publishing replica through a Lease (cluster mode); every replica serves snapshots")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", c.LeaderElectionNamespace, "`namespace` of the leader-election Lease (default $POD_NAMESPACE)")
	fs.Var(&c.LeaseDuration, "lease-duration", "leader election: how long a lease holds without renewal")
	fs.Var(&c.RenewDeadline, "renew-deadline", "leader election: how long the leader keeps trying to renew")
	fs.Var(&c.RetryPeriod, "retry-period", "leader election: how often to try to acquire or renew")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", c.AdvertiseURL, "leader election: the `url` other replicas reach this one at (default http(s)://$POD_IP:<port>)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "serve the resync endpoints on `addr`ess (default "+DefaultListen+"; "+DefaultClusterListen+" in cluster mode)")
	fs.StringVar(&c.TokensFile, "tokens-file", c.TokensFile, "require a bearer token listed in this `file` (one per line)")
	audiencesGiven := false
	fs.Func("token-audience", "cluster mode: accept only tokens for this `audience` (repeatable, or comma-separated)", func(v string) error {
		if !audiencesGiven { // the first flag replaces the file's list; more of them add to it
			c.TokenAudiences, audiencesGiven = nil, true
		}
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.TokenAudiences = append(c.TokenAudiences, a)
			}
		}
		return nil
	})
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.Sink, "sink", c.Sink, "send mesh-delta CloudEvents to this HTTP `url` (default $K_SINK)")
	fs.StringVar(&c.MQTT, "mqtt", c.MQTT, "publish mesh deltas to this MQTT v5 broker `url` (mqtt://host:1883, mqtts://...)")
	fs.StringVar(&c.MQTTTopicPrefix, "mqtt-topic-prefix", c.MQTTTopicPrefix, "MQTT topic `prefix`")
	fs.StringVar(&c.NATS, "nats", c.NATS, "publish mesh deltas to this NATS `url` (a JetStream stream and a KV bucket)")
	fs.StringVar(&c.NATSStream, "nats-stream", c.NATSStream, "JetStream stream `name` (default from the subject prefix: "+nats.StreamName(nats.DefaultSubjectPrefix)+")")
	fs.StringVar(&c.NATSKVBucket, "nats-kv-bucket", c.NATSKVBucket, "KV bucket `name` (default from the subject prefix: "+nats.BucketName(nats.DefaultSubjectPrefix)+")")
	fs.StringVar(&c.MQTTClientID, "mqtt-client-id", c.MQTTClientID, "MQTT client `id` (default from the topic prefix: "+mqtt.ClientID(mqtt.DefaultTopicPrefix)+")")
	fs.BoolVar(&c.NATSCoreOnly, "nats-core", c.NATSCoreOnly, "publish plain NATS messages (no JetStream stream or KV bucket)")
	fs.StringVar(&c.NATSSubjectPrefix, "nats-subject-prefix", c.NATSSubjectPrefix, "NATS subject `prefix`")
	fs.StringVar(&c.CAFile, "ca-file", c.CAFile, "trust the PEM CA certificates in `file` for the sink, MQTT and NATS TLS connections")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "serve the endpoints over HTTPS with the PEM certificate in `file` (with --tls-key-file; reloaded when it changes)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "the PEM private key `file` of --tls-cert-file")
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "NATS credentials `file`")
	fs.StringVar(&c.EventSource, "event-source", c.EventSource, "CloudEvents `source` of mesh deltas")
	fs.IntVar(&c.DeltaLogSize, "delta-log-size", c.DeltaLogSize, "recent changes kept for GET /v1/deltas")
	fs.IntVar(&c.MaxWatchers, "max-watchers", c.MaxWatchers, "GET /v1/watch streams served at once (more get 503)")
	fs.IntVar(&c.MaxWatchersPerIdentity, "max-watchers-per-identity", c.MaxWatchersPerIdentity, "GET /v1/watch streams served at once to one caller identity (with tokens)")
	fs.Int64Var(&c.DeltaLogBytes, "delta-log-bytes", c.DeltaLogBytes, "bytes of recent changes kept for GET /v1/deltas and the transports")
	return fs
}

// readFile reads the YAML file at path over c: the settings it names replace c's.
func readFile(path string, c *Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %w", ErrUsage, err)
	}
	if err := yaml.UnmarshalStrict(raw, c); err != nil {
		return fmt.Errorf("%w: config file %s: %w", ErrUsage, path, err)
	}
	return nil
}

// chooseSource settles manifests or cluster mode and the defaults that depend on it.
func (c *Config) chooseSource(getenv func(string) string) error {
	if c.Manifests != "" && c.Kubeconfig != "" {
		return fmt.Errorf("%w: --manifests and --kubeconfig: choose one source", ErrUsage)
	}
	if c.Manifests == "" && c.Kubeconfig == "" {
		switch {
		case getenv("KUBECONFIG") != "":
			c.Kubeconfig = getenv("KUBECONFIG")
		case getenv("KUBERNETES_SERVICE_HOST") != "":
			c.InCluster = true
		default:
			return fmt.Errorf("%w: no source: pass --manifests DIR or --kubeconfig FILE (or set $KUBECONFIG, or run in a pod)", ErrUsage)
		}
	}
	cluster := c.Cluster()
	if c.Listen == "" {
		c.Listen = DefaultListen
		if cluster {
			c.Listen = DefaultClusterListen
		}
	}
	if !cluster {
		for flag, set := range map[string]bool{
			"--namespaces": len(c.Namespaces) > 0, "--label-selector": c.LabelSelector != "",
			"--leader-elect": c.LeaderElect, "--token-audience": len(c.TokenAudiences) > 0, "--advertise-url": c.AdvertiseURL != "",
		} {
			if set {
				return fmt.Errorf("%w: %s needs cluster mode (--kubeconfig), not --manifests", ErrUsage, flag)
			}
		}
		return nil
	}
	if c.TokensFile != "" {
		return fmt.Errorf("%w: --tokens-file is for manifests mode; in cluster mode callers present Kubernetes tokens", ErrUsage)
	}
	if c.LeaderElectionNamespace == "" {
		c.LeaderElectionNamespace = getenv("POD_NAMESPACE")
	}
	if c.LeaderElectionNamespace == "" && c.InCluster {
		if raw, err := os.ReadFile(serviceAccountNamespace); err == nil {
			c.LeaderElectionNamespace = strings.TrimSpace(string(raw))
		}
	}
	if c.LeaderElectionNamespace == "" {
		c.LeaderElectionNamespace = "default"
	}
	return nil
}

// Cluster reports whether the source is a cluster (not a manifests directory).
func (c Config) Cluster() bool { return c.Kubeconfig != "" || c.InCluster }

// RESTConfig is the client configuration of the cluster to watch.
func (c Config) RESTConfig() (*rest.Config, error) {
	if c.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(c.Kubeconfig)}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: --kubeconfig %s: %w", ErrUsage, c.Kubeconfig, err)
	}
	return cfg, nil
}

// validate asks each part whether it accepts its settings; it changes nothing. Every error
// names the flag at fault.
func (c *Config) validate() error {
	checks := []struct {
		flag string // how the setting is named to the user (with its value when that helps)
		skip bool
		err  func() error
	}{
		{"--manifests", c.Manifests == "", func() error { return manifests.Check(c.Manifests) }},
		{"--kubeconfig", c.Kubeconfig == "", func() error { _, err := c.RESTConfig(); return err }},
		{"--namespaces", false, func() error { return option.Check(kube.WithNamespaces(c.Namespaces...)) }},
		{"--label-selector", false, func() error { return option.Check(kube.WithLabelSelector(c.LabelSelector)) }},
		{fmt.Sprintf("--listen %q", c.Listen), false, func() error { _, _, err := net.SplitHostPort(c.Listen); return err }},
		{fmt.Sprintf("--advertise-url %q", c.AdvertiseURL), c.AdvertiseURL == "", func() error { return checkAdvertiseURL(c.AdvertiseURL) }},
		{"--log-level", false, func() error { _, err := c.Level(); return err }},
		{"--delta-log-size", false, func() error { return option.Check(changelog.WithMaxChanges(c.DeltaLogSize)) }},
		{"--max-watchers", false, func() error { return option.Check(resync.WithMaxWatchers(c.MaxWatchers)) }},
		{"--max-watchers-per-identity", false, func() error { return option.Check(resync.WithMaxWatchersPerIdentity(c.MaxWatchersPerIdentity)) }},
		{"--delta-log-bytes", false, func() error { return option.Check(changelog.WithMaxBytes(c.DeltaLogBytes)) }},
		{"--tokens-file", c.TokensFile == "", func() error { _, err := auth.ReadTokens(c.TokensFile); return err }},
		{"--ca-file", c.CAFile == "", func() error { _, err := c.CACertificates(); return err }},
		{"--tls-cert-file and --tls-key-file", c.TLSCertFile == "" && c.TLSKeyFile == "", func() error {
			if c.TLSCertFile == "" || c.TLSKeyFile == "" {
				return fmt.Errorf("give both or neither")
			}
			_, err := tlsfiles.Load(c.TLSCertFile, c.TLSKeyFile)
			return err
		}},
		{fmt.Sprintf("--sink %q (or K_SINK)", transports.RedactURL(c.Sink)), c.Sink == "", func() error { return httpsink.Check(c.Sink) }},
		{"K_CE_OVERRIDES", c.Sink == "", func() error { return option.Check(httpsink.WithOverrides(c.CEOverrides)) }},
		{fmt.Sprintf("--mqtt %q", c.MQTT), c.MQTT == "", func() error { return mqtt.Check(c.MQTT) }},
		{"--mqtt-topic-prefix", false, func() error { return option.Check(mqtt.WithTopicPrefix(c.MQTTTopicPrefix)) }},
		{fmt.Sprintf("--nats %q", c.NATS), c.NATS == "", func() error { return nats.Check(c.NATS) }},
		{"--nats-subject-prefix", false, func() error { return option.Check(nats.WithSubjectPrefix(c.NATSSubjectPrefix)) }},
		{"--nats-stream", c.NATSStream == "", func() error { return option.Check(nats.WithStream(c.NATSStream)) }},
		{"--nats-kv-bucket", c.NATSKVBucket == "", func() error { return option.Check(nats.WithBucket(c.NATSKVBucket)) }},
		{"--mqtt-client-id", c.MQTTClientID == "", func() error { return option.Check(mqtt.WithClientID(c.MQTTClientID)) }},
		{"--nats-creds", c.NATSCreds == "", func() error { return option.Check(nats.WithCredsFile(c.NATSCreds)) }},
		{"--event-source", false, func() error { _, err := codec.NewEncoder(c.EventSource); return err }},
	}
	for _, check := range checks {
		if check.skip {
			continue
		}
		err := check.err()
		var invalid *option.InvalidError
		switch {
		case err == nil:
		case errors.Is(err, ErrUsage):
			return err
		case errors.As(err, &invalid):
			return fmt.Errorf("%w: %s: %s", ErrUsage, check.flag, invalid.Reason)
		default:
			return fmt.Errorf("%w: %s: %w", ErrUsage, check.flag, err)
		}
	}
	if c.AdvertiseURL != "" && !c.LeaderElect {
		return fmt.Errorf("%w: --advertise-url is for leader election (--leader-elect)", ErrUsage)
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		return fmt.Errorf("%w: leader election wants --lease-duration > --renew-deadline > --retry-period > 0 (have %v, %v, %v)",
			ErrUsage, c.LeaseDuration, c.RenewDeadline, c.RetryPeriod)
	}
	return nil
}

// checkAdvertiseURL wants an absolute http(s) URL of a host, with no path beyond "/".
func checkAdvertiseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want an http:// or https:// URL")
	case u.Host == "":
		return fmt.Errorf("no host")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil:
		return fmt.Errorf("want scheme://host:port only (no path, query or credentials)")
	}
	return nil
}

// Advertised is AdvertiseURL, or else the URL this replica is reached at from its listening
// address addr: $POD_IP with addr's port, or addr itself when it names a host.
func (c Config) Advertised(addr net.Addr) string {
	if c.AdvertiseURL != "" {
		return strings.TrimSuffix(c.AdvertiseURL, "/")
	}
	scheme := "http"
	if c.TLSCertFile != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	switch ip := net.ParseIP(host); {
	case c.PodIP != "":
		host = c.PodIP
	case ip != nil && ip.IsUnspecified():
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// StaticTokens reads the tokens of TokensFile (manifests mode).
func (c Config) StaticTokens() ([]string, error) { return auth.ReadTokens(c.TokensFile) }

// CACertificates reads CAFile: PEM certificates trusted beside the system's (nil without one).
func (c Config) CACertificates() ([]byte, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", c.CAFile)
	}
	return raw, nil
}

// Duration is a time.Duration read from text such as "15s" (in flags and the config file).
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("%q: want a positive duration", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads "15s" (the config file is YAML, read as JSON).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"15s\": %w", err)
	}
	return d.Set(s)
}

// MarshalJSON writes the text form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// TLS is the client TLS configuration of the transports: the system's CAs plus CAFile's.
func (c Config) TLS() (*tls.Config, error) {
	extra, err := c.CACertificates()
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(extra)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Level is LogLevel as a slog level.
func (c Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrUsage, c.LogLevel)
	}
	return l, nil
}
