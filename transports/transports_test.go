package transports_test

import (
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// Logs, errors and metric labels never show the credentials of a URL.
func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://user:s3cret@broker.example/ns/b?token=abc": "https://broker.example/ns/b?…",
		"http://broker.example/ns/b":                        "http://broker.example/ns/b",
	} {
		if got := transports.RedactURL(raw); got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "abc") {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
