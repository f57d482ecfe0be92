package option_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

type settings struct{ size int }

func withSize(n int) option.Func[settings] {
	return func(s *settings) error {
		if n < 1 {
			return option.Invalid("size", "%d: want at least 1", n)
		}
		s.size = n
		return nil
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []option.Func[settings]
		want    int
		wantErr string
	}{
		{name: "none", want: 3},
		{name: "one", opts: []option.Func[settings]{withSize(5)}, want: 5},
		{name: "last wins", opts: []option.Func[settings]{withSize(5), withSize(7)}, want: 7},
		{name: "rejected", opts: []option.Func[settings]{withSize(0)}, wantErr: "invalid option: size: 0: want at least 1"},
		{name: "every rejection", opts: []option.Func[settings]{withSize(-1), nil}, wantErr: "nil option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settings{size: 3}
			err := option.Apply(&s, tt.opts...)
			if tt.wantErr != "" {
				if !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.size != tt.want {
				t.Fatalf("size %d, err %v; want %d", s.size, err, tt.want)
			}
		})
	}
	if _, err := option.Logger(nil); !errors.Is(err, option.ErrInvalid) {
		t.Errorf("a nil logger: %v", err)
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	var none io.Writer
	if _, err := option.Required("writer", none); !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), "writer") {
		t.Errorf("nil: %v, want an invalid-option error naming the writer", err)
	}
	if w, err := option.Required[io.Writer]("writer", io.Discard); err != nil || w != io.Discard {
		t.Errorf("set: %v, %v", w, err)
	}
}

func TestPositive(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, -3} {
		if _, err := option.Positive("size", n); !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), "size") {
			t.Errorf("%d: %v, want an invalid-option error naming the size", n, err)
		}
	}
	if n, err := option.Positive("size", 7); err != nil || n != 7 {
		t.Errorf("7: %v, %v", n, err)
	}
}

func TestRequiredFunction(t *testing.T) {
	t.Parallel()
	var none func() int
	if _, err := option.Required("count", none); !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), "count: nil") {
		t.Errorf("nil: %v, want an invalid-option error naming the count", err)
	}
	if f, err := option.Required("count", func() int { return 1 }); err != nil || f() != 1 {
		t.Errorf("set: %v", err)
	}
}

func TestNotEmpty(t *testing.T) {
	t.Parallel()
	if _, err := option.NotEmpty("client id", ""); !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), "client id: empty") {
		t.Errorf("empty: %v, want an invalid-option error naming the client id", err)
	}
	if s, err := option.NotEmpty("client id", "a"); err != nil || s != "a" {
		t.Errorf("a: %q, %v", s, err)
	}
}

func TestPositiveDuration(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := option.PositiveDuration("timeout", d); !errors.Is(err, option.ErrInvalid) || !strings.Contains(err.Error(), "timeout: "+d.String()+": want > 0") {
			t.Errorf("%v: %v, want an invalid-option error naming the timeout", d, err)
		}
	}
	if d, err := option.PositiveDuration("timeout", time.Second); err != nil || d != time.Second {
		t.Errorf("1s: %v, %v", d, err)
	}
}

func TestForSetting(t *testing.T) {
	t.Parallel()
	var invalid *option.InvalidError
	if option.ForSetting("a.b", nil) != nil {
		t.Error("no error is no rejection")
	}
	_, statErr := os.Stat(filepath.Join(t.TempDir(), "missing"))
	tests := []struct {
		name       string
		err        error
		reason     string
		incomplete bool
	}{
		{"a part's rejection", option.Invalid("mqtt topic prefix", "%q: want a topic without wildcards", "a/#"), `"a/#": want a topic without wildcards`, false},
		{"a joined rejection", errors.Join(option.Invalid("size", "0: want at least 1")), "0: want at least 1", false},
		{"a path error", statErr, "no such file or directory", false},
		{"another error", errors.New("no PEM certificate in the file"), "no PEM certificate in the file", false},
		{"an incomplete setting", option.Incomplete("user", "needs a password"), "needs a password", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := option.ForSetting("transports.x.y", tt.err)
			if !errors.As(err, &invalid) || invalid.Setting != "transports.x.y" || invalid.Reason != tt.reason || invalid.Incomplete != tt.incomplete {
				t.Errorf("got %#v, want transports.x.y: %q (incomplete %v)", err, tt.reason, tt.incomplete)
			}
		})
	}
}

// Logs, errors, metric labels and the effective configuration never show the credentials of
// a URL.
func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://user:s3cret@broker.example/ns/b?token=abc": "https://broker.example/ns/b?…",
		"http://broker.example/ns/b":                        "http://broker.example/ns/b",
		"::not a url":                                       "(unreadable URL)",
	} {
		if got := option.RedactURL(raw); got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "abc") {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Each server of a comma-separated list (nats.go's cluster URLs) loses its credentials.
func TestRedactURLList(t *testing.T) {
	t.Parallel()
	got := option.RedactURL("nats://u:s3cret@a:4222, nats://b:4222?token=abc")
	if want := "nats://a:4222,nats://b:4222?…"; got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "abc") {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
}
