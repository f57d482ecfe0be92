//go:build !linux

package testkit

import "os/exec"

// dieWithParent: only Linux can tie a child's life to its parent; elsewhere a test killed
// before its clean-up leaves its process running.
func dieWithParent(*exec.Cmd) {}
