package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is the broadcaster's whole configuration: config's own settings, and the parts' own
// (Parts).
type Config struct {
	// Manifests is the directory of manifests to watch.
	Manifests string
	// Kubeconfig is a kubeconfig file of the cluster to watch (default $KUBECONFIG; in a pod,
	// the in-cluster config).
	Kubeconfig string
	// Namespaces restricts the cluster source to these namespaces (default all).
	Namespaces []string
	// LabelSelector restricts the cluster source's Knative objects.
	LabelSelector string
	// LeaderElect makes replicas elect one publisher through a Lease; all serve snapshots.
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease (default $POD_NAMESPACE, else the pod's service
	// account namespace, else default).
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election (client-go's meanings).
	LeaseDuration Duration
	RenewDeadline Duration
	RetryPeriod   Duration
	// AdvertiseURL is where the other replicas reach this one's endpoints under leader
	// election: the leader writes it into the Lease, and followers replicate its sequence
	// space from there (default: http(s)://$POD_IP:<port>, else the listening address).
	AdvertiseURL string
	// Listen is the address of the resync endpoints.
	Listen string
	// TokensFile holds static bearer tokens, one per line; none means the endpoints are open.
	TokensFile string
	// TokenAudiences, in cluster mode, are the audiences callers' tokens must be for
	// (TokenReview audiences); none accepts the API server's own.
	TokenAudiences []string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// CAFile holds PEM CA certificates trusted (beside the system's) by every TLS transport.
	CAFile string
	// TLSCertFile and TLSKeyFile make the endpoints serve HTTPS with this PEM certificate and
	// key, read again when the files change.
	TLSCertFile string
	TLSKeyFile  string
	// EventSource is the CloudEvents source attribute of mesh deltas.
	EventSource string
	// ClusterName names the cluster the broadcaster watches (events.cluster): in every event,
	// snapshot, MQTT topic and NATS subject, so broadcasters of many clusters share one
	// broker. Empty: none, the single-cluster wire format.
	ClusterName string
	// DeltaLogBytes bounds the change log in memory: GET /v1/deltas and every transport read
	// from it, so a transport further behind than the log holds gets a declared gap.
	DeltaLogBytes int64
	// DeltaLogSize is how many recent changes GET /v1/deltas can serve.
	DeltaLogSize int
	// MaxWatchers bounds the GET /v1/watch streams served at once, in all and per caller
	// identity (with access control).
	MaxWatchers            int
	MaxWatchersPerIdentity int
	// MaxDeltaRequests bounds the GET /v1/deltas answers written at once.
	MaxDeltaRequests int
	// MaxConnections bounds the connections open at once, idle keep-alives included.
	MaxConnections int
	// AllowedHosts are the Host names served besides loopback names and IP addresses when the
	// endpoints are open (manifests mode without tokens): a guard against DNS rebinding.
	AllowedHosts []string
	// MetricsTokenFile, when set, holds the bearer token GET /metrics requires.
	MetricsTokenFile string

	// LogFormat is text or json.
	LogFormat string

	// PodIP is $POD_IP (Kubernetes' downward API): the default host of AdvertiseURL.
	PodIP string

	// InCluster is set by Load when the cluster is the one the process runs in.
	InCluster bool

	// Namespace is the broadcaster's own namespace in cluster mode: $POD_NAMESPACE, else the
	// pod's service account namespace, else default. Its ServiceAccount lives there.
	Namespace string

	parts   []Part            // the parts' own settings (each transport's), filled in
	origins map[string]string // setting key → where its value came from
}

// Parts are the parts' own settings (each transport's), as loaded: pointers to the parts'
// Settings types, which the parts' factories open. Copies of c share them: read them only.
func (c Config) Parts() []Part { return c.parts }

// Origin says where the setting key ("transports.mqtt.url") got its value: a file and line,
// "--flag", "$VARIABLE", or "default".
func (c Config) Origin(key string) string {
	if o, ok := c.origins[key]; ok {
		return o
	}
	return OriginDefault
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

// defaults is the configuration before the file, the environment and the flags: config's own
// defaults and the parts'.
func defaults(parts Parts) Config {
	c := Config{
		LogLevel: "info", LogFormat: "text",
		LeaseDuration: Duration(DefaultLeaseDuration), RenewDeadline: Duration(DefaultRenewDeadline),
		RetryPeriod: Duration(DefaultRetryPeriod),
	}
	if parts.Defaults != nil {
		parts.Defaults(&c)
	}
	if parts.Settings != nil {
		c.parts = parts.Settings()
	}
	return c
}

// at is where key's value came from, as the user wrote it; a default is named by its key.
func (l *loader) at(key string) string {
	switch o := l.origins[key]; o {
	case "", OriginDefault:
		if s, ok := l.table.byKey(key); ok && s.flag != "" {
			return "--" + s.flag + " (default)"
		}
		return key + " (default)"
	default:
		return o
	}
}

// chooseSource settles manifests or cluster mode and the defaults that depend on it.
func (l *loader) chooseSource(getenv func(string) string) {
	c := &l.cfg
	defer func() {
		if c.Listen == "" {
			c.Listen = DefaultListen
			if c.Cluster() {
				c.Listen = DefaultClusterListen
			}
		}
	}()
	if c.Manifests != "" && c.Kubeconfig != "" {
		l.problem(l.at("source.manifests")+" and "+l.at("source.kubeconfig"), "", "choose one source")
		return
	}
	// $KUBECONFIG, like the other variables, wins over the file; but only a cluster source,
	// and not one named by a flag or BROADCASTER_SOURCE_KUBECONFIG.
	if kc := getenv("KUBECONFIG"); kc != "" && c.Manifests == "" &&
		(l.origins["source.kubeconfig"] == OriginDefault || strings.Contains(l.origins["source.kubeconfig"], ": source.kubeconfig")) {
		c.Kubeconfig = kc
		l.origins["source.kubeconfig"] = "$KUBECONFIG"
	}
	if c.Manifests == "" && c.Kubeconfig == "" {
		switch {
		case getenv("KUBERNETES_SERVICE_HOST") != "":
			c.InCluster = true
		default:
			l.problem("source", "", "none given: pass --manifests DIR or --kubeconfig FILE (or set source.manifests or "+
				"source.kubeconfig in the config file, or $KUBECONFIG, or run in a pod)")
			return
		}
	}
	if !c.Cluster() {
		for _, key := range []string{"source.namespaces", "source.labelSelector", "leaderElection.enabled",
			"access.tokenAudiences", "leaderElection.advertiseURL"} {
			if s, _ := l.table.byKey(key); s.field(c).String() != "" && s.field(c).String() != "false" {
				l.problem(l.at(key), shown(s, s.field(c).String()), "needs cluster mode (--kubeconfig), not --manifests")
			}
		}
		return
	}
	if c.TokensFile != "" {
		l.problem(l.at("access.tokensFile"), "", "is for manifests mode; in cluster mode callers present Kubernetes tokens")
	}
	c.Namespace = getenv("POD_NAMESPACE")
	if c.Namespace == "" && c.InCluster {
		if raw, err := os.ReadFile(serviceAccountNamespace); err == nil {
			c.Namespace = strings.TrimSpace(string(raw))
		}
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.LeaderElectionNamespace == "" {
		c.LeaderElectionNamespace = c.Namespace
	}
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
	cfg, err := c.kubeconfigREST()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", c.Kubeconfig, err)
	}
	return cfg, nil
}

func (c Config) kubeconfigREST() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(c.Kubeconfig)}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// validate asks each part whether it accepts its settings; it changes nothing. Every problem
// names where the value came from.
func (l *loader) validate(checks []Check) {
	c := &l.cfg
	for _, check := range append(l.ownChecks(), checks...) {
		if err := check.Err(*c); err != nil {
			s, _ := l.table.byKey(check.Key)
			l.problem(l.at(check.Key), shown(s, s.field(c).String()), "%s", reason(err))
		}
	}
	for _, part := range c.parts {
		for _, err := range leaves(part.Check()) {
			var invalid *option.InvalidError
			if !errors.As(err, &invalid) {
				l.problem("settings", "", "%s", reason(err)) // a part that names no setting
				continue
			}
			value := ""
			if s, ok := l.table.byKey(invalid.Setting); ok && !invalid.Incomplete {
				value = shown(s, s.field(c).String())
			}
			l.problem(l.at(invalid.Setting), value, "%s", invalid.Reason)
		}
	}
	if c.AdvertiseURL != "" && !c.LeaderElect {
		l.problem(l.at("leaderElection.advertiseURL"), "", "is for leader election (--leader-elect)")
	}
	if c.LeaderElect && !(c.LeaseDuration > c.RenewDeadline && c.RenewDeadline > c.RetryPeriod && c.RetryPeriod > 0) {
		l.problem(l.at("leaderElection.leaseDuration")+", "+l.at("leaderElection.renewDeadline")+", "+l.at("leaderElection.retryPeriod"),
			fmt.Sprintf("%v, %v, %v", c.LeaseDuration, c.RenewDeadline, c.RetryPeriod), "want lease duration > renew deadline > retry period > 0")
	}
}

// ownChecks are config's checks of the settings whose rules no part owns.
func (l *loader) ownChecks() []Check {
	return []Check{
		{"source.kubeconfig", func(c Config) error {
			if c.Kubeconfig == "" {
				return nil
			}
			return c.checkKubeconfig()
		}},
		{"server.listen", func(c Config) error { _, _, err := net.SplitHostPort(c.Listen); return err }},
		{"leaderElection.advertiseURL", func(c Config) error {
			if c.AdvertiseURL == "" {
				return nil
			}
			return checkAdvertiseURL(c.AdvertiseURL)
		}},
		{"logging.level", func(c Config) error { _, err := c.Level(); return err }},
		{"logging.format", func(c Config) error {
			if c.LogFormat != "text" && c.LogFormat != "json" {
				return errors.New("want text or json")
			}
			return nil
		}},
		{"transports.caFile", func(c Config) error { _, err := readCAFile(c.CAFile); return err }},
	}
}

// reason is what a check's error says about the value: a part's reason, or the error without
// the file name a path error repeats.
func reason(err error) string {
	var invalid *option.InvalidError
	if errors.As(err, &invalid) {
		return invalid.Reason
	}
	return unwrapPathError(err).Error()
}

// leaves are the errors joined in err (errors.Join, nested), in order.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

// checkKubeconfig says which kubeconfig file is missing or unreadable before client-go's
// generic advice would.
func (c *Config) checkKubeconfig() error {
	paths := filepath.SplitList(c.Kubeconfig)
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			if len(paths) == 1 {
				return unwrapPathError(err)
			}
			return fmt.Errorf("%s: %v", path, unwrapPathError(err))
		}
	}
	_, err := c.kubeconfigREST()
	return err
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

// CACertificates reads CAFile: PEM certificates trusted beside the system's (nil without one).
func (c Config) CACertificates() ([]byte, error) { return readCAFile(c.CAFile) }

// readCAFile reads PEM CA certificates ("": none).
func readCAFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		return nil, errors.New("no PEM certificate in the file")
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
		return 0, errors.New("want debug, info, warn or error")
	}
	return l, nil
}
