package option

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"
)

// ErrInvalid wraps every rejected option, whichever part rejects it.
var ErrInvalid = errors.New("invalid option")

// Func sets one setting in a part's options struct T, or says why the value cannot be used.
type Func[T any] func(*T) error

// Apply applies opts to o in order and returns every rejection, joined.
func Apply[T any](o *T, opts ...Func[T]) error {
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("%w: nil option", ErrInvalid))
			continue
		}
		errs = append(errs, opt(o))
	}
	return errors.Join(errs...)
}

// Check applies opts to a zero T: whether a part would accept them, without building it.
func Check[T any](opts ...Func[T]) error {
	var o T
	return Apply(&o, opts...)
}

// InvalidError is a rejected setting. It is ErrInvalid (errors.Is).
type InvalidError struct {
	Setting string // what the part calls the setting
	Reason  string // why the value cannot be used
	// Incomplete: the setting needs another one; its value is not at fault.
	Incomplete bool
}

func (e *InvalidError) Error() string { return ErrInvalid.Error() + ": " + e.Setting + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid is the error of a rejected setting, naming it and saying why.
func Invalid(setting, format string, args ...any) error {
	return &InvalidError{Setting: setting, Reason: fmt.Sprintf(format, args...)}
}

// Logger checks a logger given as an option; parts log nothing unless they are given one.
func Logger(l *slog.Logger) (*slog.Logger, error) {
	if l == nil {
		return nil, Invalid("logger", "nil (leave the option out to log nothing)")
	}
	return l, nil
}

// Required returns v, or an error naming what when v is nil (a clock, a client, a handler,
// a function).
func Required[T any](what string, v T) (T, error) {
	if isNil(reflect.ValueOf(&v).Elem()) {
		return v, Invalid(what, "nil")
	}
	return v, nil
}

// isNil reports whether v is nil, or the zero value of a type that cannot be nil.
func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice, reflect.UnsafePointer:
		return v.IsNil()
	}
	return v.IsZero()
}

// NotEmpty returns s, or an error naming what when s is empty (a name, an id).
func NotEmpty(what, s string) (string, error) {
	if s == "" {
		return s, Invalid(what, "empty")
	}
	return s, nil
}

// Positive returns n, or an error naming what when n is below 1 (a size, a count, a bound).
func Positive[T ~int | ~int64](what string, n T) (T, error) {
	if n < 1 {
		return n, Invalid(what, "%d: want at least 1", n)
	}
	return n, nil
}

// PositiveDuration returns d, or an error naming what when d is not above zero (a timeout, an
// interval).
func PositiveDuration(what string, d time.Duration) (time.Duration, error) {
	if d <= 0 {
		return d, Invalid(what, "%v: want > 0", d)
	}
	return d, nil
}

// Discard is the logger of a part given none.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Setting describes one setting of a part as users give it: under its key in the config file,
// as a flag, and as an environment variable (config derives BROADCASTER_... from the key).
// config reads the value into Field and shows the setting in the help; the part checks it.
type Setting struct {
	Key         string // in the config file: "transports.mqtt.url"
	Flag        string // without dashes; "" when only the file and the environment set it
	FallbackEnv string // a well-known variable that supplies the value when nothing else does (K_SINK)
	Placeholder string // names the flag's argument in the help ("url", "file")
	Help        string
	Secret      bool // never shown: the effective configuration and errors say "(secret)"
	Field       any  // the field it sets: a *string, a *bool, an *int or a *[]string (a list)
}

// ForSetting is err as a rejection of the setting key ("transports.mqtt.url"): its reason is
// the part's own (an InvalidError's) or err's text, without the file name a path error
// repeats. It is nil when err is.
func ForSetting(key string, err error) error {
	if err == nil {
		return nil
	}
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return &InvalidError{Setting: key, Reason: invalid.Reason, Incomplete: invalid.Incomplete}
	}
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err
	}
	return &InvalidError{Setting: key, Reason: err.Error()}
}

// Incomplete is the error of a setting that needs another one (a password its user name): the
// value is not at fault, so messages need not repeat it.
func Incomplete(setting, format string, args ...any) error {
	return &InvalidError{Setting: setting, Reason: fmt.Sprintf(format, args...), Incomplete: true}
}

// RedactURL removes what may be a credential from a URL, for logs, errors, metric labels and
// the effective configuration: its user information and its query; each URL of a
// comma-separated list.
func RedactURL(rawURL string) string {
	if strings.Contains(rawURL, ",") { // a list of servers (nats.go takes one)
		parts := strings.Split(rawURL, ",")
		for i, p := range parts {
			parts[i] = RedactURL(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unreadable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}
