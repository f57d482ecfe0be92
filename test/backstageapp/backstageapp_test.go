package backstageapp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

const (
	moduleDir  = "../../integrations/backstage"
	moduleName = "@event-mesh-broadcaster/plugin-catalog-backend-module-knative-event-mesh"
	// providerID is the id the golden catalog was made with: the entities' lifecycle.
	providerID = "test"
)

// appFixes are what a fresh app needs before it installs and starts, each a known create-app
// pitfall that docs/backstage.md describes. They are part of the cached app's key.
var appFixes = []fix{
	{
		// create-app 0.9.2 pins backend-defaults ^0.18.0, whose HTTP router lacks what the
		// signals plugin of the same release calls: the backend stops at start-up with
		// "Plugin 'signals' startup failed; caused by TypeError: httpRouter.addWebSocketHandler
		// is not a function".
		file: "packages/backend/package.json",
		old:  `"@backstage/backend-defaults": "^0.18.0"`,
		new:  `"@backstage/backend-defaults": "^0.19.0"`,
	},
	{
		// It pins plugin-auth-backend ^0.30.1, which depends on plugin-catalog-node ^2.2.5:
		// a second copy of the catalog's extension points beside the catalog backend's 3.0.0,
		// in the fresh app already. 0.31 depends on ^3.0.0.
		file: "packages/backend/package.json",
		old:  `"@backstage/plugin-auth-backend": "^0.30.1"`,
		new:  `"@backstage/plugin-auth-backend": "^0.31.0"`,
	},
}

type fix struct{ file, old, new string }

// peers are the module's peer dependencies that a fresh app's backend does not depend on by
// name (it has @backstage/config): the backend adds them so that yarn sees them provided.
var peers = []string{"@backstage/backend-plugin-api", "@backstage/catalog-model", "@backstage/plugin-catalog-node", "@backstage/types"}

