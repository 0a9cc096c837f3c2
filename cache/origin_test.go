package cache

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOriginFailover stops the first of two origins: requests fail over to
// the second, health checks take the first out after 3 failures, and bring
// it back after 2 passes once it is up again.
func TestOriginFailover(t *testing.T) {
	objs := map[string]*object{}
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		objs[p] = &object{body: []byte("object " + p)}
	}
	o1 := startOrigin(t, serveObjects(nil, objs))
	o2 := startOrigin(t, serveObjects(nil, objs))
	o1.stop()
	cfg := edgeConfig(o1.URL(), o2.URL())
	cfg.HealthInterval = 50 * time.Millisecond
	e := startEdge(t, cfg)
	c := newClient(t)

	// Per request, while the first is still thought up.
	wantBody(t, "/a with the first origin stopped", get(t, c, e.URL+"/a"), objs["/a"].body)
	if o2.count("/a") != 1 {
		t.Fatalf("/a: the second origin served it %d times, want 1", o2.count("/a"))
	}

	waitFor(t, "the first origin to be out of rotation", 5*time.Second, func() bool {
		st := e.Stats()
		return slices.Equal(st.OriginsDown, []string{o1.URL()}) && slices.Equal(st.OriginsUp, []string{o2.URL()})
	})
	wantBody(t, "/b with the first origin out", get(t, c, e.URL+"/b"), objs["/b"].body)
	if o2.count("/b") != 1 {
		t.Fatalf("/b: the second origin served it %d times, want 1", o2.count("/b"))
	}

	o1.start()
	waitFor(t, "the first origin to be back in rotation", 5*time.Second, func() bool {
		st := e.Stats()
		return len(st.OriginsDown) == 0 && slices.Equal(st.OriginsUp, []string{o1.URL(), o2.URL()})
	})
	wantBody(t, "/c with the first origin back", get(t, c, e.URL+"/c"), objs["/c"].body)
	if o1.count("/c") != 1 || o2.count("/c") != 0 {
		t.Errorf("/c: the first origin served it %d times, the second %d; want 1 and 0", o1.count("/c"), o2.count("/c"))
	}
}

// TestAllOriginsDown checks what the edge serves with its only origin
// stopped: fresh entries, stale ones unless must-revalidate, and quick
// errors for misses; first before the health checks notice, then after.
func TestAllOriginsDown(t *testing.T) {
	clock := newFakeClock()
	objs := map[string]*object{
		"/fresh": {body: []byte("fresh for an hour"), cacheControl: "max-age=3600", etag: `"f"`},
		"/stale": {body: []byte("fresh for 2s"), cacheControl: "max-age=2", etag: `"s"`},
		"/mr":    {body: []byte("must revalidate"), cacheControl: "max-age=2, must-revalidate", etag: `"m"`},
		"/sie":   {body: []byte("stale-if-error=5"), cacheControl: "max-age=2, stale-if-error=5", etag: `"e"`},
	}
	o := startOrigin(t, serveObjects(clock.Now, objs))
	cfg := edgeConfig(o.URL())
	cfg.Now = clock.Now
	cfg.HealthInterval = 50 * time.Millisecond
	e := startEdge(t, cfg)
	c := newClient(t)
	for p, obj := range objs {
		wantBody(t, "filling "+p, get(t, c, e.URL+p), obj.body)
	}
	waitFills(t, e)
	o.stop()
	clock.Advance(10 * time.Second)

	check := func(t *testing.T, phase, wantStale string) {
		r := get(t, c, e.URL+"/fresh")
		wantBody(t, phase+": /fresh", r, objs["/fresh"].body)
		wantHit(t, phase+": /fresh", r)

		r = get(t, c, e.URL+"/stale")
		wantBody(t, phase+": /stale", r, objs["/stale"].body)
		if cs := r.cacheStatus(); !strings.Contains(cs, wantStale) {
			t.Errorf("%s: /stale: Cache-Status %q, want it to say %s", phase, cs, wantStale)
		}

		for _, p := range []string{"/mr", "/sie", "/never-cached"} {
			start := time.Now()
			r := get(t, c, e.URL+p)
			took := time.Since(start)
			if r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout {
				t.Errorf("%s: %s: status %d (%q), want 502 or 504", phase, p, r.status, trim(r.body))
			}
			if took > 3*time.Second {
				t.Errorf("%s: %s: the error took %v", phase, p, took)
			}
			if !strings.Contains(string(r.body), "origin") {
				t.Errorf("%s: %s: body %q does not name the problem", phase, p, r.body)
			}
			if strings.Contains(string(r.body), string(objs["/mr"].body)) {
				t.Errorf("%s: %s served stale", phase, p)
			}
		}
	}
	t.Run("before the health checks notice", func(t *testing.T) { check(t, "origin refusing", "fwd=stale; fwd-status=502; detail=stale-if-error") })
	waitFor(t, "the origin to be out of rotation", 5*time.Second, func() bool { return len(e.Stats().OriginsUp) == 0 })
	t.Run("origin out of rotation", func(t *testing.T) { check(t, "origin out", "detail=stale-origin-down") })
	if st := e.Stats(); st.Stale != 2 {
		t.Errorf("stale: %d, want 2", st.Stale)
	}
}

