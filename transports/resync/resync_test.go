package resync

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

func newServer(t *testing.T, opts ...Option) (*httptest.Server, *hub.Hub, *atomic.Bool) {
	t.Helper()
	var ready atomic.Bool
	h := testkit.Must(hub.New(engine.New("ep1"), ready.Load))
	handler, err := New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv, h, &ready
}

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestSnapshotEndpoints(t *testing.T) {
	t.Parallel()
	srv, h, ready := newServer(t)
	for _, path := range []string{"/v1/getEventMesh", "/v1/mesh", "/readyz"} {
		if resp, _ := get(t, srv.URL+path, ""); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s before the first full load: %d, want 503", path, resp.StatusCode)
		}
	}
	h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": "orders", "namespace": "shop"}}}))
	ready.Store(true)

	resp, body := get(t, srv.URL+"/v1/getEventMesh", "")
	if resp.StatusCode != 200 || resp.Header.Get(mesh.HeaderEpoch) != "ep1" || resp.Header.Get(mesh.HeaderSequence) != "1" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("getEventMesh: %d %v", resp.StatusCode, resp.Header)
	}
	var m mesh.EventMesh
	if err := json.Unmarshal([]byte(body), &m); err != nil || len(m.Brokers) != 1 || m.Brokers[0].Name != "orders" ||
		m.EventTypes == nil || m.Sources == nil || m.Subscribables == nil {
		t.Fatalf("getEventMesh body %s (%v)", body, err)
	}

	_, body = get(t, srv.URL+"/v1/mesh", "")
	var wrapped struct {
		Epoch    string         `json:"epoch"`
		Sequence uint64         `json:"sequence"`
		Mesh     mesh.EventMesh `json:"mesh"`
	}
	if err := json.Unmarshal([]byte(body), &wrapped); err != nil || wrapped.Epoch != "ep1" || wrapped.Sequence != 1 ||
		len(wrapped.Mesh.Brokers) != 1 {
		t.Fatalf("mesh body %s (%v)", body, err)
	}
	if resp, _ := get(t, srv.URL+"/v1/nothing", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
}

