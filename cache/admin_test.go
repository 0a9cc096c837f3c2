package cache

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// adminDo sends an admin request with the token (none when "").
func adminDo(t *testing.T, c *http.Client, method, url, token string) response {
	t.Helper()
	if token == "" {
		return do(t, c, method, url)
	}
	return do(t, c, method, url, "Authorization", "Bearer "+token)
}

func adminStats(t *testing.T, c *http.Client, e *testEdge) Stats {
	t.Helper()
	r := adminDo(t, c, http.MethodGet, e.URL+"/_edge/stats", "s3cret")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("stats: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	var st Stats
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("stats: %v in %s", err, r.body)
	}
	return st
}

func TestAdminAuth(t *testing.T) {
	o := startOrigin(t, serveObjects(nil, nil))
	cfg := edgeConfig(o.URL())
	cfg.AdminToken = ""
	off := startEdge(t, cfg)
	on := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)

	for _, e := range []*testEdge{off, on} {
		r := get(t, c, e.URL+"/_edge/health")
		if r.status != http.StatusOK || string(r.body) != "ok\n" {
			t.Errorf("health: %d %q, want 200 ok", r.status, r.body)
		}
	}
	for _, path := range []string{"/_edge/purge?key=/x", "/_edge/stats", "/_edge/metrics"} {
		if r := adminDo(t, c, http.MethodPost, off.URL+path, "s3cret"); r.status != http.StatusForbidden {
			t.Errorf("%s without an admin token configured: %d, want 403", path, r.status)
		}
		if r := adminDo(t, c, http.MethodPost, on.URL+path, ""); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token: %d (WWW-Authenticate %q), want 401 with a challenge", path, r.status, r.header.Get("WWW-Authenticate"))
		}
		if r := adminDo(t, c, http.MethodPost, on.URL+path, "wrong"); r.status != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, r.status)
		}
		if r := do(t, c, http.MethodPost, on.URL+path, "Authorization", "s3cret"); r.status != http.StatusUnauthorized {
			t.Errorf("%s with the token but not Bearer: %d, want 401", path, r.status)
		}
	}
	if r := adminDo(t, c, http.MethodGet, on.URL+"/_edge/purge?key=/x", "s3cret"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET purge: %d, want 405", r.status)
	}
	for _, q := range []string{"", "?key=x", "?key=/a&prefix=/b", "?prefix=b"} {
		if r := adminDo(t, c, http.MethodPost, on.URL+"/_edge/purge"+q, "s3cret"); r.status != http.StatusBadRequest {
			t.Errorf("purge%s: %d, want 400", q, r.status)
		}
	}
	if r := adminDo(t, c, http.MethodGet, on.URL+"/_edge/nope", "s3cret"); r.status != http.StatusNotFound {
		t.Errorf("/_edge/nope: %d, want 404", r.status)
	}
	if n := o.requests(); n != 0 {
		t.Errorf("admin requests reached the origin %d times", n)
	}
}