func TestModuleInCreatedApp(t *testing.T) {
	began := time.Now()
	// Backstage and create-app support Node.js 22 and 24 only: the tests' Node.js 22, from the
	// npm registry, runs create-app, yarn, node-gyp and the backend.
	node := testkit.Node(t, "node22", filepath.Join("..", "backstagepush", "testdata", "node22"))
	testkit.UseNode(t, node)
	createApp := testkit.NPMInstall(t, "create-app", filepath.Join("testdata", "createapp"), []string{"ci", "--no-audit", "--no-fund"})
	useYarn(t, createApp)

	app, cold := createdApp(t, createApp)
	t.Logf("app ready in %v (%s)", time.Since(began).Round(time.Second), map[bool]string{true: "created now", false: "from the cache"}[cold])

	step := time.Now()
	tarball := packModule(t, app)
	// yarn add, as docs/backstage.md says: the module and, at the versions the app already
	// uses (--cached), the peer dependencies the backend does not name yet. The install after
	// it is the backend's only, as the cached app holds.
	add := append([]string{"add", "--cached", "--mode=update-lockfile", moduleName + "@file:" + tarball}, peers...)
	run(t, filepath.Join(app, "packages", "backend"), "yarn", add...)
	peersProvided(t, app)
	run(t, app, "yarn", "workspaces", "focus", "backend")
	addModule(t, app)
	t.Logf("module packed and added in %v", time.Since(step).Round(time.Second))

	t.Run("one copy of the catalog's extension points", func(t *testing.T) { oneCatalogNode(t, app) })

	mesh := testkit.CopyDir(t, "../../examples/mesh")
	broadcaster := startBroadcaster(t, mesh)
	token := randomToken(t)
	backend := startBackend(t, app, broadcaster, token)
	catalog := &catalogAPI{url: backend, token: token, broadcaster: broadcaster}

	step = time.Now()
	want := goldenEntities(t, broadcaster)
	catalog.waitFor(t, "the example mesh in the catalog, as the published plugin builds it", 5*time.Minute, func() string {
		return catalog.difference(want)
	})
	t.Logf("every entity of the example mesh in the catalog %v after the backend answered", time.Since(step).Round(100*time.Millisecond))

	// A live edit: a new EventType of the shop's Broker.
	step = time.Now()
	if err := os.WriteFile(filepath.Join(mesh, "shop", "order-returned.yaml"), []byte(orderReturned), 0o644); err != nil {
		t.Fatal(err)
	}
	catalog.waitFor(t, "the new EventType and its Broker's providesApi", time.Minute, func() string {
		api, err := catalog.entity("api", "shop", "order-returned")
		if err != nil || api == nil {
			return fmt.Sprintf("api:shop/order-returned: %v", err)
		}
		if title := str(api, "metadata", "title"); title != "com.example.shop.order.returned - (shop/order-returned)" {
			return "api:shop/order-returned has title " + title
		}
		orders, err := catalog.entity("component", "shop", "orders")
		if err != nil || orders == nil || !hasRelation(orders, "providesApi", "api:shop/order-returned") {
			return fmt.Sprintf("component:shop/orders does not provide api:shop/order-returned yet (%v)", err)
		}
		return ""
	})
	t.Logf("a new EventType in the catalog API %v after the edit", time.Since(step).Round(10*time.Millisecond))

	// A delete: the heartbeat PingSource and its EventType.
	step = time.Now()
	if err := os.Remove(filepath.Join(mesh, "sources", "heartbeat.yaml")); err != nil {
		t.Fatal(err)
	}
	catalog.waitFor(t, "the heartbeat source and EventType gone", time.Minute, func() string {
		for _, ref := range [][3]string{{"component", "shop", "heartbeat"}, {"api", "shop", "heartbeat"}} {
			if e, err := catalog.entity(ref[0], ref[1], ref[2]); err != nil || e != nil {
				return fmt.Sprintf("%s:%s/%s still there (%v)", ref[0], ref[1], ref[2], err)
			}
		}
		orders, err := catalog.entity("component", "shop", "orders")
		if err != nil || orders == nil || hasRelation(orders, "providesApi", "api:shop/heartbeat") {
			return fmt.Sprintf("component:shop/orders still provides api:shop/heartbeat (%v)", err)
		}
		return ""
	})
	t.Logf("a deleted source and EventType gone from the catalog API %v after the delete", time.Since(step).Round(10*time.Millisecond))
	// Nothing else changed: the heartbeat's entities gone, the new EventType there, and every
	// other entity as before but the Broker, which provides the new EventType instead.
	delete(want, "component:shop/heartbeat")
	delete(want, "api:shop/heartbeat")
	want["api:shop/order-returned"] = nil
	want["component:shop/orders"] = nil
	if diff := catalog.difference(want); diff != "" {
		t.Errorf("after the edit and the delete:\n%s", diff)
	}
	t.Logf("whole test %v", time.Since(began).Round(time.Second))
}

const orderReturned = `apiVersion: eventing.knative.dev/v1beta2
kind: EventType
metadata: {name: order-returned, namespace: shop}
spec:
  type: com.example.shop.order.returned
  source: https://shop.example.com/returns
  description: A customer sent an order back
  reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}
`

// useYarn puts yarn on PATH for the rest of the test: the release create-app ships in its
// template (the created app names it in .yarnrc.yml), so nothing else is downloaded. Its
// cache goes to the user cache.
func useYarn(t *testing.T, createApp string) {
	t.Helper()
	releases, err := filepath.Glob(filepath.Join(createApp, "node_modules", "@backstage", "create-app", "templates", "default-app", ".yarn", "releases", "yarn-*.cjs"))
	if err != nil || len(releases) != 1 {
		t.Fatalf("want one yarn release in create-app's template, got %v (%v)", releases, err)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	shim := "#!/bin/sh\nexec node " + releases[0] + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "yarn"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("YARN_GLOBAL_FOLDER", filepath.Join(userCache(), "yarn-berry"))
	t.Setenv("YARN_ENABLE_TELEMETRY", "0")
	t.Setenv("YARN_ENABLE_PROGRESS_BARS", "0")
	t.Setenv("YARN_ENABLE_INLINE_BUILDS", "0")
	t.Setenv("YARN_ENABLE_GLOBAL_CACHE", "1")
}

func userCache() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "event-mesh-broadcaster")
}

