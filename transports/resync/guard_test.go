package resync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

// problemOf reads a response's Problem body; it fails the test when there is none.
func problemOf(t *testing.T, resp *http.Response) mesh.Problem {
	t.Helper()
	defer resp.Body.Close()
	var p mesh.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Error == "" || resp.Header.Get("Content-Type") != mesh.ContentTypeJSON {
		t.Errorf("%s %s: %d %s, not a Problem body (%v)", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode,
			resp.Header.Get("Content-Type"), err)
	}
	return p
}

// With access control, a caller with a valid token gets its 404 and 405 as Problems too
// (before: text/plain "404 page not found").
func TestMissesAreJSONUnderTokens(t *testing.T) {
	t.Parallel()
	authz := testkit.Must(auth.StaticTokens([]string{"s3cret"}))
	srv, _, ready := newServer(t, WithAuthorizer(authz))
	ready.Store(true)
	for _, tt := range []struct {
		method, path, token string
		want                int
	}{
		{http.MethodGet, "/v1/nothing", "s3cret", http.StatusNotFound},
		{http.MethodPost, "/v1/mesh", "s3cret", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nothing", "", http.StatusUnauthorized},
		{http.MethodGet, "/elsewhere", "", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if p := problemOf(t, resp); resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d %q, want %d", tt.method, tt.path, resp.StatusCode, p.Error, tt.want)
		}
	}
}

// Open endpoints serve loopback names, addresses and the names configured, and refuse any
// other Host with a Problem naming the setting: a page rebinding its own name to 127.0.0.1
// reads nothing.
func TestAllowHosts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(AllowHosts([]string{"mesh.example.com", "*.internal.example"},
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })))
	defer srv.Close()
	for host, want := range map[string]int{
		"localhost:8080": 200, "LOCALHOST": 200, "mesh.localhost:1": 200, "127.0.0.1:8080": 200, "[::1]:8080": 200, "10.1.2.3": 200,
		"mesh.example.com": 200, "Mesh.Example.Com.:80": 200, "a.internal.example": 200,
		"rebind.attacker.example": 403, "rebind.attacker.example:8080": 403, "example.com": 403, "internal.example": 403,
		"localhost.attacker.example": 403,
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/mesh", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
		if want == 403 {
			if p := problemOf(t, resp); !strings.Contains(p.Error, "server.allowedHosts") {
				t.Errorf("Host %s: %q does not say which setting admits it", host, p.Error)
			}
		} else {
			resp.Body.Close()
		}
	}
}

// At most n connections are open at once, idle keep-alives included: one more is closed at
// once, and a place frees when one closes.
func TestLimitConnections(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := testkit.Must(LimitConnections(raw, 3))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := roundTrip(c); err != nil { // now an idle keep-alive
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	extra, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(extra); err == nil {
		t.Error("a fourth connection was served; want it closed")
	}
	extra.Close()
	conns[0].Close()
	testkit.Eventually(t, "a place to free", 5*time.Second, func() bool { return ln.(*limitedListener).Open() < 3 })
	again, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := roundTrip(again); err != nil {
		t.Errorf("after one closed: %v", err)
	}
}

// RequireToken guards /metrics when a token is configured.
func TestRequireToken(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(RequireToken([]string{"m1", "m2"}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") })))
	defer srv.Close()
	for token, want := range map[string]int{"": 401, "nope": 401, "m1": 200, "m2": 200, "m1x": 401} {
		resp, body := get(t, srv.URL, token)
		if resp.StatusCode != want {
			t.Errorf("token %q: %d %s, want %d", token, resp.StatusCode, body, want)
		}
	}
}

// smallSendBuffers gives each accepted connection a 16 KiB kernel send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// stalledChild is set in the process that measures TestStalledCallersCostAFixedBudget.
const stalledChild = "RESYNC_TEST_STALLED_CHILD"

func tailOf(s string, n int) string { return s[max(0, len(s)-n):] }

// stalledClient sends a GET with extra headers and never reads the answer, with a receive
// buffer of 4 KiB so the server's writes block soon.
func stalledClient(t *testing.T, addr, path, headers string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n", path, headers)
	return c
}

// heapPeak samples the heap in use every 10 ms until stop is closed, and returns its peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var m runtime.MemStats
		var peak uint64
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return out
}

// statusKiB is a field of /proc/self/status in KiB (VmRSS: the resident set now; VmHWM: its
// peak).
func statusKiB(t *testing.T, field string) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s in /proc/self/status: %v", field, err)
			}
			return kib
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// resetPeakRSS makes the process's peak resident set (VmHWM) its resident set now (Linux's
// clear_refs), so a later VmHWM is the peak since this call, whatever came before (building
// the mesh), and returns the resident set now in KiB.
func resetPeakRSS(t *testing.T) int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	return statusKiB(t, "VmRSS")
}

