package config

import (
	"bufio"
	"bytes"
	"cmp"
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

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
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
	// Listen is the address of the resync endpoints.
	Listen string `json:"listen,omitempty"`
	// TokensFile holds static bearer tokens, one per line; none means the endpoints are open.
	TokensFile string `json:"tokensFile,omitempty"`
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
	// CAFile holds PEM CA certificates trusted (beside the system's) by every TLS transport.
	CAFile string `json:"caFile,omitempty"`
	// NATSCreds is a NATS credentials file (JWT and NKey seed).
	NATSCreds string `json:"natsCreds,omitempty"`
	// EventSource is the CloudEvents source attribute of mesh deltas.
	EventSource string `json:"eventSource,omitempty"`
	// QueueSize bounds each transport's queue of undelivered changes.
	QueueSize int `json:"queueSize,omitempty"`
	// DeltaLogSize is how many recent changes GET /v1/deltas can serve.
	DeltaLogSize int `json:"deltaLogSize,omitempty"`

	// CEOverrides is $K_CE_OVERRIDES, applied to events sent to Sink.
	CEOverrides string `json:"-"`

	// Tokens are read from TokensFile by Load.
	Tokens []string `json:"-"`
	// InCluster is set by Load when the cluster is the one the process runs in.
	InCluster bool `json:"-"`
	// CAPEM is read from CAFile by Load.
	CAPEM []byte `json:"-"`
}

// DefaultListen is loopback: with no tokens, manifests mode must not be reachable from outside.
const DefaultListen = "127.0.0.1:8080"

// DefaultClusterListen is every interface: cluster mode always checks callers' tokens.
const DefaultClusterListen = ":8080"

// Leader election defaults (client-go's recommended values).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	DefaultLeaseName     = "event-mesh-broadcaster"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

const defaultEventSource = "/event-mesh-broadcaster"

// ErrUsage marks errors in the command line or settings (exit status 2).
var ErrUsage = errors.New("usage")

// DefaultQueueSize is the default bound of each transport's queue.
const DefaultQueueSize = 10000

// DefaultDeltaLogSize keeps minutes of heavy churn for GET /v1/deltas.
const DefaultDeltaLogSize = 65536

