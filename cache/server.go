package cache

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"engine/cache/httpx"
	"engine/cache/tier"
	"engine/internal/listeners"
)

// Config configures an edge node.
type Config struct {
	// Name is the cache's name in Cache-Status (default "engine-edge").
	Name string
	// Self is this edge's peer address as the other edges dial it
	// (HOST:PORT of the node's internal mutual-TLS port); it must be among
	// what Peers returns for the ring to place keys here.
	Self string
	// Origins are the origin URLs in priority order. When empty,
	// DynamicOrigins gives them (the cluster's S3 endpoints).
	Origins        []string
	DynamicOrigins func() []string
	// Peers returns the live edges' peer addresses (HOST:PORT, Self
	// included): the consistent-hash ring. Nil: a lone edge.
	Peers func() []string
	// PeerListener gives the connections of authenticated cluster nodes:
	// TLS already terminated, the client certificate verified against the
	// cluster CA (each Accept returns a *tls.Conn whose handshake is
	// complete, ALPN "engine-edge"). Peer fills and forwarded purges are
	// served on it, and only on it; Close closes it. Nil: none are served.
	PeerListener net.Listener
	// PeerTLS is the client configuration for dialing peers (the cluster
	// CA as RootCAs, this node's certificate); the edge uses a clone with
	// NextProtos "engine-edge". Nil: no peer fills and no purge
	// forwarding, whatever Peers says.
	PeerTLS *tls.Config

	MemoryLimit int64  // memory tier bytes (default 256 MiB)
	DiskDir     string // disk tier directory ("": no disk tier)
	DiskLimit   int64  // disk tier bytes (default 10 GiB)
	MaxObject   int64  // largest body cached (default 1 GiB); larger ones are relayed
	// KeyParams are the query parameters that select a different object:
	// they are kept in the cache key (and in a fill's request to the
	// origin); the others are dropped from both. Nil: DefaultKeyParams;
	// a "*" among them keeps every query as sent (any query string is
	// then a different entry).
	KeyParams []string
	// MaxFillBytes bounds the body bytes all fills hold in memory at
	// once, including those of finished fills still being sent to slow
	// clients (default 256 MiB). A fill that does not fit (or whose
	// object is larger) is relayed to its client, streamed, not stored.
	MaxFillBytes int64
	// MaxFills bounds the fills running at once (default 256); a miss
	// beyond it is relayed.
	MaxFills    int
	CompressMax int64 // largest body compressed for a client (default 8 MiB)
	// StaleIfError is how long past its freshness an entry may be served
	// when the origin fails and the origin set no stale-if-error (default
	// 24h). Entries marked must-revalidate never are.
	StaleIfError time.Duration

	HealthInterval time.Duration // origin checks (default 10s); 3 failures take an origin out, 2 passes bring it back
	HealthPath     string        // path probed with HEAD (default "/")
	ConnectTimeout time.Duration // to an origin or a peer (default 2s): then the next origin, or 502
	HeaderTimeout  time.Duration // for an origin's response headers (default 10s): then 504

	// AdminToken guards /_edge/purge, /_edge/stats and /_edge/metrics
	// (Authorization: Bearer TOKEN). Empty: those answer 403.
	AdminToken string
	AccessLog  io.Writer // one line per request; nil: none
	Log        *slog.Logger
	Now        func() time.Time
}

// Server is an edge node. Create it with New, serve with Serve or
// ServeTLS, stop with Close.
type Server struct {
	cfg     Config
	mem     *tier.Memory
	disk    *tier.Disk
	origins *originPool
	ring    ring
	peers   *http.Client // nil without Config.PeerTLS
	srv     *fasthttp.Server
	peerSrv *fasthttp.Server // on Config.PeerListener; nil without one
	peerWG  sync.WaitGroup
	alog    *accessLog
	stats   stats
	metrics *metrics

	fillsMu sync.Mutex
	fills   map[string]*fill
	budget  fillBudget
	// behind bounds the background revalidations running at once
	// (stale-while-revalidate): a token per fill.
	behind chan struct{}
	compMu sync.Mutex
	comps  map[string]*compression

	hitStatus string // Cache-Status of a hit on an immutable entry
	keys      keyPolicy

	ctx       context.Context // cancelled by Close: fills stop
	cancel    context.CancelFunc
	fillWG    sync.WaitGroup
	closeOnce sync.Once
	lns       listeners.Set // closed by Close, also before Serve got going
}

// peerHeader marked a peer's request on the public port before peers
// had a port of their own. It is ignored now: a request on the public
// port is a client's, whatever it says.
const peerHeader = "X-Engine-Edge-Peer"

// peerALPN is the ALPN protocol of edge peer connections on a node's
// internal port.
const peerALPN = "engine-edge"