// TestOriginHangs points the edge at an origin that accepts connections
// and never answers: a miss gets a 504 soon after HeaderTimeout.
func TestOriginHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	cfg := edgeConfig("http://" + ln.Addr().String())
	cfg.HeaderTimeout = 500 * time.Millisecond
	e := startEdge(t, cfg)
	c := newClient(t)
	start := time.Now()
	r := get(t, c, e.URL+"/slow")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the 504 took %v", took)
	}
	if r.status != http.StatusGatewayTimeout {
		t.Errorf("status %d (%q), want 504", r.status, trim(r.body))
	}
	if !strings.Contains(string(r.body), "did not answer in time") {
		t.Errorf("body %q does not say the origin timed out", r.body)
	}
	if cs := r.cacheStatus(); !strings.Contains(cs, "fwd-status=504") {
		t.Errorf("Cache-Status %q, want fwd-status=504", cs)
	}
}

// TestCloseWithStalledFill closes the edge while a fill is stuck: the
// origin sent its headers and part of the body, then stopped sending, and
// the client gave up. Close must still return promptly (ending the fill),
// not wait for the origin.
func TestCloseWithStalledFill(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)
	resp, err := c.Get(e.URL + "/stalled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the client gives up
	c.Transport.(*http.Transport).CloseIdleConnections()

	e.closed.Do(func() {
		done := make(chan error, 1)
		go func() { done <- e.Server.Close() }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Errorf("Close did not return in 3s with a fill stalled on its origin")
			releaseOnce.Do(func() { close(release) })
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("Close did not return after the origin resumed")
			}
		}
	})
}

// TestHealthCheckFallRise drives the checks by hand: 3 failures in a row
// take an origin out, 2 passes in a row bring it back, and a pass or a
// failure in between starts the count again.
func TestHealthCheckFallRise(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	p, err := newOriginPool([]string{o.URL()}, nil, time.Second, healthPath, 500*time.Millisecond, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.client.CloseIdleConnections() })
	org := p.origins[0]
	step := func(what string, wantUp bool) {
		t.Helper()
		p.check(org)
		if org.up.Load() != wantUp || p.anyUp() != wantUp {
			t.Fatalf("%s: up %v, want %v", what, org.up.Load(), wantUp)
		}
	}
	step("a pass", true)
	o.stop()
	step("failure 1", true)
	step("failure 2", true)
	o.start()
	step("a pass between failures", true)
	o.stop()
	step("failure 1 again", true)
	step("failure 2 again", true)
	step("failure 3", false)
	if _, err := p.do(t.Context(), http.MethodGet, "/x", nil); err != errNoOrigin {
		t.Errorf("do with the origin out: %v, want errNoOrigin", err)
	}
	o.start()
	step("pass 1", false)
	o.stop()
	step("a failure between passes", false)
	o.start()
	step("pass 1 again", false)
	step("pass 2", true)
}

// TestOriginFailover5xx: a 5xx from the first origin sends the request to
// the next; the last origin's 5xx is the answer, not stored.
func TestOriginFailover5xx(t *testing.T) {
	o1 := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "SlowDown", http.StatusServiceUnavailable)
	})
	o2 := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "InternalError", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("from the second"))
	})
	e := startEdge(t, edgeConfig(o1.URL(), o2.URL()))
	c := newClient(t)
	wantBody(t, "/ok", get(t, c, e.URL+"/ok"), []byte("from the second"))
	if o1.count("/ok") != 1 || o2.count("/ok") != 1 {
		t.Errorf("/ok: first origin asked %d times, second %d; want 1 and 1", o1.count("/ok"), o2.count("/ok"))
	}
	for i := range 2 {
		r := get(t, c, e.URL+"/broken")
		waitFills(t, e)
		if r.status != http.StatusInternalServerError || string(r.body) != "InternalError\n" {
			t.Errorf("/broken: %d %q, want the last origin's 500", r.status, r.body)
		}
		if o2.count("/broken") != i+1 {
			t.Errorf("/broken: the 500 was stored")
		}
	}
}