// Load reads args (without the program name) and the environment through getenv (K_SINK,
// K_CE_OVERRIDES). The file named by --config is read first, then flags override it. Help
// output goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("broadcaster", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		cfgFile = fs.String("config", "", "YAML `file` with settings (flags win over it)")
		flags   Config
	)
	fs.StringVar(&flags.Manifests, "manifests", "", "watch this `dir`ectory of YAML/JSON manifests")
	fs.StringVar(&flags.Kubeconfig, "kubeconfig", "", "watch the cluster of this kubeconfig `file` (default $KUBECONFIG, or in-cluster)")
	fs.Func("namespaces", "watch only these comma-separated `namespaces` (cluster mode; default all)", func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				flags.Namespaces = append(flags.Namespaces, ns)
			}
		}
		return nil
	})
	fs.StringVar(&flags.LabelSelector, "label-selector", "", "watch only Knative objects matching this label `selector` (cluster mode)")
	fs.BoolVar(&flags.LeaderElect, "leader-elect", false, "elect one publishing replica through a Lease (cluster mode); every replica serves snapshots")
	fs.StringVar(&flags.LeaderElectionNamespace, "leader-election-namespace", "", "`namespace` of the leader-election Lease (default $POD_NAMESPACE)")
	fs.Var(&flags.LeaseDuration, "lease-duration", "leader election: how long a lease holds without renewal (default 15s)")
	fs.Var(&flags.RenewDeadline, "renew-deadline", "leader election: how long the leader keeps trying to renew (default 10s)")
	fs.Var(&flags.RetryPeriod, "retry-period", "leader election: how often to try to acquire or renew (default 2s)")
	fs.StringVar(&flags.Listen, "listen", "", "serve the resync endpoints on `addr`ess (default "+DefaultListen+")")
	fs.StringVar(&flags.TokensFile, "tokens-file", "", "require a bearer token listed in this `file` (one per line)")
	fs.StringVar(&flags.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&flags.Sink, "sink", "", "send mesh-delta CloudEvents to this HTTP `url` (default $K_SINK)")
	fs.StringVar(&flags.MQTT, "mqtt", "", "publish mesh deltas to this MQTT v5 broker `url` (mqtt://host:1883, mqtts://...)")
	fs.StringVar(&flags.MQTTTopicPrefix, "mqtt-topic-prefix", "", "MQTT topic prefix (default knative/eventmesh)")
	fs.StringVar(&flags.NATS, "nats", "", "publish mesh deltas to this NATS `url` (JetStream stream EVENTMESH + KV bucket eventmesh)")
	fs.BoolVar(&flags.NATSCoreOnly, "nats-core", false, "publish plain NATS messages (no JetStream stream or KV bucket)")
	fs.StringVar(&flags.NATSSubjectPrefix, "nats-subject-prefix", "", "NATS subject prefix (default knative.eventmesh)")
	fs.StringVar(&flags.CAFile, "ca-file", "", "trust the PEM CA certificates in `file` for the sink, MQTT and NATS TLS connections")
	fs.StringVar(&flags.NATSCreds, "nats-creds", "", "NATS credentials `file`")
	fs.StringVar(&flags.EventSource, "event-source", "", "CloudEvents source of mesh deltas (default "+defaultEventSource+")")
	fs.IntVar(&flags.DeltaLogSize, "delta-log-size", 0, "recent changes kept for GET /v1/deltas (default 65536)")
	fs.IntVar(&flags.QueueSize, "queue-size", 0, "changes each transport may hold undelivered (default 10000)")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	cfg := Config{LogLevel: "info", Sink: getenv("K_SINK"), MQTTTopicPrefix: "knative/eventmesh",
		NATSSubjectPrefix: "knative.eventmesh",
		EventSource:       defaultEventSource, QueueSize: DefaultQueueSize, DeltaLogSize: DefaultDeltaLogSize, CEOverrides: getenv("K_CE_OVERRIDES")}
	if *cfgFile != "" {
		fromFile, err := readFile(*cfgFile)
		if err != nil {
			return Config{}, err
		}
		cfg.merge(fromFile)
	}
	cfg.merge(flags)
	if err := cfg.chooseSource(getenv); err != nil {
		return Config{}, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) merge(o Config) {
	for _, f := range []struct{ dst, src *string }{
		{&c.Manifests, &o.Manifests}, {&c.Listen, &o.Listen}, {&c.TokensFile, &o.TokensFile},
		{&c.LogLevel, &o.LogLevel}, {&c.Sink, &o.Sink}, {&c.EventSource, &o.EventSource},
		{&c.MQTT, &o.MQTT}, {&c.MQTTTopicPrefix, &o.MQTTTopicPrefix},
		{&c.NATS, &o.NATS}, {&c.NATSSubjectPrefix, &o.NATSSubjectPrefix},
		{&c.CAFile, &o.CAFile}, {&c.NATSCreds, &o.NATSCreds},
		{&c.Kubeconfig, &o.Kubeconfig}, {&c.LabelSelector, &o.LabelSelector},
		{&c.LeaderElectionNamespace, &o.LeaderElectionNamespace},
	} {
		if *f.src != "" {
			*f.dst = *f.src
		}
	}
	c.NATSCoreOnly = c.NATSCoreOnly || o.NATSCoreOnly
	c.LeaderElect = c.LeaderElect || o.LeaderElect
	if o.Namespaces != nil {
		c.Namespaces = o.Namespaces
	}
	for _, d := range []struct{ dst, src *Duration }{
		{&c.LeaseDuration, &o.LeaseDuration}, {&c.RenewDeadline, &o.RenewDeadline}, {&c.RetryPeriod, &o.RetryPeriod},
	} {
		if *d.src != 0 {
			*d.dst = *d.src
		}
	}
	if o.QueueSize != 0 {
		c.QueueSize = o.QueueSize
	}
	if o.DeltaLogSize != 0 {
		c.DeltaLogSize = o.DeltaLogSize
	}
}

func readFile(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: config file: %w", ErrUsage, err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return Config{}, fmt.Errorf("%w: config file %s: %w", ErrUsage, path, err)
	}
	return c, nil
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
			"--leader-elect": c.LeaderElect,
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
	c.LeaseDuration = cmp.Or(c.LeaseDuration, Duration(DefaultLeaseDuration))
	c.RenewDeadline = cmp.Or(c.RenewDeadline, Duration(DefaultRenewDeadline))
	c.RetryPeriod = cmp.Or(c.RetryPeriod, Duration(DefaultRetryPeriod))
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