// New opens the tiers (the disk tier's entries survive restarts) and starts
// the origins' health checks.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = "engine-edge"
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = 256 << 20
	}
	if cfg.DiskLimit <= 0 {
		cfg.DiskLimit = 10 << 30
	}
	if cfg.MaxObject <= 0 {
		cfg.MaxObject = 1 << 30
	}
	if cfg.MaxFillBytes <= 0 {
		cfg.MaxFillBytes = 256 << 20
	}
	if cfg.MaxFills <= 0 {
		cfg.MaxFills = 256
	}
	if cfg.CompressMax <= 0 {
		cfg.CompressMax = 8 << 20
	}
	if cfg.StaleIfError == 0 {
		cfg.StaleIfError = 24 * time.Hour
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 10 * time.Second
	}
	if cfg.HealthPath == "" {
		cfg.HealthPath = "/"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mem: tier.NewMemory(cfg.MemoryLimit), fills: map[string]*fill{}, behind: make(chan struct{}, maxBehind), comps: map[string]*compression{},
		hitStatus: httpx.CacheStatus{Cache: cfg.Name, Hit: true}.String()}
	s.budget.maxBytes, s.budget.maxFills = cfg.MaxFillBytes, int64(cfg.MaxFills)
	s.keys = newKeyPolicy(cfg.KeyParams)
	var err error
	if s.origins, err = newOriginPool(cfg.Origins, cfg.DynamicOrigins, cfg.HealthInterval, cfg.HealthPath, cfg.ConnectTimeout, cfg.HeaderTimeout, cfg.Log); err != nil {
		return nil, err
	}
	if cfg.DiskDir != "" {
		if s.disk, err = tier.OpenDisk(cfg.DiskDir, cfg.DiskLimit); err != nil {
			return nil, err
		}
	}
	if cfg.PeerTLS != nil {
		tc := cfg.PeerTLS.Clone()
		tc.NextProtos = []string{peerALPN}
		s.peers = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: cfg.ConnectTimeout}).DialContext,
			MaxIdleConnsPerHost:   64,
			ResponseHeaderTimeout: cfg.HeaderTimeout + time.Second, // the owner's own origin timeout comes first
			DisableCompression:    true,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   cfg.ConnectTimeout,
		}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.AccessLog != nil {
		s.alog = newAccessLog(cfg.AccessLog)
	}
	s.metrics = newMetrics(s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          cfg.Name,
		ReadTimeout:                   time.Minute,
		IdleTimeout:                   2 * time.Minute,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		ReadBufferSize:                16 << 10,
		// Nothing here reads ctx.Time(): spare fasthttp a clock read per
		// request.
		LazyRequestTime: true,
		Logger:          fasthttpLogger{cfg.Log},
	}
	s.origins.start()
	if cfg.PeerListener != nil && s.lns.Add(cfg.PeerListener) {
		s.peerSrv = &fasthttp.Server{
			Handler:              s.handlePeer,
			Name:                 cfg.Name,
			ReadTimeout:          time.Minute,
			IdleTimeout:          2 * time.Minute,
			NoDefaultContentType: true,
			ReadBufferSize:       16 << 10,
			LazyRequestTime:      true,
			Logger:               fasthttpLogger{cfg.Log},
		}
		s.peerWG.Add(1)
		go func() {
			defer s.peerWG.Done()
			if err := s.peerSrv.Serve(cfg.PeerListener); err != nil {
				cfg.Log.Debug("cache: peer listener", "err", err)
			}
		}()
	}
	return s, nil
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("cache: " + fmt.Sprintf(format, args...))
}

// Serve serves plain HTTP on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	if !s.lns.Add(ln) {
		return nil
	}
	return s.srv.Serve(sendBufListener{ln})
}

// sendBufListener gives accepted connections a send buffer that holds a
// whole response of a few hundred KiB: the kernel's default starts at 16
// KiB and grows only as the connection's window does, so a 64 KiB hit
// would otherwise take several writes, each a trip through the poller.
type sendBufListener struct{ net.Listener }

func (l sendBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(512 << 10)
	}
	return c, err
}

// ServeTLS serves HTTPS on ln with the certificate and key files (PEM).
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("cache: TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if !s.lns.Add(ln) {
		return nil
	}
	return s.srv.Serve(tls.NewListener(sendBufListener{ln}, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}}))
}

// Close stops serving, the fills, the health checks and the access log,
// and closes the disk tier.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		err = s.srv.Shutdown()
		if s.peerSrv != nil {
			s.peerSrv.Shutdown()
		}
		s.lns.Close()
		s.peerWG.Wait()
		s.fillWG.Wait()
		s.origins.close()
		if s.alog != nil {
			s.alog.close()
		}
		if s.disk != nil {
			if derr := s.disk.Close(); err == nil {
				err = derr
			}
		}
	})
	return err
}

// handle serves one request on the public listener.
func (s *Server) handle(ctx *fasthttp.RequestCtx) { s.handleFrom(ctx, false) }

// handlePeer serves one request of an authenticated peer (on
// Config.PeerListener): a peer fill, or a forwarded purge.
func (s *Server) handlePeer(ctx *fasthttp.RequestCtx) { s.handleFrom(ctx, true) }

func (s *Server) handleFrom(ctx *fasthttp.RequestCtx, peer bool) {
	if ctx.ConnRequestNum() > 1 {
		// Take turns with the other connections. A kept-alive connection
		// whose next request was already there when its response went
		// out is served again at once, ahead of connections the poller
		// made ready earlier, and a burst of those is the tail of the
		// latency: with wrk on this 2-core machine, 1 KiB hits' p99 fell
		// from 7.2–8.0 to 4.9–5.9 ms for 6–9% fewer requests/s (64 KiB
		// hits: no change).
		runtime.Gosched()
	}
	var start time.Time
	if s.alog != nil {
		start = time.Now()
	}
	rs := &reqState{peer: peer}
	s.serve(ctx, rs)
	s.stats.requests.Add(1)
	s.stats.bytesSent.Add(bodyLen(&ctx.Response))
	if s.alog != nil {
		s.alog.log(ctx, rs, start)
	}
}

// bodyLen is the length of the body a response sends.
func bodyLen(r *fasthttp.Response) int64 {
	switch {
	case r.SkipBody:
		return 0
	case r.IsBodyStream():
		return int64(max(r.Header.ContentLength(), 0))
	}
	return int64(len(r.Body()))
}

// reqState is what the access log and counters want to know of a request.
type reqState struct {
	result string // hit, miss, stale, stale-while-revalidate, revalidated, bypass, peer, error, admin
	peer   bool   // from an authenticated peer, on the peer listener
}

