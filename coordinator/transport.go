package coordinator

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is Raft's stream layer over mutual TLS: every connection, in
// or out, presents a certificate the other side verifies.
type tlsStream struct {
	net.Listener // a tls.Listener: handshakes run in the transport's per-connection goroutine
	adv          net.Addr
	client       *tls.Config
}

func (s *tlsStream) Addr() net.Addr {
	if s.adv != nil {
		return s.adv
	}
	return s.Listener.Addr()
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.client}
	return d.Dial("tcp", string(addr))
}

// tlsListener hands out server-side TLS connections whose handshake (run
// by the first Read, in the transport's goroutine for the connection) must
// end within handshakeTimeout.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

const handshakeTimeout = 10 * time.Second

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, l.cfg)}, nil
}

type serverConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		if c.err = c.Conn.Handshake(); c.err == nil {
			c.err = c.Conn.SetDeadline(time.Time{})
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// newTransport is Raft's network transport: over mutual TLS when the
// configuration has both TLS sides, else plain TCP (tests of this package).
func newTransport(cfg RaftConfig, adv net.Addr, logger raft.NetworkTransportConfig) (*raft.NetworkTransport, error) {
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return raft.NewTCPTransportWithConfig(cfg.Bind, adv, &logger)
	}
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, err
	}
	if adv == nil {
		adv = ln.Addr()
	}
	logger.Stream = &tlsStream{Listener: &tlsListener{ln, cfg.ServerTLS}, adv: adv, client: cfg.ClientTLS}
	return raft.NewNetworkTransportWithConfig(&logger), nil
}
