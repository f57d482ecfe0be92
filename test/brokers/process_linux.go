package brokers

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the broker when the test process ends.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
