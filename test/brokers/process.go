package brokers

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is a broker running as a child process of the test, so that a test can freeze it
// (SIGSTOP) like a hung broker, and so that -race does not instrument the broker's own code.
type process struct {
	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// launch starts cmd as the broker's process; exited is closed when it ends.
func (p *process) launch(cmd *exec.Cmd) (exited <-chan struct{}) {
	p.t.Helper()
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.exited = cmd, done
	return done
}

// kill ends the process at once.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// command prepares a broker process that dies with the test process, even one killed before
// its clean-up ran.
func command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	return cmd
}

// Pause freezes the broker's process (SIGSTOP): connections stay open and nothing answers,
// as with a broker that hangs.
func (p *process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume lets a paused broker go on (SIGCONT).
func (p *process) Resume() { p.signal(syscall.SIGCONT) }

func (p *process) signal(sig syscall.Signal) {
	p.t.Helper()
	if p.cmd == nil {
		p.t.Fatal("only a running broker of the test's own can be paused")
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Stop stops the broker (a paused one too).
func (p *process) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.exited:
		p.cmd = nil
	case <-time.After(5 * time.Second):
		p.kill()
	}
}
