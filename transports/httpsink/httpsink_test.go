package httpsink

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

func changes(from, to uint64) []mesh.Change {
	var cs []mesh.Change
	for seq := from; seq <= to; seq++ {
		name := fmt.Sprintf("b%d", seq)
		cs = append(cs, mesh.Change{Epoch: "ep", Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key:    mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name),
			Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `","uid":"","labels":null,"annotations":null,"providedEventTypes":[]}`)})
	}
	return cs
}

// recordingSink is a real HTTP sink that decodes what it accepts; answer decides each reply.
type recordingSink struct {
	mu       sync.Mutex
	accepted []uint64
	attempts map[string]int
	headers  []http.Header
	answer   func(seq uint64, attempt int, w http.ResponseWriter) bool // true: accepted
}

func (s *recordingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := testkit.DecodeRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[mesh.EventID(c.Epoch, c.Sequence)]++
	s.headers = append(s.headers, r.Header.Clone())
	if s.answer == nil || s.answer(c.Sequence, s.attempts[mesh.EventID(c.Epoch, c.Sequence)], w) {
		s.accepted = append(s.accepted, c.Sequence)
		w.WriteHeader(http.StatusAccepted)
	}
}

func newSink(t *testing.T, answer func(uint64, int, http.ResponseWriter) bool) (*recordingSink, *httptest.Server) {
	rs := &recordingSink{attempts: map[string]int{}, answer: answer}
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	return rs, srv
}