// The memory a caller costs does not grow with the change log: 200 watch streams resuming with
// Last-Event-ID: 0 on a 30,000-entity mesh, none of them reading, raise the process's peak RSS
// by less than 100 MiB and hold less than 100 MiB of heap, and so do 200 GET
// /v1/deltas?since=0 (before: peak RSS +1,669 MiB for the watch streams, about 8 MiB each, and
// +705 MiB for the deltas requests); /v1/deltas beyond its cap is refused with a Problem.
//
// The measure runs in a process of its own, so no other test's memory counts, in the heap or
// in the resident set: this package's tests built again without the race detector, whose
// shadow memory would count in the resident set (it about doubles it).
func TestStalledCallersCostAFixedBudget(t *testing.T) {
	which := os.Getenv(stalledChild)
	if which == "" {
		t.Parallel()
		bin := filepath.Join(t.TempDir(), "resync.test")
		build := exec.Command("go", "test", "-c", "-o", bin, ".")
		build.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the tests without the race detector: %v\n%s", err, out)
		}
		for _, which := range []string{"watch", "deltas"} {
			cmd := exec.Command(bin, "-test.run=^TestStalledCallersCostAFixedBudget$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), stalledChild+"="+which)
			out, err := cmd.CombinedOutput()
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "guard_test.go") {
					t.Log(strings.TrimSpace(line))
				}
			}
			if usage, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok { // Maxrss is in KiB on Linux
				t.Logf("the process measuring %s peaked at %.0f MiB RSS in all (the mesh included)", which, float64(usage.Maxrss)/1024)
			}
			if err != nil || !strings.Contains(string(out), "--- PASS: TestStalledCallersCostAFixedBudget") {
				t.Errorf("the process measuring %s failed (%v):\n%s", which, err, tailOf(string(out), 4000))
			}
		}
		return
	}
	const entities, callers = 30000, 200
	h := testkit.Must(hub.New(engine.New("mem"), func() bool { return true }))
	deltaLog := testkit.Must(changelog.New("mem"))
	enc := testkit.Must(codec.NewEncoder(""))
	watchers := testkit.Must(NewWatchers(enc))
	h.Listen(deltaLog.Append)
	h.Listen(watchers.Publish)
	handler := testkit.Must(New(h, WithDeltaLog(deltaLog, enc), WithWatch(watchers, time.Minute), WithMaxDeltaRequests(callers)))
	var objs []*unstructured.Unstructured
	for i := range entities / 11 {
		ns, broker := fmt.Sprint("ns-", i/10), fmt.Sprint("broker-", i%10)
		objs = append(objs, brokerIn(ns, broker))
		for j := range 10 {
			objs = append(objs, eventType(ns, broker, j, "t"))
		}
	}
	built := time.Now()
	h.Apply(engine.Listing(objs...))
	objs = nil
	t.Logf("the mesh of %d entities built in %v", entities, time.Since(built).Round(time.Millisecond))
	if n := h.Snapshot().Position().Sequence; n < entities-10 {
		t.Fatalf("the mesh has %d entities", n)
	}
	var served atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		handler.ServeHTTP(w, r)
	}))
	// Small kernel send buffers, so each handler blocks soon instead of writing megabytes into
	// the kernel first: while handlers still write, a collection keeps what they allocate
	// during it, and the measure would count that garbage.
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close) // after the clients' connections are closed (cleanups run last first)
	addr := strings.TrimPrefix(srv.URL, "http://")

	// A caller that reads first, so what the server sets up once (shared, not per caller) is in
	// the base.
	warm := stalledClient(t, addr, mesh.PathWatch, mesh.HeaderLastEventID+": 29990\r\n")
	warm.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAtLeast(warm, make([]byte, 4096), 1024)
	warm.Close()
	resp, body := get(t, srv.URL+mesh.PathDeltas+"?epoch=mem&since=29990", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deltas: %d %s", resp.StatusCode, body)
	}
	testkit.Eventually(t, "the warm-up caller gone", 10*time.Second, func() bool { return watchers.Len() == 0 })
	// The base: the heap collected and its free pages given back to the system, so the
	// resident set holds what is live and what the callers add shows in it.
	debug.FreeOSMemory()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	baseRSS := resetPeakRSS(t)
	stop := make(chan struct{})
	peak := heapPeak(stop)
	started := time.Now()
	open := func() int { return len(handler.deltaSlots) }
	if which == "watch" {
		open = watchers.Len
	}
	for range callers {
		if which == "watch" {
			stalledClient(t, addr, mesh.PathWatch, mesh.HeaderLastEventID+": 0\r\n")
		} else {
			stalledClient(t, addr, mesh.PathDeltas+"?epoch=mem&since=0", "")
		}
	}
	testkit.Eventually(t, "every caller served", 2*time.Minute, func() bool { return open() == callers })
	// What the stalled callers hold: the heap still live once collected while they stall (the
	// least of three collections a second apart), and the heap in use at its peak (garbage
	// included) while they were served.
	held := int64(math.MaxInt64)
	for range 3 {
		time.Sleep(time.Second)
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		held = min(held, int64(m.HeapAlloc)-int64(base.HeapAlloc))
	}
	close(stop)
	peaked := int64(<-peak) - int64(base.HeapInuse)
	peakRSS := (statusKiB(t, "VmHWM") - baseRSS) << 10
	t.Logf("%d stalled callers of %s on %d entities (all served in %v): peak RSS +%.1f MiB (from %.0f MiB); heap +%.1f MiB live (%.0f KiB per caller), +%.1f MiB at the peak",
		callers, which, entities, time.Since(started).Round(time.Millisecond), float64(peakRSS)/(1<<20), float64(baseRSS)/1024,
		float64(held)/(1<<20), float64(held)/1024/callers, float64(peaked)/(1<<20))
	if peakRSS > 100<<20 {
		t.Errorf("the stalled callers raised the peak RSS by %d MiB; want under 100", peakRSS>>20)
	}
	if open() != callers {
		t.Errorf("%d of them still open after the measure, want %d", open(), callers)
	}
	if held > 100<<20 || peaked > 100<<20 {
		t.Errorf("the stalled callers hold %d MiB of heap, %d MiB at the peak; want under 100", held>>20, peaked>>20)
	}
	if which == "watch" {
		return
	}

	// One more GET /v1/deltas is beyond the cap.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+mesh.PathDeltas+"?epoch=mem&since=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if p := problemOf(t, resp); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(p.Error, "too many") {
		t.Errorf("deltas beyond the cap: %d %q", resp.StatusCode, p.Error)
	}
}
