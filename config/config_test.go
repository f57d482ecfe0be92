package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// load loads a configuration as the broadcaster does: config's settings and every part's.
func load(args []string, getenv func(string) string) (config.Config, error) {
	return config.Load(args, getenv, settings.All())
}

// partOf is the settings of type T among c's parts (zero settings when there are none: the
// test then fails on their values).
func partOf[T any](c config.Config) *T {
	for _, p := range c.Parts() {
		if s, ok := any(p).(*T); ok {
			return s
		}
	}
	return new(T)
}

func httpOf(c config.Config) *httpsink.Settings { return partOf[httpsink.Settings](c) }
func mqttOf(c config.Config) *mqtt.Settings     { return partOf[mqtt.Settings](c) }
func natsOf(c config.Config) *nats.Settings     { return partOf[nats.Settings](c) }

// files writes named files into a temporary directory and returns their paths.
type files struct {
	t   *testing.T
	dir string
}

func newFiles(t *testing.T) files { return files{t, t.TempDir()} }

func (f files) write(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// A minimal kubeconfig pointing at a server that need not exist: Load only parses it.
const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestLoad(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	dir := f.dir
	file := f.write("cfg.yaml", "source:\n  manifests: "+dir+"\nserver:\n  listen: 127.0.0.1:9999\nlogging:\n  level: debug\n  format: json\n")
	tokens := f.write("tokens", "# comment\n\nabc\n  def  \n")
	password := f.write("password", "s3cret\n")
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(config.Config) bool
	}{
		{"defaults", []string{"--manifests", dir}, nil, func(c config.Config) bool {
			return c.Manifests == dir && c.Listen == config.DefaultListen && c.LogLevel == "info" && c.LogFormat == "text" &&
				c.DeltaLogBytes == changelog.DefaultMaxBytes && c.Origin("server.listen") == config.OriginDefault
		}},
		{"file", []string{"--config", file}, nil, func(c config.Config) bool {
			return c.Manifests == dir && c.Listen == "127.0.0.1:9999" && c.LogLevel == "debug" && c.LogFormat == "json" &&
				c.Origin("server.listen") == file+":4: server.listen"
		}},
		{"file from the environment", nil, map[string]string{"BROADCASTER_CONFIG": file}, func(c config.Config) bool { return c.Listen == "127.0.0.1:9999" }},
		{"tokens", []string{"--manifests", dir, "--tokens-file", tokens}, nil, func(c config.Config) bool {
			got, err := auth.ReadTokens(c.TokensFile)
			return err == nil && strings.Join(got, ",") == "abc,def"
		}},
		{"sink and overrides from Knative's variables", []string{"--manifests", dir},
			map[string]string{"K_SINK": "http://broker.example/ns/b", "K_CE_OVERRIDES": `{"extensions":{"a":"b"}}`}, func(c config.Config) bool {
				return httpOf(c).Sink == "http://broker.example/ns/b" && httpOf(c).CEOverrides == `{"extensions":{"a":"b"}}` && c.Origin("transports.http.sink") == "$K_SINK"
			}},
		{"credentials from files", []string{"--manifests", dir, "--mqtt", "mqtt://broker:1883", "--mqtt-username", "u",
			"--mqtt-password-file", password, "--nats", "nats://n:4222", "--nats-user", "n", "--nats-password-file", password}, nil, func(c config.Config) bool {
			mqttPassword, err1 := transports.Secret(mqttOf(c).Password, mqttOf(c).PasswordFile)
			natsPassword, err2 := transports.Secret(natsOf(c).Password, natsOf(c).PasswordFile)
			return err1 == nil && err2 == nil && mqttPassword == "s3cret" && natsPassword == "s3cret"
		}},
		{"namespaces as a comma-separated string in the file", []string{"--config", f.write("ns.yaml",
			"source:\n  kubeconfig: "+f.write("kc", testKubeconfig)+"\n  namespaces: shop, payments\n")}, nil, func(c config.Config) bool {
			return strings.Join(c.Namespaces, ",") == "shop,payments"
		}},
		{"an empty file and empty sections", []string{"--manifests", dir, "--config", f.write("empty.yaml", "source:\ntransports:\n")}, nil,
			func(c config.Config) bool { return c.Manifests == dir }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestLoadClusterMode(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	kc := f.write("kubeconfig", testKubeconfig)
	file := f.write("cfg.yaml", "source:\n  kubeconfig: "+kc+"\n  namespaces: [a, b]\nleaderElection:\n  enabled: true\n"+
		"  leaseDuration: 6s\n  renewDeadline: 4s\n  retryPeriod: 1s\n")
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(config.Config) bool
	}{
		{"kubeconfig flag", []string{"--kubeconfig", kc, "--namespaces", "shop, ops", "--label-selector", "team=a"}, nil, func(c config.Config) bool {
			return c.Cluster() && !c.InCluster && c.Listen == config.DefaultClusterListen && strings.Join(c.Namespaces, ",") == "shop,ops" &&
				c.LabelSelector == "team=a" && !c.LeaderElect
		}},
		{"KUBECONFIG", nil, map[string]string{"KUBECONFIG": kc}, func(c config.Config) bool {
			return c.Kubeconfig == kc && c.Origin("source.kubeconfig") == "$KUBECONFIG"
		}},
		{"in cluster", []string{"--leader-elect"}, map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "knative-eventing"}, func(c config.Config) bool {
			return c.InCluster && c.LeaderElect && c.LeaderElectionNamespace == "knative-eventing" &&
				c.LeaseDuration == config.Duration(config.DefaultLeaseDuration) && c.RetryPeriod == config.Duration(config.DefaultRetryPeriod)
		}},
		{"manifests win over $KUBECONFIG", []string{"--manifests", f.dir}, map[string]string{"KUBECONFIG": kc}, func(c config.Config) bool {
			return !c.Cluster() && c.Listen == config.DefaultListen
		}},
		{"file", []string{"--config", file}, nil, func(c config.Config) bool {
			return c.LeaderElect && c.LeaseDuration == config.Duration(6*time.Second) && c.RetryPeriod == config.Duration(time.Second) &&
				strings.Join(c.Namespaces, ",") == "a,b" && c.LeaderElectionNamespace == "default"
		}},
		{"flags win over file", []string{"--config", file, "--namespaces", "c", "--lease-duration", "9s"}, nil, func(c config.Config) bool {
			return strings.Join(c.Namespaces, ",") == "c" && c.LeaseDuration == config.Duration(9*time.Second)
		}},
		{"token audiences", []string{"--kubeconfig", kc, "--token-audience", "a, b", "--token-audience", "c"}, nil, func(c config.Config) bool {
			return strings.Join(c.TokenAudiences, ",") == "a,b,c"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Fatalf("got %+v", got)
			}
			if _, err := got.RESTConfig(); got.Cluster() && !got.InCluster && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Precedence, setting by setting: flags over the environment over the file over the defaults.
// A flag given wins even when it turns a boolean off or clears a string.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	dir := f.dir
	kc := f.write("kubeconfig", testKubeconfig)
	file := f.write("cfg.yaml", "source:\n  manifests: "+dir+"\ntransports:\n  nats:\n    coreOnly: true\n  http:\n    sink: http://from-file/\n"+
		"  mqtt:\n    topicPrefix: file/prefix\nserver:\n  deltaLog:\n    size: 7\nlogging:\n  level: debug\nevents:\n  source: /from-file\n")
	clusterFile := f.write("cluster.yaml", "source:\n  kubeconfig: "+kc+"\n  namespaces: [a, b]\n  labelSelector: team=a\nleaderElection:\n  enabled: true\n")
	kSink := map[string]string{"K_SINK": "http://from-k-sink/"}
	ownSink := map[string]string{"BROADCASTER_TRANSPORTS_HTTP_SINK": "http://from-env/", "K_SINK": "http://from-k-sink/"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		got  func(config.Config) any
		want any
	}{
		{"boolean from the file", []string{"--config", file}, nil, func(c config.Config) any { return natsOf(c).CoreOnly }, true},
		{"boolean turned off by a flag", []string{"--config", file, "--nats-core=false"}, nil, func(c config.Config) any { return natsOf(c).CoreOnly }, false},
		{"boolean turned off by the environment", []string{"--config", file}, map[string]string{"BROADCASTER_TRANSPORTS_NATS_CORE_ONLY": "false"},
			func(c config.Config) any { return natsOf(c).CoreOnly }, false},
		{"boolean turned on by a flag", []string{"--manifests", dir, "--nats-core"}, nil, func(c config.Config) any { return natsOf(c).CoreOnly }, true},
		{"boolean default", []string{"--manifests", dir}, nil, func(c config.Config) any { return natsOf(c).CoreOnly }, false},
		{"leader election turned off by a flag", []string{"--config", clusterFile, "--leader-elect=false"}, nil, func(c config.Config) any { return c.LeaderElect }, false},
		{"the file alone", []string{"--config", file}, nil, func(c config.Config) any { return httpOf(c).Sink }, "http://from-file/"},
		{"a setting's own variable over the file", []string{"--config", file}, ownSink, func(c config.Config) any { return httpOf(c).Sink }, "http://from-env/"},
		{"K_SINK over the file", []string{"--config", file}, kSink, func(c config.Config) any { return httpOf(c).Sink }, "http://from-k-sink/"},
		{"K_SINK over the default", []string{"--manifests", dir}, kSink, func(c config.Config) any { return httpOf(c).Sink }, "http://from-k-sink/"},
		{"a setting's own variable over K_SINK", []string{"--manifests", dir}, ownSink, func(c config.Config) any { return httpOf(c).Sink }, "http://from-env/"},
		{"string cleared by a flag over the file", []string{"--config", file, "--sink="}, nil, func(c config.Config) any { return httpOf(c).Sink }, ""},
		{"string cleared by a flag over the environment", []string{"--manifests", dir, "--sink="}, ownSink, func(c config.Config) any { return httpOf(c).Sink }, ""},
		{"string from a flag over the file", []string{"--config", file, "--mqtt-topic-prefix", "flag/prefix"}, nil, func(c config.Config) any { return mqttOf(c).TopicPrefix }, "flag/prefix"},
		{"string default from its package", []string{"--manifests", dir}, nil, func(c config.Config) any { return mqttOf(c).TopicPrefix }, mqtt.DefaultTopicPrefix},
		{"selector cleared by a flag", []string{"--config", clusterFile, "--label-selector="}, nil, func(c config.Config) any { return c.LabelSelector }, ""},
		{"list from the file", []string{"--config", clusterFile}, nil, func(c config.Config) any { return strings.Join(c.Namespaces, ",") }, "a,b"},
		{"list from the environment over the file", []string{"--config", clusterFile}, map[string]string{"BROADCASTER_SOURCE_NAMESPACES": "x,y"},
			func(c config.Config) any { return strings.Join(c.Namespaces, ",") }, "x,y"},
		{"list replaced by flags", []string{"--config", clusterFile, "--namespaces", "c", "--namespaces", "d,e"}, nil, func(c config.Config) any { return strings.Join(c.Namespaces, ",") }, "c,d,e"},
		{"list cleared by a flag", []string{"--config", clusterFile, "--namespaces="}, nil, func(c config.Config) any { return len(c.Namespaces) }, 0},
		{"number from the file", []string{"--config", file}, nil, func(c config.Config) any { return c.DeltaLogSize }, 7},
		{"number from the environment over the file", []string{"--config", file}, map[string]string{"BROADCASTER_SERVER_DELTA_LOG_SIZE": "8"},
			func(c config.Config) any { return c.DeltaLogSize }, 8},
		{"number from a flag over the environment", []string{"--config", file, "--delta-log-size", "9"}, map[string]string{"BROADCASTER_SERVER_DELTA_LOG_SIZE": "8"},
			func(c config.Config) any { return c.DeltaLogSize }, 9},
		{"number default from its package", []string{"--manifests", dir}, nil, func(c config.Config) any { return c.DeltaLogSize }, changelog.DefaultMaxChanges},
		{"event source default from the codec", []string{"--manifests", dir}, nil, func(c config.Config) any { return c.EventSource }, codec.DefaultSource},
		{"flag order does not matter", []string{"--sink=", "--config", file}, kSink, func(c config.Config) any { return httpOf(c).Sink }, ""},
		{"where a flag's value came from", []string{"--config", file, "--delta-log-size", "9"}, nil, func(c config.Config) any { return c.Origin("server.deltaLog.size") }, "--delta-log-size"},
		{"where a variable's value came from", []string{"--config", file}, ownSink, func(c config.Config) any { return c.Origin("transports.http.sink") }, "$BROADCASTER_TRANSPORTS_HTTP_SINK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// The help shows each setting's real default, taken from the part that owns it.
func TestHelpShowsTheDefaults(t *testing.T) {
	t.Parallel()
	if _, err := load([]string{"--help"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var out strings.Builder
	config.WriteFlags(&out, settings.All())
	for _, want := range []string{mqtt.DefaultTopicPrefix, nats.DefaultSubjectPrefix, codec.DefaultSource,
		strconv.Itoa(changelog.DefaultMaxChanges), strconv.Itoa(changelog.DefaultMaxBytes), config.DefaultLeaseDuration.String(),
		config.DefaultRenewDeadline.String(), config.DefaultRetryPeriod.String(), config.DefaultListen, "(default info)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not show the default %q:\n%s", want, out.String())
		}
	}
}
