package edgebench

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"engine/bench/internal/benchfmt"
)

// CacheControl is what the origin says of every object.
const CacheControl = "public, max-age=31536000, immutable"

// ReadyPath is the origin's path the harness asks a cache for to see
// that it answers; the origin answers it uncacheable and it is not an
// object.
const ReadyPath = "/edgebench/ready"

// lastModified is every object's Last-Modified (plus its index in
// seconds): fixed, so that runs are alike.
var lastModified = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// object is one of the origin's objects.
type object struct {
	Path string
	Body []byte
	ETag string // strong, quoted
	// header is every response's header, built once.
	header http.Header
	// fetches counts its requests.
	fetches atomic.Int64
}

// newObject is object i of the given size: random bytes from a seed of
// the size and i, the same in every run.
func newObject(size int64, i int) *object {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[0:], uint64(size))
	binary.LittleEndian.PutUint64(seed[8:], uint64(i))
	copy(seed[16:], "edgebench origin")
	body := make([]byte, size)
	rng := rand.NewChaCha8(seed)
	rng.Read(body)
	sum := sha256.Sum256(body)
	o := &object{
		Path: fmt.Sprintf("/o/%s/%04d", benchfmt.SizeLabel(size), i),
		Body: body,
		ETag: `"` + hex.EncodeToString(sum[:16]) + `"`,
	}
	o.header = http.Header{
		"Content-Type":   {"application/octet-stream"},
		"Content-Length": {strconv.FormatInt(size, 10)},
		"Etag":           {o.ETag},
		"Last-Modified":  {lastModified.Add(time.Duration(i) * time.Second).Format(http.TimeFormat)},
		"Cache-Control":  {CacheControl},
	}
	return o
}

// origin is the HTTP origin both caches fetch from: it serves the objects
// from memory, answers If-None-Match with 304 and counts every request.
type origin struct {
	ln     net.Listener
	srv    *http.Server
	byPath map[string]*object // read-only once serving
	bySize map[int64][]*object
	total  atomic.Int64 // requests for objects
	n304   atomic.Int64
	done   chan struct{} // closed when Serve returns
}

// startOrigin serves n objects of every size on 127.0.0.1.
func startOrigin(sizes []int64, n int) (*origin, error) {
	o := &origin{byPath: map[string]*object{}, bySize: map[int64][]*object{}, done: make(chan struct{})}
	for _, size := range sizes {
		for i := range n {
			obj := newObject(size, i)
			o.byPath[obj.Path] = obj
			o.bySize[size] = append(o.bySize[size], obj)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("edgebench: origin: %w", err)
	}
	o.ln = ln
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		defer close(o.done)
		o.srv.Serve(ln)
	}()
	return o, nil
}

// url is http://127.0.0.1:PORT.
func (o *origin) url() string { return "http://" + o.ln.Addr().String() }

// port is the port it listens on.
func (o *origin) port() int { return o.ln.Addr().(*net.TCPAddr).Port }

// objects are the objects of one size, in order.
func (o *origin) objects(size int64) []*object { return o.bySize[size] }

// fetches counts the requests for objects so far.
func (o *origin) fetches() int64 { return o.total.Load() }

// notModified counts the 304s so far.
func (o *origin) notModified() int64 { return o.n304.Load() }

// perPath is how many requests each object got so far, by path.
func (o *origin) perPath() map[string]int64 {
	m := make(map[string]int64, len(o.byPath))
	for p, obj := range o.byPath {
		m[p] = obj.fetches.Load()
	}
	return m
}

// fetchedSince is the objects requested since before (a perPath), with
// how often, at most limit of them (in path order).
func (o *origin) fetchedSince(before map[string]int64, limit int) map[string]int64 {
	var paths []string
	now := o.perPath()
	for p, n := range now {
		if n > before[p] {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	slices.Sort(paths)
	m := map[string]int64{}
	for _, p := range paths[:min(len(paths), limit)] {
		m[p] = now[p] - before[p]
	}
	return m
}

// close stops serving and waits, at most 5 s, for Serve to return.
func (o *origin) close() {
	o.srv.Close()
	select {
	case <-o.done:
	case <-time.After(5 * time.Second):
	}
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == ReadyPath {
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
		return
	}
	obj := o.byPath[r.URL.Path]
	if obj == nil {
		http.NotFound(w, r)
		return
	}
	o.total.Add(1) // object requests only: not readiness probes or an edge's health checks (HEAD /)
	obj.fetches.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	for k, v := range obj.header {
		h[k] = v
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, obj.ETag) {
		o.n304.Add(1)
		delete(h, "Content-Length")
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(obj.Body)
	}
}

// etagMatch is If-None-Match's weak comparison (RFC 9110 13.1.2) of the
// header's list against etag: * or any entry equal to it, W/ ignored.
func etagMatch(header, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for f := range strings.SplitSeq(header, ",") {
		f = strings.TrimSpace(f)
		if f == "*" || strings.TrimPrefix(f, "W/") == etag {
			return true
		}
	}
	return false
}
