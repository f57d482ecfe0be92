package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

type loadCase struct {
	name    string
	args    []string
	env     map[string]string
	want    Config
	wantErr string
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("cfg.yaml", "manifests: "+dir+"\nlisten: 127.0.0.1:9999\nlogLevel: debug\n")
	tokens := write("tokens", "# comment\n\nabc\n  def  \n")
	tests := []loadCase{
		{"defaults", []string{"--manifests", dir}, nil, Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info"}, ""},
		{"file", []string{"--config", file}, nil, Config{Manifests: dir, Listen: "127.0.0.1:9999", LogLevel: "debug"}, ""},
		{"flags win over file", []string{"--config", file, "--listen", ":1234"}, nil, Config{Manifests: dir, Listen: ":1234", LogLevel: "debug"}, ""},
		{"tokens", []string{"--manifests", dir, "--tokens-file", tokens}, nil, Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info", TokensFile: tokens}, ""},
		{"no source", nil, nil, Config{}, "no source"},
		{"missing dir", []string{"--manifests", filepath.Join(dir, "nope")}, nil, Config{}, "--manifests"},
		{"file as dir", []string{"--manifests", file}, nil, Config{}, "not a directory"},
		{"bad listen", []string{"--manifests", dir, "--listen", "nope"}, nil, Config{}, `--listen "nope"`},
		{"bad level", []string{"--manifests", dir, "--log-level", "loud"}, nil, Config{}, "--log-level"},
		{"unknown flag", []string{"--manifest", dir}, nil, Config{}, "flag provided but not defined"},
		{"stray arg", []string{"--manifests", dir, "extra"}, nil, Config{}, `unexpected argument "extra"`},
		{"unknown field", []string{"--config", write("bad.yaml", "manifests: x\nlisten2: y\n")}, nil, Config{}, `unknown field "listen2"`},
		{"empty tokens", []string{"--manifests", dir, "--tokens-file", write("empty", "# none\n")}, nil, Config{}, "no tokens"},
		{"token with space", []string{"--manifests", dir, "--tokens-file", write("sp", "a b\n")}, nil, Config{}, "sp:1: a token cannot contain spaces"},
	}
	tests = append(tests,
		loadCase{"sink from env", []string{"--manifests", dir}, map[string]string{"K_SINK": "http://broker.example/ns/b", "K_CE_OVERRIDES": `{"extensions":{"a":"b"}}`},
			Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info", Sink: "http://broker.example/ns/b", CEOverrides: `{"extensions":{"a":"b"}}`}, ""},
		loadCase{"sink flag wins over env", []string{"--manifests", dir, "--sink", "https://other/"}, map[string]string{"K_SINK": "http://broker.example/"},
			Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info", Sink: "https://other/"}, ""},
		loadCase{"bad sink", []string{"--manifests", dir, "--sink", "broker"}, nil, Config{}, `--sink "broker"`},
		loadCase{"ca file without a certificate", []string{"--manifests", dir, "--ca-file", tokens}, nil, Config{}, "no PEM certificate"},
		loadCase{"missing ca file", []string{"--manifests", dir, "--ca-file", filepath.Join(dir, "nope.pem")}, nil, Config{}, "--ca-file"},
		loadCase{"missing nats creds", []string{"--manifests", dir, "--nats-creds", filepath.Join(dir, "nope.creds")}, nil, Config{}, "--nats-creds"},
		loadCase{"bad mqtt url", []string{"--manifests", dir, "--mqtt", "http://broker"}, nil, Config{}, "--mqtt"},
		loadCase{"bad nats url", []string{"--manifests", dir, "--nats", "broker:4222"}, nil, Config{}, "--nats"},
		loadCase{"mqtt wildcard prefix", []string{"--manifests", dir, "--mqtt-topic-prefix", "a/#"}, nil, Config{}, "--mqtt-topic-prefix"},
		loadCase{"nats wildcard prefix", []string{"--manifests", dir, "--nats-subject-prefix", "a.>"}, nil, Config{}, "--nats-subject-prefix"},
		loadCase{"bad log bound", []string{"--manifests", dir, "--delta-log-bytes", "-1"}, nil, Config{}, "--delta-log-bytes"},
		loadCase{"overrides of the mesh's extensions", []string{"--manifests", dir, "--sink", "http://broker/"},
			map[string]string{"K_CE_OVERRIDES": `{"extensions":{"MeshSeq":"7"}}`}, Config{}, `K_CE_OVERRIDES: extension "MeshSeq" belongs to the mesh contract`},
		loadCase{"overrides that are not JSON", []string{"--manifests", dir, "--sink", "http://broker/"},
			map[string]string{"K_CE_OVERRIDES": `extensions: a=b`}, Config{}, "K_CE_OVERRIDES"},
		loadCase{"bad event source", []string{"--manifests", dir, "--event-source", "http://bad host/"}, nil, Config{}, "--event-source"},
	)
	wantTokens := map[string][]string{"tokens": {"abc", "def"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tokens, _ := got.StaticTokens()
			if tt.want.TokensFile == "" {
				tokens = nil
			}
			if got.Manifests != tt.want.Manifests || got.Listen != tt.want.Listen || got.LogLevel != tt.want.LogLevel ||
				strings.Join(tokens, ",") != strings.Join(wantTokens[tt.name], ",") || got.Sink != tt.want.Sink ||
				got.CEOverrides != tt.want.CEOverrides || got.DeltaLogBytes != changelog.DefaultMaxBytes {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// A minimal kubeconfig pointing at a server that need not exist: Load only parses it.
const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestLoadClusterMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kc := write("kubeconfig", testKubeconfig)
	file := write("cfg.yaml", "kubeconfig: "+kc+"\nleaderElect: true\nleaseDuration: 6s\nrenewDeadline: 4s\nretryPeriod: 1s\nnamespaces: [a, b]\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{"kubeconfig flag", []string{"--kubeconfig", kc, "--namespaces", "shop, ops", "--label-selector", "team=a"}, nil, func(c Config) bool {
			return c.Cluster() && !c.InCluster && c.Listen == DefaultClusterListen && strings.Join(c.Namespaces, ",") == "shop,ops" &&
				c.LabelSelector == "team=a" && !c.LeaderElect
		}, ""},
		{"KUBECONFIG", nil, map[string]string{"KUBECONFIG": kc}, func(c Config) bool { return c.Kubeconfig == kc }, ""},
		{"in cluster", []string{"--leader-elect"}, map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "knative-eventing"}, func(c Config) bool {
			return c.InCluster && c.LeaderElect && c.LeaderElectionNamespace == "knative-eventing" &&
				c.LeaseDuration == Duration(DefaultLeaseDuration) && c.RetryPeriod == Duration(DefaultRetryPeriod)
		}, ""},
		{"manifests win over the environment", []string{"--manifests", dir}, map[string]string{"KUBECONFIG": kc}, func(c Config) bool {
			return !c.Cluster() && c.Listen == DefaultListen
		}, ""},
		{"file", []string{"--config", file}, nil, func(c Config) bool {
			return c.LeaderElect && c.LeaseDuration == Duration(6*time.Second) && c.RetryPeriod == Duration(time.Second) &&
				strings.Join(c.Namespaces, ",") == "a,b" && c.LeaderElectionNamespace == "default"
		}, ""},
		{"flags win over file", []string{"--config", file, "--namespaces", "c", "--lease-duration", "9s"}, nil, func(c Config) bool {
			return strings.Join(c.Namespaces, ",") == "c" && c.LeaseDuration == Duration(9*time.Second)
		}, ""},
		{"both sources", []string{"--manifests", dir, "--kubeconfig", kc}, nil, nil, "choose one source"},
		{"missing kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "nope")}, nil, nil, "--kubeconfig"},
		{"broken kubeconfig", []string{"--kubeconfig", write("broken", "clusters: [")}, nil, nil, "--kubeconfig"},
		{"namespaces need a cluster", []string{"--manifests", dir, "--namespaces", "a"}, nil, nil, "--namespaces needs cluster mode"},
		{"leader election needs a cluster", []string{"--manifests", dir, "--leader-elect"}, nil, nil, "--leader-elect needs cluster mode"},
		{"a certificate needs its key", []string{"--manifests", dir, "--tls-cert-file", kc}, nil, nil, "--tls-cert-file and --tls-key-file: give both or neither"},
		{"a certificate that does not load", []string{"--manifests", dir, "--tls-cert-file", kc, "--tls-key-file", kc}, nil, nil, "--tls-cert-file and --tls-key-file"},
		{"token audiences need a cluster", []string{"--manifests", dir, "--token-audience", "x"}, nil, nil, "--token-audience needs cluster mode"},
		{"token audiences", []string{"--kubeconfig", kc, "--token-audience", "a, b", "--token-audience", "c"}, nil, func(c Config) bool {
			return strings.Join(c.TokenAudiences, ",") == "a,b,c"
		}, ""},
		{"tokens file is for manifests", []string{"--kubeconfig", kc, "--tokens-file", kc}, nil, nil, "--tokens-file is for manifests mode"},
		{"bad selector", []string{"--kubeconfig", kc, "--label-selector", "a==b==c"}, nil, nil, "--label-selector"},
		{"bad namespace", []string{"--kubeconfig", kc, "--namespaces", "Shop"}, nil, nil, `--namespaces: "Shop"`},
		{"lease timings out of order", []string{"--kubeconfig", kc, "--leader-elect", "--renew-deadline", "20s"}, nil, nil, "--lease-duration > --renew-deadline"},
		{"bad duration", []string{"--kubeconfig", kc, "--retry-period", "soon"}, nil, nil, "retry-period"},
		{"bad duration in file", []string{"--config", write("bad-d.yaml", "kubeconfig: "+kc+"\nleaseDuration: 5\n")}, nil, nil, "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
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

// Precedence, setting by setting: a flag given wins over the file even when it turns a boolean
// off or clears a string; the file wins over the environment; the environment over defaults.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(testKubeconfig), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(file, []byte("manifests: "+dir+"\nnatsCoreOnly: true\nsink: http://from-file/\n"+
		"mqttTopicPrefix: file/prefix\ndeltaLogSize: 7\nlogLevel: debug\neventSource: /from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clusterFile := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(clusterFile, []byte("kubeconfig: "+kc+"\nleaderElect: true\nnamespaces: [a, b]\nlabelSelector: team=a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kSink := map[string]string{"K_SINK": "http://from-env/"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		got  func(Config) any
		want any
	}{
		{"boolean from the file", []string{"--config", file}, nil, func(c Config) any { return c.NATSCoreOnly }, true},
		{"boolean turned off by a flag", []string{"--config", file, "--nats-core=false"}, nil, func(c Config) any { return c.NATSCoreOnly }, false},
		{"boolean turned on by a flag", []string{"--manifests", dir, "--nats-core"}, nil, func(c Config) any { return c.NATSCoreOnly }, true},
		{"boolean default", []string{"--manifests", dir}, nil, func(c Config) any { return c.NATSCoreOnly }, false},
		{"leader election turned off by a flag", []string{"--config", clusterFile, "--leader-elect=false"}, nil, func(c Config) any { return c.LeaderElect }, false},
		{"string from the file over the environment", []string{"--config", file}, kSink, func(c Config) any { return c.Sink }, "http://from-file/"},
		{"string cleared by a flag over the file", []string{"--config", file, "--sink="}, kSink, func(c Config) any { return c.Sink }, ""},
		{"string cleared by a flag over the environment", []string{"--manifests", dir, "--sink="}, kSink, func(c Config) any { return c.Sink }, ""},
		{"string from the environment", []string{"--manifests", dir}, kSink, func(c Config) any { return c.Sink }, "http://from-env/"},
		{"string from a flag over the file", []string{"--config", file, "--mqtt-topic-prefix", "flag/prefix"}, nil, func(c Config) any { return c.MQTTTopicPrefix }, "flag/prefix"},
		{"string default from its package", []string{"--manifests", dir}, nil, func(c Config) any { return c.MQTTTopicPrefix }, mqtt.DefaultTopicPrefix},
		{"selector cleared by a flag", []string{"--config", clusterFile, "--label-selector="}, nil, func(c Config) any { return c.LabelSelector }, ""},
		{"list from the file", []string{"--config", clusterFile}, nil, func(c Config) any { return strings.Join(c.Namespaces, ",") }, "a,b"},
		{"list replaced by flags", []string{"--config", clusterFile, "--namespaces", "c", "--namespaces", "d,e"}, nil, func(c Config) any { return strings.Join(c.Namespaces, ",") }, "c,d,e"},
		{"list cleared by a flag", []string{"--config", clusterFile, "--namespaces="}, nil, func(c Config) any { return len(c.Namespaces) }, 0},
		{"number from the file", []string{"--config", file}, nil, func(c Config) any { return c.DeltaLogSize }, 7},
		{"number from a flag over the file", []string{"--config", file, "--delta-log-size", "9"}, nil, func(c Config) any { return c.DeltaLogSize }, 9},
		{"number default from its package", []string{"--manifests", dir}, nil, func(c Config) any { return c.DeltaLogSize }, changelog.DefaultMaxChanges},
		{"event source default from the codec", []string{"--manifests", dir}, nil, func(c Config) any { return c.EventSource }, codec.DefaultSource},
		{"flag order does not matter", []string{"--sink=", "--config", file}, kSink, func(c Config) any { return c.Sink }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// --help shows each setting's real default, taken from the package that owns it.
func TestHelpShowsTheDefaults(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if _, err := Load([]string{"--help"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{mqtt.DefaultTopicPrefix, nats.DefaultSubjectPrefix, codec.DefaultSource,
		strconv.Itoa(changelog.DefaultMaxChanges), strconv.Itoa(changelog.DefaultMaxBytes), DefaultLeaseDuration.String(),
		DefaultRenewDeadline.String(), DefaultRetryPeriod.String(), DefaultListen, `(default "info")`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not show the default %q:\n%s", want, out.String())
		}
	}
}
