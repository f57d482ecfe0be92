package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// setting is one configuration setting: its key in the config file, its flag (if any), its
// environment variable, and the field of Config (or of one of its parts) it sets. The table of
// settings is the one description of the configuration: the file, the environment, the flags,
// the help, the effective-configuration printout and docs/configuration.md all come from it.
type setting struct {
	key  string // dotted path in the config file: "transports.mqtt.url"
	flag string // without dashes; "" when only the file and the environment set it
	// fallbackEnv are environment variables that supply the value when nothing else does,
	// beside the setting's own BROADCASTER_ variable (K_SINK, KUBECONFIG, POD_NAMESPACE).
	fallbackEnv string
	// placeholder names the flag's argument in the help ("url", "file").
	placeholder string
	help        string
	secret      bool // never shown: the effective configuration and errors say "(secret)"
	field       func(*Config) value
}

// value is a field of Config as text: flags, environment variables and the file's scalars set it.
type value interface {
	Set(string) error
	String() string
}

// listValue is a value that is a list: the file may give it as a sequence or a comma-separated
// string, a flag repeated adds to it.
type listValue interface {
	value
	Add(string) error
	Reset()
}

// env is the setting's own environment variable: BROADCASTER_ and its key in upper snake case.
func (s setting) env() string {
	var b strings.Builder
	b.WriteString("BROADCASTER_")
	for i, r := range s.key {
		switch {
		case r == '.':
			b.WriteByte('_')
		case unicode.IsUpper(r) && i > 0 && s.key[i-1] != '.' && !unicode.IsUpper(rune(s.key[i-1])):
			b.WriteByte('_')
			b.WriteRune(r)
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string     { return *v.p }

type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string   { return strconv.FormatBool(*v.p) }
func (v boolValue) IsBoolFlag() bool { return true }

type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	*v.p = n
	return nil
}
func (v intValue) String() string { return strconv.Itoa(*v.p) }

type int64Value struct{ p *int64 }

func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	*v.p = n
	return nil
}
func (v int64Value) String() string { return strconv.FormatInt(*v.p, 10) }

type durationValue struct{ p *Duration }

func (v durationValue) Set(s string) error { return v.p.Set(strings.TrimSpace(s)) }
func (v durationValue) String() string     { return v.p.String() }

type stringsValue struct{ p *[]string }

func (v stringsValue) Set(s string) error { v.Reset(); return v.Add(s) }
func (v stringsValue) Add(s string) error {
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v.p = append(*v.p, item)
		}
	}
	return nil
}
func (v stringsValue) Reset()         { *v.p = nil }
func (v stringsValue) String() string { return strings.Join(*v.p, ",") }

func str(f func(*Config) *string) func(*Config) value {
	return func(c *Config) value { return stringValue{f(c)} }
}
func boolean(f func(*Config) *bool) func(*Config) value {
	return func(c *Config) value { return boolValue{f(c)} }
}
func integer(f func(*Config) *int) func(*Config) value {
	return func(c *Config) value { return intValue{f(c)} }
}
func integer64(f func(*Config) *int64) func(*Config) value {
	return func(c *Config) value { return int64Value{f(c)} }
}
func duration(f func(*Config) *Duration) func(*Config) value {
	return func(c *Config) value { return durationValue{f(c)} }
}
func list(f func(*Config) *[]string) func(*Config) value {
	return func(c *Config) value { return stringsValue{f(c)} }
}

