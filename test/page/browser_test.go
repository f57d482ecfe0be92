package page_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

var (
	binDir   string
	build    sync.Once
	binPath  string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "broadcaster-page-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broadcasterBinary builds cmd/broadcaster once per run: the page is tested as it ships.
func broadcasterBinary(t testing.TB) string {
	t.Helper()
	build.Do(func() {
		binPath = filepath.Join(binDir, "broadcaster")
		if out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/broadcaster").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the broadcaster: %v", buildErr)
	}
	return binPath
}

// startBroadcaster runs the broadcaster binary on dir until the test ends and returns its
// base URL once /readyz answers 200.
func startBroadcaster(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &testkit.Buffer{}
	cmd := exec.Command(broadcasterBinary(t), append([]string{"--manifests", dir, "--listen", addr}, extra...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives a test binary that dies
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("broadcaster logs:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	testkit.Eventually(t, "the broadcaster to be ready", 60*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the broadcaster exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// chromium is Debian's chromium package: missing, the test fails (it never skips).
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("Chromium is missing: these tests drive the page in a real headless browser; install Debian's " +
		"`chromium` package (apt-get install -y chromium)")
	return ""
}

// browser starts a headless Chromium with a fresh profile, isolated from the network beyond
// what the page asks of the broadcaster, and returns a tab.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // small /dev/shm in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1500, 1000),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go: $BROADCASTER_TEST_ARTIFACTS, default the test's
// temporary directory.
func artifacts(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("BROADCASTER_TEST_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

func navigate(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition every 5 ms until it holds, and returns how long it
// took; past the deadline the test fails, saying what it waited for.
func waitFor(t testing.TB, ctx context.Context, what string, deadline time.Duration, js string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > deadline {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.state + ': ' + document.getElementById('status').textContent`))
			t.Fatalf("waited %v for %s (last error %v); the page says %q", deadline, what, err, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func chromedpReload(ctx context.Context) error { return chromedp.Do(ctx, chromedp.Reload()) }