func (s *Server) serve(ctx *fasthttp.RequestCtx, rs *reqState) {
	path := ctx.Path()
	if bytes.HasPrefix(path, []byte("/_edge/")) {
		rs.result = "admin"
		if rs.peer {
			s.peerAdmin(ctx, string(path))
			return
		}
		s.admin(ctx, string(path))
		return
	}
	method := ctx.Method()
	head := string(method) == fasthttp.MethodHead
	if !head && string(method) != fasthttp.MethodGet {
		rs.result = "error"
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, "the edge serves GET and HEAD; write to the origin (the S3 endpoint)", httpx.CacheStatus{Fwd: "method"})
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	if private(ctx) {
		rs.result = "bypass"
		s.stats.bypass.Add(1)
		s.bypass(ctx)
		return
	}
	uri := ctx.RequestURI()
	if bytes.IndexByte(uri, '?') >= 0 {
		var kb [512]byte
		uri = s.keys.appendKey(kb[:0], uri)
	}
	now := s.cfg.Now()
	var m entryMeta
	// The lookup borrows the URI's bytes; key is a copy for what outlives the request.
	borrowed := unsafe.String(unsafe.SliceData(uri), len(uri))
	metaB, body, ok := s.mem.Get(borrowed)
	ok = ok && decodeMeta(metaB, &m) == nil
	if ok && m.fresh(now) {
		rs.result = "hit"
		s.stats.hits.Add(1)
		s.respond(ctx, borrowed, &m, bodySource{mem: body}, hit(&m, now, ""))
		return
	}
	key := string(uri)
	if ok {
		if m.revalidateBehind(now) {
			s.serveStaleRevalidating(ctx, rs, key, &m, bodySource{mem: body}, now)
			return
		}
		s.fromFill(ctx, rs, key, &m, bodySource{mem: body}, now)
		return
	}
	if s.disk != nil {
		if o, ok := s.disk.Get(key); ok {
			if decodeMeta(o.Meta, &m) == nil {
				src := s.promote(key, o, &m)
				if m.fresh(now) {
					rs.result = "hit"
					s.stats.hits.Add(1)
					s.respond(ctx, key, &m, src, hit(&m, now, "disk"))
					return
				}
				if m.revalidateBehind(now) {
					s.serveStaleRevalidating(ctx, rs, key, &m, src, now)
					return
				}
				s.fromFill(ctx, rs, key, &m, src, now)
				return
			}
			o.Close()
		}
	}
	if head {
		// A HEAD miss is relayed, not filled: it carries no body to keep.
		rs.result = "miss"
		s.stats.misses.Add(1)
		s.relay(ctx, fasthttp.MethodHead, key, httpx.CacheStatus{Fwd: "uri-miss"}, nil)
		return
	}
	rs.result = "miss"
	s.stats.misses.Add(1)
	s.fromFill(ctx, rs, key, nil, bodySource{}, now)
}

// hit is the Cache-Status of a hit: its TTL, none for immutable entries.
func hit(m *entryMeta, now time.Time, detail string) httpx.CacheStatus {
	cs := httpx.CacheStatus{Hit: true, Detail: detail}
	if m.Lifetime != forever {
		cs.TTL, cs.HasTTL = int64(m.ttl(now)/time.Second), true
	}
	return cs
}

func (s *Server) cstatus(cs httpx.CacheStatus) string {
	if cs == (httpx.CacheStatus{Hit: true}) {
		return s.hitStatus // the common case, made once
	}
	cs.Cache = s.cfg.Name
	return cs.String()
}

// private reports whether the request carries credentials: such requests are
// relayed with them and their responses never stored or shared, so that an
// object only its owner may read never enters the cache.
func private(ctx *fasthttp.RequestCtx) bool {
	if len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) > 0 || len(ctx.Request.Header.Peek(fasthttp.HeaderCookie)) > 0 {
		return true
	}
	args := ctx.QueryArgs()
	for _, name := range []string{"X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId", "X-Amz-Security-Token"} {
		if args.Has(name) {
			return true
		}
	}
	return false
}

// bodySource is where an entry's body is: memory, an open disk entry, or a
// fill still arriving. A fill's body (fill, or mem when ref is set) is
// held until close.
type bodySource struct {
	mem  []byte
	disk *tier.Object
	fill *fill
	ref  *fill // the fill mem belongs to
}

func (b bodySource) close() {
	if b.disk != nil {
		b.disk.Close()
	}
	if b.fill != nil {
		b.fill.release()
	}
	if b.ref != nil {
		b.ref.release()
	}
}

// readerAt returns the body as a ReaderAt (a fill's waits for bytes
// still to come).
func (b bodySource) readerAt() io.ReaderAt {
	switch {
	case b.disk != nil:
		return b.disk
	case b.fill != nil:
		return b.fill
	}
	return bytes.NewReader(b.mem)
}

// closeWith is a body stream that calls done when fasthttp closes it.
type closeWith struct {
	io.Reader
	done func()
}

func (c *closeWith) Close() error {
	c.done()
	return nil
}

// bytes returns the whole body in memory.
func (b bodySource) bytes(size int64) ([]byte, error) {
	switch {
	case b.disk != nil:
		buf := make([]byte, size)
		_, err := b.disk.ReadAt(buf, 0)
		if err == io.EOF {
			err = nil
		}
		return buf, err
	case b.fill != nil:
		return b.fill.complete()
	}
	return b.mem, nil
}

// lookup returns key's entry from memory or disk: its meta and body.
func (s *Server) lookup(key string, m *entryMeta) (bodySource, bool) {
	if meta, body, ok := s.mem.Get(key); ok && decodeMeta(meta, m) == nil {
		return bodySource{mem: body}, true
	}
	if s.disk != nil {
		if o, ok := s.disk.Get(key); ok {
			if decodeMeta(o.Meta, m) == nil {
				return bodySource{disk: o}, true
			}
			o.Close()
		}
	}
	return bodySource{}, false
}

// promote reads a disk hit small enough for the memory tier into it, so the
// next hits are served from memory.
func (s *Server) promote(key string, o *tier.Object, m *entryMeta) bodySource {
	if o.Size > s.cfg.MemoryLimit/16 {
		return bodySource{disk: o}
	}
	body := make([]byte, o.Size)
	if _, err := o.ReadAt(body, 0); err != nil && err != io.EOF {
		return bodySource{disk: o}
	}
	meta := append([]byte(nil), o.Meta...)
	o.Close()
	s.mem.Put(key, meta, body)
	decodeMeta(meta, m)
	return bodySource{mem: body}
}