func TestAdminPurgeAndStats(t *testing.T) {
	objs := map[string]*object{
		"/p/a":      {body: []byte("a")},
		"/p/b":      {body: []byte("b")},
		"/p/css":    {body: cssBody(4096), contentType: "text/css", etag: `"c"`},
		"/q/c":      {body: []byte("c")},
		"/pq":       {body: []byte("pq")},
		"/coalesce": {body: []byte("coalesced")},
	}
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	static := serveObjects(nil, objs)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/coalesce" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		static(w, r)
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	purge := func(query string) PurgeResult {
		t.Helper()
		r := adminDo(t, c, http.MethodPost, e.URL+"/_edge/purge?"+query, "s3cret")
		if r.status != http.StatusOK {
			t.Fatalf("purge?%s: %d %s", query, r.status, r.body)
		}
		var pr PurgeResult
		if err := json.Unmarshal(r.body, &pr); err != nil {
			t.Fatalf("purge?%s: %v in %s", query, err, r.body)
		}
		return pr
	}

	for _, p := range []string{"/p/a", "/p/b", "/p/css", "/q/c", "/pq"} {
		wantBody(t, p, get(t, c, e.URL+p), objs[p].body)
		waitFills(t, e) // see TestHitRightAfterFill
		wantHit(t, p, get(t, c, e.URL+p))
	}
	get(t, c, e.URL+"/p/css", "Accept-Encoding", "gzip") // a variant to purge along
	st := adminStats(t, c, e)
	if st.Misses != 5 || st.Hits != 6 || st.OriginFetches != 5 || st.Stored != 5 || st.Coalesced != 0 || st.Compressions != 1 {
		t.Errorf("stats: misses %d hits %d origin_fetches %d stored %d coalesced %d compressions %d; want 5 6 5 5 0 1",
			st.Misses, st.Hits, st.OriginFetches, st.Stored, st.Coalesced, st.Compressions)
	}

	if pr := purge("key=/p/a"); pr.Purged != 1 {
		t.Errorf("purge key=/p/a: purged %d, want 1", pr.Purged)
	}
	if pr := purge("key=/p/a"); pr.Purged != 0 {
		t.Errorf("purge key=/p/a again: purged %d, want 0", pr.Purged)
	}
	r := get(t, c, e.URL+"/p/a")
	wantBody(t, "/p/a after its purge", r, objs["/p/a"].body)
	waitFills(t, e)
	if o.count("/p/a") != 2 || strings.Contains(r.cacheStatus(), "; hit") {
		t.Errorf("/p/a after its purge: %d origin fetches (Cache-Status %q), want a miss", o.count("/p/a"), r.cacheStatus())
	}
	wantHit(t, "/p/b after purging /p/a", get(t, c, e.URL+"/p/b"))

	if pr := purge("prefix=/p/"); pr.Purged < 3 {
		t.Errorf("purge prefix=/p/: purged %d, want at least 3", pr.Purged)
	}
	for _, p := range []string{"/p/a", "/p/b", "/p/css"} {
		before := o.count(p)
		r := get(t, c, e.URL+p)
		wantBody(t, p+" after the prefix purge", r, objs[p].body)
		if o.count(p) != before+1 {
			t.Errorf("%s after the prefix purge: not fetched again (Cache-Status %q)", p, r.cacheStatus())
		}
	}
	waitFills(t, e)
	// The gzip variant went with its entry.
	before := adminStats(t, c, e).Compressions
	r = get(t, c, e.URL+"/p/css", "Accept-Encoding", "gzip")
	if r.header.Get("Content-Encoding") != "gzip" || adminStats(t, c, e).Compressions != before+1 {
		t.Errorf("/p/css gzip after the purge: not compressed anew")
	}
	for _, p := range []string{"/q/c", "/pq"} {
		wantHit(t, p+" outside the purged prefix", get(t, c, e.URL+p))
	}

	// Coalesced requests show in the stats.
	st = adminStats(t, c, e)
	done := make(chan response, 4)
	for range 4 {
		go func() {
			r, err := fetch(c, http.MethodGet, e.URL+"/coalesce")
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
	}
	waitFor(t, "3 requests to join the fill", 5*time.Second, func() bool {
		return adminStats(t, c, e).Coalesced == st.Coalesced+3
	})
	releaseOnce.Do(func() { close(release) })
	for range 4 {
		select {
		case r := <-done:
			wantBody(t, "/coalesce", r, objs["/coalesce"].body)
		case <-time.After(10 * time.Second):
			t.Fatal("a coalesced request did not finish")
		}
	}
	st2 := adminStats(t, c, e)
	if st2.Misses != st.Misses+4 || st2.OriginFetches != st.OriginFetches+1 || st2.Coalesced != st.Coalesced+3 || st2.Hits != st.Hits {
		t.Errorf("after 4 coalesced requests: misses +%d origin_fetches +%d coalesced +%d hits +%d; want +4 +1 +3 +0",
			st2.Misses-st.Misses, st2.OriginFetches-st.OriginFetches, st2.Coalesced-st.Coalesced, st2.Hits-st.Hits)
	}
	if st2.Purged < 4 || st2.Requests == 0 || st2.BytesSent == 0 || st2.Memory.Bytes == 0 {
		t.Errorf("stats: purged %d requests %d bytes_sent %d memory bytes %d", st2.Purged, st2.Requests, st2.BytesSent, st2.Memory.Bytes)
	}

	// Every byte of a response counts in bytes_sent, hits from memory too.
	waitFills(t, e)
	before = e.Stats().BytesSent
	for range 10 {
		wantHit(t, "/q/c", get(t, c, e.URL+"/q/c"))
	}
	if got := e.Stats().BytesSent - before; got != 10*int64(len(objs["/q/c"].body)) {
		t.Errorf("bytes_sent grew by %d for 10 hits of %d bytes", got, len(objs["/q/c"].body))
	}

	r = adminDo(t, c, http.MethodGet, e.URL+"/_edge/metrics", "s3cret")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	st3 := e.Stats()
	for name, want := range map[string]int64{"hits_total": st3.Hits, "misses_total": st3.Misses, "coalesced_total": st3.Coalesced, "origin_fetches_total": st3.OriginFetches} {
		m := regexp.MustCompile(`(?m)^engine_edge_` + name + ` (\S+)$`).FindSubmatch(r.body)
		if m == nil {
			t.Errorf("metrics: no engine_edge_%s in\n%s", name, r.body)
			continue
		}
		if v, err := strconv.ParseFloat(string(m[1]), 64); err != nil || int64(v) != want {
			t.Errorf("metrics: engine_edge_%s %s, want %d", name, m[1], want)
		}
	}
	if !bytes.Contains(r.body, []byte("# TYPE engine_edge_hits_total counter")) {
		t.Errorf("metrics: engine_edge_hits_total is not a counter")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	o := startOrigin(t, serveObjects(nil, map[string]*object{"/a": {body: []byte("hello")}}))
	var buf syncBuffer
	cfg := edgeConfig(o.URL())
	cfg.AccessLog = &buf
	e := startEdge(t, cfg)
	c := newClient(t)

	type line struct{ method, uri, status, bytes, result string }
	want := []line{
		{"GET", "/a", "200", "5", "miss"},
		{"GET", "/a", "200", "5", "hit"},
		{"HEAD", "/a", "200", "0", "hit"},
		{"GET", "/missing?x=\"1\"", "404", "", "miss"},
		{"POST", "/a", "405", "", "error"},
		{"GET", "/a", "200", "5", "bypass"},
		{"GET", "/_edge/health", "200", "3", "admin"},
	}
	do(t, c, "GET", e.URL+"/a")
	waitFills(t, e)
	do(t, c, "GET", e.URL+"/a")
	do(t, c, "HEAD", e.URL+"/a")
	do(t, c, "GET", e.URL+`/missing?x="1"`)
	do(t, c, "POST", e.URL+"/a")
	do(t, c, "GET", e.URL+"/a", "Authorization", "Bearer x")
	do(t, c, "GET", e.URL+"/_edge/health")
	c.Transport.(*http.Transport).CloseIdleConnections()
	e.close(t)

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^\]]+\] "(\S+) (\S+) HTTP/1\.1" (\d{3}) (\d+) "[^"]*" "[^"]*" (\w+) \d+$`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %d %q is not in the access log format", i, l)
			continue
		}
		w := want[i]
		if w.uri == `/missing?x="1"` {
			w.uri = `/missing?x=\x221\x22` // quotes escaped; Go's client sends them as is
			if m[2] == `/missing?x=%221%22` {
				w.uri = m[2]
			}
		}
		got := line{m[1], m[2], m[3], m[4], m[5]}
		if w.bytes == "" {
			got.bytes = ""
		}
		if got != w {
			t.Errorf("line %d: %+v, want %+v (%q)", i, got, w, l)
		}
	}
}
