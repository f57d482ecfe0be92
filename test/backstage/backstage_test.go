package backstage

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

func TestBackstageProviderAgainstBroadcaster(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the Backstage drop-in test (Node.js 20+): %v", tool, err)
		}
	}
	// The published plugin, pinned by package-lock.json (its install scripts want the network).
	modules := filepath.Join(testkit.NPMInstall(t, "backstage", ".", []string{"ci", "--no-audit", "--no-fund", "--ignore-scripts"}), "node_modules")

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
