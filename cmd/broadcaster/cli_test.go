package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each command's help is on stdout, exit status 0, and equal to its golden file
// (go test ./cmd/broadcaster -run TestHelp -update rewrites them).
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"overview", []string{"--help"}},
		{"overview", []string{"-h"}},
		{"overview", []string{"help"}},
		{"overview", []string{"help", "run"}},
		{"tail", []string{"help", "tail"}},
		{"tail", []string{"tail", "--help"}},
		{"check-config", []string{"help", "check-config"}},
		{"check-config", []string{"check-config", "--help"}},
		{"version", []string{"help", "version"}},
		{"version", []string{"version", "--help"}},
		{"help", []string{"help", "help"}},
		{"snapshot", []string{"help", "snapshot"}},
		{"snapshot", []string{"snapshot", "--help"}},
		{"page", []string{"help", "page"}},
		{"page", []string{"page", "--help"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if status := runCommand(context.Background(), tt.args, noEnv, &stdout, &stderr, false); status != exitOK || stderr.Len() > 0 {
				t.Fatalf("status %d, stderr %q", status, stderr.String())
			}
			path := filepath.Join("testdata", "help", tt.golden+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != string(want) {
				t.Errorf("help differs from %s (-update rewrites it):\n%s", path, stdout.String())
			}
		})
	}
}

// Exit statuses: 0 for success, 2 for usage and configuration errors, 1 for failures at run
// time; each error on stderr, starting "broadcaster:".
func TestExitStatus(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		args   []string
		env    map[string]string
		status int
		says   string // in stdout for status 0, in stderr otherwise
	}{
		{"version", []string{"version"}, nil, exitOK, "broadcaster "},
		{"--version", []string{"--version"}, nil, exitOK, "  go      go"},
		{"effective configuration", []string{"check-config", "--manifests", dir}, nil, exitOK, "manifests: \"" + dir + "\"  # --manifests"},
		{"unknown command", []string{"frob"}, nil, exitUsage, `unknown command "frob"`},
		{"help of an unknown command", []string{"help", "frob"}, nil, exitUsage, `unknown command "frob"`},
		{"version with arguments", []string{"version", "now"}, nil, exitUsage, "version takes no arguments"},
		{"an unknown flag", []string{"--frob"}, nil, exitUsage, "--frob: unknown flag"},
		{"a configuration problem", []string{"--manifests", dir, "--queue-size", "0"}, nil, exitUsage, "--queue-size: unknown flag"},
		{"a configuration problem in a variable", []string{"--manifests", dir}, map[string]string{"K_CE_OVERRIDES": "{"}, exitUsage, "$K_CE_OVERRIDES"},
		{"check-config with a problem", []string{"check-config", "--manifests", dir, "--log-level", "loud"}, nil, exitUsage, `--log-level "loud"`},
		{"tail without a source", []string{"tail"}, nil, exitUsage, "give exactly one of"},
		{"a failure at run time", []string{"--manifests", dir, "--listen", busy.Addr().String()}, nil, exitFailure, "--listen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// A command expected to fail that runs instead ends with the context: status 0.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			status := runCommand(ctx, tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr, false)
			out := stdout.String()
			if tt.status != exitOK {
				out = stderr.String()
				if !strings.HasPrefix(out, "broadcaster: ") {
					t.Errorf("stderr %q does not start with the program's name", out)
				}
			}
			if status != tt.status || !strings.Contains(out, tt.says) {
				t.Errorf("status %d, output\n%s\nwant status %d and %q", status, out, tt.status, tt.says)
			}
		})
	}
}