// serveStaleRevalidating answers with the stale entry m at once and starts
// its revalidation in the background unless one is running: the origin
// allowed it (stale-while-revalidate), and the next request finds the
// entry fresh, or the new one, without having waited for the origin.
func (s *Server) serveStaleRevalidating(ctx *fasthttp.RequestCtx, rs *reqState, key string, m *entryMeta, src bodySource, now time.Time) {
	if !s.origins.anyUp() {
		// Nothing can revalidate it: stale because the origin is down.
		rs.result = "stale"
		s.stats.stale.Add(1)
		s.respond(ctx, key, m, src, hit(m, now, "stale-origin-down"))
		return
	}
	select {
	case s.behind <- struct{}{}:
		f, started := s.joinFill(key, m, rs.peer)
		if !started {
			if f != nil {
				f.release()
			}
			<-s.behind // one runs already, or no fill may start
			break
		}
		f.abandon() // nobody waits for this fill's head
		go func() {
			f.complete() // returns once the fill ended, however
			f.release()
			<-s.behind
		}()
	default:
		// As many revalidations run behind as may: serve it stale
		// anyway; a request after one of them ends starts this one.
	}
	rs.result = "stale-while-revalidate"
	s.stats.staleRevalidating.Add(1)
	s.respond(ctx, key, m, src, hit(m, now, "stale-while-revalidate"))
}

// maxBehind bounds the background revalidations at once: each holds an
// object's body in memory while it arrives, and no client waits for it.
const maxBehind = 32

// fromFill joins (or starts) the fill of key and answers from it. stale is
// the entry being revalidated, served if the origin fails and it allows.
func (s *Server) fromFill(ctx *fasthttp.RequestCtx, rs *reqState, key string, stale *entryMeta, staleSrc bodySource, now time.Time) {
	if stale != nil && !s.origins.anyUp() && stale.staleUsable(now) {
		// Every origin is out: do not even try.
		rs.result = "stale"
		s.stats.stale.Add(1)
		s.respond(ctx, key, stale, staleSrc, hit(stale, now, "stale-origin-down"))
		return
	}
	f, started := s.joinFill(key, stale, rs.peer)
	if f == nil {
		// As many fills run as may: this one is relayed.
		staleSrc.close()
		rs.result = "miss"
		s.relay(ctx, fasthttp.MethodGet, key, httpx.CacheStatus{Fwd: "uri-miss", Detail: "fills-busy"}, nil)
		return
	}
	if !started {
		s.stats.coalesced.Add(1)
	}
	// This request's hold on the fill's body passes to the response
	// that reads it (bodySource.close), or ends here.
	held := f
	defer func() {
		if held != nil {
			held.release()
		}
	}()
	// Wait for the response headers, at most as long as the origin may take.
	timer := time.NewTimer(s.cfg.ConnectTimeout*2 + s.cfg.HeaderTimeout + time.Second)
	defer timer.Stop()
	select {
	case <-f.head:
	case <-timer.C:
		if started {
			f.abandon()
		}
		f = nil
	}
	cs := httpx.CacheStatus{Fwd: "uri-miss", Collapsed: !started}
	if stale != nil {
		cs.Fwd = "stale"
	}
	if f == nil || f.err != nil || (f.status >= 500 && stale != nil) {
		status, why := fasthttp.StatusGatewayTimeout, "the origin did not answer in time"
		if f != nil && f.err != nil {
			status, why = errStatus(f.err)
			s.cfg.Log.Warn("cache: origin fetch failed", "key", key, "status", status, "err", f.err)
		} else if f != nil {
			status, why = fasthttp.StatusBadGateway, fmt.Sprintf("the origin answered %d", f.status)
		}
		cs.FwdStatus = status
		if stale != nil && stale.staleUsable(now) {
			rs.result = "stale"
			s.stats.stale.Add(1)
			cs.Detail = "stale-if-error"
			s.respond(ctx, key, stale, staleSrc, cs)
			return
		}
		staleSrc.close()
		rs.result = "error"
		s.stats.errors.Add(1)
		s.fail(ctx, status, why, cs)
		return
	}
	cs.FwdStatus = f.status
	if f.status == fasthttp.StatusNotModified {
		// Revalidated: the stale body with the refreshed meta.
		rs.result = "revalidated"
		s.stats.revalidated.Add(1)
		if stale == nil {
			// This request joined another's revalidation: the entry
			// it refreshed is in the tiers again.
			var m entryMeta
			if src, ok := s.lookup(key, &m); ok {
				s.respond(ctx, key, &m, src, cs)
				return
			}
			s.fail(ctx, fasthttp.StatusBadGateway, "the object was revalidated and evicted at once; retry", cs)
			return
		}
		s.respond(ctx, key, f.meta, staleSrc, cs)
		return
	}
	staleSrc.close()
	if f.peer {
		s.stats.peerFills.Add(1)
	}
	if f.direct != nil {
		if !started {
			// Someone else's answer, not for sharing: ask for ours.
			s.relay(ctx, fasthttp.MethodGet, key, httpx.CacheStatus{Fwd: "uri-miss"}, nil)
			return
		}
		rs.result = "miss"
		ctx.SetStatusCode(f.status)
		ctx.Response.Header.SetNoDefaultContentType(true)
		writeRawHeaders(&ctx.Response.Header, f.hdr)
		ctx.Response.Header.Set("Cache-Status", s.cstatus(cs))
		ctx.Response.SetBodyStream(f.direct, int(f.size))
		return
	}
	if f.meta.Size < 0 {
		// Length unknown until the fill ends.
		body, err := f.complete()
		if err != nil {
			s.fail(ctx, fasthttp.StatusBadGateway, "the origin's response broke off", cs)
			return
		}
		m := *f.meta
		m.Size = int64(len(body))
		cs.Stored = true
		held = nil
		s.respond(ctx, key, &m, bodySource{mem: body, ref: f}, cs)
		return
	}
	cs.Stored = true
	held = nil
	s.respond(ctx, key, f.meta, bodySource{fill: f}, cs)
}

// errStatus is the status and the message a client gets for a failed
// origin fetch. The message names no origin, address or path (the error
// does: the caller logs it).
func errStatus(err error) (int, string) {
	switch {
	case errors.Is(err, errNoOrigin):
		return fasthttp.StatusBadGateway, "no origin is up (every one failed its health checks)"
	case isTimeout(err):
		return fasthttp.StatusGatewayTimeout, "the origin did not answer in time"
	}
	return fasthttp.StatusBadGateway, "the origin could not be reached"
}