func TestStaticTokens(t *testing.T) {
	t.Parallel()
	tokens, err := auth.StaticTokens([]string{"s3cret", "other"})
	if err != nil {
		t.Fatal(err)
	}
	srv, _, ready := newServer(t, WithAuthorizer(tokens))
	ready.Store(true)
	tests := []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"s3cre", 401}, {"s3cret", 200}, {"other", 200}}
	for _, tt := range tests {
		resp, body := get(t, srv.URL+"/v1/getEventMesh", tt.token)
		if resp.StatusCode != tt.want {
			t.Errorf("token %q: %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
		if tt.want == 401 && (!strings.Contains(body, `"error"`) || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("token %q: 401 without a reason: %s %v", tt.token, body, resp.Header)
		}
	}
	if resp, _ := get(t, srv.URL+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("healthz needs no token, got %d", resp.StatusCode)
	}
	if _, err := auth.StaticTokens([]string{" "}); err == nil {
		t.Error("blank token accepted")
	}
}

func TestDeltasAndETag(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	ready.Store(true)
	h := testkit.Must(hub.New(engine.New("ep1"), ready.Load))
	deltaLog, _ := changelog.New("ep1", changelog.WithMaxChanges(3))
	h.Listen(deltaLog.Append)
	enc, _ := codec.NewEncoder("")
	handler, err := New(h, WithDeltaLog(deltaLog, enc))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	for i := range 5 {
		h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "shop"}}}))
	}

	resp, body := get(t, srv.URL+"/v1/deltas?epoch=ep1&since=3", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/cloudevents-batch+json" ||
		resp.Header.Get(mesh.HeaderSequence) != "5" {
		t.Fatalf("deltas: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal([]byte(body), &batch); err != nil || len(batch) != 2 {
		t.Fatalf("batch %s: %v", body, err)
	}
	for i, raw := range batch {
		c, err := codec.DecodeStructured(raw)
		if err != nil || c.Sequence != uint64(4+i) {
			t.Fatalf("batch[%d]: %+v %v", i, c, err)
		}
	}
	for query, want := range map[string]string{
		"epoch=ep1&since=1": `"reason":"expired"`,
		"epoch=old&since=4": `"reason":"epoch"`,
	} {
		if resp, body := get(t, srv.URL+"/v1/deltas?"+query, ""); resp.StatusCode != http.StatusGone || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 410 with %s", query, resp.StatusCode, body, want)
		}
	}
	for _, query := range []string{"epoch=ep1&since=9", "since=1", "epoch=ep1&since=x"} {
		if resp, _ := get(t, srv.URL+"/v1/deltas?"+query, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", query, resp.StatusCode)
		}
	}

	// Snapshots: ETag from epoch+sequence; If-None-Match → 304 until the mesh changes.
	resp, _ = get(t, srv.URL+"/v1/getEventMesh", "")
	etag := resp.Header.Get("ETag")
	if etag != `"ep1-5"` {
		t.Fatalf("ETag %q", etag)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/getEventMesh", nil)
	req.Header.Set("If-None-Match", etag)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged snapshot: %v %v, want 304", resp.StatusCode, err)
	}
	h.Apply(engine.Deletes(engine.RefOf(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
		"metadata": map[string]any{"name": "b0", "namespace": "shop"}}})))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"ep1-6"` {
		t.Fatalf("changed snapshot: %v %v", resp.StatusCode, err)
	}
}

// A client that accepts gzip gets the same mesh, compressed once per sequence.
func TestSnapshotGzip(t *testing.T) {
	t.Parallel()
	srv, h, ready := newServer(t)
	ready.Store(true)
	for i := range 50 {
		h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
			"metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "shop"}}}))
	}
	_, plain := get(t, srv.URL+"/v1/getEventMesh", "")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/getEventMesh", nil)
	req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if string(unzipped) != plain {
		t.Fatalf("gzip body differs from the plain one")
	}
	req.Header.Set("Accept-Encoding", "gzip;q=0")
	resp2, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 was answered with gzip")
	}
}

// Every error is a Problem body, the router's own 404 and 405 included.
func TestMissesAreJSON(t *testing.T) {
	t.Parallel()
	srv, _, ready := newServer(t)
	ready.Store(true)
	for _, tt := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, ""},
		{http.MethodGet, "/elsewhere", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/mesh", http.StatusMethodNotAllowed, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p mesh.Problem
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tt.want || err != nil || p.Error == "" || resp.Header.Get("Content-Type") != mesh.ContentTypeJSON ||
			resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d %q allow %q (%v), want %d with a Problem body and allow %q", tt.method, tt.path,
				resp.StatusCode, p.Error, resp.Header.Get("Allow"), err, tt.want, tt.allow)
		}
	}
}

// A source in trouble (its directory gone) makes /readyz say why, while the mesh it last
// read is still served.
func TestReadyzSaysWhy(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("e"), func() bool { return true }))
	var trouble atomic.Pointer[error]
	handler := testkit.Must(New(h, WithTrouble(func() error {
		if p := trouble.Load(); p != nil {
			return *p
		}
		return nil
	})))
	srv := httptest.NewServer(handler)
	defer srv.Close()
	if resp, _ := get(t, srv.URL+"/readyz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz without trouble: %d", resp.StatusCode)
	}
	gone := errors.New("manifests directory unreadable")
	trouble.Store(&gone)
	if resp, body := get(t, srv.URL+"/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unreadable") {
		t.Errorf("/readyz in trouble: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/v1/mesh", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/v1/mesh in trouble: %d, want the last mesh", resp.StatusCode)
	}
}

// GET /v1/deltas answers a page at a time (Mesh-Sequence names its last event), and a
// consumer catching up over a gap asks page after page.
func TestDeltasInPages(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	deltaLog := testkit.Must(changelog.New("ep"))
	h.Listen(deltaLog.Append)
	enc := testkit.Must(codec.NewEncoder(""))
	srv := httptest.NewServer(testkit.Must(New(h, WithDeltaLog(deltaLog, enc), WithDeltasPage(4))))
	defer srv.Close()
	add := func(from, to int) {
		for i := from; i < to; i++ {
			h.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
				"metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "shop"}}}))
		}
	}
	add(0, 10)
	resp, body := get(t, srv.URL+"/v1/deltas?epoch=ep&since=0", "")
	var page []json.RawMessage
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page) != 4 || resp.Header.Get(mesh.HeaderSequence) != "4" {
		t.Fatalf("first page: %d events, Mesh-Sequence %s, %v", len(page), resp.Header.Get(mesh.HeaderSequence), err)
	}
	if resp, body = get(t, srv.URL+"/v1/deltas?epoch=ep&since=4&limit=2", ""); resp.Header.Get(mesh.HeaderSequence) != "6" {
		t.Errorf("limit=2 from 4: Mesh-Sequence %s: %s", resp.Header.Get(mesh.HeaderSequence), body)
	}
	for _, limit := range []string{"0", "5", "x"} {
		if resp, _ := get(t, srv.URL+"/v1/deltas?epoch=ep&since=0&limit="+limit, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("limit=%s: %d, want 400", limit, resp.StatusCode)
		}
	}

	replica := consumer.NewReplica(consumer.HTTPSnapshots(srv.URL, "", nil))
	if err := replica.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	add(10, 21) // a gap of 10 before the 11th: three pages
	latest := h.Snapshot().Latest()
	last := latest[len(latest)-1]
	for _, c := range latest {
		if c.Sequence == h.Snapshot().Position().Sequence {
			last = c
		}
	}
	if err := replica.Apply(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	if _, seq := replica.Position(); seq != 21 || replica.CatchUps() != 1 || replica.Resyncs() != 1 {
		t.Errorf("replica at %d after %d catch-ups and %d resyncs, want 21 after one catch-up over pages", seq, replica.CatchUps(), replica.Resyncs())
	}
}