// own is config's own settings (those of Config's fields), in the order help and printouts
// show them; the parts' settings go after the last of their section.
var own = []setting{
	{key: "source.manifests", flag: "manifests", placeholder: "dir", help: "watch this directory of YAML/JSON manifests",
		field: str(func(c *Config) *string { return &c.Manifests })},
	{key: "source.kubeconfig", flag: "kubeconfig", fallbackEnv: "KUBECONFIG", placeholder: "file",
		help:  "watch the cluster of this kubeconfig file (default $KUBECONFIG, or the in-cluster config in a pod)",
		field: str(func(c *Config) *string { return &c.Kubeconfig })},
	{key: "source.namespaces", flag: "namespaces", placeholder: "names", help: "watch only these namespaces (comma-separated; cluster mode; default all)",
		field: list(func(c *Config) *[]string { return &c.Namespaces })},
	{key: "source.labelSelector", flag: "label-selector", placeholder: "selector", help: "watch only Knative objects matching this label selector (cluster mode)",
		field: str(func(c *Config) *string { return &c.LabelSelector })},

	{key: "leaderElection.enabled", flag: "leader-elect", help: "elect one publishing replica through a Lease (cluster mode); every replica serves snapshots",
		field: boolean(func(c *Config) *bool { return &c.LeaderElect })},
	{key: "leaderElection.namespace", flag: "leader-election-namespace", fallbackEnv: "POD_NAMESPACE", placeholder: "namespace",
		help:  "namespace of the leader-election Lease (default $POD_NAMESPACE, else the pod's, else default)",
		field: str(func(c *Config) *string { return &c.LeaderElectionNamespace })},
	{key: "leaderElection.leaseDuration", flag: "lease-duration", placeholder: "duration", help: "how long a lease holds without renewal",
		field: duration(func(c *Config) *Duration { return &c.LeaseDuration })},
	{key: "leaderElection.renewDeadline", flag: "renew-deadline", placeholder: "duration", help: "how long the leader keeps trying to renew",
		field: duration(func(c *Config) *Duration { return &c.RenewDeadline })},
	{key: "leaderElection.retryPeriod", flag: "retry-period", placeholder: "duration", help: "how often to try to acquire or renew the lease",
		field: duration(func(c *Config) *Duration { return &c.RetryPeriod })},
	{key: "leaderElection.advertiseURL", flag: "advertise-url", placeholder: "url",
		help:  "the URL other replicas reach this one at (default http(s)://$POD_IP:<port>)",
		field: str(func(c *Config) *string { return &c.AdvertiseURL })},

	{key: "server.listen", flag: "listen", placeholder: "addr",
		help:  "serve the endpoints on this address (default " + DefaultListen + "; " + DefaultClusterListen + " in cluster mode)",
		field: str(func(c *Config) *string { return &c.Listen })},
	{key: "server.tls.certFile", flag: "tls-cert-file", placeholder: "file", help: "serve HTTPS with the PEM certificate in this file (with keyFile; read again when it changes)",
		field: str(func(c *Config) *string { return &c.TLSCertFile })},
	{key: "server.tls.keyFile", flag: "tls-key-file", placeholder: "file", help: "the PEM private key of the server certificate",
		field: str(func(c *Config) *string { return &c.TLSKeyFile })},
	{key: "server.maxWatchers", flag: "max-watchers", placeholder: "n", help: "GET /v1/watch streams served at once (more are told to come back later)",
		field: integer(func(c *Config) *int { return &c.MaxWatchers })},
	{key: "server.maxWatchersPerIdentity", flag: "max-watchers-per-identity", placeholder: "n", help: "GET /v1/watch streams served at once to one caller identity",
		field: integer(func(c *Config) *int { return &c.MaxWatchersPerIdentity })},
	{key: "server.maxDeltaRequests", flag: "max-delta-requests", placeholder: "n", help: "GET /v1/deltas answers written at once (more get 503)",
		field: integer(func(c *Config) *int { return &c.MaxDeltaRequests })},
	{key: "server.maxConnections", flag: "max-connections", placeholder: "n", help: "connections open at once, idle ones included (more are closed at once)",
		field: integer(func(c *Config) *int { return &c.MaxConnections })},
	{key: "server.allowedHosts", flag: "allowed-hosts", placeholder: "names",
		help:  "without access control, also serve these Host names (comma-separated; *.domain for a whole domain) beside loopback names and IP addresses",
		field: list(func(c *Config) *[]string { return &c.AllowedHosts })},
	{key: "server.metricsTokenFile", flag: "metrics-token-file", placeholder: "file", help: "require the bearer token in this file for GET /metrics",
		field: str(func(c *Config) *string { return &c.MetricsTokenFile })},
	{key: "server.deltaLog.size", flag: "delta-log-size", placeholder: "n", help: "recent changes kept for GET /v1/deltas and the transports",
		field: integer(func(c *Config) *int { return &c.DeltaLogSize })},
	{key: "server.deltaLog.bytes", flag: "delta-log-bytes", placeholder: "n", help: "bytes of recent changes kept for GET /v1/deltas and the transports",
		field: integer64(func(c *Config) *int64 { return &c.DeltaLogBytes })},

	{key: "access.tokensFile", flag: "tokens-file", placeholder: "file", help: "manifests mode: require a bearer token listed in this file (one per line)",
		field: str(func(c *Config) *string { return &c.TokensFile })},
	{key: "access.tokenAudiences", flag: "token-audience", placeholder: "audience", help: "cluster mode: accept only tokens for these audiences (repeatable or comma-separated)",
		field: list(func(c *Config) *[]string { return &c.TokenAudiences })},

	{key: "events.source", flag: "event-source", placeholder: "uri", help: "CloudEvents source attribute of mesh deltas",
		field: str(func(c *Config) *string { return &c.EventSource })},
	{key: "events.cluster", flag: "cluster-name", placeholder: "name",
		help:  "name of this cluster, in every event (meshcluster, source), snapshot, MQTT topic and NATS subject, so broadcasters of many clusters share one broker (letters, digits and -)",
		field: str(func(c *Config) *string { return &c.ClusterName })},

	{key: "transports.caFile", flag: "ca-file", placeholder: "file", help: "also trust the PEM CA certificates in this file for every transport",
		field: str(func(c *Config) *string { return &c.CAFile })},

	{key: "logging.level", flag: "log-level", placeholder: "level", help: "debug, info, warn or error",
		field: str(func(c *Config) *string { return &c.LogLevel })},
	{key: "logging.format", flag: "log-format", placeholder: "format", help: "text or json",
		field: str(func(c *Config) *string { return &c.LogFormat })},
}

// table is every setting of a configuration: config's own and its parts'.
type table []setting

// tableOf is the table of a configuration with these parts' settings: each part's after the
// last of config's own settings in its section.
func tableOf(parts []Part) table {
	t := append(table{}, own...)
	for i, p := range parts {
		for j, d := range p.Describe() {
			row := setting{key: d.Key, flag: d.Flag, fallbackEnv: d.FallbackEnv, placeholder: d.Placeholder, help: d.Help, secret: d.Secret,
				field: func(c *Config) value { return bind(c.parts[i].Describe()[j]) }}
			at := len(t)
			for k := len(t) - 1; k >= 0; k-- {
				if sectionOf(t[k].key) == sectionOf(row.key) {
					at = k + 1
					break
				}
			}
			t = append(t[:at], append(table{row}, t[at:]...)...)
		}
	}
	return t
}

// bind is a part's setting as a value of its field.
func bind(d option.Setting) value {
	switch p := d.Field.(type) {
	case *string:
		return stringValue{p}
	case *bool:
		return boolValue{p}
	case *int:
		return intValue{p}
	case *[]string:
		return stringsValue{p}
	}
	panic(fmt.Sprintf("config: setting %s: a field of type %T (want *string, *bool, *int or *[]string)", d.Key, d.Field))
}

// byKey finds a setting by its file key.
func (t table) byKey(key string) (setting, bool) {
	for _, s := range t {
		if s.key == key {
			return s, true
		}
	}
	return setting{}, false
}
