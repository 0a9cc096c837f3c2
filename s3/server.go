package s3

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"engine/burstbuffer"
	"engine/internal/listeners"
)

// Config configures a Server.
type Config struct {
	// Root is the namespace: the burst buffer's backing directory. A
	// bucket is a directory at its top, an object a file under it.
	Root string
	// Data carries the object bytes (the node's burst buffer).
	Data burstbuffer.Data
	// Creds are the access keys. A request without valid credentials is
	// denied unless it reads from a public-read bucket.
	Creds Credentials
	// Domain, if set, enables virtual-host-style addressing: a request
	// for Host BUCKET.Domain names BUCKET.
	Domain string
	// Log receives access and error logs; nil discards.
	Log *slog.Logger
	// Now is the clock (time.Now when nil): tests move it.
	Now func() time.Time
	// Ready, if set, says whether the node may serve: until it does
	// (the burst buffer is resyncing with its peers), requests get 503
	// SlowDown.
	Ready func() bool
	// NodeID names this server's directory of uploads in progress,
	// ROOT/.engine-s3/tmp/NodeID: every node serving S3 over one
	// namespace needs its own (its node id), or a node's restart could
	// take another's uploads for dead ones. Letters, digits, '.', '_'
	// and '-'; "local" when empty (one node alone).
	NodeID string
	// TempMaxAge is the age past which a temporary file (in any node's
	// directory) is an upload that died with its node and is removed:
	// at start and then every TempMaxAge/4 (24 hours when zero). An
	// upload that takes longer fails.
	TempMaxAge time.Duration
}

// defaultNodeID is Config.NodeID when none is given.
const defaultNodeID = "local"

// ensureDefaults fills the zero fields of c that have a default and
// checks the others.
func (c *Config) ensureDefaults() error {
	if c.Root == "" {
		return errors.New("s3: no namespace root (the burst buffer's backing directory)")
	}
	if c.Data == nil {
		return errors.New("s3: no data path (the burst buffer)")
	}
	if len(c.Creds) == 0 {
		return errors.New("s3: no credentials: give a credentials file (one ACCESS_KEY SECRET_KEY pair a line)")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID
	}
	if !validNodeID(c.NodeID) {
		return fmt.Errorf("s3: NodeID %.80q: use 1 to 128 letters, digits, '.', '_' or '-' (not \".\" or \"..\"), such as the node's id", c.NodeID)
	}
	if c.TempMaxAge < 0 {
		return fmt.Errorf("s3: TempMaxAge %s is negative: give how old an upload's temporary file must be to be taken for dead (24h when zero)", c.TempMaxAge)
	}
	if c.TempMaxAge == 0 {
		c.TempMaxAge = 24 * time.Hour
	}
	return nil
}

// validNodeID reports whether id can name a directory of its own.
func validNodeID(id string) bool {
	if id == "" || len(id) > 128 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Server serves S3 over the namespace.
type Server struct {
	cfg    Config
	st     *store
	verify *Verifier
	log    *slog.Logger
	srv    *fasthttp.Server
	reqID  atomic.Uint64
	prefix string // request id prefix, random per server

	lns listeners.Set // closed by Close, also before Serve got going
}

// maxHeaderBytes bounds a request's header section (fasthttp's read
// buffer): a request with more gets RequestHeaderSectionTooLarge.
const maxHeaderBytes = 16 << 10

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.Root, cfg.NodeID, cfg.TempMaxAge, cfg.Data, cfg.Now)
	if err != nil {
		return nil, err
	}
	return newServerOn(cfg, st), nil
}

