package mqtt

import "syscall"

// quickAck sends a pending TCP ACK now and leaves delayed acknowledgement off for a while
// (TCP_QUICKACK is not sticky, hence a call after every read).
func quickAck(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