// redactErr is err's text with presigned credentials REDACTED (a URL
// error quotes the URL).
func redactErr(err error) string {
	msg := err.Error()
	for _, p := range secretParams {
		for i := 0; ; {
			j := indexFold(msg[i:], p+"=")
			if j < 0 {
				break
			}
			start := i + j + len(p) + 1
			end := start
			for end < len(msg) && msg[end] != '&' && msg[end] != '"' && msg[end] != ' ' {
				end++
			}
			msg = msg[:start] + "REDACTED" + msg[end:]
			i = start + len("REDACTED")
		}
	}
	return msg
}

// indexFold is strings.Index ignoring ASCII case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// originFailed answers a failed origin fetch: the details go to the log,
// the client gets errStatus's generic message.
func (s *Server) originFailed(ctx *fasthttp.RequestCtx, key string, err error, cs httpx.CacheStatus) {
	status, why := errStatus(err)
	s.cfg.Log.Warn("cache: origin fetch failed", "key", redactURI(key), "status", status, "err", redactErr(err))
	cs.FwdStatus = status
	s.stats.errors.Add(1)
	s.fail(ctx, status, why, cs)
}

// joinFill returns the running fill of key, or starts one, holding it
// for the caller (release it); nil when none runs and no more may start.
// A fill a peer asked for goes to the origin, not to another peer.
func (s *Server) joinFill(key string, stale *entryMeta, fromPeer bool) (*fill, bool) {
	s.fillsMu.Lock()
	if f := s.fills[key]; f != nil {
		f.hold()
		s.fillsMu.Unlock()
		return f, false
	}
	if !s.budget.start() {
		s.fillsMu.Unlock()
		return nil, false
	}
	f := newFill(key, &s.budget)
	f.hold()
	s.fills[key] = f
	s.fillsMu.Unlock()
	var staleCopy *entryMeta
	if stale != nil {
		c := *stale
		c.ETag = append([]byte(nil), stale.ETag...)
		staleCopy = &c
	}
	s.fillWG.Add(1)
	go s.runFill(f, key, staleCopy, fromPeer)
	return f, true
}

// doneFill removes f from the running fills.
func (s *Server) doneFill(f *fill) {
	s.fillsMu.Lock()
	if s.fills[f.key] == f {
		delete(s.fills, f.key)
	}
	s.fillsMu.Unlock()
}

// runFill fetches key from its owner edge (when that is another one) or the
// origin, publishes the response head, streams the body into f and stores
// the entry. A response that may not be shared (private, no-store,
// Set-Cookie, too large) is handed whole to the request that started the
// fill; the others that joined it fetch their own.
func (s *Server) runFill(f *fill, key string, stale *entryMeta, fromPeer bool) {
	defer s.fillWG.Done()
	defer f.release()            // the fill's own hold on its body
	defer s.budget.free(0, true) // its slot
	ctx, cancel := context.WithCancel(s.ctx)
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	hdr := http.Header{"User-Agent": {s.cfg.Name}, "Accept-Encoding": {"identity"}}
	if stale != nil && len(stale.ETag) > 0 {
		hdr.Set("If-None-Match", string(stale.ETag))
	} else if stale != nil && stale.LastModified > 0 {
		hdr.Set("If-Modified-Since", httpx.FormatHTTPDate(time.Unix(stale.LastModified, 0)))
	}
	reqTime := s.cfg.Now()
	var resp *http.Response
	var err error
	if !fromPeer {
		resp, err = s.fromOwner(ctx, key, hdr)
		f.peer = resp != nil
	}
	if resp == nil {
		s.stats.originFetches.Add(1)
		resp, err = s.origins.do(ctx, http.MethodGet, key, hdr)
	}
	if err != nil {
		f.err = err
		s.doneFill(f)
		close(f.head)
		f.finish(err)
		return
	}
	respTime := s.cfg.Now()
	f.status = resp.StatusCode
	if resp.StatusCode == http.StatusNotModified && stale != nil {
		resp.Body.Close()
		m := *stale
		s.refreshMeta(&m, resp.Header, reqTime, respTime)
		f.meta = &m
		// Only onto the version revalidated: after a purge, a fill
		// started since may have stored the object anew.
		b, same := m.encode(), stale.sameResponse
		s.mem.UpdateMeta(key, b, same)
		if s.disk != nil {
			s.disk.UpdateMeta(key, b, same)
		}
		s.doneFill(f)
		close(f.head)
		f.finish(nil)
		return
	}
	f.size = resp.ContentLength
	m, storable := s.metaOf(resp, reqTime, respTime)
	if storable && resp.ContentLength > 0 && !f.grow(resp.ContentLength) {
		// Larger than the fill budget, or no room in it now: relayed,
		// streamed, not stored.
		storable = false
		s.stats.fillsRelayed.Add(1)
	}
	if !storable {
		// Not for sharing: the starter streams it straight from the
		// origin, and owns the body (and the context) from here.
		f.hdr = relayHeaders(resp.Header)
		f.direct = &cancelOnClose{resp.Body, cancel}
		cancel = nil
		s.doneFill(f)
		close(f.head)
		f.finish(nil)
		if f.gaveUp.Load() {
			f.direct.Close() // the starter stopped waiting (it may close it too)
		}
		return
	}
	defer resp.Body.Close()
	f.meta, f.metaBytes = m, m.encode()
	close(f.head)
	var dw *tier.Writer
	if s.disk != nil && m.Size >= 0 {
		if dw, err = s.disk.Create(key, f.metaBytes); err != nil {
			dw = nil
		}
		defer func() {
			if dw != nil {
				dw.Abort()
			}
		}()
	}
	// A body that stops arriving for HeaderTimeout ends the fill.
	idle := time.AfterFunc(s.cfg.HeaderTimeout, cancel)
	defer idle.Stop()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		idle.Reset(s.cfg.HeaderTimeout)
		if k > 0 {
			n += int64(k)
			if n > s.cfg.MaxObject || (m.Size >= 0 && n > m.Size) {
				rerr = fmt.Errorf("cache: %s: the origin sent more than %d bytes", key, min(s.cfg.MaxObject, max(m.Size, 0)))
			} else if m.Size < 0 && n > f.room() && !f.grow(min(max(n, 2*f.room(), 1<<20), s.cfg.MaxObject)) {
				// Of unknown length, and past what the budget holds.
				rerr = fmt.Errorf("cache: %s: a body of unknown length outgrew the room for fills (%d bytes, MaxFillBytes)", key, s.cfg.MaxFillBytes)
			} else {
				if dw != nil {
					if _, werr := dw.Write(buf[:k]); werr != nil {
						dw.Abort()
						dw = nil
					}
				}
				if n == m.Size {
					// The last bytes: store the entry before
					// readers see them, so a request that follows
					// the one they complete finds a hit.
					f.addQuiet(buf[:k])
					break
				}
				f.add(buf[:k])
			}
		}
		if rerr == io.EOF && (m.Size < 0 || n == m.Size) {
			break // (n == m.Size only for an empty body)
		}
		if rerr == io.EOF {
			rerr = fmt.Errorf("cache: %s: the origin sent %d of %d bytes", key, n, m.Size)
		}
		if rerr != nil {
			s.cfg.Log.Warn("cache: fill broke off", "key", key, "err", rerr)
			s.doneFill(f)
			f.finish(rerr)
			return
		}
	}
	body := f.bytes()
	metaBytes := f.metaBytes
	if m.Size < 0 {
		// Chunked: the length is known now. Readers keep the meta they
		// saw; the stored one has the size.
		m2 := *m
		m2.Size = n
		metaBytes = m2.encode()
		if dw != nil {
			dw.Abort()
			dw = nil
		}
	}
	// Under fillsMu: a purge marks fills under it before it deletes, so
	// the entry is either seen purged here or deleted after this.
	s.fillsMu.Lock()
	purged := f.purged.Load()
	if !purged {
		s.mem.DeletePrefix(key + "\x00") // coded variants of an older body
		s.mem.Put(key, metaBytes, body)
	}
	s.fillsMu.Unlock()
	if !purged {
		if dw != nil {
			if err := dw.Commit(); err != nil && !errors.Is(err, tier.ErrPurged) {
				s.cfg.Log.Warn("cache: storing on disk", "key", key, "err", err)
			}
			dw = nil
		} else if s.disk != nil {
			s.storeDisk(key, metaBytes, body)
		}
		s.stats.stored.Add(1)
	}
	s.doneFill(f)
	f.finish(nil)
}

