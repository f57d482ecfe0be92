package resync

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// DefaultMaxDeltaRequests bounds the GET /v1/deltas answers written at once: each holds a page
// of the change log being written (DeltasChunk changes) and a 32 KiB buffer, so a crowd of
// callers that stop reading costs a fixed budget, whatever the log holds.
const DefaultMaxDeltaRequests = 64

// WithMaxDeltaRequests answers at most n GET /v1/deltas at once; more are answered 503 with
// Retry-After, as watch streams beyond their cap are.
func WithMaxDeltaRequests(n int) Option {
	return func(o *options) (err error) { o.maxDeltas, err = option.Positive("max delta requests", n); return err }
}

// deltaSlots is the semaphore of GET /v1/deltas answers.
type deltaSlots chan struct{}

// take a slot, or answer 503 and report false.
func (s deltaSlots) take(w http.ResponseWriter) bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many GET %s answers at once (%d); try again shortly",
			"/v1/deltas", cap(s)))
		return false
	}
}

func (s deltaSlots) release() { <-s }

// AllowHosts serves only requests whose Host is an IP address, a loopback name (localhost,
// *.localhost) or one of names; others get a 403 Problem saying which setting admits them. It
// guards endpoints open to anyone who can connect (manifests mode without tokens) against DNS
// rebinding: a web page a user visits that rebinds its own name to 127.0.0.1 sends its name as
// Host, never an address. Names compare case-insensitively; "*.example.com" admits every name
// under example.com.
func AllowHosts(names []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	var suffixes []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			suffixes = append(suffixes, "."+rest)
			continue
		}
		allowed[n] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOf(r.Host)
		if hostAllowed(host, allowed, suffixes) {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusForbidden, fmt.Sprintf("Host %q is not served: without access control only loopback names, "+
			"IP addresses and the names in server.allowedHosts (--allowed-hosts) are, against DNS rebinding", host))
	})
}

// hostOf is the name or address of a Host header, without port, brackets or trailing dot.
func hostOf(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

func hostAllowed(host string, allowed map[string]bool, suffixes []string) bool {
	if host == "" || net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") || allowed[host] {
		return true // an HTTP/1.0 request without Host names nothing a page could rebind
	}
	for _, s := range suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// DefaultMaxConnections bounds the connections open at once, idle keep-alives included.
const DefaultMaxConnections = 4096

// LimitConnections returns ln, accepting at most n connections open at once: one beyond them
// is closed as soon as it is accepted (the caller sees the connection reset and may try again),
// so idle connections cannot pile up past a fixed budget. Wrap the TCP listener, before TLS.
func LimitConnections(ln net.Listener, n int) (net.Listener, error) {
	if _, err := option.Positive("max connections", n); err != nil {
		return nil, err
	}
	return &limitedListener{Listener: ln, max: n}, nil
}

type limitedListener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open int
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		full := l.open >= l.max
		if !full {
			l.open++
		}
		l.mu.Unlock()
		if full {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

// Open is the number of connections accepted and not closed yet.
func (l *limitedListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

type countedConn struct {
	net.Conn
	l    *limitedListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// RequireToken serves next only to requests that present Authorization: Bearer and one of
// tokens (each compared in constant time); others get a 401 Problem. For /metrics when
// server.metricsTokenFile is set.
func RequireToken(tokens []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		ok := 0
		for _, t := range tokens {
			ok |= subtle.ConstantTimeCompare(got, []byte("Bearer "+t))
		}
		if ok != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required (the one in server.metricsTokenFile)")
			return
		}
		next.ServeHTTP(w, r)
	})
}
