package resync

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

type watchServer struct {
	hub      *hub.Hub
	watchers *Watchers
	url      string
	n        atomic.Int64
}

func newWatchServer(t *testing.T, buffer int, heartbeat time.Duration, opts ...WatchersOption) *watchServer {
	t.Helper()
	ws := &watchServer{hub: testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))}
	deltaLog, _ := changelog.New("ep", changelog.WithMaxChanges(100000))
	enc, _ := codec.NewEncoder("")
	ws.watchers = testkit.Must(NewWatchers(enc, append([]WatchersOption{WithWatchBuffer(buffer)}, opts...)...))
	ws.hub.Listen(deltaLog.Append)
	ws.hub.Listen(ws.watchers.Publish)
	h, err := New(ws.hub, WithDeltaLog(deltaLog, enc), WithWatch(ws.watchers, heartbeat))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ws.url = srv.URL
	return ws
}

// add upserts n Brokers with a sizeable annotation (so streams fill TCP buffers quickly).
func (ws *watchServer) add(n int) {
	pad := strings.Repeat("x", 8000)
	for range n {
		i := ws.n.Add(1)
		ws.hub.Apply(engine.Upserts(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
			"kind": "Broker", "metadata": map[string]any{"name": fmt.Sprint("b", i), "namespace": "ns",
				"annotations": map[string]any{"pad": pad}}}}))
	}
}

func open(t *testing.T, url, lastEventID string, query ...string) *http.Response {
	t.Helper()
	u := url + "/v1/watch"
	if len(query) > 0 && query[0] != "" {
		u += "?" + query[0]
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %v", resp.StatusCode, resp.Header)
	}
	return resp
}

// collect reads events until stop says so.
func collect(t *testing.T, resp *http.Response, stop func([]consumer.SSEEvent) bool) []consumer.SSEEvent {
	t.Helper()
	var got []consumer.SSEEvent
	errStop := fmt.Errorf("enough")
	err := consumer.ReadSSE(resp.Body, func(ev consumer.SSEEvent) error {
		got = append(got, ev)
		if stop(got) {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("stream ended after %d events: %v", len(got), err)
	}
	return got
}

func TestWatchSnapshotThenDeltas(t *testing.T) {
	t.Parallel()
	ws := newWatchServer(t, 64, time.Hour)
	ws.add(3)
	resp := open(t, ws.url, "")
	go func() {
		for ws.watchers.Len() == 0 {
			time.Sleep(time.Millisecond)
		}
		ws.add(2)
	}()
	got := collect(t, resp, func(evs []consumer.SSEEvent) bool { return len(evs) == 3 })
	if got[0].Type != "snapshot" || got[0].ID != "ep-3" {
		t.Fatalf("first event %s id %s, want the snapshot at 3", got[0].Type, got[0].ID)
	}
	var snap mesh.Snapshot
	if err := json.Unmarshal(got[0].Data, &snap); err != nil || snap.Sequence != 3 || len(snap.Mesh.Brokers) != 3 {
		t.Fatalf("snapshot %s: %v", got[0].Data, err)
	}
	for i, ev := range got[1:] {
		c, err := codec.DecodeStructured(ev.Data)
		if err != nil || ev.Type != "delta" || ev.ID != fmt.Sprint("ep-", 4+i) || c.Sequence != uint64(4+i) {
			t.Fatalf("event %d: %s id %s %+v %v", i+1, ev.Type, ev.ID, c, err)
		}
	}
}

// An id names its epoch: sent back alone (as an EventSource does), it resumes in that epoch
// only; an id of another epoch, or one the log cannot serve, gets a snapshot. An old numeric id
// resumes in the current epoch unless ?epoch= names another.
func TestWatchResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	ws := newWatchServer(t, 64, time.Hour)
	ws.add(10)
	for _, resume := range []string{"ep-7", "7", "7?epoch=ep"} {
		id, query, _ := strings.Cut(resume, "?")
		got := collect(t, open(t, ws.url, id, query), func(evs []consumer.SSEEvent) bool { return len(evs) == 3 })
		for i, ev := range got {
			if ev.Type != "delta" || ev.ID != fmt.Sprint("ep-", 8+i) {
				t.Fatalf("resumed from %s: event %d: %s id %s, want delta ep-%d (no snapshot)", resume, i, ev.Type, ev.ID, 8+i)
			}
		}
	}
	for _, fresh := range []string{"ep-99", "99", "old-7", "7?epoch=old", "ep-7?epoch=old", "-7", "ep-", "ep-x", "x"} {
		id, query, _ := strings.Cut(fresh, "?")
		got := collect(t, open(t, ws.url, id, query), func(evs []consumer.SSEEvent) bool { return len(evs) == 1 })
		if got[0].Type != "snapshot" || got[0].ID != "ep-10" {
			t.Errorf("Last-Event-ID %s: %s %s, want the snapshot ep-10", fresh, got[0].Type, got[0].ID)
		}
	}
}

func TestWatchHeartbeat(t *testing.T) {
	t.Parallel()
	ws := newWatchServer(t, 64, 20*time.Millisecond)
	resp := open(t, ws.url, "")
	buf := make([]byte, 4096)
	var seen strings.Builder
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(seen.String(), ": heartbeat") {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat in %q", seen.String())
		}
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		seen.Write(buf[:n])
	}
}