// storeDisk writes an entry to the disk tier in one go.
func (s *Server) storeDisk(key string, meta, body []byte) {
	w, err := s.disk.Create(key, meta)
	if err != nil {
		return
	}
	defer w.Abort()
	if _, err := w.Write(body); err == nil {
		w.Commit()
	}
}

// fromOwner asks key's owner edge for it when that is another edge; nil
// when this edge owns it or the owner fails (the caller goes to the origin).
func (s *Server) fromOwner(ctx context.Context, key string, hdr http.Header) (*http.Response, error) {
	if s.cfg.Peers == nil || s.peers == nil {
		return nil, nil
	}
	s.ring.set(s.cfg.Peers())
	owner := s.ring.owner(key)
	if owner == "" || owner == s.cfg.Self {
		return nil, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+owner+key, nil)
	if err != nil {
		return nil, nil
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	s.stats.peerFetches.Add(1)
	resp, err := s.peers.Do(req)
	if err != nil {
		s.cfg.Log.Debug("cache: peer fill failed; going to the origin", "peer", owner, "key", key, "err", err)
		return nil, nil
	}
	if resp.StatusCode >= 500 {
		resp.Body.Close()
		return nil, nil
	}
	return resp, nil
}

// metaOf builds the entry for an origin response, and says whether it may
// be stored and shared (RFC 9111 §3 for a shared cache; the request was
// anonymous).
func (s *Server) metaOf(resp *http.Response, reqTime, respTime time.Time) (*entryMeta, bool) {
	h := resp.Header
	cc := httpx.ParseCacheControl(h.Values("Cache-Control")...)
	if resp.StatusCode != http.StatusOK || cc.NoStore || cc.Private || len(h.Values("Set-Cookie")) > 0 {
		return nil, false
	}
	m := &entryMeta{Size: resp.ContentLength, ETag: []byte(h.Get("Etag")), ContentType: []byte(h.Get("Content-Type")),
		Encoding: []byte(h.Get("Content-Encoding")), CacheControl: []byte(strings.Join(h.Values("Cache-Control"), ", ")),
		Expires: []byte(h.Get("Expires"))}
	if m.Size > s.cfg.MaxObject {
		return nil, false
	}
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case strings.EqualFold(f, "Accept-Encoding"):
				m.Flags |= flagVaryEncoding
			default:
				return nil, false // a response that varies on more is not shared
			}
		}
	}
	if lm, ok := httpx.ParseHTTPDate(h.Get("Last-Modified")); ok {
		m.LastModified = lm.Unix()
		m.LastModText = httpx.AppendHTTPDate(nil, lm)
	}
	if len(m.Encoding) == 0 && httpx.Compressible(string(m.ContentType)) {
		m.Flags |= flagCompressible
	}
	m.Extra = appendHeaderLines(nil, h, replayed)
	s.refreshMeta(m, h, reqTime, respTime)
	return m, true
}

