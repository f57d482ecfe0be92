package config_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md's table from the code")

// check-config's output is a config file: loading it gives the same configuration, secrets
// aside, and it shows where each value came from without showing a secret.
func TestEffectiveConfigurationLoadsBack(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	password := f.write("pw", "x\n")
	file := f.write("cfg.yaml", "source:\n  manifests: "+f.dir+"\ntransports:\n  mqtt:\n    url: mqtt://b:1883\n    username: u\n    password: hunter2\n"+
		"  nats:\n    url: nats://n:4222\n    user: n\n    passwordFile: "+password+"\n")
	first, err := load([]string{"--config", file, "--delta-log-size", "9", "--log-format", "json"},
		env(map[string]string{"BROADCASTER_TRANSPORTS_MQTT_TOPIC_PREFIX": "a/b", "K_SINK": "http://sink/"}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	first.WriteEffective(&out)
	for _, want := range []string{"size: 9  # --delta-log-size", `topicPrefix: "a/b"  # $BROADCASTER_TRANSPORTS_MQTT_TOPIC_PREFIX`,
		`sink: "http://sink/"  # $K_SINK`, `password: "(secret)"  # ` + file + ":7: transports.mqtt.password", "format: \"json\"  # --log-format",
		`keyFile: ""  # default`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Errorf("the effective configuration shows a secret:\n%s", out.String())
	}
	again, err := load([]string{"--config", f.write("effective.yaml", out.String())}, env(nil))
	if err != nil {
		t.Fatalf("the effective configuration does not load: %v\n%s", err, out.String())
	}
	mqttOf(first).Password, mqttOf(again).Password = "", ""
	first, again = config.WithoutOrigins(first), config.WithoutOrigins(again)
	if !reflect.DeepEqual(first, again) {
		t.Errorf("loaded back as\n%+v\nwant\n%+v", again, first)
	}
}

// docs/configuration.md holds the table of every setting as the code describes it.
func TestReferenceIsInTheDocs(t *testing.T) {
	t.Parallel()
	var table bytes.Buffer
	config.WriteReference(&table, settings.All())
	path := filepath.Join("..", "docs", "configuration.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s: no %q … %q markers", path, begin, end)
	}
	current := doc[i+len(begin) : j]
	if bytes.Equal(current, table.Bytes()) {
		return
	}
	if !*update {
		t.Fatalf("%s is out of date with the settings: go test ./config -run TestReferenceIsInTheDocs -update", path)
	}
	updated := append(append(append([]byte{}, doc[:i+len(begin)]...), table.Bytes()...), doc[j:]...)
	if err := os.WriteFile(path, updated, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every setting has a unique key, flag and variable, and help.
func TestSettingsAreWellFormed(t *testing.T) {
	t.Parallel()
	keys, flags, envs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range config.TableForTest(settings.All()) {
		if keys[s.Key] || (s.Flag != "" && flags[s.Flag]) || envs[s.Env] {
			t.Errorf("%s: key, flag or variable used twice", s.Key)
		}
		keys[s.Key], flags[s.Flag], envs[s.Env] = true, true, true
		if s.Help == "" || !strings.Contains(s.Key, ".") {
			t.Errorf("%s: no help, or not in a section", s.Key)
		}
		if s.Secret && s.Flag != "" {
			t.Errorf("%s: a secret on the command line shows in ps", s.Key)
		}
	}
}

// FuzzLoadFile: whatever the config file holds, Load never panics, and either accepts it or
// says what is wrong as a usage error.
func FuzzLoadFile(f *testing.F) {
	for _, seed := range []string{
		"source:\n  manifests: .\n",
		"logLevle: debug\n",
		"transports:\n  mqtt:\n    url: mqtt://b:1883\n    password: x\n",
		"source: [\n",
		"- a\n- b\n",
		"a: &x {b: *x}\n",
		"source:\n  namespaces: [a, {b: c}, [d]]\n",
		"server:\n  deltaLog:\n    size: 99999999999999999999\n",
		"leaderElection:\n  leaseDuration: -5s\n",
		"? [a]\n: b\n",
		"logging: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "cfg.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := load([]string{"--manifests", dir, "--config", path}, env(nil))
		if err != nil && !errors.Is(err, config.ErrUsage) {
			t.Fatalf("not a usage error: %v", err)
		}
	})
}
