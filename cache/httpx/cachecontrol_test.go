package httpx

import (
	"reflect"
	"testing"
)

func TestParseDeltaSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"60", 60, true},
		{"0060", 60, true},
		{"2147483647", 2147483647, true},
		{"2147483648", MaxDeltaSeconds, true},
		{"2147483649", MaxDeltaSeconds, true},
		{"99999999999999999999999999", MaxDeltaSeconds, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{" 1", 0, false},
		{"1e3", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseDeltaSeconds(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDeltaSeconds(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseCacheControl(t *testing.T) {
	none := ParseCacheControl()
	with := func(f func(*CacheControl)) CacheControl {
		cc := none
		f(&cc)
		return cc
	}
	tests := []struct {
		in   []string
		want CacheControl
	}{
		{nil, none},
		{[]string{""}, none},
		{[]string{" , ,, "}, none},

		// Every directive.
		{[]string{"max-age=60"}, with(func(c *CacheControl) { c.MaxAge = 60 })},
		{[]string{"s-maxage=30"}, with(func(c *CacheControl) { c.SMaxAge = 30 })},
		{[]string{"max-stale=5"}, with(func(c *CacheControl) { c.MaxStale = 5 })},
		{[]string{"max-stale"}, with(func(c *CacheControl) { c.MaxStale = MaxDeltaSeconds })},
		{[]string{"min-fresh=10"}, with(func(c *CacheControl) { c.MinFresh = 10 })},
		{[]string{"stale-while-revalidate=20"}, with(func(c *CacheControl) { c.StaleWhileRevalidate = 20 })},
		{[]string{"stale-if-error=86400"}, with(func(c *CacheControl) { c.StaleIfError = 86400 })},
		{[]string{"no-store"}, with(func(c *CacheControl) { c.NoStore = true })},
		{[]string{"no-cache"}, with(func(c *CacheControl) { c.NoCache = true })},
		{[]string{"no-transform"}, with(func(c *CacheControl) { c.NoTransform = true })},
		{[]string{"only-if-cached"}, with(func(c *CacheControl) { c.OnlyIfCached = true })},
		{[]string{"public"}, with(func(c *CacheControl) { c.Public = true })},
		{[]string{"private"}, with(func(c *CacheControl) { c.Private = true })},
		{[]string{"must-revalidate"}, with(func(c *CacheControl) { c.MustRevalidate = true })},
		{[]string{"proxy-revalidate"}, with(func(c *CacheControl) { c.ProxyRevalidate = true })},
		{[]string{"must-understand"}, with(func(c *CacheControl) { c.MustUnderstand = true })},
		{[]string{"immutable"}, with(func(c *CacheControl) { c.Immutable = true })},

		// Qualified forms, quoted arguments.
		{[]string{`no-cache="Set-Cookie"`}, with(func(c *CacheControl) { c.NoCacheFields = []string{"Set-Cookie"} })},
		{[]string{`no-cache=Set-Cookie`}, with(func(c *CacheControl) { c.NoCacheFields = []string{"Set-Cookie"} })},
		{[]string{`private="Set-Cookie, X-User ,,"`}, with(func(c *CacheControl) { c.PrivateFields = []string{"Set-Cookie", "X-User"} })},
		{[]string{`private="a", private="b"`}, with(func(c *CacheControl) { c.PrivateFields = []string{"a", "b"} })},
		{[]string{`private, private="a"`}, with(func(c *CacheControl) { c.Private = true; c.PrivateFields = []string{"a"} })},
		{[]string{`private=""`}, with(func(c *CacheControl) { c.Private = true; c.Invalid = true })},
		{[]string{`no-cache="a b"`}, with(func(c *CacheControl) { c.NoCache = true; c.Invalid = true })},
		{[]string{`no-cache="a"x`}, with(func(c *CacheControl) { c.NoCache = true; c.Invalid = true })},
		{[]string{`max-age="60"`}, with(func(c *CacheControl) { c.MaxAge = 60 })},
		{[]string{`max-age="6\0"`}, with(func(c *CacheControl) { c.MaxAge = 60 })}, // quoted-pair
		{[]string{`foo="a, max-age=5", max-age=7`}, with(func(c *CacheControl) { c.MaxAge = 7 })},
		{[]string{`max-age="60`}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })}, // unterminated

		// Case, whitespace, several lines, garbage.
		{[]string{"MAX-AGE=60, No-Store"}, with(func(c *CacheControl) { c.MaxAge = 60; c.NoStore = true })},
		{[]string{"  max-age = 60 ,\tpublic  "}, with(func(c *CacheControl) { c.MaxAge = 60; c.Public = true })},
		{[]string{"max-age=60", "public", "s-maxage=10"}, with(func(c *CacheControl) { c.MaxAge = 60; c.Public = true; c.SMaxAge = 10 })},
		{[]string{"foo, bar=baz, max-age=3, x=\"y\""}, with(func(c *CacheControl) { c.MaxAge = 3 })},
		{[]string{"@@@, public"}, with(func(c *CacheControl) { c.Public = true })},
		{[]string{"=5, public"}, with(func(c *CacheControl) { c.Public = true })},
		{[]string{"public junk, max-age=1"}, with(func(c *CacheControl) { c.Public = true; c.MaxAge = 1 })},
		{[]string{"max-age=1 junk"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"maxage=60, max_age=60"}, none},

		// Bad, negative and huge numbers.
		{[]string{"max-age=-1"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age=abc"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age=1.5"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age="}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"s-maxage=-5"}, with(func(c *CacheControl) { c.SMaxAge = 0; c.Invalid = true })},
		{[]string{"stale-if-error"}, with(func(c *CacheControl) { c.StaleIfError = 0; c.Invalid = true })},
		{[]string{"max-stale=x"}, with(func(c *CacheControl) { c.MaxStale = 0; c.Invalid = true })},
		{[]string{"max-age=99999999999999999999999"}, with(func(c *CacheControl) { c.MaxAge = MaxDeltaSeconds })},
		{[]string{"max-age=2147483648"}, with(func(c *CacheControl) { c.MaxAge = MaxDeltaSeconds })},

		// Duplicates: identical ones are fine, conflicting ones are stale.
		{[]string{"max-age=60, max-age=60"}, with(func(c *CacheControl) { c.MaxAge = 60 })},
		{[]string{"max-age=60", "max-age=60"}, with(func(c *CacheControl) { c.MaxAge = 60 })},
		{[]string{"max-age=60, max-age=120"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age=60", "max-age=120", "max-age=60"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"max-age=60, max-age=x"}, with(func(c *CacheControl) { c.MaxAge = 0; c.Invalid = true })},
		{[]string{"s-maxage=1, s-maxage=2, max-age=5"}, with(func(c *CacheControl) { c.SMaxAge = 0; c.MaxAge = 5; c.Invalid = true })},
		{[]string{"no-store, no-store"}, with(func(c *CacheControl) { c.NoStore = true })},
		// Conflicting directives are all kept; the caller honours the most restrictive.
		{[]string{"max-age=60, no-cache, public, private"}, with(func(c *CacheControl) { c.MaxAge = 60; c.NoCache = true; c.Public = true; c.Private = true })},
	}
	for _, tt := range tests {
		got := ParseCacheControl(tt.in...)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCacheControl(%q) =\n  %+v\nwant\n  %+v", tt.in, got, tt.want)
		}
	}
}

func TestCacheControlString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Public, MAX-AGE=60", "max-age=60, public"},
		{"max-stale", "max-stale"},
		{"max-stale=99999999999", "max-stale"},
		{`no-cache, no-cache="a,b", private="c"`, `no-cache, no-cache="a, b", private="c"`},
		{"max-age=1, max-age=2, immutable", "max-age=0, immutable"},
		{"s-maxage=1, stale-while-revalidate=2, stale-if-error=3, min-fresh=4, max-stale=5, no-store, no-transform, only-if-cached, must-revalidate, proxy-revalidate, must-understand, private",
			"s-maxage=1, max-stale=5, min-fresh=4, stale-while-revalidate=2, stale-if-error=3, no-store, no-transform, only-if-cached, private, must-revalidate, proxy-revalidate, must-understand"},
	}
	for _, tt := range tests {
		cc := ParseCacheControl(tt.in)
		got := cc.String()
		if got != tt.want {
			t.Errorf("ParseCacheControl(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		back := ParseCacheControl(got)
		cc.Invalid = false
		if !reflect.DeepEqual(back, cc) {
			t.Errorf("round trip of %q: %+v, want %+v", got, back, cc)
		}
	}
}
