package httpx

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestAllocs pins the allocation counts of the per-request hot paths.
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	buf := make([]Range, 0, 4)
	var (
		rs  []Range
		cc  CacheControl
		str string
		n   int
		ok  bool
	)
	tests := []struct {
		name string
		want float64
		f    func()
	}{
		{"ParseRange single", 1, func() { rs, _ = ParseRange("bytes=0-1023", 1<<20) }},
		{"ParseRange suffix", 1, func() { rs, _ = ParseRange("bytes=-500", 1<<20) }},
		{"ParseRange ignored", 0, func() { rs, _ = ParseRange("items=0-1", 1<<20) }},
		{"ParseRange 416", 0, func() { rs, _ = ParseRange("bytes=2000000-", 1<<20) }},
		{"AppendRange single", 0, func() { buf, _ = AppendRange(buf[:0], "bytes=0-1023", 1<<20) }},
		{"AppendRange multi", 0, func() { buf, _ = AppendRange(buf[:0], "bytes=0-0,100-199,-5", 1<<20) }},
		{"ParseCacheControl short", 0, func() { cc = ParseCacheControl("public, max-age=3600") }},
		{"ParseCacheControl long", 0, func() {
			cc = ParseCacheControl("public, max-age=31536000, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400, immutable")
		}},
		{"Negotiate", 0, func() { str, _ = Negotiate("gzip, deflate, br, zstd", "br", "gzip") }},
		{"Evaluate", 0, func() { n = Evaluate("GET", "", `"abc"`, lastModStr, "", `"abc"`, lastMod) }},
		{"IfRangeMatches", 0, func() { ok = IfRangeMatches(`"abc"`, `"abc"`, lastMod) }},
		{"Compressible", 0, func() { ok = Compressible("application/json; charset=utf-8") }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got != tt.want {
			t.Errorf("%s: %v allocs, want %v", tt.name, got, tt.want)
		}
	}
	_, _, _, _, _ = rs, cc, str, n, ok
}

func BenchmarkParseRange(b *testing.B) {
	for _, bm := range []struct{ name, h string }{
		{"single", "bytes=0-1023"},
		{"open", "bytes=1048576-"},
		{"multi", "bytes=0-0,500-999,-1"},
		{"overlap64", "bytes=" + repeatList("0-", MaxRanges)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.h)))
			for b.Loop() {
				if _, err := ParseRange(bm.h, 1<<30); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("append-single", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]Range, 0, 4)
		for b.Loop() {
			buf, _ = AppendRange(buf[:0], "bytes=0-1023", 1<<30)
		}
	})
}

func repeatList(s string, n int) string {
	var b bytes.Buffer
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

func BenchmarkParseCacheControl(b *testing.B) {
	for _, bm := range []struct{ name, h string }{
		{"short", "max-age=3600"},
		{"typical", "public, max-age=31536000, immutable"},
		{"long", "public, max-age=600, s-maxage=3600, stale-while-revalidate=30, stale-if-error=86400, must-revalidate"},
		{"fields", `private="Set-Cookie", no-cache="X-User", max-age=60`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.h)))
			for b.Loop() {
				ParseCacheControl(bm.h)
			}
		})
	}
}

func BenchmarkNegotiate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Negotiate("gzip, deflate, br, zstd", "zstd", "br", "gzip")
	}
}

func BenchmarkEvaluate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Evaluate("GET", "", `"abc"`, lastModStr, "", `"abc"`, lastMod)
	}
}

func BenchmarkFreshness(b *testing.B) {
	b.ReportAllocs()
	cc := ParseCacheControl("max-age=60")
	now := time.Now()
	for b.Loop() {
		l, _ := FreshnessLifetime(cc, now, time.Time{}, time.Time{}, false, 200)
		_ = l > CurrentAge(now, 5, now, now, now)
	}
}

func BenchmarkMultipart(b *testing.B) {
	body := bytes.NewReader(make([]byte, 1<<20))
	ranges, _ := ParseRange("bytes=0-65535,131072-196607,-65536", 1<<20)
	m := NewMultipart(ranges, "video/mp4", 1<<20)
	b.SetBytes(m.Len())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.WriteBody(io.Discard, body); err != nil {
			b.Fatal(err)
		}
	}
}
