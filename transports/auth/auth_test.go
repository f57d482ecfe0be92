package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

type fakeMesh struct{ ready bool }

func (m fakeMesh) Ready() bool          { return m.ready }
func (m fakeMesh) Namespaces() []string { return []string{"a", "b"} }

// byToken grants by token: "all" everything, "a" namespace a, "none" nothing, "broken" fails.
type byToken struct{}

func (byToken) Authorize(_ context.Context, token string, namespaces func() []string) (auth.Access, error) {
	switch token {
	case "all":
		return auth.Access{Subject: "all", All: true}, nil
	case "a":
		return auth.Access{Subject: "a", Namespaces: map[string]bool{namespaces()[0]: true}}, nil
	case "none":
		return auth.Access{Subject: "none"}, nil
	case "broken":
		return auth.Access{}, errors.New("api server unreachable")
	case "flood":
		return auth.Access{}, auth.ErrBusy
	}
	return auth.Access{}, auth.ErrUnauthenticated
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  string
		ready   bool
		want    int
		wantSee string // a namespace the handler's Access must see
	}{
		{name: "no header", ready: true, want: http.StatusUnauthorized},
		{name: "not a bearer token", header: "Basic YTpi", ready: true, want: http.StatusUnauthorized},
		{name: "unknown token", header: "Bearer mallory", ready: true, want: http.StatusUnauthorized},
		{name: "mesh loading", header: "Bearer all", want: http.StatusServiceUnavailable},
		{name: "check fails", header: "Bearer broken", ready: true, want: http.StatusServiceUnavailable},
		{name: "too many new tokens", header: "Bearer flood", ready: true, want: http.StatusTooManyRequests},
		{name: "allowed nowhere", header: "Bearer none", ready: true, want: http.StatusForbidden},
		{name: "one namespace", header: "Bearer a", ready: true, want: http.StatusOK, wantSee: "a"},
		{name: "everything", header: "Bearer all", ready: true, want: http.StatusOK, wantSee: "b"},
		{name: "scheme in any case", header: "bearer all", ready: true, want: http.StatusOK, wantSee: "b"},
		{name: "no token after the scheme", header: "Bearer ", ready: true, want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			guard, err := auth.Middleware(byToken{}, fakeMesh{tt.ready})
			if err != nil {
				t.Fatal(err)
			}
			var seen auth.Access
			h := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = auth.FromRequest(r) }))
			req := httptest.NewRequest(http.MethodGet, "/v1/mesh", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.wantSee != "" && (!seen.Sees(tt.wantSee) || (!seen.All && seen.Sees("b"))) {
				t.Errorf("the handler got access %+v", seen)
			}
		})
	}
	if a := auth.FromRequest(httptest.NewRequest(http.MethodGet, "/", nil)); !a.All {
		t.Error("an unguarded request must see everything")
	}
}

func TestStaticTokens(t *testing.T) {
	t.Parallel()
	a, err := auth.StaticTokens([]string{"s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	for token, wantErr := range map[string]error{"s3cret": nil, "s3cre": auth.ErrUnauthenticated, "": auth.ErrUnauthenticated} {
		if _, err := a.Authorize(context.Background(), token, nil); !errors.Is(err, wantErr) {
			t.Errorf("token %q: %v, want %v", token, err, wantErr)
		}
	}
	for _, bad := range [][]string{nil, {" "}, {"ok", ""}} {
		if _, err := auth.StaticTokens(bad); err == nil {
			t.Errorf("tokens %q accepted", bad)
		}
	}
}
