package page_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// broadcasterBinary is cmd/broadcaster, built once per run: the page is tested as it ships.
var broadcasterBinary = testkit.NewBinary(testkit.BroadcasterPackage, "broadcaster")

func TestMain(m *testing.M) {
	code := m.Run()
	broadcasterBinary.Remove()
	os.Exit(code)
}

// launch runs the broadcaster binary with args until the test ends (or Kill), and returns once
// GET ready on addr answers 200.
func launch(t testing.TB, addr, ready string, args ...string) *testkit.Process {
	t.Helper()
	p := testkit.StartProcess(t, strings.Join(args, " "), exec.Command(broadcasterBinary.Path(t), args...))
	p.AwaitHTTP("http://" + addr + ready)
	return p
}

// startBroadcaster runs the broadcaster binary on dir until the test ends and returns its
// base URL once /readyz answers 200.
func startBroadcaster(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	launch(t, addr, "/readyz", append([]string{"--manifests", dir, "--listen", addr}, extra...)...)
	return "http://" + addr
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
