package cache

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"engine/cache/httpx"
)

// TestCoalescedFill sends 64 concurrent GETs of one uncached object whose
// origin is slow: one origin fetch serves them all, the waiters get the
// first bytes while the origin is still sending, and a second round is all
// hits.
func TestCoalescedFill(t *testing.T) {
	const clients = 64
	const first = 64 << 10
	body := randomBytes(1, 512<<10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"big"`)
		w.Write(body[:first])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(15 * time.Second):
			return // the test gave up
		}
		// The rest in pieces over ~200ms.
		rest := body[first:]
		for i := range 4 {
			time.Sleep(50 * time.Millisecond)
			n := len(rest) / (4 - i)
			w.Write(rest[:n])
			w.(http.Flusher).Flush()
			rest = rest[n:]
		}
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)

	type result struct {
		status int
		cs     string
		body   []byte
		err    error
	}
	results := make(chan result, clients)
	firstBytes := make(chan struct{}, clients)
	for range clients {
		go func() {
			resp, err := c.Get(e.URL + "/big")
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			head := make([]byte, 16<<10)
			if _, err := io.ReadFull(resp.Body, head); err != nil {
				results <- result{err: fmt.Errorf("reading the first bytes: %w", err)}
				return
			}
			firstBytes <- struct{}{}
			rest, err := io.ReadAll(resp.Body)
			results <- result{status: resp.StatusCode, cs: resp.Header.Get("Cache-Status"), body: append(head, rest...), err: err}
		}()
	}
	// Every client reads its first bytes while the origin is held after
	// its first chunk: they are streamed as they arrive.
	deadline := time.After(10 * time.Second)
	for i := range clients {
		select {
		case <-firstBytes:
		case r := <-results:
			t.Fatalf("a client finished before the origin was released: %+v", r.err)
		case <-deadline:
			t.Fatalf("only %d of %d clients got the first bytes while the origin was sending", i, clients)
		}
	}
	if n := o.count("/big"); n != 1 {
		t.Fatalf("origin fetches while the fill runs: %d, want 1", n)
	}
	releaseOnce.Do(func() { close(release) })

	collapsed := 0
	for range clients {
		var r result
		select {
		case r = <-results:
		case <-time.After(10 * time.Second):
			t.Fatal("a client did not finish in 10s")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Fatalf("status %d, %d bytes; want 200 with the %d bytes of the object", r.status, len(r.body), len(body))
		}
		if strings.Contains(r.cs, "collapsed") {
			collapsed++
		} else if !strings.Contains(r.cs, "fwd=uri-miss") || !strings.Contains(r.cs, "stored") {
			t.Errorf("Cache-Status of the fill's requester %q, want fwd=uri-miss and stored", r.cs)
		}
	}
	if collapsed != clients-1 {
		t.Errorf("%d responses say collapsed, want %d", collapsed, clients-1)
	}
	if st := e.Stats(); st.Coalesced != clients-1 || st.Misses != clients || st.OriginFetches != 1 {
		t.Errorf("stats: coalesced %d misses %d origin fetches %d; want %d, %d, 1", st.Coalesced, st.Misses, st.OriginFetches, clients-1, clients)
	}

	// Second round: all hits.
	waitFills(t, e) // see TestHitRightAfterFill
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			resp, err := c.Get(e.URL + "/big")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			switch cs := resp.Header.Get("Cache-Status"); {
			case err != nil:
				errs <- err
			case resp.StatusCode != http.StatusOK || !bytes.Equal(got, body):
				errs <- fmt.Errorf("hit: status %d, %d bytes", resp.StatusCode, len(got))
			case cs != "engine-edge; hit":
				errs <- fmt.Errorf("hit: Cache-Status %q, want %q", cs, "engine-edge; hit")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := o.count("/big"); n != 1 {
		t.Errorf("origin fetches after the hits: %d, want 1", n)
	}
}

// TestFillWithoutContentLength fills from an origin that streams its body
// chunked (no Content-Length): the requester gets the whole body, and so
// does the next (a hit).
func TestFillWithoutContentLength(t *testing.T) {
	body := randomBytes(2, 100<<10)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for p := body; len(p) > 0; {
			n := min(len(p), 30<<10)
			w.Write(p[:n])
			w.(http.Flusher).Flush()
			p = p[n:]
			time.Sleep(10 * time.Millisecond)
		}
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	if r := get(t, c, e.URL+"/chunked"); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("the miss: status %d, %d bytes; want 200 with the object's %d", r.status, len(r.body), len(body))
	}
	waitFills(t, e)
	r := get(t, c, e.URL+"/chunked")
	wantBody(t, "the hit", r, body)
	wantHit(t, "the second GET", r)
	if n := o.count("/chunked"); n != 1 {
		t.Errorf("origin fetches: %d, want 1", n)
	}
}

// TestHitRightAfterFill GETs objects twice in a row: once the first
// response has arrived in full, the second is a hit, not a second miss
// collapsed into the fill that is still storing the entry.
func TestHitRightAfterFill(t *testing.T) {
	objs := map[string]*object{}
	for i := range 200 {
		objs[fmt.Sprintf("/o/%d", i)] = &object{body: randomBytes(uint64(i), 1000+i)}
	}
	o := startOrigin(t, serveObjects(nil, objs))
	cfg := edgeConfig(o.URL())
	cfg.DiskDir = t.TempDir()
	e := startEdge(t, cfg)
	c := newClient(t)
	misses := 0
	for p, obj := range objs {
		wantBody(t, p, get(t, c, e.URL+p), obj.body)
		r := get(t, c, e.URL+p)
		wantBody(t, p+" again", r, obj.body)
		if !strings.Contains(r.cacheStatus(), "; hit") {
			if misses++; misses <= 3 {
				t.Logf("%s, the second time: Cache-Status %q", p, r.cacheStatus())
			}
		}
	}
	if misses > 0 {
		t.Errorf("%d of %d second GETs were not hits", misses, len(objs))
	}
	if st := e.Stats(); st.Misses != int64(len(objs)) {
		t.Errorf("misses: %d, want %d", st.Misses, len(objs))
	}
}

// TestHitConditionalsAndRanges checks the conditional and range requests
// served from a cached entry, none of which reaches the origin.
func TestHitConditionalsAndRanges(t *testing.T) {
	const size = 10000
	body := randomBytes(3, size)
	lastMod := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	o := startOrigin(t, serveObjects(nil, map[string]*object{
		"/obj": {body: body, contentType: "application/octet-stream", etag: `"abc"`, lastModified: lastMod},
	}))
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	url := e.URL + "/obj"
	wantBody(t, "the fill", get(t, c, url), body)
	waitFills(t, e)

	t.Run("HEAD", func(t *testing.T) {
		r := do(t, c, http.MethodHead, url)
		if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(size) || len(r.body) != 0 {
			t.Fatalf("HEAD: status %d, Content-Length %q, %d body bytes; want 200, %d, none", r.status, r.header.Get("Content-Length"), len(r.body), size)
		}
		if r.header.Get("ETag") != `"abc"` || r.header.Get("Last-Modified") != httpx.FormatHTTPDate(lastMod) {
			t.Errorf("HEAD: ETag %q, Last-Modified %q", r.header.Get("ETag"), r.header.Get("Last-Modified"))
		}
		wantHit(t, "HEAD", r)
	})

	conditionals := []struct {
		name   string
		kv     []string
		status int
	}{
		{"If-None-Match", []string{"If-None-Match", `"abc"`}, http.StatusNotModified},
		{"If-None-Match weak", []string{"If-None-Match", `W/"abc"`}, http.StatusNotModified},
		{"If-None-Match list", []string{"If-None-Match", `"x", "abc"`}, http.StatusNotModified},
		{"If-None-Match other", []string{"If-None-Match", `"other"`}, http.StatusOK},
		{"If-Modified-Since same", []string{"If-Modified-Since", httpx.FormatHTTPDate(lastMod)}, http.StatusNotModified},
		{"If-Modified-Since later", []string{"If-Modified-Since", httpx.FormatHTTPDate(lastMod.Add(time.Hour))}, http.StatusNotModified},
		{"If-Modified-Since earlier", []string{"If-Modified-Since", httpx.FormatHTTPDate(lastMod.Add(-time.Hour))}, http.StatusOK},
		{"If-Match mismatch", []string{"If-Match", `"zzz"`}, http.StatusPreconditionFailed},
		{"If-Match match", []string{"If-Match", `"abc"`}, http.StatusOK},
		{"If-Unmodified-Since earlier", []string{"If-Unmodified-Since", httpx.FormatHTTPDate(lastMod.Add(-time.Hour))}, http.StatusPreconditionFailed},
	}
	for _, tc := range conditionals {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, c, url, tc.kv...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			switch tc.status {
			case http.StatusOK:
				wantBody(t, tc.name, r, body)
			case http.StatusNotModified:
				if len(r.body) != 0 || r.header.Get("ETag") != `"abc"` {
					t.Errorf("304 with %d body bytes, ETag %q", len(r.body), r.header.Get("ETag"))
				}
			}
		})
	}

	ranges := []struct {
		name, rng  string
		start, end int // inclusive
	}{
		{"single", "bytes=100-199", 100, 199},
		{"suffix", "bytes=-500", size - 500, size - 1},
		{"open", "bytes=9000-", 9000, size - 1},
		{"clamped", "bytes=9990-20000", 9990, size - 1},
		{"first byte", "bytes=0-0", 0, 0},
	}
	for _, tc := range ranges {
		t.Run("Range "+tc.name, func(t *testing.T) {
			r := get(t, c, url, "Range", tc.rng)
			if r.status != http.StatusPartialContent {
				t.Fatalf("Range %s: status %d, want 206", tc.rng, r.status)
			}
			if want := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, size); r.header.Get("Content-Range") != want {
				t.Errorf("Content-Range %q, want %q", r.header.Get("Content-Range"), want)
			}
			if !bytes.Equal(r.body, body[tc.start:tc.end+1]) {
				t.Errorf("body of %d bytes is not bytes %d-%d", len(r.body), tc.start, tc.end)
			}
			wantHit(t, tc.rng, r)
		})
	}

	t.Run("multi-range", func(t *testing.T) {
		r := get(t, c, url, "Range", "bytes=0-9, 100-109, -50")
		if r.status != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", r.status)
		}
		mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q (%v), want multipart/byteranges", r.header.Get("Content-Type"), err)
		}
		if r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
			t.Errorf("Content-Length %q for a body of %d bytes", r.header.Get("Content-Length"), len(r.body))
		}
		want := [][2]int{{0, 9}, {100, 109}, {size - 50, size - 1}}
		mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
		for i := 0; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				if i != len(want) {
					t.Fatalf("%d parts, want %d", i, len(want))
				}
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if i >= len(want) {
				t.Fatalf("more than %d parts", len(want))
			}
			got, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			w := want[i]
			if cr := p.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", w[0], w[1], size) {
				t.Errorf("part %d: Content-Range %q", i, cr)
			}
			if ct := p.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("part %d: Content-Type %q", i, ct)
			}
			if !bytes.Equal(got, body[w[0]:w[1]+1]) {
				t.Errorf("part %d: bytes differ", i)
			}
		}
	})

	t.Run("unsatisfiable", func(t *testing.T) {
		r := get(t, c, url, "Range", "bytes=20000-30000")
		if r.status != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("status %d, want 416", r.status)
		}
		if want := fmt.Sprintf("bytes */%d", size); r.header.Get("Content-Range") != want {
			t.Errorf("Content-Range %q, want %q", r.header.Get("Content-Range"), want)
		}
	})

	t.Run("If-Range", func(t *testing.T) {
		r := get(t, c, url, "Range", "bytes=0-99", "If-Range", `"stale"`)
		wantBody(t, "If-Range with another ETag", r, body)
		r = get(t, c, url, "Range", "bytes=0-99", "If-Range", `"abc"`)
		if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[:100]) {
			t.Errorf("If-Range with the ETag: status %d, %d bytes; want 206 with 100", r.status, len(r.body))
		}
		r = get(t, c, url, "Range", "bytes=0-99", "If-Range", httpx.FormatHTTPDate(lastMod))
		if r.status != http.StatusPartialContent {
			t.Errorf("If-Range with the Last-Modified date: status %d, want 206", r.status)
		}
	})

	if n := o.count("/obj"); n != 1 {
		t.Errorf("origin fetches: %d, want 1 (everything after the fill is served from the cache)", n)
	}
}

// cssBody returns about n bytes of CSS, compressible but not trivially.
func cssBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, ".rule-%d { color: #%06x; margin: %dpx %dpx; }\n", i, i*7919%0xffffff, i%17, i%23)
	}
	return b.Bytes()
}

// TestCompression checks content negotiation of a compressible object:
// gzip and br variants with their own ETags, identity otherwise, Vary, and
// one origin fetch for all of it.
func TestCompression(t *testing.T) {
	css := cssBody(100 << 10)
	json := bytes.Repeat([]byte(`{"key": "value", "n": [1, 2, 3]},`), 3000)
	bin := bytes.Repeat([]byte("not compressed at the edge "), 4000)
	o := startOrigin(t, serveObjects(nil, map[string]*object{
		"/site.css":  {body: css, contentType: "text/css; charset=utf-8", etag: `"css1"`},
		"/data.json": {body: json, contentType: "application/json", etag: `"j1"`},
		"/blob":      {body: bin, contentType: "application/octet-stream", etag: `"b1"`},
	}))
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	url := e.URL + "/site.css"

	identity := get(t, c, url)
	wantBody(t, "no Accept-Encoding", identity, css)
	waitFills(t, e)
	if ce := identity.header.Get("Content-Encoding"); ce != "" {
		t.Errorf("no Accept-Encoding: Content-Encoding %q", ce)
	}
	if v := identity.header.Get("Vary"); !strings.EqualFold(v, "Accept-Encoding") {
		t.Errorf("identity: Vary %q, want Accept-Encoding", v)
	}
	if ae := o.header("/site.css").Get("Accept-Encoding"); ae != "identity" {
		t.Errorf("the edge asked the origin with Accept-Encoding %q, want identity", ae)
	}

	gz := get(t, c, url, "Accept-Encoding", "gzip")
	if gz.status != http.StatusOK || gz.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: status %d, Content-Encoding %q", gz.status, gz.header.Get("Content-Encoding"))
	}
	if v := gz.header.Get("Vary"); !strings.EqualFold(v, "Accept-Encoding") {
		t.Errorf("gzip: Vary %q, want Accept-Encoding", v)
	}
	if gz.header.Get("Content-Length") != strconv.Itoa(len(gz.body)) || len(gz.body) >= len(css)/2 {
		t.Errorf("gzip: Content-Length %q, %d bytes for %d", gz.header.Get("Content-Length"), len(gz.body), len(css))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, css) {
		t.Fatalf("gunzip: %v, %d bytes; want the %d bytes of the object", err, len(got), len(css))
	}
	gzETag, idETag := gz.header.Get("ETag"), identity.header.Get("ETag")
	if gzETag == "" || gzETag == idETag {
		t.Errorf("gzip ETag %q, identity ETag %q: want distinct strong validators", gzETag, idETag)
	}

	br := get(t, c, url, "Accept-Encoding", "gzip, deflate, br")
	if br.status != http.StatusOK || br.header.Get("Content-Encoding") != "br" {
		t.Fatalf("br: status %d, Content-Encoding %q", br.status, br.header.Get("Content-Encoding"))
	}
	if got, err := fasthttp.AppendUnbrotliBytes(nil, br.body); err != nil || !bytes.Equal(got, css) {
		t.Fatalf("unbrotli: %v, %d bytes; want the %d bytes of the object", err, len(got), len(css))
	}
	if brETag := br.header.Get("ETag"); brETag == "" || brETag == idETag || brETag == gzETag {
		t.Errorf("br ETag %q (identity %q, gzip %q): want its own", brETag, idETag, gzETag)
	}

	negotiation := []struct {
		ae, want string
	}{
		{"", ""},
		{"identity", ""},
		{"gzip;q=0.5, br;q=0.1", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"gzip, identity;q=0", "gzip"},
		{"*", "br"},
		{"*;q=0, identity", ""},
		{"x-gzip", "gzip"},
		{"deflate", ""},
	}
	for _, tc := range negotiation {
		r := get(t, c, url, "Accept-Encoding", tc.ae)
		if r.status != http.StatusOK || r.header.Get("Content-Encoding") != tc.want {
			t.Errorf("Accept-Encoding %q: status %d, Content-Encoding %q; want 200, %q", tc.ae, r.status, r.header.Get("Content-Encoding"), tc.want)
		}
		if tc.want == "" && !bytes.Equal(r.body, css) {
			t.Errorf("Accept-Encoding %q: identity body differs", tc.ae)
		}
	}
	// Nothing acceptable: 406, or identity anyway (RFC 9110 §12.5.3).
	if r := get(t, c, url, "Accept-Encoding", "identity;q=0"); r.status != http.StatusNotAcceptable {
		if r.status != http.StatusOK || r.header.Get("Content-Encoding") != "" || !bytes.Equal(r.body, css) {
			t.Errorf("identity;q=0: status %d, Content-Encoding %q; want 406 or the identity body", r.status, r.header.Get("Content-Encoding"))
		}
	}

	// The variant's ETag validates the variant.
	if r := get(t, c, url, "Accept-Encoding", "gzip", "If-None-Match", gzETag); r.status != http.StatusNotModified || r.header.Get("ETag") != gzETag {
		t.Errorf("If-None-Match with the gzip ETag: status %d, ETag %q; want 304, %q", r.status, r.header.Get("ETag"), gzETag)
	}
	if r := get(t, c, url, "If-None-Match", gzETag); r.status != http.StatusOK || !bytes.Equal(r.body, css) {
		t.Errorf("If-None-Match with the gzip ETag, no Accept-Encoding: status %d; want 200 identity", r.status)
	}
	if r := get(t, c, url, "Accept-Encoding", "gzip", "If-None-Match", idETag); r.status != http.StatusOK || r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("If-None-Match with the identity ETag, gzip accepted: status %d, Content-Encoding %q; want 200 gzip", r.status, r.header.Get("Content-Encoding"))
	}

	// HEAD reports the variant's length.
	if r := do(t, c, http.MethodHead, url, "Accept-Encoding", "gzip"); r.status != http.StatusOK || r.header.Get("Content-Encoding") != "gzip" ||
		r.header.Get("Content-Length") != strconv.Itoa(len(gz.body)) || len(r.body) != 0 {
		t.Errorf("HEAD gzip: status %d, Content-Encoding %q, Content-Length %q; want 200, gzip, %d", r.status, r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), len(gz.body))
	}

	// A range addresses the identity bytes.
	r := get(t, c, url, "Accept-Encoding", "gzip, br", "Range", "bytes=1000-1999")
	if r.status != http.StatusPartialContent || r.header.Get("Content-Encoding") != "" || !bytes.Equal(r.body, css[1000:2000]) {
		t.Errorf("Range with gzip accepted: status %d, Content-Encoding %q; want 206 identity bytes 1000-1999", r.status, r.header.Get("Content-Encoding"))
	}

	if n := o.count("/site.css"); n != 1 {
		t.Errorf("origin fetches of the CSS: %d, want 1", n)
	}
	if st := e.Stats(); st.Compressions != 2 {
		t.Errorf("compressions: %d, want 2 (one gzip, one br)", st.Compressions)
	}

	// JSON is compressed too.
	j := get(t, c, e.URL+"/data.json", "Accept-Encoding", "gzip")
	if j.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("JSON: Content-Encoding %q, want gzip", j.header.Get("Content-Encoding"))
	} else if got, err := fasthttp.AppendGunzipBytes(nil, j.body); err != nil || !bytes.Equal(got, json) {
		t.Errorf("JSON: gunzip: %v", err)
	}

	// application/octet-stream never is.
	for _, ae := range []string{"gzip", "br", "*"} {
		b := get(t, c, e.URL+"/blob", "Accept-Encoding", ae)
		wantBody(t, "octet-stream with "+ae, b, bin)
		if ce := b.header.Get("Content-Encoding"); ce != "" {
			t.Errorf("octet-stream with Accept-Encoding %s: Content-Encoding %q", ae, ce)
		}
		if v := b.header.Get("Vary"); v != "" {
			t.Errorf("octet-stream: Vary %q, want none", v)
		}
	}
	if n := o.count("/blob"); n != 1 {
		t.Errorf("origin fetches of the blob: %d, want 1", n)
	}
}

// TestCacheControlMaxAge checks freshness with a fake clock: a fresh hit,
// a stale entry revalidated with If-None-Match (304), fresh again.
func TestCacheControlMaxAge(t *testing.T) {
	clock := newFakeClock()
	body := []byte("version one of the object\n")
	o := startOrigin(t, serveObjects(clock.Now, map[string]*object{
		"/fresh": {body: body, contentType: "text/plain", cacheControl: "max-age=2", etag: `"v1"`},
	}))
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	e := startEdge(t, cfg)
	c := newClient(t)
	url := e.URL + "/fresh"

	r := get(t, c, url)
	wantBody(t, "the fill", r, body)
	waitFills(t, e)
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Errorf("the fill: Cache-Status %q", cs)
	}

	clock.Advance(time.Second)
	r = get(t, c, url)
	wantBody(t, "1s later", r, body)
	if cs := r.cacheStatus(); cs != "engine-edge; hit; ttl=1" {
		t.Errorf("1s later: Cache-Status %q, want a hit with ttl=1", cs)
	}
	if age := r.header.Get("Age"); age != "1" {
		t.Errorf("1s later: Age %q, want 1", age)
	}
	if n := o.count("/fresh"); n != 1 {
		t.Fatalf("origin fetches while fresh: %d, want 1", n)
	}

	clock.Advance(2 * time.Second)
	r = get(t, c, url)
	waitFills(t, e)
	wantBody(t, "stale, revalidated", r, body)
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "fwd-status=304") {
		t.Errorf("stale: Cache-Status %q, want fwd=stale; fwd-status=304", cs)
	}
	if n := o.count("/fresh"); n != 2 {
		t.Fatalf("origin fetches after the revalidation: %d, want 2", n)
	}
	if inm := o.header("/fresh").Get("If-None-Match"); inm != `"v1"` {
		t.Errorf("the revalidation sent If-None-Match %q, want %q", inm, `"v1"`)
	}
	if st := e.Stats(); st.Revalidated != 1 {
		t.Errorf("revalidated: %d, want 1", st.Revalidated)
	}

	clock.Advance(time.Second)
	r = get(t, c, url)
	wantBody(t, "after the revalidation", r, body)
	wantHit(t, "after the revalidation", r)
	if n := o.count("/fresh"); n != 2 {
		t.Errorf("origin fetches once fresh again: %d, want 2", n)
	}
}

// TestNotStored checks that no-store, private and Set-Cookie responses
// reach the origin every time, and that a response without freshness
// information is kept as immutable.
func TestNotStored(t *testing.T) {
	clock := newFakeClock()
	objs := map[string]*object{
		"/no-store":  {body: []byte("no-store body"), cacheControl: "no-store"},
		"/private":   {body: []byte("private body"), cacheControl: "private, max-age=600"},
		"/cookie":    {body: []byte("cookie body"), header: http.Header{"Set-Cookie": {"session=abc; HttpOnly"}}},
		"/immutable": {body: []byte("immutable body"), contentType: "text/plain", etag: `"i1"`},
	}
	o := startOrigin(t, serveObjects(clock.Now, objs))
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	e := startEdge(t, cfg)
	c := newClient(t)

	for _, path := range []string{"/no-store", "/private", "/cookie"} {
		for i := range 3 {
			wantBody(t, path, get(t, c, e.URL+path), objs[path].body)
			waitFills(t, e) // see TestHitRightAfterFill
			if n := o.count(path); n != i+1 {
				t.Errorf("%s: %d origin fetches after %d requests: stored", path, n, i+1)
			}
		}
	}

	wantBody(t, "immutable", get(t, c, e.URL+"/immutable"), objs["/immutable"].body)
	waitFills(t, e)
	clock.Advance(1000 * time.Hour)
	r := get(t, c, e.URL+"/immutable")
	wantBody(t, "immutable, 1000h later", r, objs["/immutable"].body)
	if cs := r.cacheStatus(); cs != "engine-edge; hit" {
		t.Errorf("immutable: Cache-Status %q, want a hit without ttl", cs)
	}
	if n := o.count("/immutable"); n != 1 {
		t.Errorf("immutable: %d origin fetches, want 1", n)
	}
}

// TestPrivateObjects checks that requests with credentials are relayed
// with them and never stored, so an anonymous request for the same URL
// gets the origin's 403, never the private bytes.
func TestPrivateObjects(t *testing.T) {
	secret := []byte("the private bytes of alice")
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		authorized := r.Header.Get("Authorization") == "Bearer alice" ||
			r.URL.Query().Get("X-Amz-Signature") == "abc" ||
			r.Header.Get("Cookie") == "session=alice"
		if !authorized {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(secret)
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)

	cases := []struct {
		name   string
		uri    string
		kv     []string
		anonTo string // the anonymous request that follows
	}{
		{"Authorization", "/bucket/secret", []string{"Authorization", "Bearer alice"}, "/bucket/secret"},
		{"presigned", "/bucket/signed?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc", nil, "/bucket/signed"},
		{"Cookie", "/bucket/cookie", []string{"Cookie", "session=alice"}, "/bucket/cookie"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := strings.SplitN(tc.uri, "?", 2)[0]
			for i := range 2 {
				r := get(t, c, e.URL+tc.uri, tc.kv...)
				wantBody(t, "with credentials", r, secret)
				if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=bypass") {
					t.Errorf("with credentials: Cache-Status %q, want fwd=bypass", cs)
				}
				if n := o.count(path); n != i+1 {
					t.Fatalf("%d origin fetches after %d requests with credentials", n, i+1)
				}
			}
			if tc.name == "Authorization" {
				if got := o.header(path).Get("Authorization"); got != "Bearer alice" {
					t.Errorf("the origin saw Authorization %q, want the client's", got)
				}
			}
			before := o.count(path)
			r := get(t, c, e.URL+tc.anonTo)
			if bytes.Contains(r.body, secret) {
				t.Fatalf("an anonymous request got the private bytes (status %d)", r.status)
			}
			if r.status != http.StatusForbidden {
				t.Errorf("anonymous: status %d, want the origin's 403", r.status)
			}
			if n := o.count(path); n != before+1 {
				t.Errorf("anonymous: the origin was asked %d times, want once", n-before)
			}
		})
	}
	if st := e.Stats(); st.Stored != 0 {
		t.Errorf("stored: %d entries, want none", st.Stored)
	}
}

// TestSetCookieNotShared sends concurrent anonymous requests for a URL
// whose origin answers each with its own session cookie: no client may get
// another one's cookie, coalesced or not.
func TestSetCookieNotShared(t *testing.T) {
	const clients = 8
	var mu sync.Mutex
	n := 0
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		id := n
		mu.Unlock()
		time.Sleep(300 * time.Millisecond) // long enough for the others to arrive
		w.Header().Set("Set-Cookie", fmt.Sprintf("session=%d", id))
		w.Header().Set("Cache-Control", "private")
		w.Write([]byte("hello"))
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	cookies := make(chan string, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, err := c.Get(e.URL + "/login")
			if err != nil {
				t.Error(err)
				cookies <- ""
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cookies <- resp.Header.Get("Set-Cookie")
		})
	}
	wg.Wait()
	close(cookies)
	seen := map[string]int{}
	for ck := range cookies {
		seen[ck]++
	}
	for ck, k := range seen {
		if k > 1 {
			t.Errorf("%d clients got the same Set-Cookie %q: the edge handed one client's private response to others", k, ck)
		}
	}
}

// TestPurgeDuringFill purges a key while its fill is running: the bytes
// that fill brings predate the purge and must not be kept.
func TestPurgeDuringFill(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) { testPurgeDuringFill(t, disk) })
	}
}

func testPurgeDuringFill(t *testing.T, disk bool) {
	var mu sync.Mutex
	version := "v1"
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body := bytes.Repeat([]byte(version), 1000)
		mu.Unlock()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:100])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		w.Write(body[100:])
	})
	cfg := edgeConfig(o.URL())
	if disk {
		cfg.DiskDir = t.TempDir()
	}
	e := startEdge(t, cfg)
	c := newClient(t)

	done := make(chan response, 1)
	go func() {
		resp, err := c.Get(e.URL + "/obj")
		if err != nil {
			done <- response{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- response{status: resp.StatusCode, body: body}
	}()
	waitFor(t, "the fill to start", 5*time.Second, func() bool { return o.count("/obj") == 1 })
	// The object changes at the origin, and is purged.
	mu.Lock()
	version = "v2"
	mu.Unlock()
	r := do(t, c, http.MethodPost, e.URL+"/_edge/purge?key=/obj", "Authorization", "Bearer s3cret")
	if r.status != http.StatusOK {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case r := <-done:
		if r.status != http.StatusOK || !bytes.HasPrefix(r.body, []byte("v1")) {
			t.Fatalf("the fill's request: status %d, want 200 with v1", r.status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fill's request did not finish")
	}
	waitFills(t, e)
	r = get(t, c, e.URL+"/obj")
	if !bytes.HasPrefix(r.body, []byte("v2")) {
		t.Errorf("after a purge during its fill, the edge serves %q... (Cache-Status %q), want the new version from the origin", r.body[:min(len(r.body), 4)], r.cacheStatus())
	}
}

// TestMissVariants checks misses that are not plain GETs: a Range miss
// fills the whole object and answers 206, a conditional miss answers 304,
// a HEAD miss is relayed without storing, other methods get 405.
func TestMissVariants(t *testing.T) {
	body := randomBytes(4, 200<<10)
	o := startOrigin(t, serveObjects(nil, map[string]*object{
		"/range": {body: body, contentType: "application/octet-stream", etag: `"r"`},
		"/cond":  {body: body, contentType: "application/octet-stream", etag: `"c"`},
		"/head":  {body: body, contentType: "application/octet-stream", etag: `"h"`},
	}))
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)

	r := get(t, c, e.URL+"/range", "Range", "bytes=150000-150999")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[150000:151000]) {
		t.Errorf("a Range miss: status %d, %d bytes; want 206 with bytes 150000-150999", r.status, len(r.body))
	}
	if h := o.header("/range").Get("Range"); h != "" {
		t.Errorf("the fill asked the origin for Range %q, want the whole object", h)
	}
	waitFills(t, e)
	r = get(t, c, e.URL+"/range")
	wantBody(t, "after a Range miss", r, body)
	wantHit(t, "after a Range miss", r)

	r = get(t, c, e.URL+"/cond", "If-None-Match", `"c"`)
	if r.status != http.StatusNotModified {
		t.Errorf("a conditional miss: status %d, want 304", r.status)
	}

	r = do(t, c, http.MethodHead, e.URL+"/head")
	if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(len(body)) || len(r.body) != 0 {
		t.Errorf("a HEAD miss: status %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	if o.count("/head") != 1 {
		t.Errorf("a HEAD miss: origin asked %d times, want 1", o.count("/head"))
	}
	r = get(t, c, e.URL+"/head")
	wantBody(t, "GET after a HEAD miss", r, body)
	if o.count("/head") != 2 || strings.Contains(r.cacheStatus(), "; hit") {
		t.Errorf("GET after a HEAD miss: origin asked %d times (Cache-Status %q); the HEAD stored nothing", o.count("/head"), r.cacheStatus())
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		r := do(t, c, m, e.URL+"/range")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d, Allow %q; want 405, GET, HEAD", m, r.status, r.header.Get("Allow"))
		}
	}
	if o.count("/range") != 1 {
		t.Errorf("/range: origin asked %d times, want 1", o.count("/range"))
	}
}

// TestOriginErrorsNotStored checks that an origin's 404 and 500 reach the
// client as they are and are not stored.
func TestOriginErrorsNotStored(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			w.Header().Set("X-Amz-Request-Id", "req-1")
			http.Error(w, "NoSuchKey", http.StatusNotFound)
		default:
			http.Error(w, "InternalError", http.StatusInternalServerError)
		}
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{{"/404", 404, "NoSuchKey\n"}, {"/500", 500, "InternalError\n"}} {
		for i := range 2 {
			r := get(t, c, e.URL+tc.path)
			waitFills(t, e)
			if r.status != tc.status || string(r.body) != tc.body {
				t.Errorf("%s: %d %q, want %d %q", tc.path, r.status, r.body, tc.status, tc.body)
			}
			if tc.status == 404 && r.header.Get("X-Amz-Request-Id") != "req-1" {
				t.Errorf("%s: the origin's headers were not relayed: %v", tc.path, r.header)
			}
			if n := o.count(tc.path); n != i+1 {
				t.Errorf("%s: origin asked %d times after %d requests", tc.path, n, i+1)
			}
		}
	}
}

// TestLargeObjectRelayed fetches an object over MaxObject (and over the
// 64 MiB the edge buffers of an uncacheable response): it is relayed in
// full, not cut off.
func TestLargeObjectRelayed(t *testing.T) {
	const size = 65 << 20
	chunk := randomBytes(5, 1<<20)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	cfg := edgeConfig(o.URL())
	cfg.MaxObject = 1 << 20
	e := startEdge(t, cfg)
	c := newClient(t)
	resp, err := c.Get(e.URL + "/huge")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || n != size || err != nil {
		t.Errorf("an object over MaxObject: status %d, %d of %d bytes (%v); want it relayed in full", resp.StatusCode, n, size, err)
	}
}

// TestRevalidation covers the other freshness paths: Expires, no-cache
// (revalidated on every use), and a stale entry the origin replaced (200
// with the new version, stored).
func TestRevalidation(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	version := 1
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v := version
		mu.Unlock()
		h := w.Header()
		h.Set("Date", httpx.FormatHTTPDate(clock.Now()))
		etag := fmt.Sprintf(`"v%d"`, v)
		switch r.URL.Path {
		case "/expires":
			h.Set("Expires", httpx.FormatHTTPDate(clock.Now().Add(10*time.Second)))
		case "/no-cache":
			h.Set("Cache-Control", "no-cache")
		case "/changes":
			h.Set("Cache-Control", "max-age=5")
		}
		h.Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "%s version %d", r.URL.Path, v)
	})
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	e := startEdge(t, cfg)
	c := newClient(t)
	body := func(path string, v int) []byte { return fmt.Appendf(nil, "%s version %d", path, v) }
	for _, p := range []string{"/expires", "/no-cache", "/changes"} {
		wantBody(t, p, get(t, c, e.URL+p), body(p, 1))
	}
	waitFills(t, e)

	// no-cache: stored, but every use asks the origin.
	for i := range 3 {
		r := get(t, c, e.URL+"/no-cache")
		wantBody(t, "no-cache", r, body("/no-cache", 1))
		if cs := r.cacheStatus(); !strings.Contains(cs, "fwd-status=304") {
			t.Errorf("no-cache, use %d: Cache-Status %q, want a revalidation", i, cs)
		}
		if n := o.count("/no-cache"); n != i+2 {
			t.Errorf("no-cache, use %d: %d origin requests, want %d", i, n, i+2)
		}
		waitFills(t, e) // see TestHitRightAfterFill
	}

	clock.Advance(9 * time.Second)
	wantHit(t, "Expires, 9s in", get(t, c, e.URL+"/expires"))
	clock.Advance(2 * time.Second)
	r := get(t, c, e.URL+"/expires")
	waitFills(t, e)
	wantBody(t, "Expires passed", r, body("/expires", 1))
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=stale; fwd-status=304") {
		t.Errorf("Expires passed: Cache-Status %q, want a revalidation", cs)
	}

	// The object changes at the origin while the entry is stale.
	mu.Lock()
	version = 2
	mu.Unlock()
	r = get(t, c, e.URL+"/changes")
	wantBody(t, "changed, stale", r, body("/changes", 2))
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=stale; fwd-status=200") || !strings.Contains(cs, "stored") {
		t.Errorf("changed: Cache-Status %q, want fwd=stale; fwd-status=200 and stored", cs)
	}
	if r.header.Get("ETag") != `"v2"` {
		t.Errorf("changed: ETag %q, want the new one", r.header.Get("ETag"))
	}
	waitFills(t, e)
	r = get(t, c, e.URL+"/changes")
	wantBody(t, "changed, then", r, body("/changes", 2))
	wantHit(t, "changed, then", r)
	if n := o.count("/changes"); n != 2 {
		t.Errorf("/changes: %d origin requests, want 2", n)
	}
}

// TestVariantFollowsNewBody replaces a compressible object at the origin
// (same length, no validators) while its entry is stale: once the new
// body is stored, the gzip variant is made from it, not kept from the old.
func TestVariantFollowsNewBody(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	body := bytes.Repeat([]byte("a { color: red; }\n"), 500)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := body
		mu.Unlock()
		w.Header().Set("Date", httpx.FormatHTTPDate(clock.Now()))
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	e := startEdge(t, cfg)
	c := newClient(t)
	gunzip := func(r response) []byte {
		t.Helper()
		if r.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", r.header.Get("Content-Encoding"))
		}
		b, err := fasthttp.AppendGunzipBytes(nil, r.body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := body
	if got := gunzip(get(t, c, e.URL+"/style.css", "Accept-Encoding", "gzip")); !bytes.Equal(got, old) {
		t.Fatal("the first gzip response differs from the object")
	}
	waitFills(t, e)

	newBody := bytes.Repeat([]byte("b { color: red; }\n"), 500)
	mu.Lock()
	body = newBody
	mu.Unlock()
	clock.Advance(2 * time.Second)
	wantBody(t, "identity, after the change", get(t, c, e.URL+"/style.css"), newBody)
	waitFills(t, e)
	if got := gunzip(get(t, c, e.URL+"/style.css", "Accept-Encoding", "gzip")); !bytes.Equal(got, newBody) {
		t.Errorf("gzip after the object changed: the old body (%q...), want the new one", got[:18])
	}
}

// TestStaleWhileRevalidate: within the origin's stale-while-revalidate
// window a stale entry is served at once, without waiting for the origin,
// and revalidated in the background, once however many requests come;
// the next request finds the entry fresh again, or the new object. Past
// the window, or with must-revalidate, the request waits for the
// revalidation.
func TestStaleWhileRevalidate(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	version := 1
	gate := make(chan struct{}) // closed: the origin answers
	close(gate)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v, g := version, gate
		mu.Unlock()
		<-g
		h := w.Header()
		h.Set("Date", httpx.FormatHTTPDate(clock.Now()))
		switch r.URL.Path {
		case "/swr":
			h.Set("Cache-Control", "max-age=10, stale-while-revalidate=30")
		case "/swr-must":
			h.Set("Cache-Control", "max-age=10, stale-while-revalidate=30, must-revalidate")
		}
		etag := fmt.Sprintf(`"v%d"`, v)
		h.Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "%s version %d", r.URL.Path, v)
	})
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	// The origin holds the background revalidation's answer for as long
	// as the test takes to look: more than a loaded -race run may need.
	cfg.HeaderTimeout = 20 * time.Second
	cfg.HealthInterval = 50 * time.Millisecond
	e := startEdge(t, cfg)
	c := newClient(t)
	body := func(path string, v int) []byte { return fmt.Appendf(nil, "%s version %d", path, v) }
	for _, p := range []string{"/swr", "/swr-must"} {
		wantBody(t, p, get(t, c, e.URL+p), body(p, 1))
	}
	waitFills(t, e)

	// 15 s in: stale for 5 s, within the window. The origin holds its
	// answers and has a new version: the edge answers from the cache.
	hold := make(chan struct{})
	mu.Lock()
	version, gate = 2, hold
	mu.Unlock()
	clock.Advance(15 * time.Second)
	for i := range 3 {
		r := get(t, c, e.URL+"/swr")
		wantBody(t, fmt.Sprintf("stale use %d", i), r, body("/swr", 1))
		if cs := r.cacheStatus(); !strings.Contains(cs, "; hit; ttl=-5; detail=stale-while-revalidate") {
			t.Errorf("stale use %d: Cache-Status %q, want a hit with ttl=-5 and detail=stale-while-revalidate", i, cs)
		}
	}
	waitFor(t, "the background revalidation to reach the origin", 5*time.Second, func() bool { return o.count("/swr") == 2 })
	if inm := o.header("/swr").Get("If-None-Match"); inm != `"v1"` {
		t.Errorf("the background revalidation sent If-None-Match %q, want \"v1\"", inm)
	}
	close(hold)
	waitFills(t, e)

	// must-revalidate: never served stale, even within the window.
	r := get(t, c, e.URL+"/swr-must")
	wantBody(t, "must-revalidate", r, body("/swr-must", 2))
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=stale; fwd-status=200") {
		t.Errorf("must-revalidate, 5 s stale: Cache-Status %q, want a revalidation the request waited for", cs)
	}

	r = get(t, c, e.URL+"/swr")
	wantBody(t, "after the background fill", r, body("/swr", 2))
	wantHit(t, "after the background fill", r)
	if cs := r.cacheStatus(); !strings.Contains(cs, "ttl=10") {
		t.Errorf("after the background fill: Cache-Status %q, want ttl=10", cs)
	}
	if n := o.count("/swr"); n != 2 {
		t.Errorf("/swr: %d origin requests, want 2 (one background revalidation for three stale uses)", n)
	}
	if st := e.Stats(); st.StaleRevalidating != 3 || st.Stale != 0 {
		t.Errorf("stats: %d served stale while revalidating, %d stale for an origin failure; want 3 and 0", st.StaleRevalidating, st.Stale)
	}

	// Unchanged at the origin: the background revalidation is a 304 that
	// makes the entry fresh again.
	clock.Advance(15 * time.Second)
	wantBody(t, "stale, unchanged", get(t, c, e.URL+"/swr"), body("/swr", 2))
	waitFor(t, "the second background revalidation", 5*time.Second, func() bool { return o.count("/swr") == 3 })
	waitFills(t, e)
	r = get(t, c, e.URL+"/swr")
	if cs := r.cacheStatus(); !strings.Contains(cs, "; hit; ttl=10") {
		t.Errorf("after a background 304: Cache-Status %q, want a fresh hit", cs)
	}

	// Past the window (stale for 40 s > 30 s): the request waits.
	clock.Advance(50 * time.Second)
	r = get(t, c, e.URL+"/swr")
	wantBody(t, "past the window", r, body("/swr", 2))
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd=stale; fwd-status=304") {
		t.Errorf("past the window: Cache-Status %q, want a revalidation the request waited for", cs)
	}

	waitFills(t, e)

	// As many revalidations running behind as may: stale is served
	// without starting another.
	clock.Advance(15 * time.Second)
	for range maxBehind {
		e.behind <- struct{}{}
	}
	n := o.count("/swr")
	r = get(t, c, e.URL+"/swr")
	if cs := r.cacheStatus(); !strings.Contains(cs, "detail=stale-while-revalidate") {
		t.Errorf("with no room behind: Cache-Status %q, want stale-while-revalidate", cs)
	}
	waitFills(t, e)
	if m := o.count("/swr"); m != n {
		t.Errorf("with no room behind: %d origin requests, want %d (none started)", m, n)
	}
	for range maxBehind {
		<-e.behind
	}

	// Every origin down: served stale, and said so; nothing to revalidate.
	o.stop()
	waitFor(t, "the origin to be taken out", 5*time.Second, func() bool { return !e.origins.anyUp() })
	r = get(t, c, e.URL+"/swr")
	wantBody(t, "origin down", r, body("/swr", 2))
	if cs := r.cacheStatus(); !strings.Contains(cs, "detail=stale-origin-down") {
		t.Errorf("origin down: Cache-Status %q, want stale-origin-down", cs)
	}
	if st := e.Stats(); st.StaleRevalidating != 5 || st.Stale != 1 {
		t.Errorf("stats: %d served stale while revalidating, %d stale with the origin down; want 5 and 1", st.StaleRevalidating, st.Stale)
	}
}

// TestCloseBeforeServe: an edge closed before its Serve got going (or
// before Serve was called at all) does not serve on: Serve returns.
func TestCloseBeforeServe(t *testing.T) {
	o := startOrigin(t, func(http.ResponseWriter, *http.Request) {})
	s, err := New(edgeConfig(o.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		t.Fatal("Serve after Close still running after 5s")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener given to Serve after Close still accepts connections")
	}
}