// refreshMeta sets m's freshness from response headers h (a 200, or a 304
// revalidating m: RFC 9111 §4.3.4 updates the stored headers).
func (s *Server) refreshMeta(m *entryMeta, h http.Header, reqTime, respTime time.Time) {
	if v := h.Values("Cache-Control"); len(v) > 0 {
		m.CacheControl = []byte(strings.Join(v, ", "))
	}
	if v := h.Get("Expires"); v != "" {
		m.Expires = []byte(v)
	}
	m.ReqTime, m.RespTime = reqTime.UnixNano(), respTime.UnixNano()
	m.Date, m.AgeHdr = 0, 0
	date, hasDate := httpx.ParseHTTPDate(h.Get("Date"))
	if hasDate {
		m.Date = date.Unix()
	}
	if a, ok := httpx.ParseDeltaSeconds(h.Get("Age")); ok {
		m.AgeHdr = a
	}
	cc := httpx.ParseCacheControl(string(m.CacheControl))
	m.Flags &^= flagMustRevalidate | flagNoCache
	if cc.MustRevalidate || cc.ProxyRevalidate {
		m.Flags |= flagMustRevalidate
	}
	if cc.NoCache {
		m.Flags |= flagNoCache
	}
	expires, hasExpires := httpx.ParseHTTPDate(string(m.Expires))
	switch {
	case cc.Immutable && cc.MaxAge < 0 && cc.SMaxAge < 0:
		m.Lifetime = forever
	case cc.MaxAge < 0 && cc.SMaxAge < 0 && len(m.Expires) == 0 && !cc.NoCache:
		// The origin says nothing about freshness: objects are
		// immutable (a new version is a new write), so the entry is
		// fresh until evicted or purged.
		m.Lifetime = forever
	default:
		if !hasDate {
			date = respTime
		}
		lastMod := time.Time{}
		if m.LastModified > 0 {
			lastMod = time.Unix(m.LastModified, 0)
		}
		life, _ := httpx.FreshnessLifetime(cc, date, expires, lastMod, hasExpires || len(m.Expires) > 0, http.StatusOK)
		m.Lifetime = int64(life)
	}
	m.StaleIfError = int64(s.cfg.StaleIfError)
	switch {
	case cc.StaleIfError >= 0:
		m.StaleIfError = cc.StaleIfError * int64(time.Second)
	case cc.SMaxAge >= 0:
		// s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10): no
		// stale copies unless the origin says so explicitly.
		m.StaleIfError = 0
	}
	m.StaleWhileRevalidate = 0
	if cc.StaleWhileRevalidate > 0 {
		m.StaleWhileRevalidate = cc.StaleWhileRevalidate * int64(time.Second)
	}
}

// replayed reports whether an origin response header is kept in the entry
// besides those entryMeta has fields for.
func replayed(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Disposition", "Content-Language", "X-Amz-Version-Id", "X-Amz-Storage-Class", "X-Amz-Checksum-Crc32",
		"X-Amz-Checksum-Crc32c", "X-Amz-Checksum-Sha256", "Link":
		return true
	}
	return strings.HasPrefix(strings.ToLower(name), "x-amz-meta-")
}

// relayHeaders keeps what a client should see of a response the edge does
// not store.
func relayHeaders(h http.Header) []byte {
	return appendHeaderLines(nil, h, func(name string) bool {
		switch http.CanonicalHeaderKey(name) {
		case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Date", "Server", "Proxy-Connection", "Te", "Trailer", "Upgrade":
			return false
		}
		return true
	})
}

// appendHeaderLines appends h's headers that keep accepts as "Name:
// value\r\n" lines (what writeRawHeaders reads back).
func appendHeaderLines(b []byte, h http.Header, keep func(name string) bool) []byte {
	for k, vs := range h {
		if keep(k) {
			for _, v := range vs {
				b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
			}
		}
	}
	return b
}

// writeRawHeaders adds "Name: value\r\n" lines to h.
func writeRawHeaders(h *fasthttp.ResponseHeader, raw []byte) {
	for len(raw) > 0 {
		i := bytes.Index(raw, []byte("\r\n"))
		if i < 0 {
			i = len(raw)
		}
		line := raw[:i]
		raw = raw[min(i+2, len(raw)):]
		if c := bytes.IndexByte(line, ':'); c > 0 {
			h.AddBytesKV(line[:c], bytes.TrimLeft(line[c+1:], " "))
		}
	}
}

// fail answers an error the edge made itself, in plain text.
func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, why string, cs httpx.CacheStatus) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.Set("Content-Type", "text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Cache-Status", s.cstatus(cs))
	ctx.SetBodyString(s.cfg.Name + ": " + why + "\n")
}

// bypass relays a request that carries credentials to the origin, with
// them, and its response to the client, storing nothing.
func (s *Server) bypass(ctx *fasthttp.RequestCtx) {
	hdr := http.Header{}
	ctx.Request.Header.VisitAll(func(k, v []byte) {
		switch string(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length":
			return
		}
		hdr.Add(string(k), string(v))
	})
	hdr.Set("Host", string(ctx.Host()))
	s.relay(ctx, string(ctx.Method()), string(ctx.RequestURI()), httpx.CacheStatus{Fwd: "bypass"}, hdr)
}