// A watcher that does not read is cut off with a final event; one that reads keeps up.
func TestSlowWatcherIsCutOff(t *testing.T) {
	t.Parallel()
	ws := newWatchServer(t, 512, time.Hour)
	slow := open(t, ws.url, "")
	fast := open(t, ws.url, "")
	for ws.watchers.Len() < 2 {
		time.Sleep(time.Millisecond)
	}
	const total = 3000
	var progress atomic.Int64
	fastDone := make(chan []consumer.SSEEvent)
	go func() {
		var got []consumer.SSEEvent
		consumer.ReadSSE(fast.Body, func(ev consumer.SSEEvent) error {
			got = append(got, ev)
			progress.Store(int64(len(got) - 1))
			if ev.ID == fmt.Sprint("ep-", total) || ev.Type == "cutoff" {
				return fmt.Errorf("done")
			}
			return nil
		})
		fastDone <- got
	}()
	// ~24 MB of events, far more than the slow watcher's socket buffers. The producer never runs
	// more than 100 changes ahead of the fast watcher: "fast" means keeping up, whatever the
	// machine's speed.
	for i := range int64(total) {
		for progress.Load() < i-100 {
			time.Sleep(100 * time.Microsecond)
		}
		ws.add(1)
	}
	got := <-fastDone
	if last := got[len(got)-1]; last.ID != fmt.Sprint("ep-", total) || got[0].Type != "snapshot" {
		t.Fatalf("fast watcher got %d events ending at %s", len(got), last.ID)
	}
	for i, ev := range got[1:] {
		if ev.Type != "delta" || ev.ID != fmt.Sprint("ep-", i+1) {
			t.Fatalf("fast watcher: event %d is %s %s", i+1, ev.Type, ev.ID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var lastType string
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumer.ReadSSE(slow.Body, func(ev consumer.SSEEvent) error { lastType = ev.Type; return nil })
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the slow watcher's stream never ended")
	}
	if lastType != "cutoff" {
		t.Fatalf("slow watcher's last event is %q, want cutoff", lastType)
	}
}

// Beyond the cap a watch is refused: with 503 and Retry-After for a caller that asks for
// status codes; for others (an EventSource) with a 200 stream that sets `retry:`, says `busy`
// and ends. The streams under the cap go on.
func TestWatchersBeyondTheCapAreRefused(t *testing.T) {
	t.Parallel()
	ws := newWatchServer(t, 64, time.Hour, WithMaxWatchers(2))
	ws.add(1)
	first, second := open(t, ws.url, ""), open(t, ws.url, "")
	testkit.Eventually(t, "two watchers", 5*time.Second, func() bool { return ws.watchers.Len() == 2 })
	resp, body := getAccept(t, ws.url+"/v1/watch", mesh.AcceptWatchStatuses)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" || !strings.Contains(body, "too many watch streams") {
		t.Errorf("a third watcher asking for status codes: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	for _, accept := range []string{"text/event-stream", "", "*/*"} {
		resp, body = getAccept(t, ws.url+"/v1/watch", accept)
		want := "retry: 5000\n\nevent: busy\ndata: {\"reason\":\"too many watch streams (2); try again later, or take a snapshot\"}\n\n"
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || body != want {
			t.Errorf("a third watcher with Accept %q: %d %v %q, want 200 and %q", accept, resp.StatusCode, resp.Header, body, want)
		}
	}
	ws.add(1)
	for _, r := range []*http.Response{first, second} {
		got := collect(t, r, func(evs []consumer.SSEEvent) bool { return len(evs) == 2 })
		if got[1].Type != "delta" || got[1].ID != "ep-2" {
			t.Errorf("a watcher under the cap got %s %s", got[1].Type, got[1].ID)
		}
	}
}

// A watch that comes while the mesh loads is held open with heartbeats and starts with the
// snapshot once the mesh is loaded; a caller that asks for status codes hears 503.
func TestWatchWhileLoading(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	h := testkit.Must(hub.New(engine.New("ep"), ready.Load))
	deltaLog := testkit.Must(changelog.New("ep"))
	enc := testkit.Must(codec.NewEncoder(""))
	watchers := testkit.Must(NewWatchers(enc))
	h.Listen(deltaLog.Append, watchers.Publish)
	srv := httptest.NewServer(testkit.Must(New(h, WithDeltaLog(deltaLog, enc), WithWatch(watchers, 20*time.Millisecond))))
	t.Cleanup(srv.Close)
	t.Cleanup(watchers.Close)
	if resp, body := getAccept(t, srv.URL+"/v1/watch", mesh.AcceptWatchStatuses); resp.StatusCode != http.StatusServiceUnavailable ||
		resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "loading") {
		t.Errorf("asking for status codes while loading: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp := open(t, srv.URL, "")
	br := bufio.NewReader(resp.Body)
	var head []string
	for len(head) < 4 { // the retry field, then heartbeats: the stream is held
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != "\n" {
			head = append(head, strings.TrimSuffix(line, "\n"))
		}
	}
	if want := []string{"retry: 1000", ": heartbeat", ": heartbeat", ": heartbeat"}; !slices.Equal(head, want) {
		t.Fatalf("held stream began %q, want %q", head, want)
	}
	h.Apply(engine.Listing(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1",
		"kind": "Broker", "metadata": map[string]any{"name": "b", "namespace": "ns"}}}))
	ready.Store(true)
	var got []consumer.SSEEvent
	errStop := errors.New("enough")
	err := consumer.ReadSSE(br, func(ev consumer.SSEEvent) error { got = append(got, ev); return errStop })
	if err != errStop || got[0].Type != "snapshot" || got[0].ID != "ep-1" || !strings.Contains(string(got[0].Data), `"name":"b"`) {
		t.Fatalf("after loading: %v %+v", err, got)
	}
}

func getAccept(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// One identity cannot take every stream: beyond its share it is refused, others are not.
func TestWatchersPerIdentity(t *testing.T) {
	t.Parallel()
	h := testkit.Must(hub.New(engine.New("ep"), func() bool { return true }))
	deltaLog := testkit.Must(changelog.New("ep"))
	enc := testkit.Must(codec.NewEncoder(""))
	watchers := testkit.Must(NewWatchers(enc, WithMaxWatchersPerIdentity(1)))
	h.Listen(deltaLog.Append, watchers.Publish)
	authz := testkit.Must(auth.StaticTokens([]string{"alice", "bob"}))
	srv := httptest.NewServer(testkit.Must(New(h, WithDeltaLog(deltaLog, enc), WithWatch(watchers, time.Hour), WithAuthorizer(authz))))
	t.Cleanup(srv.Close) // after the streams' bodies are closed (cleanups run last first)
	t.Cleanup(watchers.Close)
	h.Apply(engine.Listing())
	watch := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/watch", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", mesh.AcceptWatchStatuses)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := watch("alice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's first stream: %d", resp.StatusCode)
	}
	testkit.Eventually(t, "alice's stream", 5*time.Second, func() bool { return watchers.Len() == 1 })
	if resp := watch("alice"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("alice's second stream: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := watch("bob"); resp.StatusCode != http.StatusOK {
		t.Errorf("bob's stream: %d", resp.StatusCode)
	}
}
