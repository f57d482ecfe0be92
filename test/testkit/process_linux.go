package testkit

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the process when the test process ends.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