// relay sends a request to the origin and streams its answer back
// unchanged, storing nothing.
func (s *Server) relay(ctx *fasthttp.RequestCtx, method, uri string, cs httpx.CacheStatus, hdr http.Header) {
	if hdr == nil {
		hdr = http.Header{"User-Agent": {s.cfg.Name}}
	}
	rctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeaderTimeout+2*s.cfg.ConnectTimeout)
	s.stats.originFetches.Add(1)
	resp, err := s.origins.do(rctx, method, uri, hdr)
	if err != nil {
		cancel()
		s.originFailed(ctx, uri, err, cs)
		return
	}
	cs.FwdStatus = resp.StatusCode
	ctx.SetStatusCode(resp.StatusCode)
	ctx.Response.Header.SetNoDefaultContentType(true)
	writeRawHeaders(&ctx.Response.Header, relayHeaders(resp.Header))
	ctx.Response.Header.Set("Cache-Status", s.cstatus(cs))
	if method == fasthttp.MethodHead {
		ctx.Response.SkipBody = true
		if resp.ContentLength >= 0 {
			ctx.Response.Header.SetContentLength(int(resp.ContentLength))
		}
		resp.Body.Close()
		cancel()
		return
	}
	ctx.Response.SetBodyStream(&cancelOnClose{resp.Body, cancel}, int(resp.ContentLength))
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// respond answers from an entry (key is not kept): conditionals (304/412), ranges (206,
// multipart, 416), content coding (gzip/br for compressible bodies), HEAD.
func (s *Server) respond(ctx *fasthttp.RequestCtx, key string, m *entryMeta, src bodySource, cs httpx.CacheStatus) {
	now := s.cfg.Now()
	h := &ctx.Response.Header
	h.SetNoDefaultContentType(true)
	req := &ctx.Request.Header
	head := string(ctx.Method()) == fasthttp.MethodHead
	etag, size, encoding := m.ETag, m.Size, m.Encoding
	vary := m.Flags&(flagCompressible|flagVaryEncoding) != 0
	rangeHdr := req.Peek(fasthttp.HeaderRange)

	// A compressible identity body goes out gzip or br to clients that
	// take it (not for ranges, which address the identity bytes).
	var coded *compression
	if m.Flags&flagCompressible != 0 && len(rangeHdr) == 0 && size <= s.cfg.CompressMax && size > 0 {
		if coding, ok := httpx.Negotiate(string(req.Peek(fasthttp.HeaderAcceptEncoding)), "br", "gzip"); ok && coding != "identity" {
			if c, err := s.compressed(key, m, src, coding); err == nil {
				coded = c
				etag, size, encoding = c.etag, int64(len(c.body)), []byte(coding)
			}
		}
	}

	status := httpx.Evaluate(string(ctx.Method()), string(req.Peek(fasthttp.HeaderIfMatch)), string(req.Peek(fasthttp.HeaderIfNoneMatch)),
		string(req.Peek(fasthttp.HeaderIfModifiedSince)), string(req.Peek(fasthttp.HeaderIfUnmodifiedSince)), string(etag), unixOrZero(m.LastModified))
	if status == fasthttp.StatusPreconditionFailed {
		src.close()
		s.fail(ctx, status, "a precondition (If-Match, If-Unmodified-Since) failed", cs)
		return
	}
	if len(m.ContentType) > 0 {
		h.SetContentTypeBytes(m.ContentType)
	}
	if len(etag) > 0 {
		h.SetBytesV(fasthttp.HeaderETag, etag)
	}
	if len(m.LastModText) > 0 {
		h.SetBytesV(fasthttp.HeaderLastModified, m.LastModText)
	}
	if len(m.CacheControl) > 0 {
		h.SetBytesV(fasthttp.HeaderCacheControl, m.CacheControl)
	}
	if len(m.Expires) > 0 {
		h.SetBytesV(fasthttp.HeaderExpires, m.Expires)
	}
	if len(encoding) > 0 {
		h.SetBytesV(fasthttp.HeaderContentEncoding, encoding)
	}
	if vary {
		h.Set(fasthttp.HeaderVary, "Accept-Encoding")
	}
	var num [20]byte
	h.SetBytesV(fasthttp.HeaderAge, strconv.AppendInt(num[:0], max(0, int64(m.age(now)/time.Second)), 10))
	writeRawHeaders(h, m.Extra)
	h.Set("Cache-Status", s.cstatus(cs))
	if status == fasthttp.StatusNotModified {
		src.close()
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.SkipBody = true
		return
	}
	if coded != nil {
		src.close()
		h.SetContentLength(len(coded.body))
		if head {
			ctx.Response.SkipBody = true
			return
		}
		ctx.Response.SetBodyRaw(coded.body)
		return
	}
	h.Set(fasthttp.HeaderAcceptRanges, "bytes")
	var ranges []httpx.Range
	if len(rangeHdr) > 0 {
		ifRange := req.Peek(fasthttp.HeaderIfRange)
		if len(ifRange) == 0 || httpx.IfRangeMatches(string(ifRange), string(m.ETag), unixOrZero(m.LastModified)) {
			var err error
			ranges, err = httpx.ParseRange(string(rangeHdr), size)
			if err == httpx.ErrUnsatisfiable {
				src.close()
				s.fail(ctx, fasthttp.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("the range %q is outside the object's %d bytes", rangeHdr, size), cs)
				ctx.Response.Header.Set(fasthttp.HeaderContentRange, httpx.UnsatisfiedContentRange(size))
				return
			}
		}
	}
	switch {
	case len(ranges) == 1:
		r := ranges[0]
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		h.Set(fasthttp.HeaderContentRange, httpx.ContentRange(r, size))
		s.setBody(ctx, src, r.Start, r.Length, head)
	case len(ranges) > 1:
		mp := httpx.NewMultipart(ranges, string(m.ContentType), size)
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		h.Set(fasthttp.HeaderContentType, mp.ContentType())
		h.SetContentLength(int(mp.Len()))
		if head {
			src.close()
			ctx.Response.SkipBody = true
			return
		}
		// Streamed part by part from the entry (memory, disk, or the
		// fill as it arrives): never built whole.
		ctx.Response.SetBodyStream(&closeWith{mp.Reader(src.readerAt()), src.close}, int(mp.Len()))
	default:
		ctx.SetStatusCode(fasthttp.StatusOK)
		s.setBody(ctx, src, 0, size, head)
	}
}

// setBody sends n body bytes from off.
func (s *Server) setBody(ctx *fasthttp.RequestCtx, src bodySource, off, n int64, head bool) {
	if head {
		src.close()
		ctx.Response.Header.SetContentLength(int(n))
		ctx.Response.SkipBody = true
		return
	}
	switch {
	case src.disk != nil:
		ctx.Response.SetBodyStream(&objectReader{io.NewSectionReader(src.disk, off, n), src.disk}, int(n))
	case src.fill != nil:
		ctx.Response.SetBodyStream(src.fill.reader(off, n, src.fill.release), int(n))
	case src.ref != nil:
		ctx.Response.SetBodyStream(&closeWith{bytes.NewReader(src.mem[off : off+n]), src.ref.release}, int(n))
	default:
		ctx.Response.SetBodyRaw(src.mem[off : off+n])
	}
}

type objectReader struct {
	*io.SectionReader
	o *tier.Object
}

func (r *objectReader) Close() error { return r.o.Close() }

func unixOrZero(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}
