package cache

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// TestDiskTierPersists fills objects with a disk tier, closes the edge,
// and opens another on the same directory with the origin down: the
// objects are served from disk, byte for byte.
func TestDiskTierPersists(t *testing.T) {
	objs := map[string]*object{
		"/d/small": {body: randomBytes(10, 10<<10), contentType: "application/octet-stream", etag: `"s"`},
		"/d/large": {body: randomBytes(11, 300<<10), contentType: "application/octet-stream", etag: `"l"`},
		"/d/css":   {body: cssBody(50 << 10), contentType: "text/css", etag: `"c"`, cacheControl: "max-age=3600"},
		"/d/empty": {body: []byte{}, contentType: "text/plain"},
	}
	clock := newFakeClock()
	o := startOrigin(t, serveObjects(clock.Now, objs))
	dir := t.TempDir()
	cfg := edgeConfig(o.URL())
	cfg.DiskDir = dir
	cfg.Now = clock.Now
	cfg.MemoryLimit = 4 << 20 // "/d/large" is above MemoryLimit/16: read from disk, not promoted
	first := startEdge(t, cfg)
	c := newClient(t)
	for p, obj := range objs {
		wantBody(t, "filling "+p, get(t, c, first.URL+p), obj.body)
	}
	waitFor(t, "the entries to be stored", 5*time.Second, func() bool { return first.Stats().Stored == int64(len(objs)) })
	waitFills(t, first)
	if d := first.Stats().Disk; d == nil || d.Entries != int64(len(objs)) {
		t.Fatalf("disk tier stats %+v, want %d entries", d, len(objs))
	}
	c.Transport.(*http.Transport).CloseIdleConnections()
	first.close(t)
	o.stop()

	second := startEdge(t, cfg)
	for p, obj := range objs {
		for i := range 2 { // from disk, then (promoted or not) again
			r := get(t, c, second.URL+p)
			if r.status != http.StatusOK || !bytes.Equal(r.body, obj.body) {
				t.Fatalf("%s (%d) after the restart: status %d (%q), %d bytes; want 200 with %d", p, i, r.status, trim(r.body), len(r.body), len(obj.body))
			}
			wantHit(t, p+" after the restart", r)
			if r.header.Get("ETag") != obj.etag {
				t.Errorf("%s: ETag %q, want %q", p, r.header.Get("ETag"), obj.etag)
			}
		}
	}
	// A compressed variant and a range are made from the disk entry.
	r := get(t, c, second.URL+"/d/css", "Accept-Encoding", "gzip")
	if r.status != http.StatusOK || r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("/d/css gzip after the restart: status %d, Content-Encoding %q", r.status, r.header.Get("Content-Encoding"))
	}
	r = get(t, c, second.URL+"/d/large", "Range", "bytes=100000-100099")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, objs["/d/large"].body[100000:100100]) {
		t.Errorf("/d/large range after the restart: status %d, %d bytes", r.status, len(r.body))
	}
	if st := second.Stats(); st.Hits != int64(2*len(objs)+2) || st.OriginFetches != 0 || st.Errors != 0 {
		t.Errorf("after the restart: hits %d origin fetches %d errors %d; want %d, 0, 0", st.Hits, st.OriginFetches, st.Errors, 2*len(objs)+2)
	}
}