func (c *Config) validate() error {
	if c.Manifests != "" {
		if info, err := os.Stat(c.Manifests); err != nil {
			return fmt.Errorf("%w: --manifests: %w", ErrUsage, err)
		} else if !info.IsDir() {
			return fmt.Errorf("%w: --manifests %s: not a directory", ErrUsage, c.Manifests)
		}
	}
	if c.Kubeconfig != "" {
		if _, err := c.RESTConfig(); err != nil {
			return err
		}
	}
	if _, err := labels.Parse(c.LabelSelector); err != nil {
		return fmt.Errorf("%w: --label-selector %q: %w", ErrUsage, c.LabelSelector, err)
	}
	for _, ns := range c.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%w: --namespaces: %q: %s", ErrUsage, ns, errs[0])
		}
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		return fmt.Errorf("%w: leader election wants --lease-duration > --renew-deadline > --retry-period > 0 (have %v, %v, %v)",
			ErrUsage, c.LeaseDuration, c.RenewDeadline, c.RetryPeriod)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: --listen %q: %w", ErrUsage, c.Listen, err)
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if c.DeltaLogSize < 1 {
		return fmt.Errorf("%w: --delta-log-size %d: want at least 1", ErrUsage, c.DeltaLogSize)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("%w: --queue-size %d: want at least 1", ErrUsage, c.QueueSize)
	}
	if c.MQTT != "" {
		if u, err := url.Parse(c.MQTT); err != nil || u.Host == "" ||
			(u.Scheme != "mqtt" && u.Scheme != "mqtts" && u.Scheme != "tcp" && u.Scheme != "tls" && u.Scheme != "ssl") {
			return fmt.Errorf("%w: --mqtt %q: want mqtt://host:port or mqtts://host:port", ErrUsage, c.MQTT)
		}
	}
	if strings.ContainsAny(c.MQTTTopicPrefix, "#+") || c.MQTTTopicPrefix == "" {
		return fmt.Errorf("%w: --mqtt-topic-prefix %q: want a topic without wildcards", ErrUsage, c.MQTTTopicPrefix)
	}
	if c.NATS != "" {
		if u, err := url.Parse(c.NATS); err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return fmt.Errorf("%w: --nats %q: want nats://host:port or tls://host:port", ErrUsage, c.NATS)
		}
	}
	if strings.ContainsAny(c.NATSSubjectPrefix, "*> \t") || c.NATSSubjectPrefix == "" ||
		strings.HasPrefix(c.NATSSubjectPrefix, ".") || strings.HasSuffix(c.NATSSubjectPrefix, ".") {
		return fmt.Errorf("%w: --nats-subject-prefix %q: want dot-separated tokens without wildcards", ErrUsage, c.NATSSubjectPrefix)
	}
	if c.Sink != "" {
		if u, err := url.Parse(c.Sink); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: --sink %q (or K_SINK): want an absolute http(s) URL", ErrUsage, c.Sink)
		}
	}
	if c.CAFile != "" {
		raw, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("%w: --ca-file: %w", ErrUsage, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(raw) {
			return fmt.Errorf("%w: --ca-file %s: no PEM certificate in it", ErrUsage, c.CAFile)
		}
		c.CAPEM = raw
	}
	if c.NATSCreds != "" {
		if _, err := os.Stat(c.NATSCreds); err != nil {
			return fmt.Errorf("%w: --nats-creds: %w", ErrUsage, err)
		}
	}
	if c.TokensFile != "" {
		tokens, err := readTokens(c.TokensFile)
		if err != nil {
			return err
		}
		c.Tokens = tokens
	}
	return nil
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
func (c Config) TLS() *tls.Config {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(c.CAPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Level is LogLevel as a slog level.
func (c Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrUsage, c.LogLevel)
	}
	return l, nil
}

// readTokens reads one token per line; blank lines and # comments are skipped.
func readTokens(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --tokens-file: %w", ErrUsage, err)
	}
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("%w: --tokens-file %s:%d: a token cannot contain spaces", ErrUsage, path, line)
		}
		tokens = append(tokens, t)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: --tokens-file %s: no tokens (an empty file would leave the endpoints open)", ErrUsage, path)
	}
	return tokens, nil
}
