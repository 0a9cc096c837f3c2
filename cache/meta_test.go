package cache

import (
	"encoding/binary"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func sampleMeta() entryMeta {
	return entryMeta{
		Size: 123456, ReqTime: 1_700_000_000_000_000_000, RespTime: 1_700_000_000_250_000_000, Date: 1_700_000_000,
		AgeHdr: 7, Lifetime: int64(time.Hour), StaleIfError: int64(24 * time.Hour), StaleWhileRevalidate: int64(30 * time.Second),
		LastModified: 1_600_000_000,
		Flags:        flagCompressible | flagVaryEncoding,
		ETag:         []byte(`"abc"`),
		ContentType:  []byte("text/css; charset=utf-8"),
		CacheControl: []byte("max-age=3600, stale-if-error=86400"),
		Expires:      []byte("Thu, 01 Jan 2099 00:00:00 GMT"),
		Extra:        []byte("X-Amz-Meta-Owner: alice\r\nContent-Language: en\r\n"),
		LastModText:  []byte("Sun, 13 Sep 2020 12:26:40 GMT"),
	}
}

func TestMetaRoundTrip(t *testing.T) {
	cases := map[string]entryMeta{
		"full":     sampleMeta(),
		"empty":    {},
		"forever":  {Size: 1, Lifetime: forever, Flags: flagMustRevalidate | flagNoCache},
		"negative": {ReqTime: -5, Date: -1, AgeHdr: -3},
		"encoded":  {Size: 10, Encoding: []byte("gzip")},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			b := m.encode()
			var got entryMeta
			if err := decodeMeta(b, &got); err != nil {
				t.Fatalf("decodeMeta(encode()): %v", err)
			}
			if !metaEqual(got, m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

// metaEqual compares metas, an empty byte field equal to a nil one.
func metaEqual(a, b entryMeta) bool {
	for _, p := range []*[]byte{&a.ETag, &a.ContentType, &a.Encoding, &a.CacheControl, &a.Expires, &a.Extra, &a.LastModText,
		&b.ETag, &b.ContentType, &b.Encoding, &b.CacheControl, &b.Expires, &b.Extra, &b.LastModText} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return reflect.DeepEqual(a, b)
}

func TestDecodeMetaCorrupt(t *testing.T) {
	m := sampleMeta()
	good := m.encode()
	// Every proper prefix is truncated: an error, never a panic.
	for n := range len(good) {
		var got entryMeta
		if err := decodeMeta(good[:n], &got); err == nil {
			t.Errorf("decodeMeta of the first %d of %d bytes: no error", n, len(good))
		}
	}
	bad := map[string][]byte{
		"nil":                             nil,
		"older version":                   append([]byte{1}, good[1:]...),
		"newer version":                   append([]byte{metaVersion + 1}, good[1:]...),
		"garbage":                         []byte("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"huge length":                     append(append([]byte(nil), (&entryMeta{}).encode()[:10]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
		"negative size":                   (&entryMeta{Size: -1}).encode(),
		"negative stale-while-revalidate": (&entryMeta{StaleWhileRevalidate: -1}).encode(),
		"trailing bytes":                  append(m.encode(), 0),
	}
	for name, b := range bad {
		var got entryMeta
		if err := decodeMeta(b, &got); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestDecodeMetaVersion2: entries stored before stale-while-revalidate
// was kept (version 2, the same fields without it) still decode, with
// none.
func TestDecodeMetaVersion2(t *testing.T) {
	m := sampleMeta()
	b := m.encode()
	if b[0] != metaVersion || metaVersion != 3 {
		t.Fatalf("encoding: version %d; this test builds version 2 from version 3", b[0])
	}
	// Version 3 is version 2 and then stale-while-revalidate.
	swr := binary.AppendVarint(nil, m.StaleWhileRevalidate)
	v2 := append([]byte{2}, b[1:len(b)-len(swr)]...)
	var got entryMeta
	if err := decodeMeta(v2, &got); err != nil {
		t.Fatalf("decoding version 2: %v", err)
	}
	want := m
	want.StaleWhileRevalidate = 0
	if !metaEqual(got, want) {
		t.Fatalf("version 2:\n got %+v\nwant %+v", got, want)
	}
}

func TestMetaFreshness(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) int64 { return now.Add(d).UnixNano() }
	cases := []struct {
		name         string
		m            entryMeta
		fresh, stale bool // fresh; usable stale when the origin fails
		behind       bool // served stale while revalidated in the background
	}{
		{"fresh", entryMeta{ReqTime: at(-time.Second), RespTime: at(-time.Second), Lifetime: int64(time.Minute), StaleIfError: int64(time.Hour)}, true, true, false},
		{"stale, within stale-if-error", entryMeta{ReqTime: at(-2 * time.Minute), RespTime: at(-2 * time.Minute), Lifetime: int64(time.Minute), StaleIfError: int64(time.Hour)}, false, true, false},
		{"stale past stale-if-error", entryMeta{ReqTime: at(-2 * time.Hour), RespTime: at(-2 * time.Hour), Lifetime: int64(time.Minute), StaleIfError: int64(time.Hour)}, false, false, false},
		{"must-revalidate", entryMeta{ReqTime: at(-2 * time.Minute), RespTime: at(-2 * time.Minute), Lifetime: int64(time.Minute), StaleIfError: int64(time.Hour), Flags: flagMustRevalidate}, false, false, false},
		{"no-cache", entryMeta{ReqTime: at(0), RespTime: at(0), Lifetime: int64(time.Hour), Flags: flagNoCache}, false, true, false},
		{"forever", entryMeta{ReqTime: at(-1000 * time.Hour), RespTime: at(-1000 * time.Hour), Lifetime: forever}, true, true, false},
		{"Age header", entryMeta{ReqTime: at(0), RespTime: at(0), AgeHdr: 120, Lifetime: int64(time.Minute)}, false, false, false},
		{"Date in the past", entryMeta{ReqTime: at(0), RespTime: at(0), Date: now.Unix() - 120, Lifetime: int64(time.Minute), StaleIfError: int64(time.Hour)}, false, true, false},
		{"stale, within stale-while-revalidate", entryMeta{ReqTime: at(-90 * time.Second), RespTime: at(-90 * time.Second), Lifetime: int64(time.Minute), StaleWhileRevalidate: int64(time.Minute)}, false, false, true},
		{"stale past stale-while-revalidate", entryMeta{ReqTime: at(-3 * time.Minute), RespTime: at(-3 * time.Minute), Lifetime: int64(time.Minute), StaleWhileRevalidate: int64(time.Minute)}, false, false, false},
		{"stale-while-revalidate with must-revalidate", entryMeta{ReqTime: at(-90 * time.Second), RespTime: at(-90 * time.Second), Lifetime: int64(time.Minute), StaleWhileRevalidate: int64(time.Minute), Flags: flagMustRevalidate}, false, false, false},
		{"stale-while-revalidate with no-cache", entryMeta{ReqTime: at(0), RespTime: at(0), Lifetime: int64(time.Minute), StaleWhileRevalidate: int64(time.Minute), Flags: flagNoCache}, false, true, false},
	}
	for _, tc := range cases {
		if got := tc.m.fresh(now); got != tc.fresh {
			t.Errorf("%s: fresh %v, want %v (ttl %v)", tc.name, got, tc.fresh, tc.m.ttl(now))
		}
		if got := tc.m.staleUsable(now); got != tc.stale {
			t.Errorf("%s: staleUsable %v, want %v", tc.name, got, tc.stale)
		}
		if got := tc.m.revalidateBehind(now); got != tc.behind {
			t.Errorf("%s: revalidateBehind %v, want %v", tc.name, got, tc.behind)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	m := sampleMeta()
	f.Add(m.encode())
	f.Add((&entryMeta{}).encode())
	f.Add((&entryMeta{Lifetime: forever}).encode())
	v2 := m.encode()
	v2 = append([]byte{2}, v2[1:len(v2)-len(binary.AppendVarint(nil, m.StaleWhileRevalidate))]...)
	f.Add(v2) // version 2, before stale-while-revalidate
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m entryMeta
		if err := decodeMeta(b, &m); err != nil {
			return
		}
		if m.Size < 0 {
			t.Fatalf("decoded a negative size %d", m.Size)
		}
		var again entryMeta
		if err := decodeMeta(m.encode(), &again); err != nil || !metaEqual(again, m) {
			t.Fatalf("re-encoding %+v: %v, got %+v", m, err, again)
		}
	})
}

// TestStaleAllowance: how long past its freshness an entry may be served
// stale, by what the origin said: stale-if-error as given, else the
// edge's default, but none with s-maxage (it implies proxy-revalidate)
// unless stale-if-error is explicit; stale-while-revalidate only when
// given.
func TestStaleAllowance(t *testing.T) {
	o := startOrigin(t, func(http.ResponseWriter, *http.Request) {})
	e := startEdge(t, edgeConfig(o.URL()))
	now := time.Now()
	for _, tc := range []struct {
		cc       string
		sie, swr time.Duration
	}{
		{"max-age=60", 24 * time.Hour, 0},
		{"max-age=60, stale-if-error=30", 30 * time.Second, 0},
		{"s-maxage=60", 0, 0},
		{"s-maxage=60, stale-if-error=30, stale-while-revalidate=10", 30 * time.Second, 10 * time.Second},
		{"max-age=60, stale-while-revalidate=10", 24 * time.Hour, 10 * time.Second},
	} {
		resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Cache-Control": {tc.cc}}, ContentLength: 1}
		m, storable := e.metaOf(resp, now, now)
		if !storable || time.Duration(m.StaleIfError) != tc.sie || time.Duration(m.StaleWhileRevalidate) != tc.swr {
			t.Errorf("%q: storable %v, stale-if-error %v, stale-while-revalidate %v; want %v and %v",
				tc.cc, storable, time.Duration(m.StaleIfError), time.Duration(m.StaleWhileRevalidate), tc.sie, tc.swr)
		}
	}
}

// TestSameResponse: a revalidation's new meta goes only onto the stored
// version it revalidated, whichever encoding stored it.
func TestSameResponse(t *testing.T) {
	m := sampleMeta()
	if !m.sameResponse(m.encode()) {
		t.Error("the entry's own meta is not its response")
	}
	v2 := m.encode()
	v2 = append([]byte{2}, v2[1:len(v2)-len(binary.AppendVarint(nil, m.StaleWhileRevalidate))]...)
	if !m.sameResponse(v2) {
		t.Error("the entry's meta stored as version 2 is not its response")
	}
	later := m
	later.RespTime += int64(time.Second)
	if m.sameResponse(later.encode()) || m.sameResponse(nil) {
		t.Error("a response stored later (or corrupt meta) taken for the one revalidated")
	}
}
