package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/config"
)

// events.cluster comes from the file, the flag or the variable, the flag winning; a name that
// cannot be a NATS token, an MQTT level or a source segment is refused naming the setting.
func TestClusterName(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	file := f.write("fleet.yaml", "source:\n  manifests: "+f.dir+"\nevents:\n  cluster: east\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the name, or the error's text
		bad  bool
	}{
		{name: "unset", args: []string{"--manifests", f.dir}, want: ""},
		{name: "file", args: []string{"--config", file}, want: "east"},
		{name: "variable over file", args: []string{"--config", file}, env: map[string]string{"BROADCASTER_EVENTS_CLUSTER": "west"}, want: "west"},
		{name: "flag over variable", args: []string{"--config", file, "--cluster-name", "north-2"}, env: map[string]string{"BROADCASTER_EVENTS_CLUSTER": "west"}, want: "north-2"},
		{name: "a dot", args: []string{"--manifests", f.dir, "--cluster-name", "eu.west"}, bad: true,
			want: `--cluster-name "eu.west": "eu.west": '.' at byte 2 cannot appear in a cluster name`},
		{name: "a wildcard in the file", args: []string{"--config", f.write("star.yaml", "source:\n  manifests: "+f.dir+"\nevents:\n  cluster: '*'\n")}, bad: true,
			want: `star.yaml:4: events.cluster "*": `},
		{name: "a slash in the variable", args: []string{"--manifests", f.dir}, env: map[string]string{"BROADCASTER_EVENTS_CLUSTER": "a/b"}, bad: true,
			want: `$BROADCASTER_EVENTS_CLUSTER "a/b": `},
		{name: "too long", args: []string{"--manifests", f.dir, "--cluster-name", strings.Repeat("c", 64)}, bad: true, want: "more than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(tt.args, env(tt.env))
			switch {
			case tt.bad && (!errors.Is(err, config.ErrUsage) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want a usage error with %q", err, tt.want)
			case !tt.bad && err != nil:
				t.Fatal(err)
			case !tt.bad && c.ClusterName != tt.want:
				t.Fatalf("cluster %q, want %q", c.ClusterName, tt.want)
			}
		})
	}
}