// newServerOn returns a Server for cfg (defaults filled) over the store st.
func newServerOn(cfg Config, st *store) *Server {
	log := cfg.Log
	var b [4]byte
	rand.Read(b[:])
	s := &Server{cfg: cfg, st: st, log: log, prefix: strings.ToUpper(hex.EncodeToString(b[:])),
		verify: &Verifier{Creds: cfg.Creds, Now: cfg.Now}}
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.parseError,
		Name:                         "engine",
		ReadBufferSize:               maxHeaderBytes,
		MaxRequestBodySize:           1 << 20, // larger bodies stream
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		ReadTimeout:                  5 * time.Minute,
		WriteTimeout:                 5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		CloseOnShutdown:              true,
		Concurrency:                  64 << 10,
		Logger:                       fasthttpLogger{log},
	}
	return s
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	if !s.lns.Add(ln) {
		return nil
	}
	err := s.srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on addr (HOST:PORT) and serves until Close.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("s3: listen on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Close stops the server: no new requests; the contexts of requests in
// progress are cancelled, so that their waits (syncs, burst buffer reads)
// end and they finish at once (a PUT not yet answered fails and stores
// nothing).
func (s *Server) Close() error {
	err := s.srv.Shutdown()
	s.lns.Close()
	s.st.close()
	return err
}

// request is one request being served.
type request struct {
	ctx    *fasthttp.RequestCtx
	id     string
	bucket string
	key    string
	query  url.Values
	auth   *Auth
}

// handle serves one request: it finds the bucket and key, checks the
// signature, dispatches and writes errors as S3 XML.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := &request{ctx: ctx, id: fmt.Sprintf("%s%016X", s.prefix, s.reqID.Add(1))}
	// Header names go out as written: user metadata names are
	// lowercase (x-amz-meta-name), as S3 sends them, and SDKs keep
	// their case.
	ctx.Response.Header.DisableNormalizing()
	ctx.Response.Header.Set("x-amz-request-id", r.id)
	err := s.serve(r)
	if err != nil {
		s.writeError(r, err)
	}
	s.log.Debug("s3", "method", string(ctx.Method()), "uri", redactURI(ctx.RequestURI()), "status", ctx.Response.StatusCode(),
		"id", r.id, "remote", ctx.RemoteAddr().String(), "took", time.Since(start))
}

func (s *Server) serve(r *request) error {
	ctx := r.ctx
	if s.cfg.Ready != nil && !s.cfg.Ready() {
		ctx.Response.Header.Set("Retry-After", "1")
		return errorf("SlowDown", "this node is still resyncing with the cluster: retry in a moment")
	}
	raw := string(ctx.Request.Header.RequestURI())
	path, rawQuery, _ := strings.Cut(raw, "?")
	if i := strings.Index(path, "://"); i >= 0 { // absolute form
		path = path[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = "/"
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return errorf("InvalidArgument", "the query string does not parse: %v", err)
	}
	r.query = q
	upath, err := url.PathUnescape(path)
	if err != nil {
		return errorf("InvalidArgument", "the path does not unescape: %v", err)
	}
	if !strings.HasPrefix(upath, "/") {
		return errorf("InvalidRequest", "the request path must start with /")
	}
	// Virtual-host style: BUCKET.Domain.
	host := string(ctx.Host())
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if d := s.cfg.Domain; d != "" && strings.HasSuffix(host, "."+d) {
		r.bucket = strings.TrimSuffix(host, "."+d)
		r.key = upath[1:]
	} else {
		r.bucket, r.key, _ = strings.Cut(upath[1:], "/")
	}
	a, err := s.verify.Verify(RequestFromFastHTTP(&ctx.Request))
	if err != nil {
		return err
	}
	r.auth = a
	if a.Anonymous && !s.anonymousAllowed(r) {
		return errorf("AccessDenied", "anonymous access is not allowed here: sign the request with an access key from the credentials file (or make the bucket public-read)")
	}
	return s.dispatch(r)
}

// anonymousAllowed reports whether an unsigned request may proceed: reads
// (GET, HEAD) of objects and listings in a public-read bucket.
func (s *Server) anonymousAllowed(r *request) bool {
	m := string(r.ctx.Method())
	if (m != fasthttp.MethodGet && m != fasthttp.MethodHead) || r.bucket == "" {
		return false
	}
	for k := range r.query {
		switch k {
		case "list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after",
			"marker", "encoding-type", "fetch-owner", "partNumber", "versionId",
			"response-content-type", "response-content-disposition", "response-cache-control",
			"response-content-encoding", "response-content-language", "response-expires":
		default:
			return false // ACLs, uploads and the like are the owner's
		}
	}
	return s.st.bucketPublic(r.bucket)
}

// writeError writes err as an S3 XML error.
func (s *Server) writeError(r *request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = storeError(err)
	}
	ctx := r.ctx
	if e.Status >= 500 {
		s.log.Error("s3: request failed", "method", string(ctx.Method()), "uri", redactURI(ctx.RequestURI()), "id", r.id, "err", err)
	}
	ctx.Response.ResetBody()
	ctx.Response.Header.Del(fasthttp.HeaderETag)
	ctx.Response.Header.Del(fasthttp.HeaderLastModified)
	if e.Code != "InvalidRange" {
		ctx.Response.Header.Del(fasthttp.HeaderContentRange)
	}
	ctx.SetStatusCode(e.Status)
	if string(ctx.Method()) == fasthttp.MethodHead {
		return // no body for HEAD
	}
	res := e.Resource
	if res == "" {
		res = "/" + r.bucket
		if r.key != "" {
			res += "/" + r.key
		}
	}
	body, _ := xml.Marshal(errorBody{Code: e.Code, Message: e.Message, Resource: res, HeadersNotSigned: e.HeadersNotSigned, RequestID: r.id})
	ctx.SetContentType("application/xml")
	ctx.SetBody(append([]byte(xml.Header), body...))
}

