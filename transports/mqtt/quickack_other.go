//go:build !linux

package mqtt

import "syscall"

// quickAck is Linux's TCP_QUICKACK; elsewhere delayed acknowledgement stays as the system has it.
func quickAck(syscall.RawConn) {}
