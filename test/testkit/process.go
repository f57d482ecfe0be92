package testkit

import (
	"errors"
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
)

// BroadcasterPackage is the broadcaster's main package, which the end-to-end tests build and
// run as a user would.
const BroadcasterPackage = "github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster"

// Binary is a main package built on first use and then reused by every test of the test
// binary that holds it (the Go build cache makes later test binaries fast).
type Binary struct {
	pkg, name string
	flags     []string
	once      sync.Once
	path      string
	err       error
}

// NewBinary is pkg, to be built as name with the go build flags given.
func NewBinary(pkg, name string, flags ...string) *Binary {
	return &Binary{pkg: pkg, name: name, flags: flags}
}

// Build builds the binary once and returns its path.
func (b *Binary) Build() (string, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", b.name+"-")
		if err != nil {
			b.err = err
			return
		}
		path := filepath.Join(dir, b.name)
		args := append(append([]string{"build"}, b.flags...), "-o", path, b.pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %v\n%s", b.pkg, err, out)
			return
		}
		b.path = path
	})
	return b.path, b.err
}

// Path is the built binary; a build that fails fails the test.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	path, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

var errRemoved = errors.New("the binary was removed")

// Remove deletes the binary, once no test needs it any more (after testing.M's Run).
func (b *Binary) Remove() {
	b.once.Do(func() { b.err = errRemoved })
	if b.path != "" {
		os.RemoveAll(filepath.Dir(b.path))
	}
}

// FreeAddr is a loopback address nobody listens on, for a process to listen on (a process
// started again takes it again).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StopGrace is how long Stop, and the end of the test, wait for a process to end on SIGTERM
// before they kill it.
const StopGrace = 20 * time.Second

// Process is a program a test runs as its child, so that the test may kill it or stop it as
// a rollout does, and read what it logged. It dies with the test process, even one killed
// before its clean-up ran.
type Process struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	logs   Buffer
	exited chan struct{} // closed once cmd has been waited for
	err    error         // what Wait returned, set before exited is closed
}

// StartProcess runs cmd (its output taken into Logs) until Stop, Kill or the end of the test,
// which stops it and, when the test failed, logs what it wrote under name.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{t: t, name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s (pid %d) logs:\n%s", name, cmd.Process.Pid, p.Logs())
		}
	})
	return p
}

// Logs is what the process wrote so far, stdout and stderr together.
func (p *Process) Logs() string { return p.logs.String() }

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running fails the test, with the process's logs, if the process has ended.
func (p *Process) Running() {
	p.t.Helper()
	select {
	case <-p.exited:
		p.t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.Logs())
	default:
	}
}

// Signal sends sig to the process unless it has ended.
func (p *Process) Signal(sig os.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill ends the process at once (SIGKILL) and waits for it: no shutdown, connections cut. A
// process that had already ended fails the test.
func (p *Process) Kill() {
	p.t.Helper()
	p.Running()
	p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop ends the process as a rollout does (SIGTERM) and waits for it; one that has not ended
// within StopGrace is killed. It reports whether the process ended on SIGTERM (or had already
// ended).
func (p *Process) Stop() bool {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(StopGrace):
		p.Signal(syscall.SIGKILL)
		<-p.exited
		return false
	}
}

// AwaitHTTP waits until GET url answers 200, failing the test if the process ends first or
// it does not answer within a minute.
func (p *Process) AwaitHTTP(url string) {
	p.t.Helper()
	Eventually(p.t, p.name+" to answer GET "+url, time.Minute, func() bool {
		p.Running()
		return HTTPOK(url)
	})
}

// HTTPOK reports whether GET url answers 200.
func HTTPOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
