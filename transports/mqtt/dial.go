package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	neturl "net/url"
	"syscall"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
)

// dial connects like autopaho does, but acknowledges at the TCP level every read at once.
// Pipelined publishing needs it: a broker that Nagles its PUBACKs (Mosquitto does by default)
// holds back every PUBACK after the first until our ACK of the first, which the kernel delays
// by up to 40 ms when we have nothing to send; at the end of each batch of publishes, that is
// always. Measured against Mosquitto 2.0: 1,400 events/s without it, 16,000 with it (the
// same as with the broker's set_tcp_nodelay).
func dial(ctx context.Context, cfg autopaho.ClientConfig, u *neturl.URL) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		if raw, err := tcp.SyscallConn(); err == nil {
			conn = quickAckConn{TCPConn: tcp, raw: raw}
		}
	}
	if u.Scheme != "tls" {
		return conn, nil
	}
	tc := &tls.Config{}
	if cfg.TlsCfg != nil {
		tc = cfg.TlsCfg.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	tlsConn := tls.Client(conn, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return packets.NewThreadSafeConn(tlsConn), nil
}

// quickAckConn asks the kernel, after each read, to acknowledge what came at once.
type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if n > 0 {
		quickAck(c.raw)
	}
	return n, err
}