// parseError answers a request fasthttp could not parse (oversized
// header section, broken framing) with an S3 error.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	e := errorf("InvalidRequest", "the request could not be read: %v", err)
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small) || strings.Contains(err.Error(), "small read buffer"):
		e = errorf("RequestHeaderSectionTooLarge", "the request's headers exceed %d bytes", maxHeaderBytes)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = errorf("EntityTooLarge", "the request body is too large")
	case errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF"):
		e = errorf("IncompleteBody", "the request ended before its body did (%v)", err)
	}
	ctx.SetConnectionClose()
	r := &request{ctx: ctx, id: fmt.Sprintf("%s%016X", s.prefix, s.reqID.Add(1))}
	ctx.Response.Header.DisableNormalizing()
	ctx.Response.Header.Set("x-amz-request-id", r.id)
	s.writeError(r, e)
}

// redactURI returns a request URI for the logs: the value of a presigned
// URL's signature (X-Amz-Signature, or Signature of version 2) replaced,
// so that the logs hold no URL that still grants access.
func redactURI(uri []byte) string {
	s := string(uri)
	path, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if k == "X-Amz-Signature" || k == "Signature" || k == "X-Amz-Security-Token" {
			parts[i] = k + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(parts, "&")
}

// fasthttpLogger sends fasthttp's own messages (unparseable requests and
// the like, which quote what the client sent) to the debug log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("s3: fasthttp: " + fmt.Sprintf(format, args...))
}

// writeXML writes v as an XML response with status 200.
func writeXML(ctx *fasthttp.RequestCtx, v any) error {
	body, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/xml")
	ctx.SetBody(append([]byte(xml.Header), body...))
	return nil
}

// readXML reads a request body of at most limit bytes into v; a body that
// does not parse is MalformedXML.
func readXML(r *request, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(bodyReader(r.ctx), limit+1))
	if err != nil {
		return errorf("IncompleteBody", "reading the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return errorf("MalformedXML", "the XML body is over %d bytes", limit)
	}
	return parseXML(body, v)
}

// parseXML reads one XML document into v: its root element and nothing
// after it but whitespace, comments and processing instructions
// (xml.Unmarshal alone ignores whatever follows the root).
func parseXML(body []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return errorf("MalformedXML", "the XML body does not parse: %v", err)
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errorf("MalformedXML", "the XML body does not parse after its root element: %v", err)
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errorf("MalformedXML", "the XML body has text after its root element")
			}
		default:
			return errorf("MalformedXML", "the XML body has more after its root element")
		}
	}
}

// bodyReader returns the request body as a stream.
func bodyReader(ctx *fasthttp.RequestCtx) io.Reader {
	if s := ctx.RequestBodyStream(); s != nil {
		return s
	}
	return bytes.NewReader(ctx.Request.Body())
}
