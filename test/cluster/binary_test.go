package cluster

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// binDir holds the broadcaster binary built for this test run (see TestMain).
var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "broadcaster-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broadcasterBinary builds cmd/broadcaster once per run: the end-to-end tests run the real
// program, as a user would.
func broadcasterBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "broadcaster")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "../../cmd/broadcaster")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the broadcaster: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// process is a running broadcaster.
type process struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	logs   *testkit.Buffer
	exited chan struct{}
	err    error
}

var listenLine = regexp.MustCompile(`msg="broadcaster starting".* listen=(\S+)`)

// startBroadcaster runs the broadcaster with args (plus --listen 127.0.0.1:0) until the test
// ends, and waits until it listens.
func startBroadcaster(t testing.TB, args ...string) *process {
	t.Helper()
	p := &process{t: t, logs: &testkit.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(broadcasterBinary(t), append(args, "--listen", "127.0.0.1:0")...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = append(os.Environ(), "KUBECONFIG=", "KUBERNETES_SERVICE_HOST=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("broadcaster %d logs:\n%s", p.cmd.Process.Pid, p.logs.String())
		}
	})
	testkit.Eventually(t, "the broadcaster to listen", 60*time.Second, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the broadcaster exited: %v\n%s", p.err, p.logs.String())
		default:
		}
		if m := listenLine.FindStringSubmatch(p.logs.String()); m != nil {
			p.addr = m[1]
			return true
		}
		return false
	})
	return p
}

func (p *process) signal(sig os.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// get requests path with a bearer token (none when empty).
func (p *process) get(path, token string) (int, []byte, http.Header) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}
