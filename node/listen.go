package node

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// The internal port carries several protocols, told apart by TLS ALPN.
const (
	protoHTTP    = "http/1.1"       // the peer API
	protoShuffle = "engine-shuffle" // shuffle segments
	protoEdge    = "engine-edge"    // edge peer fills and purges
)

// handshakeTimeout bounds a TLS handshake (and the API's first byte).
const handshakeTimeout = 10 * time.Second

// connQueue is a net.Listener fed by a dispatcher.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// push hands c to Accept; false if the queue is closed.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// peerMux serves the internal port: mutual TLS under the cluster CA, each
// connection handed to the listener of its ALPN protocol. A connection
// without a valid client certificate fails its handshake and gets nothing.
type peerMux struct {
	ln     net.Listener
	cfg    *tls.Config
	protos map[string]*connQueue
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		closed      bool
		handshaking map[net.Conn]struct{} // closed by close: no wait for a silent peer
	}
}

func newPeerMux(ln net.Listener, cfg *tls.Config, log *slog.Logger, protos ...string) *peerMux {
	m := &peerMux{ln: ln, cfg: cfg.Clone(), protos: map[string]*connQueue{}, log: log}
	m.mu.handshaking = map[net.Conn]struct{}{}
	m.cfg.NextProtos = protos
	for _, p := range protos {
		m.protos[p] = newConnQueue(ln.Addr())
	}
	return m
}

// listener returns the listener of one protocol.
func (m *peerMux) listener(proto string) net.Listener { return m.protos[proto] }

// serve accepts until the listener is closed.
func (m *peerMux) serve() {
	var retry retrier
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			m.log.Warn("internal port: accept", "err", err)
			retry.wait()
			continue
		}
		retry.reset()
		m.mu.Lock()
		if m.mu.closed {
			m.mu.Unlock()
			c.Close()
			break
		}
		m.mu.handshaking[c] = struct{}{}
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.dispatch(c)
		}()
	}
	m.wg.Wait()
}

// retrier backs off after an accept error that is not the listener's end
// (out of file descriptors, say), as net/http's Server does, instead of
// giving up the port.
type retrier struct{ d time.Duration }

func (r *retrier) wait() {
	r.d = min(max(2*r.d, 5*time.Millisecond), time.Second)
	time.Sleep(r.d)
}

func (r *retrier) reset() { r.d = 0 }

func (m *peerMux) dispatch(raw net.Conn) {
	defer func() {
		m.mu.Lock()
		delete(m.mu.handshaking, raw)
		m.mu.Unlock()
	}()
	tc := tls.Server(raw, m.cfg)
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Debug("internal port: refused a connection", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	q := m.protos[tc.ConnectionState().NegotiatedProtocol]
	if q == nil || !q.push(tc) {
		tc.Close()
	}
}

// close stops accepting and closes every protocol's listener.
func (m *peerMux) close() error {
	err := m.ln.Close()
	m.mu.Lock()
	m.mu.closed = true
	for c := range m.mu.handshaking {
		c.Close()
	}
	m.mu.Unlock()
	for _, q := range m.protos {
		q.Close()
	}
	return err
}

// apiListener serves plain HTTP and HTTPS on one port: a connection that
// starts with a TLS handshake record is served over TLS with the node's
// certificate (clients that verify it need the cluster CA; joining nodes
// pin it), any other as plain HTTP. Either way the API wants a token.
type apiListener struct {
	ln  net.Listener
	cfg *tls.Config
	q   *connQueue
	wg  sync.WaitGroup
}

func newAPIListener(ln net.Listener, cfg *tls.Config) *apiListener {
	a := &apiListener{ln: ln, cfg: cfg, q: newConnQueue(ln.Addr())}
	a.wg.Add(1)
	go a.run()
	return a
}

func (a *apiListener) run() {
	defer a.wg.Done()
	var wg sync.WaitGroup
	defer wg.Wait()
	var retry retrier
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				a.q.Close()
				return
			}
			retry.wait()
			continue
		}
		retry.reset()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(handshakeTimeout))
			br := bufio.NewReaderSize(c, 1)
			b, err := br.Peek(1)
			if err != nil {
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			var out net.Conn = &peekedConn{Conn: c, r: br}
			if b[0] == 0x16 { // TLS handshake record
				out = tls.Server(out, a.cfg)
			}
			if !a.q.push(out) {
				c.Close()
			}
		}()
	}
}

func (a *apiListener) Accept() (net.Conn, error) { return a.q.Accept() }
func (a *apiListener) Addr() net.Addr            { return a.ln.Addr() }
func (a *apiListener) Close() error {
	err := a.ln.Close()
	a.q.Close()
	return err
}

// peekedConn reads first what was peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
