package option

import (
	"errors"
	"fmt"
	"log/slog"
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

// Invalid is the error of a rejected setting: it wraps ErrInvalid and names the setting.
func Invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, setting, fmt.Sprintf(format, args...))
}

// Logger checks a logger given as an option; parts log nothing unless they are given one.
func Logger(l *slog.Logger) (*slog.Logger, error) {
	if l == nil {
		return nil, Invalid("logger", "nil (leave the option out to log nothing)")
	}
	return l, nil
}

// Discard is the logger of a part given none.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