func encoder(t *testing.T) *codec.Encoder {
	enc, err := codec.NewEncoder("https://cluster.example/mesh")
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestRetriesUntilAccepted(t *testing.T) {
	t.Parallel()
	rs, srv := newSink(t, func(seq uint64, attempt int, w http.ResponseWriter) bool {
		switch {
		case seq == 2 && attempt == 1:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
		case seq == 2 && attempt == 2:
			w.WriteHeader(http.StatusTooManyRequests)
		case seq == 4 && attempt < 4:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			return true
		}
		return false
	})
	var waits []time.Duration
	s, err := New(srv.URL, encoder(t), WithSleep(func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Publish(context.Background(), changes(1, 5)); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 2, 3, 4, 5}; !reflect.DeepEqual(rs.accepted, want) {
		t.Fatalf("accepted %v, want %v", rs.accepted, want)
	}
	if rs.attempts["ep-2"] != 3 || rs.attempts["ep-4"] != 4 {
		t.Fatalf("attempts %v", rs.attempts)
	}
	if len(waits) != 5 || waits[0] != 2*time.Second {
		t.Fatalf("waits %v: want 5, the first the sink's Retry-After of 2s", waits)
	}
	// Full jitter under Base·2ⁿ: event 2's second retry, then event 4's first three.
	for i, ceiling := range []time.Duration{200, 100, 200, 400} {
		if w := waits[i+1]; w < 0 || w > ceiling*time.Millisecond {
			t.Errorf("wait %d = %v beyond the backoff ceiling %vms", i+1, w, ceiling)
		}
	}
	h := rs.headers[0]
	if h.Get("Ce-Type") != "dev.knative.eventmesh.broker.added" || h.Get("Ce-Meshseq") != "1" ||
		h.Get("Ce-Meshepoch") != "ep" || h.Get("Ce-Source") != "https://cluster.example/mesh" {
		t.Errorf("binary-mode headers: %v", h)
	}
}

func TestRejectedEventsAreSkipped(t *testing.T) {
	t.Parallel()
	rs, srv := newSink(t, func(seq uint64, _ int, w http.ResponseWriter) bool {
		if seq == 2 {
			w.WriteHeader(http.StatusBadRequest)
			return false
		}
		return true
	})
	s, _ := New(srv.URL, encoder(t))
	err := s.Publish(context.Background(), changes(1, 3))
	if !errors.Is(err, transports.ErrRejected) || !strings.Contains(err.Error(), "ep-2") {
		t.Fatalf("error %v, want ErrRejected naming ep-2", err)
	}
	if !reflect.DeepEqual(rs.accepted, []uint64{1, 3}) {
		t.Fatalf("accepted %v", rs.accepted)
	}
}

func TestStructuredModeAndOverrides(t *testing.T) {
	t.Parallel()
	rs, srv := newSink(t, nil)
	s, err := New(srv.URL, encoder(t), WithStructured(), WithOverrides(`{"extensions":{"cluster":"prod-eu"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), changes(1, 1)); err != nil {
		t.Fatal(err)
	}
	if ct := rs.headers[0].Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("structured mode content type %q", ct)
	}
	for _, bad := range []string{`{"extensions":{"meshseq":"1"}}`, `{"extensions":{"Bad-Name":"x"}}`, `{not json`, `{"extensions":{"meshSeq":"1"}}`, `{"extensions":{"cluster":"eu\nx"}}`, `{"extensions":{"cluster":"eu\u0000"}}`} {
		if _, err := New(srv.URL, encoder(t), WithOverrides(bad)); !errors.Is(err, option.ErrInvalid) {
			t.Errorf("overrides %s: %v, want option.ErrInvalid", bad, err)
		}
	}
	for _, bad := range []string{"", "ftp://x", "/relative", "http://"} {
		if _, err := New(bad, encoder(t)); !errors.Is(err, option.ErrInvalid) {
			t.Errorf("target %q accepted", bad)
		}
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	t.Parallel()
	rs := &recordingSink{attempts: map[string]int{}}
	srv := httptest.NewUnstartedServer(rs)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted client's handshake failure
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	untrusted, _ := New(srv.URL, encoder(t), WithSleep(func(context.Context, time.Duration) error {
		return errors.New("gave up")
	}))
	if err := untrusted.Publish(context.Background(), changes(1, 1)); err == nil {
		t.Fatal("a sink with an unknown CA was trusted")
	}
	trusted, err := New(srv.URL, encoder(t), WithCACertificates(caPEM))
	if err != nil {
		t.Fatal(err)
	}
	if err := trusted.Publish(context.Background(), changes(1, 2)); err != nil {
		t.Fatal(err)
	}
	if len(rs.accepted) != 2 {
		t.Fatalf("accepted %v", rs.accepted)
	}
	if _, err := New(srv.URL, encoder(t), WithCACertificates([]byte("nope"))); !errors.Is(err, option.ErrInvalid) {
		t.Errorf("bad PEM: %v", err)
	}
}

// Options write into the sink's settings, so their order never matters, and an injected
// client is used as it is: the request timeout bounds each request without changing it.
func TestOptionOrderAndInjectedClient(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hanging.Close()
	defer close(release)
	stop := errors.New("no retry")
	noRetry := WithSleep(func(context.Context, time.Duration) error { return stop })
	for name, order := range map[string]func(c *http.Client) []Option{
		"client first": func(c *http.Client) []Option {
			return []Option{WithHTTPClient(c), WithTimeout(50 * time.Millisecond), noRetry}
		},
		"timeout first": func(c *http.Client) []Option {
			return []Option{WithTimeout(50 * time.Millisecond), WithHTTPClient(c), noRetry}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			transport := &http.Transport{}
			client := &http.Client{Transport: transport}
			s, err := New(hanging.URL, encoder(t), order(client)...)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Publish(context.Background(), changes(1, 1)) }()
			select {
			case err := <-done:
				if !errors.Is(err, stop) {
					t.Fatalf("publish: %v, want the timed-out request retried (and the retry refused)", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the timeout did not bound the request")
			}
			if client.Timeout != 0 || client.Transport != transport || client.Jar != nil || client.CheckRedirect != nil {
				t.Fatal("the injected client was changed")
			}
		})
	}
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if _, err := New(tlsSrv.URL, encoder(t), WithHTTPClient(http.DefaultClient), WithCACertificates(caPEM)); !errors.Is(err, option.ErrInvalid) {
		t.Errorf("CA certificates with an injected client: %v, want ErrInvalid", err)
	}
}

// A redirect is a failure to retry, never followed: the event is not counted as delivered, and
// the sink cannot send the broadcaster to another host.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirecting := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusFound))
	defer redirecting.Close()
	stop := errors.New("no more retries")
	var waits int
	s, err := New(redirecting.URL, encoder(t), WithSleep(func(context.Context, time.Duration) error {
		if waits++; waits == 3 {
			return stop
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), changes(1, 1)); !errors.Is(err, stop) {
		t.Fatalf("publish: %v, want the redirect retried until the retries stop", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}
