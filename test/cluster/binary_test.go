package cluster

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// broadcasterBinary is cmd/broadcaster built with -race, once per run: the end-to-end tests
// run the real program, as a user would, and its races fail them.
var broadcasterBinary = testkit.NewBinary(testkit.BroadcasterPackage, "broadcaster", "-race")

func TestMain(m *testing.M) {
	code := m.Run()
	broadcasterBinary.Remove()
	os.Exit(code)
}

// process is a running broadcaster.
type process struct {
	*testkit.Process
	t    testing.TB
	addr string
}

var listenLine = regexp.MustCompile(`msg="broadcaster starting".* listen=(\S+)`)

// startBroadcaster runs the broadcaster with args (plus --listen 127.0.0.1:0) until the test
// ends, when it is killed, and waits until it listens.
func startBroadcaster(t testing.TB, args ...string) *process {
	t.Helper()
	cmd := exec.Command(broadcasterBinary.Path(t), append(args, "--listen", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "KUBERNETES_SERVICE_HOST=")
	p := &process{Process: testkit.StartProcess(t, "the broadcaster", cmd), t: t}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.Exited()
	})
	testkit.Eventually(t, "the broadcaster to listen", 60*time.Second, func() bool {
		p.Running()
		if m := listenLine.FindStringSubmatch(p.Logs()); m != nil {
			p.addr = m[1]
			return true
		}
		return false
	})
	return p
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
