package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the broadcaster's whole configuration.
type Config struct {
	// Manifests is the directory of manifests to watch.
	Manifests string `json:"manifests,omitempty"`
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
	// CAPEM is read from CAFile by Load.
	CAPEM []byte `json:"-"`
}

// DefaultListen is loopback: with no tokens, manifests mode must not be reachable from outside.
const DefaultListen = "127.0.0.1:8080"

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
	cfg := Config{Listen: DefaultListen, LogLevel: "info", Sink: getenv("K_SINK"), MQTTTopicPrefix: "knative/eventmesh",
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
	} {
		if *f.src != "" {
			*f.dst = *f.src
		}
	}
	c.NATSCoreOnly = c.NATSCoreOnly || o.NATSCoreOnly
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

func (c *Config) validate() error {
	if c.Manifests == "" {
		return fmt.Errorf("%w: no source: pass --manifests DIR (or manifests: in the config file)", ErrUsage)
	}
	if info, err := os.Stat(c.Manifests); err != nil {
		return fmt.Errorf("%w: --manifests: %w", ErrUsage, err)
	} else if !info.IsDir() {
		return fmt.Errorf("%w: --manifests %s: not a directory", ErrUsage, c.Manifests)
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
