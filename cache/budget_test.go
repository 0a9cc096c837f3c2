package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFillBudgetRelaysLarge: an object larger than MaxFillBytes is relayed
// whole, streamed, and not stored (a fill used to buffer, and reserve,
// up to MaxObject — 1 GiB — for each object).
func TestFillBudgetRelaysLarge(t *testing.T) {
	body := randomBytes(21, 4<<20)
	o := startOrigin(t, serveObjects(nil, map[string]*object{"/big": {body: body, contentType: "application/octet-stream"}}))
	cfg := edgeConfig(o.URL())
	cfg.MaxFillBytes = 1 << 20
	e := startEdge(t, cfg)
	c := newClient(t)
	for i := range 2 {
		r := get(t, c, e.URL+"/big")
		wantBody(t, "an object over MaxFillBytes", r, body)
		if strings.Contains(r.cacheStatus(), "stored") || strings.Contains(r.cacheStatus(), "; hit") {
			t.Errorf("request %d: Cache-Status %q, want it relayed", i, r.cacheStatus())
		}
		waitFills(t, e)
	}
	if n := o.count("/big"); n != 2 {
		t.Errorf("origin fetches %d, want 2 (nothing stored)", n)
	}
	st := e.Stats()
	if st.FillsRelayed != 2 || st.Stored != 0 || st.FillBytes != 0 || st.Fills != 0 {
		t.Errorf("fills relayed %d, stored %d, fill bytes %d, fills %d; want 2, 0, 0, 0", st.FillsRelayed, st.Stored, st.FillBytes, st.Fills)
	}
}

// slowOrigin serves objects of the given sizes, sending the first half at
// once and the rest only when release is closed.
func slowOrigin(t *testing.T, sizes map[string]int, release chan struct{}) *testOrigin {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, ok := sizes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		body := bytes.Repeat([]byte{r.URL.Path[1]}, n)
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body[:n/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Second):
			return
		}
		w.Write(body[n/2:])
	})
}

// TestFillBudgetNoRoom: while running fills hold the budget, another fill
// that does not fit is relayed (correct bytes, not stored); once they end,
// the budget is free again.
func TestFillBudgetNoRoom(t *testing.T) {
	release := make(chan struct{})
	o := slowOrigin(t, map[string]int{"/a": 2 << 20, "/b": 2 << 20}, release)
	cfg := edgeConfig(o.URL())
	cfg.MaxFillBytes = 3 << 20
	cfg.HeaderTimeout = 30 * time.Second
	e := startEdge(t, cfg)
	c := newClient(t)
	done := make(chan response, 1)
	go func() {
		r, _ := fetch(c, http.MethodGet, e.URL+"/a")
		done <- r
	}()
	waitFor(t, "the fill of /a to hold the budget", 5*time.Second, func() bool { b, _ := e.budget.inFlight(); return b == 2<<20 })
	bDone := make(chan response, 1)
	go func() {
		r, _ := fetch(c, http.MethodGet, e.URL+"/b")
		bDone <- r
	}()
	waitFor(t, "/b to be relayed", 5*time.Second, func() bool { return e.Stats().FillsRelayed == 1 })
	close(release)
	ra, rb := <-done, <-bDone
	wantBody(t, "/a", ra, bytes.Repeat([]byte{'a'}, 2<<20))
	wantBody(t, "/b (relayed)", rb, bytes.Repeat([]byte{'b'}, 2<<20))
	waitFills(t, e)
	waitFor(t, "the budget to empty", 5*time.Second, func() bool { b, f := e.budget.inFlight(); return b == 0 && f == 0 })
	if st := e.Stats(); st.Stored != 1 {
		t.Errorf("stored %d, want 1 (/a only)", st.Stored)
	}
	wantHit(t, "/a", get(t, c, e.URL+"/a"))
}

// TestFillBudgetHeldBySlowReader: a finished fill's body stays counted
// while a slow client still reads from it, so slow clients cannot pile up
// memory beyond MaxFillBytes; the room comes back when the client goes.
func TestFillBudgetHeldBySlowReader(t *testing.T) {
	const size = 32 << 20
	body := randomBytes(22, size)
	o := startOrigin(t, serveObjects(nil, map[string]*object{
		"/x": {body: body, contentType: "application/octet-stream"},
		"/y": {body: body, contentType: "application/octet-stream"},
	}))
	cfg := edgeConfig(o.URL())
	cfg.MaxFillBytes = 48 << 20
	e := startEdge(t, cfg)

	// A client that reads the head and 64 KiB of /x, then stops reading.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(conn, "GET /x HTTP/1.1\r\nHost: edge\r\n\r\n")
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	waitFills(t, e)
	if b, _ := e.budget.inFlight(); b != size {
		t.Errorf("with a slow reader on a finished fill: %d bytes held in the budget, want %d", b, size)
	}
	c := newClient(t)
	r := get(t, c, e.URL+"/y")
	wantBody(t, "/y while /x is held", r, body)
	if st := e.Stats(); st.FillsRelayed != 1 {
		t.Errorf("/y: fills relayed %d, want 1 (no room)", st.FillsRelayed)
	}
	conn.Close()
	waitFor(t, "the slow reader's hold to end", 10*time.Second, func() bool { b, _ := e.budget.inFlight(); return b == 0 })
}
