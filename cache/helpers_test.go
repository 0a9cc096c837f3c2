package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"engine/cache/httpx"
)

// healthPath is the path the test edges probe; origins answer it without
// counting it as a request.
const healthPath = "/_health"

// fakeClock is a Config.Now the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// newFakeClock starts at a whole second, so HTTP dates (second resolution)
// taken from it are exact.
func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testOrigin is an origin server on 127.0.0.1 that counts the requests it
// serves per path (health probes excluded) and can be stopped and started
// again on the same address.
type testOrigin struct {
	t       testing.TB
	handler http.Handler
	addr    string

	mu      sync.Mutex
	srv     *http.Server
	counts  map[string]int
	headers map[string]http.Header // the last request's headers, per path
	total   int
}

// startOrigin starts an origin serving h on a new port; it is stopped at
// the end of the test.
func startOrigin(t testing.TB, h http.HandlerFunc) *testOrigin {
	t.Helper()
	o := &testOrigin{t: t, handler: h, addr: "127.0.0.1:0", counts: map[string]int{}, headers: map[string]http.Header{}}
	o.start()
	t.Cleanup(o.stop)
	return o
}

func (o *testOrigin) URL() string { return "http://" + o.addr }

// start listens on the origin's address (the first time a new port),
// retrying for a while when the old socket still holds it.
func (o *testOrigin) start() {
	o.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var ln net.Listener
	for {
		var err error
		if ln, err = net.Listen("tcp", o.addr); err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			o.t.Fatalf("origin: listening on %s: %v", o.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv := &http.Server{Handler: http.HandlerFunc(o.serve), ReadHeaderTimeout: 10 * time.Second}
	o.mu.Lock()
	o.addr = ln.Addr().String()
	o.srv = srv
	o.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every connection: the origin refuses
// connections until start.
func (o *testOrigin) stop() {
	o.mu.Lock()
	srv := o.srv
	o.srv = nil
	o.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (o *testOrigin) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == healthPath {
		return
	}
	o.mu.Lock()
	o.counts[r.URL.Path]++
	o.headers[r.URL.Path] = r.Header.Clone()
	o.total++
	o.mu.Unlock()
	o.handler.ServeHTTP(w, r)
}

// count returns how many requests for path the origin served.
func (o *testOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

// requests returns how many requests the origin served in all.
func (o *testOrigin) requests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// header returns the headers of the last request for path.
func (o *testOrigin) header(path string) http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.headers[path]
}

// object is what serveObjects answers for one path.
type object struct {
	body         []byte
	contentType  string
	cacheControl string
	etag         string
	lastModified time.Time
	header       http.Header // more response headers
}

// serveObjects answers GET and HEAD for objs (not changed once serving),
// with a Content-Length, a Date from now (nil: the real clock), and a 304
// for an If-None-Match naming the object's ETag.
func serveObjects(now func() time.Time, objs map[string]*object) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		obj := objs[r.URL.Path]
		if obj == nil {
			http.Error(w, "origin: no such object "+r.URL.Path, http.StatusNotFound)
			return
		}
		h := w.Header()
		if now != nil {
			h.Set("Date", httpx.FormatHTTPDate(now()))
		}
		if obj.cacheControl != "" {
			h.Set("Cache-Control", obj.cacheControl)
		}
		for k, vs := range obj.header {
			h[k] = vs
		}
		if obj.etag != "" {
			h.Set("ETag", obj.etag)
			if r.Header.Get("If-None-Match") == obj.etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if !obj.lastModified.IsZero() {
			h.Set("Last-Modified", httpx.FormatHTTPDate(obj.lastModified))
		}
		if obj.contentType != "" {
			h.Set("Content-Type", obj.contentType)
		}
		h.Set("Content-Length", strconv.Itoa(len(obj.body)))
		if r.Method != http.MethodHead {
			w.Write(obj.body)
		}
	}
}

// edgeConfig is the base configuration of the test edges.
func edgeConfig(origins ...string) Config {
	return Config{
		Origins:        origins,
		HealthPath:     healthPath,
		ConnectTimeout: 500 * time.Millisecond,
		HeaderTimeout:  2 * time.Second,
		AdminToken:     "s3cret",
	}
}

// testEdge is an edge serving on 127.0.0.1.
type testEdge struct {
	*Server
	URL    string
	closed sync.Once
	served chan error
}

// startEdge starts an edge with cfg on a new port; it is closed at the end
// of the test (or earlier with close).
func startEdge(t testing.TB, cfg Config) *testEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startEdgeOn(t, ln, cfg)
}

func startEdgeOn(t testing.TB, ln net.Listener, cfg Config) *testEdge {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("New: %v", err)
	}
	e := &testEdge{Server: s, URL: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	go func() { e.served <- s.Serve(ln) }()
	t.Cleanup(func() { e.close(t) })
	return e
}

// close closes the edge once, waiting a bounded time.
func (e *testEdge) close(t testing.TB) {
	t.Helper()
	e.closed.Do(func() {
		done := make(chan error, 1)
		go func() { done <- e.Server.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Close did not return in 10s")
			return
		}
		select {
		case err := <-e.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return in 5s after Close")
		}
	})
}

// newClient returns a client that leaves encodings alone; its idle
// connections are closed at the end of the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 128}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is a response read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) cacheStatus() string { return r.header.Get("Cache-Status") }

// fetch sends a request with headers given as name, value pairs and reads
// the whole response. It may be called from any goroutine.
func fetch(c *http.Client, method, url string, kv ...string) (response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the body: %w", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// do is fetch that fails the test on an error.
func do(t *testing.T, c *http.Client, method, url string, kv ...string) response {
	t.Helper()
	r, err := fetch(c, method, url, kv...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func get(t *testing.T, c *http.Client, url string, kv ...string) response {
	t.Helper()
	return do(t, c, http.MethodGet, url, kv...)
}

// wantBody fails unless r is a 200 with body want.
func wantBody(t *testing.T, what string, r response, want []byte) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: status %d (%q), want 200", what, r.status, trim(r.body))
	}
	if !bytes.Equal(r.body, want) {
		t.Fatalf("%s: body of %d bytes differs from the object's %d", what, len(r.body), len(want))
	}
}

// wantHit fails unless the Cache-Status of r says hit.
func wantHit(t *testing.T, what string, r response) {
	t.Helper()
	if cs := r.cacheStatus(); !strings.Contains(cs, "; hit") {
		t.Fatalf("%s: Cache-Status %q, want a hit", what, cs)
	}
}

// trim shortens a body for a message.
func trim(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// randomBytes returns n bytes from seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFills waits until the edge runs no fill.
func waitFills(t testing.TB, e *testEdge) {
	t.Helper()
	waitFor(t, "the fills to end", 5*time.Second, func() bool {
		e.fillsMu.Lock()
		defer e.fillsMu.Unlock()
		return len(e.fills) == 0
	})
}
