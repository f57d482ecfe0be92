package backstagepush

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

const packageDir = "../../integrations/backstage"

func TestCatalogModuleAgainstBroadcaster(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm is needed for the Backstage catalog module tests: %v", err)
	}
	// Backstage supports Node.js 22 and 24; the machine's may be older. Node.js 22 comes from
	// the npm registry (pinned by testdata/node22), and npm and node-gyp run on it from here on.
	node := testkit.Node(t, "node22", filepath.Join("testdata", "node22"))
	testkit.UseNode(t, node)
	// Install scripts are off (the published plugin pulls packages whose scripts need the
	// network); better-sqlite3 is then built on its own, for the Node.js above.
	modules := filepath.Join(testkit.NPMInstall(t, "backstage-push-node22", packageDir,
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
	runNode(t, filepath.Join(node, "node"), pkg, env, tests)
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
