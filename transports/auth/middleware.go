package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strings"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Mesh is what Middleware needs of the mesh it guards.
type Mesh interface {
	// Ready reports whether the mesh is loaded: before, per-namespace access cannot be decided.
	Ready() bool
	// Namespaces lists the mesh's namespaces, the ones worth asking about.
	Namespaces() []string
}

type middlewareOptions struct{ log *slog.Logger }

// MiddlewareOption configures Middleware.
type MiddlewareOption = option.Func[middlewareOptions]

// WithLogger logs the failures to check a token.
func WithLogger(l *slog.Logger) MiddlewareOption {
	return func(o *middlewareOptions) (err error) { o.log, err = option.Logger(l); return err }
}

// Middleware lets through only requests whose bearer token a accepts, each with its caller's
// Access (FromRequest): 401 without a token a accepts, 403 for a caller who may see nothing,
// 503 while m is loading or when the check itself fails. Defaults: no logging.
func Middleware(a Authorizer, m Mesh, opts ...MiddlewareOption) (func(http.Handler) http.Handler, error) {
	o := middlewareOptions{log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if a == nil || m == nil {
		return nil, option.Invalid("authorizer", "an Authorizer and the mesh are required")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Authorization")
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if token = strings.TrimSpace(token); !strings.EqualFold(scheme, "Bearer") || token == "" { // the scheme is case-insensitive (RFC 9110)
				unauthorized(w)
				return
			}
			if !m.Ready() {
				w.Header().Set("Retry-After", "1")
				writeProblem(w, http.StatusServiceUnavailable, "the mesh is still loading")
				return
			}
			access, err := a.Authorize(r.Context(), token, m.Namespaces)
			switch {
			case errors.Is(err, ErrUnauthenticated):
				unauthorized(w)
			case errors.Is(err, ErrBusy):
				w.Header().Set("Retry-After", "1")
				writeProblem(w, http.StatusTooManyRequests, "too many new tokens to check now; try again shortly")
			case err != nil:
				o.log.Error("cannot check a caller's token", "err", err, "remote", r.RemoteAddr)
				w.Header().Set("Retry-After", "1")
				writeProblem(w, http.StatusServiceUnavailable, "cannot check the token now")
			case !access.All && len(access.Namespaces) == 0:
				writeProblem(w, http.StatusForbidden, access.Subject+" may not list eventtypes in any namespace of the mesh")
			default:
				recheck := func(ctx context.Context) (Access, error) { return a.Authorize(ctx, token, m.Namespaces) }
				ctx := context.WithValue(r.Context(), accessKey{}, access)
				next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, recheckKey{}, recheck)))
			}
		})
	}, nil
}

// FromRequest is the Access of the request's caller: everything when no Middleware guards
// the route (open endpoints).
func FromRequest(r *http.Request) Access {
	if a, ok := r.Context().Value(accessKey{}).(Access); ok {
		return a
	}
	return Access{All: true}
}

type accessKey struct{}

type recheckKey struct{}

// Recheck asks the Authorizer again about the request's caller (for a long stream, whose
// access may change while it lasts); nil when no Middleware guards the route.
func Recheck(r *http.Request) func(context.Context) (Access, error) {
	f, _ := r.Context().Value(recheckKey{}).(func(context.Context) (Access, error))
	return f
}

// Same reports whether a and b show the same things.
func (a Access) Same(b Access) bool {
	return a.All == b.All && maps.Equal(a.Namespaces, b.Namespaces)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="event-mesh"`)
	writeProblem(w, http.StatusUnauthorized, "a valid bearer token is required")
}

func writeProblem(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", mesh.ContentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(mesh.Problem{Error: reason})
}
