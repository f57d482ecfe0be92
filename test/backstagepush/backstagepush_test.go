package backstagepush

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	work := t.TempDir()
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

	// The current Backstage release line, as the module's devDependencies pin it: every test.
	current := compile(t, install(t, "backstage-push-node22", packageDir), filepath.Join(work, "current"))
	runNode(t, filepath.Join(node, "node"), current, env, testFiles(t, current))

	// The previous release line, the lowest versions the module's peer ranges admit
	// (plugin-catalog-node 2.2.5, backend-plugin-api 1.10.1: testdata/previous): the same
	// sources compiled against its packages, every test on SQLite (the database is the
	// catalog's business, not the module's; PostgreSQL runs on the current line above), so
	// all but the two replicas', which needs PostgreSQL.
	previous := compile(t, install(t, "backstage-push-previous", filepath.Join("testdata", "previous")), filepath.Join(work, "previous"))
	onSQLite := slices.DeleteFunc(testFiles(t, previous), func(f string) bool { return filepath.Base(f) == "replicas.test.js" })
	runNode(t, filepath.Join(node, "node"), previous, append(env, "TEST_DATABASES=sqlite"), onSQLite)

	// Node.js 24 (testdata/node24), the other version Backstage supports: the tests that start
	// no catalog (the wire, the configuration, the follower's resume and backoff), on the
	// current line's compiled tests; the packages are JavaScript but for better-sqlite3, which
	// is built for Node.js 22 and which these tests do not load.
	node24 := testkit.Node(t, "node24", filepath.Join("testdata", "node24"))
	var noCatalog []string
	for _, name := range []string{"units", "follower"} {
		noCatalog = append(noCatalog, filepath.Join(current, "dist", "test", name+".test.js"))
	}
	runNode(t, filepath.Join(node24, "node"), current, env, noCatalog)
}

// install installs, once per package-lock.json, the npm packages of the npm project in dir into
// the user cache and returns its node_modules. Install scripts are off (the published plugin
// pulls packages whose scripts need the network); better-sqlite3 is then built on its own, for
// the Node.js first on PATH.
func install(t *testing.T, name, dir string) string {
	t.Helper()
	return filepath.Join(testkit.NPMInstall(t, name, dir,
		[]string{"ci", "--no-audit", "--no-fund", "--ignore-scripts"}, []string{"rebuild", "better-sqlite3"}), "node_modules")
}

// testFiles are the compiled test files of the package compiled in pkg.
func testFiles(t *testing.T, pkg string) []string {
	t.Helper()
	tests, err := filepath.Glob(filepath.Join(pkg, "dist", "test", "*.test.js"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no compiled tests in %s: %v", pkg, err)
	}
	return tests
}

// runNode runs node's test runner on each file of tests in turn, in a process of its own (each
// starts catalogs and broadcasters, and the machine has two cores), and fails unless every
// test it started ended, none failed and the summary came.
//
// The tests run in the runner's process (--experimental-test-isolation=none, which Node.js 22
// and 24 both read), which --test-force-exit ends once they are done: a catalog keeps a process
// alive after backend.stop(). In a child process of the runner's, as by default, the child
// was ended with its report cut short and no test failed, so tests went missing silently (the
// configuration and in-memory mesh tests of units.test.js, on Node.js 22.23, in 7 runs of 8).
func runNode(t *testing.T, node, dir string, env, tests []string) {
	t.Helper()
	version, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	v := strings.TrimSpace(string(version))
	started := time.Now()
	for _, file := range tests {
		name, _ := filepath.Rel(dir, file)
		test := exec.Command(node, "--test", "--experimental-test-isolation=none", "--test-force-exit", "--test-reporter=tap", file)
		test.Dir = dir
		test.Env = env
		test.WaitDelay = 5 * time.Second
		began := time.Now()
		out, err := test.CombinedOutput()
		if err != nil {
			t.Fatalf("node %s --test %s: %v\n%s", v, name, err, out)
		}
		// Top-level tests: "# Subtest: <name>" when one starts, "ok N - <name>" or
		// "not ok N - <name>" when it ends; then the summary, "# fail N" among it.
		var begun, ended int
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "# Subtest: ") {
				begun++
			} else if strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "not ok ") {
				ended++
			}
		}
		if begun == 0 || ended != begun || !strings.Contains(string(out), "\n# fail 0\n") {
			t.Fatalf("node %s --test %s: %d tests started, %d ended, or no summary of no failure\n%s", v, name, begun, ended, out)
		}
		t.Logf("node %s --test %s: %d tests in %v\n%s", v, name, ended, time.Since(began).Round(100*time.Millisecond), out)
	}
	t.Logf("node %s in %s: %d test files in %v", v, dir, len(tests), time.Since(started).Round(100*time.Millisecond))
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
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
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
