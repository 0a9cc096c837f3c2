package httpx

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-499", "bytes=-500", "bytes=9500-", "bytes=0-0,-1", "bytes=500-600,601-999",
		"bytes=500-700,601-999", "bytes= 0-999, 4500-5499, -1000", "bytes=10000-", "bytes=-0",
		"bytes=5-1", "items=0-1", "BYTES=0-1", "bytes=,,", "bytes=0-99999999999999999999999",
		"bytes=0-,0-,0-,0-,0-,0-,0-,0-", "bytes=1-1,3-3,0-0,2-2", "",
	} {
		for _, size := range []int64{0, 1, 10000, -1, 1 << 62} {
			f.Add(s, size)
		}
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		got, err := ParseRange(h, size)
		if err != nil && !errors.Is(err, ErrUnsatisfiable) {
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil && got != nil {
			t.Fatalf("ranges %v with error", got)
		}
		if size < 0 && (got != nil || err != nil) {
			t.Fatalf("size %d: %v, %v", size, got, err)
		}
		if len(got) > MaxRanges {
			t.Fatalf("%d ranges", len(got))
		}
		var total int64
		for i, r := range got {
			if r.Start < 0 || r.Length <= 0 || r.Start >= size || r.Length > size-r.Start {
				t.Fatalf("range %v outside [0,%d)", r, size)
			}
			total += r.Length
			for _, o := range got[i+1:] {
				if r.Start <= o.Start+o.Length && o.Start <= r.Start+r.Length {
					t.Fatalf("ranges %v and %v overlap or touch: %v", r, o, got)
				}
			}
		}
		if total > max(size, 0) {
			t.Fatalf("ranges %v send %d bytes of %d", got, total, size)
		}
		app, aerr := AppendRange(nil, h, size)
		if !errors.Is(aerr, err) || !slices.Equal(app, got) {
			t.Fatalf("AppendRange = %v, %v; ParseRange = %v, %v", app, aerr, got, err)
		}
		if len(got) == 1 {
			cr := ContentRange(got[0], size)
			if cr == "" {
				t.Fatal("empty Content-Range")
			}
		}
	})
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60", "public, max-age=31536000, immutable", "no-cache", "no-store",
		`private="Set-Cookie, X-User"`, `no-cache="a", no-cache`, "s-maxage=10, max-age=20",
		"max-age=60, max-age=70", "max-age=-1", "max-age=99999999999999999999",
		`max-age="60"`, `x="a\"b", max-stale`, "MAX-AGE = 5 ,\tMust-Revalidate",
		"stale-while-revalidate=30, stale-if-error=86400", "min-fresh=5, only-if-cached",
		"must-understand, no-store", `foo="unterminated, max-age=1`, "=,=,;;", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cc := ParseCacheControl(s)
		for _, v := range []int64{cc.MaxAge, cc.SMaxAge, cc.MaxStale, cc.MinFresh, cc.StaleWhileRevalidate, cc.StaleIfError} {
			if v < -1 || v > MaxDeltaSeconds {
				t.Fatalf("delta %d out of range in %+v", v, cc)
			}
		}
		for _, f := range slices.Concat(cc.NoCacheFields, cc.PrivateFields) {
			if !isToken(f) {
				t.Fatalf("field %q is not a token", f)
			}
		}
		s1 := cc.String()
		cc2 := ParseCacheControl(s1)
		if cc2.Invalid {
			t.Fatalf("String() = %q parses as invalid", s1)
		}
		cc.Invalid = false
		if !reflect.DeepEqual(cc2, cc) {
			t.Fatalf("String() = %q parses as\n%+v\nwant\n%+v", s1, cc2, cc)
		}
		if s2 := cc2.String(); s2 != s1 {
			t.Fatalf("String not idempotent: %q then %q", s1, s2)
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"gzip, deflate, br", "br;q=0.5, gzip", "identity;q=0", "*;q=0", "*;q=0, identity",
		"x-gzip", "GZIP;Q=1.000", "br;q=1.1", "gzip;level=9;q=0.2", `gzip;x="a,b";q=0`, ",,", "",
	} {
		f.Add(s)
	}
	offered := []string{"zstd", "br", "gzip"}
	f.Fuzz(func(t *testing.T, ae string) {
		got, ok := Negotiate(ae, offered...)
		if ok != (got != "") {
			t.Fatalf("Negotiate(%q) = %q, %v", ae, got, ok)
		}
		if ok && got != "identity" && !slices.Contains(offered, got) {
			t.Fatalf("Negotiate(%q) = %q, not offered", ae, got)
		}
		// A coding chosen among several is also chosen on its own; if
		// nothing is acceptable, no single coding is either.
		for _, o := range offered {
			one, oneOK := Negotiate(ae, o)
			if got == o && one != o {
				t.Fatalf("Negotiate(%q) = %q but Negotiate(%q, %q) = %q", ae, got, ae, o, one)
			}
			if !ok && oneOK && one != "identity" {
				t.Fatalf("Negotiate(%q) = none but Negotiate(%q, %q) = %q", ae, ae, o, one)
			}
		}
		if up, upOK := Negotiate(asciiUpper(ae), offered...); up != got || upOK != ok {
			t.Fatalf("case matters: %q → %q, upper-case → %q", ae, got, up)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func FuzzConditionals(f *testing.F) {
	f.Add("GET", `"a"`, `W/"a", "b"`, lastModStr, before, `"a"`, `"a"`)
	f.Add("PUT", "*", "*", "garbage", after, `W/"x"`, lastModStr)
	f.Add("HEAD", "", `"a,b"`, "Sunday, 06-Nov-94 08:49:37 GMT", "", `"a,b"`, "")
	f.Fuzz(func(t *testing.T, method, im, inm, ims, ius, etag, ifRange string) {
		switch got := Evaluate(method, im, inm, ims, ius, etag, lastMod); got {
		case 0, 304, 412:
		default:
			t.Fatalf("Evaluate = %d", got)
		}
		for _, list := range []string{im, inm} {
			if ETagMatch(list, etag, false) && !ETagMatch(list, etag, true) {
				t.Fatalf("strong match of %q, %q without weak match", list, etag)
			}
		}
		if IfRangeMatches(ifRange, etag, time.Time{}) && !ETagMatch(ifRange, etag, false) {
			t.Fatalf("If-Range %q matches %q but not strongly", ifRange, etag)
		}
	})
}
