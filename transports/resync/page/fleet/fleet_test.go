package fleet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page/fleet"
)

// fakeBroadcaster answers like a broadcaster of cluster name (none when empty): GET /v1/mesh
// with its Mesh-Cluster header (503 for the first notReady asks), the other endpoints with
// what they were asked, and GET /v1/watch as a stream that sends one event, then a second one
// only when release is closed.
type fakeBroadcaster struct {
	*httptest.Server
	mu       sync.Mutex
	asked    []string // "path?query Authorization"
	notReady atomic.Int32
	release  chan struct{}
	token    string // wanted, when not empty (set before it serves)
}

func newFake(t *testing.T, name string) *fakeBroadcaster { return newGuardedFake(t, name, "") }

// newGuardedFake is newFake answering 401 to a request without Authorization: Bearer token.
func newGuardedFake(t *testing.T, name, token string) *fakeBroadcaster {
	t.Helper()
	f := &fakeBroadcaster{release: make(chan struct{}), token: token}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.asked = append(f.asked, r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		f.mu.Unlock()
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if name != "" {
			w.Header().Set(mesh.HeaderCluster, name)
		}
		switch r.URL.Path {
		case mesh.PathMesh:
			if f.notReady.Add(-1) >= 0 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintf(w, `{"epoch":"e","sequence":1,"cluster":%q,"mesh":{}}`, name)
		case mesh.PathWatch:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: position\ndata: {\"epoch\":\"e\",\"sequence\":1}\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-f.release:
				fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
			case <-r.Context().Done():
			}
		default:
			fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBroadcaster) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

func targets(t *testing.T, specs ...string) []fleet.Target {
	t.Helper()
	var out []fleet.Target
	for _, s := range specs {
		tg, err := fleet.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		out = append(out, tg)
	}
	return out
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec, name, url string
		bad             bool
	}{
		{spec: "http://127.0.0.1:8080", url: "http://127.0.0.1:8080"},
		{spec: "https://mesh.example/east/", url: "https://mesh.example/east"},
		{spec: "east=http://127.0.0.1:8080", name: "east", url: "http://127.0.0.1:8080"},
		{spec: "http://h:1/a=b", url: "http://h:1/a=b"}, // '=' in a path names nothing
		{spec: "no_under=http://h:1", bad: true},
		{spec: "=http://h:1", bad: true},
		{spec: "east=ftp://h", bad: true},
		{spec: "127.0.0.1:8080", bad: true},
		{spec: "http://h:1/?q=1", bad: true},
		{spec: "http:///nohost", bad: true},
	} {
		got, err := fleet.Parse(tc.spec)
		if tc.bad {
			if !errors.Is(err, fleet.ErrBadURL) || !strings.Contains(err.Error(), tc.spec) {
				t.Errorf("Parse(%q): %v, want ErrBadURL naming it", tc.spec, err)
			}
			continue
		}
		if err != nil || got.Name != tc.name || got.URL.String() != tc.url {
			t.Errorf("Parse(%q) = %q %v, %v; want %q %q", tc.spec, got.Name, got.URL, err, tc.name, tc.url)
		}
	}
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	east, west, anonymous := newFake(t, "east"), newFake(t, "west"), newFake(t, "")
	slow := newFake(t, "north")
	slow.notReady.Store(3) // answers 503 three times first
	otherEast := newFake(t, "east")
	guarded := newGuardedFake(t, "south", "right")
	for _, tc := range []struct {
		name    string
		specs   []string
		token   string
		want    []string
		wantErr error
		naming  []string // what the error must name
	}{
		{name: "with the token", specs: []string{guarded.URL}, token: "right", want: []string{"south"}},
		{name: "without the token", specs: []string{guarded.URL}, wantErr: fleet.ErrUnauthorized, naming: []string{guarded.URL, "401"}},
		{name: "a wrong token", specs: []string{guarded.URL}, token: "wrong", wantErr: fleet.ErrUnauthorized, naming: []string{guarded.URL}},
		{name: "learned", specs: []string{east.URL, west.URL}, want: []string{"east", "west"}},
		{name: "given wins and is not asked", specs: []string{"south=" + anonymous.URL, west.URL}, want: []string{"south", "west"}},
		{name: "not ready at first", specs: []string{slow.URL}, want: []string{"north"}},
		{name: "no name", specs: []string{east.URL, anonymous.URL}, wantErr: fleet.ErrNoName, naming: []string{anonymous.URL, "NAME=URL"}},
		{name: "same learned name", specs: []string{east.URL, otherEast.URL}, wantErr: fleet.ErrDuplicate, naming: []string{east.URL, otherEast.URL, `"east"`}},
		{name: "same given name", specs: []string{"east=" + west.URL, east.URL}, wantErr: fleet.ErrDuplicate, naming: []string{"east=" + west.URL, east.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := fleet.Discover(ctx, targets(t, tc.specs...), fleet.WithRetryInterval(10*time.Millisecond), fleet.WithToken(tc.token))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				for _, s := range tc.naming {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("the error does not name %q: %v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("names %q, want %q", names, tc.want)
			}
		})
	}
	if n := len(anonymous.requests()); n != 1 { // only the "no name" case asked it
		t.Errorf("the broadcaster named by NAME= was asked %d times in all, want 1", n)
	}
}

// A broadcaster that refuses connections at first is asked again until it answers.
func TestDiscoverWaitsForARefusingBroadcaster(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var got []fleet.Cluster
	go func() {
		var err error
		got, err = fleet.Discover(ctx, targets(t, "http://"+addr), fleet.WithRetryInterval(10*time.Millisecond))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // a few refused attempts
	later, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set(mesh.HeaderCluster, "late") })}
	go srv.Serve(later)
	defer srv.Close()
	if err := <-done; err != nil || len(got) != 1 || got[0].Name != "late" {
		t.Fatalf("Discover: %v, %v", got, err)
	}

	// One that never comes: the error says so, naming it, when the time runs out.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	_, err = fleet.Discover(short, targets(t, "http://127.0.0.1:1"), fleet.WithRetryInterval(10*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a broadcaster never reached: %v", err)
	}
}

