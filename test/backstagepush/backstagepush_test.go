package backstagepush

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const packageDir = "../../integrations/backstage"

func TestCatalogModuleAgainstBroadcaster(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the Backstage catalog module tests (Node.js 20+): %v", tool, err)
		}
	}
	modules := installPackages(t)
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
	// One file at a time: each starts catalogs and broadcasters, and the machine has two cores.
	test := exec.Command("node", append([]string{"--test", "--test-force-exit", "--test-concurrency=1"}, tests...)...)
	test.Dir = pkg
	test.Env = env
	test.WaitDelay = 5 * time.Second
	out, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
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

// installPackages runs npm ci once per lock file into a cache folder and returns its
// node_modules. Install scripts are off (the published plugin pulls packages whose scripts
// need the network); better-sqlite3 is then built on its own.
func installPackages(t *testing.T) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(packageDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "event-mesh-broadcaster", "backstage-push-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".complete")); err == nil {
		return modules
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(packageDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"ci", "--no-audit", "--no-fund", "--ignore-scripts"},
		{"rebuild", "better-sqlite3"},
	} {
		npm := exec.Command("npm", args...)
		npm.Dir = tmp
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm %v: %v\n%s", args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "node_modules", ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return modules
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
