package cache

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestKeyPolicy(t *testing.T) {
	def := newKeyPolicy(nil)
	for _, tc := range []struct{ uri, want string }{
		{"/b/k", "/b/k"},
		{"/b/k?", "/b/k"},
		{"/b/k?x-id=GetObject", "/b/k"},
		{"/b/k?utm_source=x&_=123", "/b/k"},
		{"/b/k?versionId=v1", "/b/k?versionId=v1"},
		{"/b/k?z=1&versionId=v1&a=2", "/b/k?versionId=v1"},
		{"/b/k?versionId=v1&partNumber=2", "/b/k?partNumber=2&versionId=v1"},
		{"/b/k?partNumber=2&versionId=v1", "/b/k?partNumber=2&versionId=v1"},
		{"/b/k?response-content-type=text%2Fplain&X-Amz-Date=1", "/b/k?response-content-type=text%2Fplain"},
		{"/b?list-type=2&prefix=a%2F&delimiter=%2F", "/b?delimiter=%2F&list-type=2&prefix=a%2F"},
		{"/b/k?acl", "/b/k?acl"},
		{"/b/k?acl=&x=1", "/b/k?acl="},
		{"/b/k?version%49d=v1", "/b/k?versionId=v1"},
		{"/b/k?&&=x&versionId", "/b/k?versionId"},
		{"/b/k?versionid=v1", "/b/k"}, // S3's names are case-sensitive
	} {
		if got := def.key(tc.uri); got != tc.want {
			t.Errorf("key(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
	all := newKeyPolicy([]string{"*"})
	if got := all.key("/b/k?z=1&a=2"); got != "/b/k?z=1&a=2" {
		t.Errorf(`KeyParams ["*"]: key = %q, want the URI as sent`, got)
	}
	own := newKeyPolicy([]string{"w", "h"})
	if got := own.key("/img?w=100&versionId=1&h=50"); got != "/img?h=50&w=100" {
		t.Errorf(`KeyParams [w h]: key = %q`, got)
	}
}

func FuzzKeyPolicy(f *testing.F) {
	for _, s := range []string{"/b/k", "/b/k?versionId=v1&x=1", "/b?list-type=2&prefix=a%2F", "/?%zz=1&acl", "/k?=&&==&versionId=="} {
		f.Add(s)
	}
	p := newKeyPolicy(nil)
	f.Fuzz(func(t *testing.T, uri string) {
		k := p.key(uri)
		if p.key(k) != k {
			t.Errorf("key(%q) = %q, but key of that is %q", uri, k, p.key(k))
		}
		path, _, _ := strings.Cut(uri, "?")
		if !strings.HasPrefix(k, path) {
			t.Errorf("key(%q) = %q lost the path", uri, k)
		}
	})
}

// TestCacheKeyNormalised: query parameters that select nothing (an SDK's
// x-id, cache-busting junk) no longer make a new entry and a new origin
// fetch each (the raw URI was the key); those that do (versionId) still
// do; a fill asks the origin for the key, and a presigned request still
// goes to the origin with its own query.
func TestCacheKeyNormalised(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("ETag", `"`+r.URL.Query().Get("versionId")+`"`)
		w.Write([]byte("version " + r.URL.Query().Get("versionId")))
	})
	lastQuery := func() string {
		mu.Lock()
		defer mu.Unlock()
		return queries[len(queries)-1]
	}
	e := startEdge(t, edgeConfig(o.URL()))
	c := newClient(t)

	wantBody(t, "with x-id", get(t, c, e.URL+"/b/k?x-id=GetObject"), []byte("version "))
	if q := lastQuery(); q != "" {
		t.Errorf("the fill asked the origin with query %q, want none", q)
	}
	waitFills(t, e)
	for _, u := range []string{"/b/k", "/b/k?_=1733", "/b/k?utm_source=mail&x-id=GetObject"} {
		wantHit(t, u, get(t, c, e.URL+u))
	}
	r := get(t, c, e.URL+"/b/k?junk=1&versionId=v2")
	wantBody(t, "versionId=v2", r, []byte("version v2"))
	if q := lastQuery(); q != "versionId=v2" {
		t.Errorf("the fill of versionId=v2 asked the origin with %q", q)
	}
	waitFills(t, e)
	wantHit(t, "versionId=v2 again", get(t, c, e.URL+"/b/k?versionId=v2&other=3"))
	if n := o.count("/b/k"); n != 2 {
		t.Errorf("origin fetches %d, want 2 (the object and version v2)", n)
	}

	// A presigned request bypasses the cache with its whole query.
	get(t, c, e.URL+"/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKID&x-id=GetObject")
	if q := lastQuery(); !strings.Contains(q, "X-Amz-Signature=abc") || !strings.Contains(q, "x-id=GetObject") {
		t.Errorf("a presigned request reached the origin with %q, want its own query", q)
	}

	// A purge names the entry as clients request it.
	if r := adminDo(t, c, http.MethodPost, e.URL+"/_edge/purge?key=/b/k%3Fjunk%3D9", "s3cret"); !strings.Contains(string(r.body), `"purged":1`) {
		t.Errorf("purge of /b/k?junk=9: %s, want the entry /b/k purged", r.body)
	}
}

// TestCacheKeyAllParams: KeyParams ["*"] keeps every query in the key.
func TestCacheKeyAllParams(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("q=" + r.URL.RawQuery)) })
	cfg := edgeConfig(o.URL())
	cfg.KeyParams = []string{"*"}
	e := startEdge(t, cfg)
	c := newClient(t)
	wantBody(t, "a=1", get(t, c, e.URL+"/k?a=1"), []byte("q=a=1"))
	wantBody(t, "a=2", get(t, c, e.URL+"/k?a=2"), []byte("q=a=2"))
	if n := o.count("/k"); n != 2 {
		t.Errorf("origin fetches %d, want 2", n)
	}
}