// createdApp returns a Backstage app made by the pinned create-app, with the app fixes applied
// and its backend's packages installed, from the user cache when an earlier run made one with
// the same create-app, Node.js, seed lockfile and fixes. The app stays locked until the test
// ends: the test adds the module to it and starts it, and other test processes wait.
func createdApp(t *testing.T, createApp string) (app string, created bool) {
	t.Helper()
	key := sha256.New()
	for _, f := range []string{
		filepath.Join("testdata", "createapp", "package-lock.json"),
		filepath.Join("..", "backstagepush", "testdata", "node22", "package-lock.json"),
		filepath.Join("testdata", "yarn.lock"),
	} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		key.Write(data)
	}
	for _, f := range appFixes {
		fmt.Fprintf(key, "%s\x00%s\x00%s\x00", f.file, f.old, f.new)
	}
	dir := filepath.Join(userCache(), "backstage-app-"+hex.EncodeToString(key.Sum(nil)[:8]))
	t.Cleanup(testkit.Lock(t, dir))
	app = filepath.Join(dir, "app")
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return app, false
	}
	// An interrupted earlier attempt is started over.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	create := exec.Command("node", filepath.Join(createApp, "node_modules", "@backstage", "create-app", "bin", "backstage-create-app"), "--skip-install", "--path", app)
	create.Dir = dir
	create.Env = append(os.Environ(), "BACKSTAGE_APP_NAME=mesh-app")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("create-app: %v\n%s", err, out)
	}
	// create-app fetches a seed yarn.lock from GitHub, which pins versions known to work
	// together; the test brings its own (made by the first install of this app), so every run
	// installs the same versions and a new Backstage release does not break it.
	seed, err := os.ReadFile(filepath.Join("testdata", "yarn.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "yarn.lock"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range appFixes {
		path := filepath.Join(app, f.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(f.old)) {
			t.Fatalf("app fix: %s has no %s any more; is the fix still needed?", f.file, f.old)
		}
		if err := os.WriteFile(path, bytes.Replace(data, []byte(f.old), []byte(f.new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The backend's packages only: the frontend is not what the module changes, and installing
	// it doubles the time and the size.
	run(t, app, "yarn", "workspaces", "focus", "backend")
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("created the app with create-app and installed its backend in %v", time.Since(start).Round(time.Second))
	return app, true
}

// run runs a command in dir and returns its standard output; it fails the test with both
// outputs when the command fails.
func run(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// packModule compiles the module with its own pinned packages (the install test/backstagepush
// shares) and packs it with npm pack, as for the registry. The tarball is put in the app, named
// by its content, so the app's lockfile names a file that stays.
func packModule(t *testing.T, app string) string {
	t.Helper()
	modules := filepath.Join(testkit.NPMInstall(t, "backstage-push-node22", moduleDir,
		[]string{"ci", "--no-audit", "--no-fund", "--ignore-scripts"}, []string{"rebuild", "better-sqlite3"}), "node_modules")
	work := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(work, "pkg")
	for _, name := range []string{"package.json", "tsconfig.json", "config.d.ts", "README.md", "src"} {
		if err := copyPath(filepath.Join(moduleDir, name), filepath.Join(pkg, name)); err != nil {
			t.Fatalf("copying %s: %v", name, err)
		}
	}
	run(t, pkg, filepath.Join(modules, ".bin", "tsc"), "-p", "tsconfig.json")
	out := run(t, pkg, "npm", "pack", "--json", "--pack-destination", work)
	var packed []struct{ Filename string }
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(work, packed[0].Filename))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dir := filepath.Join(app, "event-mesh-module")
	os.RemoveAll(dir) // earlier runs' tarballs
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, strings.TrimSuffix(packed[0].Filename, ".tgz")+"-"+hex.EncodeToString(sum[:6])+".tgz")
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return tarball
}

func copyPath(from, to string) error {
	info, err := os.Stat(from)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return os.CopyFS(to, os.DirFS(from))
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

const addLine = "backend.add(import('" + moduleName + "'));\n"

// addModule adds the module to the backend's index.ts, before backend.start(), as the docs say.
func addModule(t *testing.T, app string) {
	t.Helper()
	path := filepath.Join(app, "packages", "backend", "src", "index.ts")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(addLine)) {
		return
	}
	start := []byte("\nbackend.start();")
	if !bytes.Contains(data, start) {
		t.Fatalf("%s has no backend.start(): create-app's template changed", path)
	}
	data = bytes.Replace(data, start, []byte("\n"+addLine+"\nbackend.start();"), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// peersProvided checks that yarn sees every peer dependency of the module provided by the
// backend. (yarn explain rewrites the install state as if every workspace were installed: it
// runs before the focused install.)
func peersProvided(t *testing.T, app string) {
	t.Helper()
	explain := run(t, app, "yarn", "explain", "peer-requirements")
	provided, lines := 0, []string{}
	for _, line := range strings.Split(string(explain), "\n") {
		if !strings.Contains(line, "to "+moduleName+"@") || strings.Contains(line, "@types/") {
			continue
		}
		lines = append(lines, line)
		if strings.Contains(line, "✘") {
			t.Errorf("yarn explain peer-requirements: %s", line)
		} else {
			provided++
		}
	}
	if provided != 5 {
		t.Errorf("yarn explain peer-requirements: want the module's 5 peer dependencies provided, found %d\n%s", provided, strings.Join(lines, "\n"))
	}
}

var catalogNodeVersion = regexp.MustCompile(`@backstage/plugin-catalog-node@npm:([0-9][^\s,)\]]*)`)

// oneCatalogNode checks that the app holds one copy of @backstage/plugin-catalog-node, the
// package that defines the catalog's extension points, as yarn why reports it and as it lies
// on disk, and that the module loads the catalog backend's copy.
func oneCatalogNode(t *testing.T, app string) {
	out := run(t, app, "yarn", "why", "@backstage/plugin-catalog-node")
	versions := map[string]bool{}
	for _, m := range catalogNodeVersion.FindAllStringSubmatch(string(out), -1) {
		versions[m[1]] = true
	}
	if len(versions) != 1 {
		t.Errorf("yarn why @backstage/plugin-catalog-node: want one version, got %v\n%s", versions, out)
	}
	t.Logf("yarn why @backstage/plugin-catalog-node: versions %v", versions)

	copies := []string{}
	err := filepath.WalkDir(filepath.Join(app, "node_modules"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		parent := filepath.Base(filepath.Dir(path))
		if parent == "@backstage" && d.Name() == "plugin-catalog-node" {
			copies = append(copies, path)
			return filepath.SkipDir
		}
		// Descend only into node_modules folders, scopes and packages: where a copy can be.
		if d.Name() == "node_modules" || parent == "node_modules" || strings.HasPrefix(parent, "@") && filepath.Base(filepath.Dir(filepath.Dir(path))) == "node_modules" {
			return nil
		}
		return filepath.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 1 {
		t.Errorf("want one copy of @backstage/plugin-catalog-node in the app's node_modules, got %d: %v", len(copies), copies)
	}

	// Which copy each side loads, resolved as node does from where each package lies.
	script := `const m = require.resolve('` + moduleName + `/package.json');
const c = require.resolve('@backstage/plugin-catalog-backend/package.json');
const at = (p) => require.resolve('@backstage/plugin-catalog-node', { paths: [require('path').dirname(p)] });
console.log(JSON.stringify({ module: at(m), catalog: at(c) }));`
	resolved := run(t, filepath.Join(app, "packages", "backend"), "node", "-e", script)
	var got struct{ Module, Catalog string }
	if err := json.Unmarshal(resolved, &got); err != nil {
		t.Fatalf("resolving @backstage/plugin-catalog-node: %v\n%s", err, resolved)
	}
	if got.Module != got.Catalog {
		t.Errorf("the module loads %s, the catalog backend %s", got.Module, got.Catalog)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroadcaster builds the broadcaster and serves the manifests in dir, returning its URL.
func startBroadcaster(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "broadcaster")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/broadcaster").CombinedOutput(); err != nil {
		t.Fatalf("building the broadcaster: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logs := &testkit.Buffer{}
	cmd := exec.Command(bin, "--manifests", dir, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("broadcaster logs:\n%s", logs)
		}
	})
	url := "http://" + addr
	testkit.Eventually(t, "the broadcaster ready", time.Minute, func() bool {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return url
}

func randomToken(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// appConfig is the app-config.local.yaml the test writes: what docs/backstage.md tells a user
// to add (the provider, a static token for scripts), and a loopback port of the test's.
const appConfig = `backend:
  baseUrl: http://127.0.0.1:%[1]d
  listen: { host: 127.0.0.1, port: %[1]d }
  auth:
    externalAccess:
      - type: static
        options:
          token: %[2]s
          subject: event-mesh-test
catalog:
  # The consumers' Components come from a file; the relations to them show at the APIs'
  # next processing pass when the APIs were processed first.
  processingInterval: { seconds: 5 }
  locations:
    - type: file
      target: %[3]s
  providers:
    knativeEventMesh:
      %[4]s:
        baseUrl: %[5]s
`

// startBackend starts the app's backend as a developer does (yarn workspace backend start)
// and returns its URL once the catalog API answers the token.
func startBackend(t *testing.T, app, broadcaster, token string) string {
	t.Helper()
	consumers, err := filepath.Abs(filepath.Join("testdata", "consumers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	config := fmt.Sprintf(appConfig, port, token, consumers, providerID, broadcaster)
	if err := os.WriteFile(filepath.Join(app, "app-config.local.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	cmd := exec.Command("yarn", "workspace", "backend", "start")
	cmd.Dir = app
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // yarn, backstage-cli and node: stopped together
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the backend's yarn has exited; waitErr is then set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("backend logs (last 20000 bytes):\n%s", tail(logs.String(), 20000))
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	start := time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case <-exited:
			t.Fatalf("the backend exited: %v\n%s", waitErr, tail(logs.String(), 20000))
		case <-time.After(500 * time.Millisecond):
		}
		req, _ := http.NewRequest(http.MethodGet, url+"/api/catalog/entities/by-query?limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend's catalog API did not answer within 5 minutes\n%s", tail(logs.String(), 20000))
		}
	}
	t.Logf("the backend answered %v after yarn workspace backend start", time.Since(start).Round(100*time.Millisecond))
	return url
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// catalogAPI reads the catalog as a script does: the REST API with the static token.
type catalogAPI struct{ url, token, broadcaster string }

func (c *catalogAPI) get(path string, into any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, c.url+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, fmt.Errorf("GET %s: %s: %s", path, res.Status, tail(string(body), 500))
	}
	return res.StatusCode, json.Unmarshal(body, into)
}

// entity is one entity by kind, namespace and name, nil when there is none.
func (c *catalogAPI) entity(kind, namespace, name string) (map[string]any, error) {
	var e map[string]any
	status, err := c.get("/api/catalog/entities/by-name/"+kind+"/"+namespace+"/"+name, &e)
	if status == http.StatusNotFound {
		return nil, nil
	}
	return e, err
}

// meshEntities are the entities the module wrote: they carry the broadcaster's URL as their location.
func (c *catalogAPI) meshEntities() ([]map[string]any, error) {
	filter := url.QueryEscape("metadata.annotations.backstage.io/managed-by-location=url:" + c.broadcaster)
	var page struct{ Items []map[string]any }
	_, err := c.get("/api/catalog/entities/by-query?limit=1000&filter="+filter, &page)
	return page.Items, err
}

// difference says how the catalog's mesh entities differ from want (by ref, normalized), or "".
// A ref whose want is nil must be there, whatever it holds.
func (c *catalogAPI) difference(want map[string]any) string {
	items, err := c.meshEntities()
	if err != nil {
		return err.Error()
	}
	got := map[string]any{}
	for _, e := range items {
		got[refOf(e)] = normalize(e, c.broadcaster)
	}
	var problems []string
	for ref, w := range want {
		g, ok := got[ref]
		switch {
		case !ok:
			problems = append(problems, "missing "+ref)
		case w == nil:
		case !reflect.DeepEqual(g, w):
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			problems = append(problems, fmt.Sprintf("differs %s:\n got %s\nwant %s", ref, gj, wj))
		}
	}
	for ref := range got {
		if _, ok := want[ref]; !ok {
			problems = append(problems, "extra "+ref)
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "\n")
}

// waitFor polls check until it returns "" and fails the test with its last answer at timeout.
func (c *catalogAPI) waitFor(t *testing.T, what string, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		last := check()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last:\n%s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func refOf(e map[string]any) string {
	ns := str(e, "metadata", "namespace")
	if ns == "" {
		ns = "default"
	}
	return strings.ToLower(str(e, "kind")) + ":" + ns + "/" + str(e, "metadata", "name")
}

func str(e map[string]any, path ...string) string {
	var v any = e
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func hasRelation(e map[string]any, typ, target string) bool {
	rels, _ := e["relations"].([]any)
	for _, r := range rels {
		if m, ok := r.(map[string]any); ok && m["type"] == typ && m["targetRef"] == target {
			return true
		}
	}
	return false
}

// normalize is an entity as the golden file holds it (test/fixtures of the module, made by the
// published plugin): the broadcaster's URL as ${BASE_URL}, without uid, etag and generation,
// relations as type and target, sorted.
func normalize(e map[string]any, baseURL string) any {
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	var copy map[string]any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(data), baseURL, "${BASE_URL}")), &copy); err != nil {
		panic(err)
	}
	if m, ok := copy["metadata"].(map[string]any); ok {
		delete(m, "uid")
		delete(m, "etag")
		delete(m, "generation")
	}
	rels := []any{}
	list, _ := copy["relations"].([]any)
	for _, r := range list {
		m, _ := r.(map[string]any)
		rels = append(rels, map[string]any{"type": m["type"], "targetRef": m["targetRef"]})
	}
	key := func(r any) string { m := r.(map[string]any); return fmt.Sprint(m["type"], m["targetRef"]) }
	sort.Slice(rels, func(i, j int) bool { return key(rels[i]) < key(rels[j]) })
	copy["relations"] = rels
	return copy
}

// goldenEntities are the mesh entities of the module's golden catalog (the published plugin's
// first ingest of examples/mesh), by ref: the consumers there come from the test's own
// provider, here from a file, so they are left out.
func goldenEntities(t *testing.T, broadcaster string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleDir, "test", "fixtures", "examples-mesh.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden []struct {
		Ref    string
		Entity map[string]any
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for _, g := range golden {
		if str(g.Entity, "metadata", "annotations", "backstage.io/managed-by-location") == "url:${BASE_URL}" {
			want[g.Ref] = normalize(g.Entity, broadcaster)
		}
	}
	if len(want) != 15 {
		t.Fatalf("want the 15 mesh entities of the golden catalog, found %d", len(want))
	}
	return want
}