func serveFleet(t *testing.T, clusters []fleet.Cluster, opts ...fleet.Option) *httptest.Server {
	t.Helper()
	h, err := fleet.Handler(clusters, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func clustersOf(t *testing.T, named map[string]string) []fleet.Cluster {
	t.Helper()
	var out []fleet.Cluster
	for _, name := range []string{"east", "west", "down", "north"} {
		if u, ok := named[name]; ok {
			tg := targets(t, name+"="+u)[0]
			out = append(out, fleet.Cluster{Name: tg.Name, URL: tg.URL})
		}
	}
	return out
}

func TestHandlerForwardsOnlyTheReadEndpoints(t *testing.T) {
	t.Parallel()
	east, west := newFake(t, "east"), newFake(t, "west")
	srv := serveFleet(t, clustersOf(t, map[string]string{"east": east.URL, "west": west.URL, "down": "http://127.0.0.1:1",
		"north": west.URL}), fleet.WithToken("fleet-token")) // north=<west's URL>: named wrong on the command line
	for _, tc := range []struct {
		name, method, path string
		status             int
		forwarded          string // what the broadcaster was asked; "" for nothing
		to                 *fakeBroadcaster
		problem            string // in the Problem's error
	}{
		{name: "snapshot", path: "/clusters/east/v1/getEventMesh", status: 200, to: east, forwarded: "/v1/getEventMesh Bearer fleet-token"},
		{name: "query kept", path: "/clusters/west/v1/deltas?epoch=e&since=3", status: 200, to: west, forwarded: "/v1/deltas?epoch=e&since=3 Bearer fleet-token"},
		{name: "lineage", path: "/clusters/west/v1/lineage?eventType=shop%2Forder-paid", status: 200, to: west, forwarded: "/v1/lineage?eventType=shop%2Forder-paid Bearer fleet-token"},
		{name: "mesh", path: "/clusters/east/v1/mesh", status: 200, to: east, forwarded: "/v1/mesh Bearer fleet-token"},
		{name: "not a read endpoint", path: "/clusters/east/v1/admin", status: 404, problem: "not forwarded"},
		{name: "metrics", path: "/clusters/east/metrics", status: 404},
		{name: "escape the prefix", path: "/clusters/east/v1/..%2F..%2Fmetrics", status: 404},
		{name: "unknown cluster", path: "/clusters/south/v1/mesh", status: 404, problem: `no cluster "south"`},
		{name: "not GET", method: http.MethodPost, path: "/clusters/east/v1/mesh", status: 405},
		{name: "down", path: "/clusters/down/v1/getEventMesh", status: 502, problem: "cluster down: the broadcaster at http://127.0.0.1:1 did not answer"},
		{name: "another cluster's", path: "/clusters/north/v1/getEventMesh", status: 502, problem: `is another cluster's: the answer names another cluster: it serves cluster "west"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before int
			if tc.to != nil {
				before = len(tc.to.requests())
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", method, tc.path, resp.StatusCode, body, tc.status)
			}
			if tc.problem != "" {
				var p mesh.Problem
				if err := json.Unmarshal(body, &p); err != nil || !strings.Contains(p.Error, tc.problem) || resp.Header.Get("Content-Type") != mesh.ContentTypeJSON {
					t.Errorf("Problem %q (%v, %s), want one saying %q", body, err, resp.Header.Get("Content-Type"), tc.problem)
				}
			}
			if tc.to != nil {
				asked := tc.to.requests()[before:]
				if len(asked) != 1 || asked[0] != tc.forwarded {
					t.Errorf("the broadcaster was asked %q, want %q", asked, tc.forwarded)
				}
				if resp.Header.Get(mesh.HeaderCluster) == "" {
					t.Errorf("the broadcaster's %s header was not passed on", mesh.HeaderCluster)
				}
			}
		})
	}
	for _, f := range []*fakeBroadcaster{east, west} {
		for _, r := range f.requests() {
			if !strings.HasPrefix(r, "/v1/") {
				t.Errorf("a broadcaster was asked %q", r)
			}
		}
	}
}

// Without a token of its own the proxy passes the page's on; with one, it replaces it.
func TestHandlerToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, fleetToken, pageToken, want string
	}{
		{name: "none", want: ""},
		{name: "the page's", pageToken: "typed-in", want: "Bearer typed-in"},
		{name: "the command's", fleetToken: "given", want: "Bearer given"},
		{name: "the command's wins", fleetToken: "given", pageToken: "typed-in", want: "Bearer given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			east := newFake(t, "east")
			var opts []fleet.Option
			if tc.fleetToken != "" {
				opts = append(opts, fleet.WithToken(tc.fleetToken))
			}
			srv := serveFleet(t, clustersOf(t, map[string]string{"east": east.URL}), opts...)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/clusters/east/v1/mesh", nil)
			if tc.pageToken != "" {
				req.Header.Set("Authorization", "Bearer "+tc.pageToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := east.requests(); len(got) != 1 || got[0] != "/v1/mesh "+tc.want {
				t.Errorf("forwarded %q, want Authorization %q", got, tc.want)
			}
		})
	}
}

// A watch stream reaches the page event by event: the first event arrives while the
// broadcaster still holds the stream open.
func TestHandlerFlushesTheWatchStream(t *testing.T) {
	t.Parallel()
	east := newFake(t, "east")
	srv := serveFleet(t, clustersOf(t, map[string]string{"east": east.URL}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/clusters/east/v1/watch?epoch=e", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "e-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewReader(resp.Body)
	if line, err := lines.ReadString('\n'); err != nil || line != "event: position\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(east.release) // only now does the broadcaster send more and end the stream
	rest, _ := io.ReadAll(lines)
	if !strings.Contains(string(rest), "event: shutdown") {
		t.Errorf("the rest of the stream: %q", rest)
	}
	if got := east.requests(); len(got) != 1 || got[0] != "/v1/watch?epoch=e " {
		t.Errorf("forwarded %q", got)
	}
}

// GET / is the page with the list of clusters, under the same policy as a broadcaster's page.
func TestHandlerServesThePage(t *testing.T) {
	t.Parallel()
	east, west := newFake(t, "east"), newFake(t, "west")
	srv := serveFleet(t, clustersOf(t, map[string]string{"east": east.URL, "west": west.URL}))
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, csp := page.Document(page.WithClusters("east", "west"))
	if resp.StatusCode != 200 || string(body) != string(want) || resp.Header.Get("Content-Security-Policy") != csp {
		t.Fatalf("GET /: %d, %d bytes, policy %q", resp.StatusCode, len(body), resp.Header.Get("Content-Security-Policy"))
	}
	if !strings.Contains(string(body), `<script type="application/json" id="clusters">["east","west"]</script>`) {
		t.Error("the page does not list the clusters")
	}
	if _, own := page.Document(); own != csp {
		t.Error("the merged page's policy differs from a broadcaster's page's")
	}
}

func TestHandlerRefuses(t *testing.T) {
	t.Parallel()
	u := targets(t, "http://127.0.0.1:1")[0].URL
	for _, tc := range []struct {
		name     string
		clusters []fleet.Cluster
		want     error
	}{
		{name: "none", want: fleet.ErrNoName},
		{name: "unnamed", clusters: []fleet.Cluster{{URL: u}}, want: fleet.ErrNoName},
		{name: "same name", clusters: []fleet.Cluster{{Name: "a", URL: u}, {Name: "a", URL: u}}, want: fleet.ErrDuplicate},
	} {
		if _, err := fleet.Handler(tc.clusters); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
