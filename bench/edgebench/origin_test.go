package edgebench

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

func TestOrigin(t *testing.T) {
	o, err := startOrigin([]int64{1 << 10, 64 << 10}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if n := len(o.objects(1 << 10)); n != 3 {
		t.Fatalf("%d objects of 1 KiB, want 3", n)
	}
	again := newObject(64<<10, 2)
	obj := o.objects(64 << 10)[2]
	if !bytes.Equal(obj.Body, again.Body) || obj.ETag != again.ETag || obj.Path != "/o/64KiB/0002" {
		t.Fatalf("object 2 of 64 KiB is not the same twice: %s %s", obj.Path, obj.ETag)
	}
	if bytes.Equal(obj.Body, o.objects(64 << 10)[1].Body) {
		t.Fatal("objects 1 and 2 have the same bytes")
	}
	do := func(method, path, inm string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, o.url()+path, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	resp, body := do("GET", obj.Path, "")
	if resp.StatusCode != 200 || !bytes.Equal(body, obj.Body) || resp.Header.Get("ETag") != obj.ETag ||
		resp.Header.Get("Cache-Control") != CacheControl || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("Last-Modified") == "" || resp.ContentLength != 64<<10 {
		t.Errorf("GET: %s, %d bytes, header %v", resp.Status, len(body), resp.Header)
	}
	resp, body = do("GET", obj.Path, `"nope", `+obj.ETag)
	if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("ETag") != obj.ETag {
		t.Errorf("GET If-None-Match: %s, %d bytes, header %v", resp.Status, len(body), resp.Header)
	}
	resp, _ = do("GET", obj.Path, `"nope"`)
	if resp.StatusCode != 200 {
		t.Errorf("GET If-None-Match another ETag: %s", resp.Status)
	}
	resp, body = do("HEAD", obj.Path, "")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD: %s, %d bytes", resp.Status, len(body))
	}
	if resp, _ = do("GET", "/o/64KiB/0003", ""); resp.StatusCode != 404 {
		t.Errorf("GET of no object: %s", resp.Status)
	}
	if resp, _ = do("GET", ReadyPath, ""); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET %s: %s, %v", ReadyPath, resp.Status, resp.Header)
	}
	// The 4 requests for the object count; the 404 and the readiness
	// probe do not (nor would an edge's health checks).
	if o.fetches() != 4 || o.notModified() != 1 {
		t.Errorf("%d fetches (%d 304), want 4 (1)", o.fetches(), o.notModified())
	}
	if got := o.fetchedSince(map[string]int64{obj.Path: 1}, 10); len(got) != 1 || got[obj.Path] != 3 {
		t.Errorf("fetched since one GET of %s: %v, want it ×3", obj.Path, got)
	}
	if got := o.fetchedSince(o.perPath(), 10); got != nil {
		t.Errorf("fetched since now: %v", got)
	}
}

func TestETagMatch(t *testing.T) {
	for _, tc := range []struct {
		header, etag string
		want         bool
	}{
		{`"a"`, `"a"`, true}, {`"b"`, `"a"`, false}, {`*`, `"a"`, true}, {`"b", "a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true}, {`"a"`, `W/"a"`, true}, {`"ab"`, `"a"`, false}, {``, `"a"`, false},
	} {
		if got := etagMatch(tc.header, tc.etag); got != tc.want {
			t.Errorf("etagMatch(%q, %q) = %v", tc.header, tc.etag, got)
		}
	}
}
