package backstage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBackstageProviderAgainstBroadcaster(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the Backstage drop-in test (Node.js 20+): %v", tool, err)
		}
	}
	modules := installPlugin(t)

	bin := filepath.Join(t.TempDir(), "broadcaster")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/broadcaster").CombinedOutput(); err != nil {
		t.Fatalf("building the broadcaster: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := exec.CommandContext(ctx, bin, "--manifests", "../../examples/mesh", "--listen", "127.0.0.1:0")
	logs, _ := broadcaster.StderrPipe()
	if err := broadcaster.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // stops the broadcaster
		broadcaster.Wait()
	}()
	url := listenURL(t, logs)

	test := exec.CommandContext(ctx, "node", "--test", "provider.test.js")
	test.WaitDelay = time.Second
	test.Env = append(os.Environ(), "NODE_PATH="+modules, "BROADCASTER_URL="+url)
	out, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// installPlugin runs npm ci once per lock file into a cache folder and returns its node_modules.
func installPlugin(t *testing.T) string {
	t.Helper()
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "event-mesh-broadcaster", "backstage-"+hex.EncodeToString(sum[:8]))
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
		data, _ := os.ReadFile(f)
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	npm := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	npm.Dir = tmp
	if out, err := npm.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(tmp, "node_modules", ".complete"), nil, 0o644)
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return modules
}

var listenLine = regexp.MustCompile(`listen=(\S+)`)

// listenURL reads the broadcaster's log until it says where it listens, then keeps draining it.
func listenURL(t *testing.T, logs interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "broadcaster starting") {
				found <- "http://" + m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("the broadcaster never said where it listens")
	}
	return ""
}
