package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/config"
)

// Every mistake a user can make is reported with where it was made (file and line, flag or
// variable), the offending value (never a secret) and what is wrong, as a usage error.
func TestMistakes(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	dir := f.dir
	kc := f.write("kubeconfig", testKubeconfig)
	notPEM := f.write("not.pem", "hello\n")
	password := f.write("password", "pw\n")
	empty := f.write("empty", "\n")
	yaml := func(name, content string) []string {
		return []string{"--manifests", dir, "--config", f.write(name, content)}
	}
	clusterYAML := func(name, content string) []string {
		return []string{"--kubeconfig", kc, "--config", f.write(name, content)}
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // each appears in the message, in this order
	}{
		{"a misspelt key", yaml("typo.yaml", "logging:\n  levle: debug\n"), nil, []string{"typo.yaml:2: logging.levle: unknown key; did you mean \"logging.level\"?"}},
		{"a key of the old flat format", yaml("flat.yaml", "logLevle: debug\n"), nil, []string{"flat.yaml:1: logLevle: unknown key; did you mean \"logging.level\"?"}},
		{"an old key spelt right", yaml("old.yaml", "listen: 127.0.0.1:1\n"), nil, []string{"old.yaml:1: listen: unknown key; did you mean \"server.listen\"?"}},
		{"a misspelt nested key", yaml("nested.yaml", "transports:\n  mqtt:\n    pasword: x\n"), nil, []string{"nested.yaml:3: transports.mqtt.pasword: unknown key; did you mean \"transports.mqtt.password\"?"}},
		{"a misspelt section", yaml("section.yaml", "transport:\n  mqtt:\n    url: mqtt://b:1883\n"), nil, []string{"section.yaml:1: transport: unknown key; did you mean \"transports\"?"}},
		{"a key given twice", yaml("twice.yaml", "logging:\n  level: debug\n  level: info\n"), nil, []string{"twice.yaml:3: logging.level: given twice (first on line 2)"}},
		{"not YAML", yaml("broken.yaml", "source: [\n"), nil, []string{"broken.yaml: not YAML"}},
		{"a list at the top", yaml("list.yaml", "- a\n"), nil, []string{"list.yaml:1: want a mapping of settings"}},
		{"a value for a section", yaml("scalar.yaml", "logging: debug\n"), nil, []string{"scalar.yaml:1: logging: want a mapping (a section of settings)"}},
		{"a list for a value", yaml("listval.yaml", "server:\n  listen: [a, b]\n"), nil, []string{"listval.yaml:2: server.listen: want a single value, got a list"}},
		{"a mapping for a value", yaml("mapval.yaml", "logging:\n  level: {a: b}\n"), nil, []string{"mapval.yaml:2: logging.level: want a value, got a mapping"}},
		{"a list item that is not a string", clusterYAML("item.yaml", "source:\n  namespaces: [{a: b}]\n"), nil, []string{"item.yaml:2: source.namespaces[0]: want a string, got a mapping"}},
		{"not a boolean", clusterYAML("bool.yaml", "leaderElection:\n  enabled: maybe\n"), nil, []string{`bool.yaml:2: leaderElection.enabled "maybe": want true or false`}},
		{"not a number", yaml("int.yaml", "server:\n  maxWatchers: many\n"), nil, []string{`int.yaml:2: server.maxWatchers "many": want a whole number`}},
		{"not a duration", clusterYAML("dur.yaml", "leaderElection:\n  leaseDuration: 5\n"), nil, []string{`dur.yaml:2: leaderElection.leaseDuration "5": `, "missing unit"}},
		{"a negative size in the file", yaml("neg.yaml", "server:\n  deltaLog:\n    size: -3\n"), nil, []string{`neg.yaml:3: server.deltaLog.size "-3": -3: want at least 1`}},
		{"zero watchers by flag", []string{"--manifests", dir, "--max-watchers", "0"}, nil, []string{`--max-watchers "0": 0: want at least 1`}},
		{"a bad level in a variable", []string{"--manifests", dir}, map[string]string{"BROADCASTER_LOGGING_LEVEL": "loud"}, []string{`$BROADCASTER_LOGGING_LEVEL "loud": want debug, info, warn or error`}},
		{"a bad log format", []string{"--manifests", dir, "--log-format", "xml"}, nil, []string{`--log-format "xml": want text or json`}},
		{"a missing manifests directory", []string{"--manifests", filepath.Join(dir, "nope")}, nil, []string{`--manifests "` + filepath.Join(dir, "nope") + `": no such file or directory`}},
		{"a file for the manifests directory", []string{"--manifests", kc}, nil, []string{`--manifests "` + kc + `": not a directory`}},
		{"two sources", []string{"--manifests", dir, "--kubeconfig", kc}, nil, []string{"--manifests and --kubeconfig: choose one source"}},
		{"no source", nil, nil, []string{"source: none given"}},
		{"a missing kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "nokc")}, nil, []string{`--kubeconfig "` + filepath.Join(dir, "nokc") + `": no such file or directory`}},
		{"a kubeconfig that is not one", []string{"--kubeconfig", notPEM}, nil, []string{`--kubeconfig "` + notPEM + `": `}},
		{"a cluster setting in manifests mode", []string{"--manifests", dir, "--namespaces", "a"}, nil, []string{`--namespaces "a": needs cluster mode (--kubeconfig), not --manifests`}},
		{"static tokens in cluster mode", []string{"--kubeconfig", kc, "--tokens-file", password}, nil, []string{"--tokens-file: is for manifests mode"}},
		{"no port to listen on", []string{"--manifests", dir, "--listen", "nope"}, nil, []string{`--listen "nope": address nope: missing port in address`}},
		{"an MQTT URL of another scheme", []string{"--manifests", dir, "--mqtt", "http://broker"}, nil, []string{`--mqtt "http://broker": the scheme must be`}},
		{"a NATS URL without a scheme", []string{"--manifests", dir, "--nats", "broker:4222"}, nil, []string{`--nats "broker:4222": `}},
		{"a sink that is not a URL", []string{"--manifests", dir, "--sink", "broker"}, nil, []string{`--sink "broker": `}},
		{"overrides that are not JSON", []string{"--manifests", dir, "--sink", "http://broker/"}, map[string]string{"K_CE_OVERRIDES": "extensions: a=b"}, []string{`$K_CE_OVERRIDES "extensions: a=b": `}},
		{"overrides of the mesh's extensions", []string{"--manifests", dir, "--sink", "http://broker/"}, map[string]string{"K_CE_OVERRIDES": `{"extensions":{"meshseq":"7"}}`},
			[]string{`$K_CE_OVERRIDES`, `extension name "meshseq" belongs to the mesh contract`}},
		{"an override name with upper case", []string{"--manifests", dir, "--sink", "http://broker/"}, map[string]string{"K_CE_OVERRIDES": `{"extensions":{"Upper":"7"}}`},
			[]string{`$K_CE_OVERRIDES`, `extension name "Upper": CloudEvents attribute names are lower-case letters a-z and digits 0-9 only`}},
		{"an override named data", []string{"--manifests", dir, "--sink", "http://broker/"}, map[string]string{"K_CE_OVERRIDES": `{"extensions":{"data":"7"}}`},
			[]string{`$K_CE_OVERRIDES`, `extension name "data" is reserved by CloudEvents for the event's data`}},
		{"an event source that is no URI-reference", []string{"--manifests", dir, "--event-source", "my cluster"}, nil,
			[]string{`--event-source`, `"my cluster": the byte ' ' at 2 cannot appear in a URI-reference`}},
		{"a password inline and in a file", yaml("both.yaml", "transports:\n  mqtt:\n    url: mqtt://b:1883\n    username: u\n    password: hunter2\n    passwordFile: "+password+"\n"), nil,
			[]string{"both.yaml:6: transports.mqtt.passwordFile", "give this or transports.mqtt.password, not both"}},
		{"a password without a user", yaml("nouser.yaml", "transports:\n  nats:\n    url: nats://n:4222\n    password: hunter2\n"), nil, []string{"nouser.yaml:4: transports.nats.password: needs a user name (transports.nats.user)"}},
		{"an empty password file", []string{"--manifests", dir, "--mqtt-username", "u", "--mqtt-password-file", empty}, nil, []string{`--mqtt-password-file "` + empty + `": the file is empty`}},
		{"a missing token file", []string{"--manifests", dir, "--nats-token-file", filepath.Join(dir, "notoken")}, nil, []string{`--nats-token-file "` + filepath.Join(dir, "notoken") + `": no such file or directory`}},
		{"a client certificate without its key", yaml("cert.yaml", "transports:\n  mqtt:\n    tls:\n      certFile: "+notPEM+"\n"), nil, []string{"cert.yaml:4: transports.mqtt.tls.certFile", "give both the certificate and the key"}},
		{"a CA file without a certificate", []string{"--manifests", dir, "--ca-file", notPEM}, nil, []string{`--ca-file "` + notPEM + `": no PEM certificate in the file`}},
		{"lease timings out of order", []string{"--kubeconfig", kc, "--leader-elect", "--renew-deadline", "20s"}, nil, []string{"want lease duration > renew deadline > retry period > 0"}},
		{"an advertised URL without leader election", []string{"--kubeconfig", kc, "--advertise-url", "http://a:8080"}, nil, []string{"--advertise-url: is for leader election"}},
		{"a namespace that cannot be one", []string{"--kubeconfig", kc, "--namespaces", "Shop"}, nil, []string{`--namespaces "Shop": `}},
		{"a label selector that does not parse", []string{"--kubeconfig", kc, "--label-selector", "a==b==c"}, nil, []string{`--label-selector "a==b==c": `}},
		{"a misspelt flag", []string{"--manifest", dir}, nil, []string{"--manifest: unknown flag; did you mean --manifests?"}},
		{"a stray argument", []string{"--manifests", dir, "extra"}, nil, []string{`unexpected argument "extra"`}},
		{"a missing config file", []string{"--manifests", dir, "--config", filepath.Join(dir, "none.yaml")}, nil, []string{`--config "` + filepath.Join(dir, "none.yaml") + `": no such file or directory`}},
		{"an event source that is not a URI reference", []string{"--manifests", dir, "--event-source", "http://bad host/"}, nil, []string{`--event-source "http://bad host/": `}},
		{"a wildcard in the MQTT prefix", []string{"--manifests", dir, "--mqtt-topic-prefix", "a/#"}, nil, []string{`--mqtt-topic-prefix "a/#": `}},
		{"credentials in a bad URL are not shown", []string{"--manifests", dir, "--mqtt", "http://user:hunter2@broker"}, nil, []string{`--mqtt "http://broker": `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tt.args, env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, config.ErrUsage) {
				t.Errorf("not a usage error: %v", err)
			}
			msg, at := err.Error(), 0
			for _, want := range tt.want {
				i := strings.Index(msg[at:], want)
				if i < 0 {
					t.Fatalf("error\n%s\nlacks %q", msg, want)
				}
				at += i + len(want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the message shows a secret:\n%s", msg)
			}
		})
	}
}

// All the problems of one configuration come out together: the file's in line order, then
// the others.
func TestEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	file := f.write("bad.yaml", "logLevle: debug\nsource:\n  manifests: "+filepath.Join(f.dir, "nope")+"\nserver:\n  deltaLog:\n    size: -3\n  listen: nope\n")
	_, err := load([]string{"--config", file, "--mqtt", "http://b"}, env(map[string]string{"BROADCASTER_LOGGING_FORMAT": "xml"}))
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("got %v, want an *config.Error", err)
	}
	var got []string
	for _, p := range cfgErr.Problems {
		got = append(got, p.Origin)
	}
	want := []string{file + ":1: logLevle", file + ":3: source.manifests", file + ":6: server.deltaLog.size", file + ":7: server.listen",
		"$BROADCASTER_LOGGING_FORMAT", "--mqtt"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems from\n%s\nwant\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
	if !strings.HasPrefix(err.Error(), "6 configuration problems:") {
		t.Errorf("message %q", err)
	}
}
