package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
	tests := []struct {
		name    string
		args    []string
		want    Config
		wantErr string
	}{
		{"defaults", []string{"--manifests", dir}, Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info"}, ""},
		{"file", []string{"--config", file}, Config{Manifests: dir, Listen: "127.0.0.1:9999", LogLevel: "debug"}, ""},
		{"flags win over file", []string{"--config", file, "--listen", ":1234"}, Config{Manifests: dir, Listen: ":1234", LogLevel: "debug"}, ""},
		{"tokens", []string{"--manifests", dir, "--tokens-file", tokens}, Config{Manifests: dir, Listen: DefaultListen, LogLevel: "info", TokensFile: tokens, Tokens: []string{"abc", "def"}}, ""},
		{"no source", nil, Config{}, "no source"},
		{"missing dir", []string{"--manifests", filepath.Join(dir, "nope")}, Config{}, "--manifests"},
		{"file as dir", []string{"--manifests", file}, Config{}, "not a directory"},
		{"bad listen", []string{"--manifests", dir, "--listen", "nope"}, Config{}, `--listen "nope"`},
		{"bad level", []string{"--manifests", dir, "--log-level", "loud"}, Config{}, "--log-level"},
		{"unknown flag", []string{"--manifest", dir}, Config{}, "flag provided but not defined"},
		{"stray arg", []string{"--manifests", dir, "extra"}, Config{}, `unexpected argument "extra"`},
		{"unknown field", []string{"--config", write("bad.yaml", "manifests: x\nlisten2: y\n")}, Config{}, `unknown field "listen2"`},
		{"empty tokens", []string{"--manifests", dir, "--tokens-file", write("empty", "# none\n")}, Config{}, "no tokens"},
		{"token with space", []string{"--manifests", dir, "--tokens-file", write("sp", "a b\n")}, Config{}, "sp:1: a token cannot contain spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Manifests != tt.want.Manifests || got.Listen != tt.want.Listen || got.LogLevel != tt.want.LogLevel ||
				strings.Join(got.Tokens, ",") != strings.Join(tt.want.Tokens, ",") {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
