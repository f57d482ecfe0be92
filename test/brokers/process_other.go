//go:build !linux

package brokers

import "os/exec"

// dieWithParent: only Linux can tie a child's life to its parent; elsewhere a test killed
// before its clean-up leaves its broker running.
func dieWithParent(*exec.Cmd) {}
