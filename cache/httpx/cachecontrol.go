package httpx

import (
	"strconv"
	"strings"
)

// CacheControl holds the directives of a request or response
// Cache-Control header (RFC 9111 §5.2, RFC 5861, RFC 8246). The zero
// value is not "no directives": use ParseCacheControl(), which sets the
// delta-seconds fields to -1 (absent).
type CacheControl struct {
	// Delta-seconds arguments, in seconds; -1 when the directive is absent.
	// Values saturate at MaxDeltaSeconds. A directive with a missing or
	// malformed argument, or repeated with different arguments, is set to 0
	// (stale / no leeway) and Invalid is set (RFC 9111 §4.2.1).
	MaxAge, SMaxAge      int64
	MaxStale             int64 // request; "max-stale" without argument = MaxDeltaSeconds
	MinFresh             int64 // request
	StaleWhileRevalidate int64 // RFC 5861 §3
	StaleIfError         int64 // RFC 5861 §4

	NoStore, NoCache, NoTransform   bool
	OnlyIfCached                    bool // request
	Private, Public                 bool // response; Private only when unqualified
	MustRevalidate, ProxyRevalidate bool
	MustUnderstand                  bool
	Immutable                       bool // RFC 8246

	// Field names of the qualified forms no-cache="a, b" and
	// private="a, b", as sent (field names are case-insensitive). A
	// qualified form does not set NoCache or Private: a shared cache may
	// store such a response but must not store the PrivateFields and
	// must revalidate before sending the NoCacheFields. A cache that does
	// not strip fields should treat either list like the unqualified form.
	// A list that is empty or holds a non-token is read as the
	// unqualified form and sets Invalid.
	NoCacheFields, PrivateFields []string

	// Invalid reports that a known directive had a malformed or conflicting
	// argument. The affected fields already hold their restrictive value.
	Invalid bool
}

// ParseCacheControl parses the Cache-Control header lines values (each a
// comma-separated list) into one CacheControl. Directive names are
// case-insensitive; arguments may be tokens or quoted-strings (RFC 9111
// §5.2: recipients accept both forms); whitespace around "=" and empty
// list elements are tolerated; unknown directives and unparsable elements
// are skipped. It allocates only for NoCacheFields, PrivateFields and
// quoted arguments containing backslash escapes.
func ParseCacheControl(values ...string) CacheControl {
	cc := CacheControl{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
	for _, v := range values {
		cc.parse(v)
	}
	return cc
}

func (cc *CacheControl) parse(s string) {
	for i := 0; i < len(s); {
		if s[i] == ',' || isOWS(s[i]) {
			i++
			continue
		}
		j := tokenEnd(s, i)
		name := s[i:j]
		i = skipOWS(s, j)
		var arg string
		hasArg, bad := false, false
		if i < len(s) && s[i] == '=' {
			hasArg = true
			i = skipOWS(s, i+1)
			if i < len(s) && s[i] == '"' {
				var ok bool
				arg, i, ok = parseQuoted(s, i)
				bad = !ok
			} else {
				j = tokenEnd(s, i)
				arg, i = s[i:j], j
				bad = arg == ""
			}
			i = skipOWS(s, i)
		}
		if i < len(s) && s[i] != ',' {
			bad = true // trailing garbage in this element
			if k := strings.IndexByte(s[i:], ','); k >= 0 {
				i += k
			} else {
				i = len(s)
			}
		}
		if name != "" {
			cc.apply(name, arg, hasArg, bad)
		}
	}
}

// parseQuoted parses the quoted-string starting at s[i] == '"' and returns
// its unescaped content and the index just past it. ok is false if the
// string is unterminated (the content then runs to the end of s).
func parseQuoted(s string, i int) (string, int, bool) {
	start := i + 1
	var b []byte // only allocated when there are quoted-pairs
	for j := start; j < len(s); j++ {
		switch s[j] {
		case '"':
			if b == nil {
				return s[start:j], j + 1, true
			}
			return string(append(b, s[start:j]...)), j + 1, true
		case '\\':
			if j+1 >= len(s) {
				break
			}
			b = append(b, s[start:j]...)
			b = append(b, s[j+1])
			j++
			start = j + 1
		}
	}
	return string(append(b, s[start:]...)), len(s), false
}

func (cc *CacheControl) apply(name, arg string, hasArg, bad bool) {
	switch strings.ToLower(name) { // no allocation for names already lower-case
	case "max-age":
		cc.setDelta(&cc.MaxAge, arg, hasArg && !bad)
	case "s-maxage":
		cc.setDelta(&cc.SMaxAge, arg, hasArg && !bad)
	case "max-stale":
		if !hasArg {
			cc.setDelta(&cc.MaxStale, "2147483648", true)
		} else {
			cc.setDelta(&cc.MaxStale, arg, !bad)
		}
	case "min-fresh":
		cc.setDelta(&cc.MinFresh, arg, hasArg && !bad)
	case "stale-while-revalidate":
		cc.setDelta(&cc.StaleWhileRevalidate, arg, hasArg && !bad)
	case "stale-if-error":
		cc.setDelta(&cc.StaleIfError, arg, hasArg && !bad)
	case "no-cache":
		if hasArg {
			if f, ok := fieldList(arg, cc.NoCacheFields); ok && !bad {
				cc.NoCacheFields = f
				return
			}
			cc.Invalid = true
		}
		cc.NoCache = true
	case "private":
		if hasArg {
			if f, ok := fieldList(arg, cc.PrivateFields); ok && !bad {
				cc.PrivateFields = f
				return
			}
			cc.Invalid = true
		}
		cc.Private = true
	case "no-store":
		cc.NoStore = true
	case "no-transform":
		cc.NoTransform = true
	case "only-if-cached":
		cc.OnlyIfCached = true
	case "public":
		cc.Public = true
	case "must-revalidate":
		cc.MustRevalidate = true
	case "proxy-revalidate":
		cc.ProxyRevalidate = true
	case "must-understand":
		cc.MustUnderstand = true
	case "immutable":
		cc.Immutable = true
	}
}

// setDelta stores a delta-seconds argument into *f, applying the
// invalid-is-stale and conflicting-duplicate-is-stale rules.
func (cc *CacheControl) setDelta(f *int64, arg string, ok bool) {
	v, valid := int64(0), false
	if ok {
		v, valid = ParseDeltaSeconds(arg)
	}
	if !valid {
		v, cc.Invalid = 0, true
	}
	if *f >= 0 && *f != v {
		v, cc.Invalid = 0, true
	}
	*f = v
}

// fieldList appends the field names of a #field-name argument to dst. It
// fails if the list is empty or holds an element that is not a token.
func fieldList(arg string, dst []string) ([]string, bool) {
	n := len(dst)
	for arg != "" {
		var f string
		if i := strings.IndexByte(arg, ','); i >= 0 {
			f, arg = arg[:i], arg[i+1:]
		} else {
			f, arg = arg, ""
		}
		if f = trimOWS(f); f == "" {
			continue
		}
		if !isToken(f) {
			return dst[:n], false
		}
		dst = append(dst, f)
	}
	return dst, len(dst) > n
}

// String formats cc as a canonical Cache-Control value: known directives
// only, in a fixed order, lower-case, numbers as tokens, field lists as
// quoted-strings. ParseCacheControl(cc.String()) gives back cc (with
// Invalid false).
func (cc CacheControl) String() string {
	var b []byte
	dir := func(s string) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s...)
	}
	delta := func(name string, v int64) {
		if v >= 0 {
			dir(name)
			b = append(b, '=')
			b = strconv.AppendInt(b, min(v, MaxDeltaSeconds), 10)
		}
	}
	fields := func(name string, f []string) {
		if len(f) > 0 {
			dir(name)
			b = append(b, `="`...)
			for i, s := range f {
				if i > 0 {
					b = append(b, ", "...)
				}
				b = append(b, s...)
			}
			b = append(b, '"')
		}
	}
	flag := func(name string, v bool) {
		if v {
			dir(name)
		}
	}
	delta("max-age", cc.MaxAge)
	delta("s-maxage", cc.SMaxAge)
	if cc.MaxStale >= MaxDeltaSeconds {
		dir("max-stale")
	} else {
		delta("max-stale", cc.MaxStale)
	}
	delta("min-fresh", cc.MinFresh)
	delta("stale-while-revalidate", cc.StaleWhileRevalidate)
	delta("stale-if-error", cc.StaleIfError)
	flag("no-cache", cc.NoCache)
	fields("no-cache", cc.NoCacheFields)
	flag("no-store", cc.NoStore)
	flag("no-transform", cc.NoTransform)
	flag("only-if-cached", cc.OnlyIfCached)
	flag("public", cc.Public)
	flag("private", cc.Private)
	fields("private", cc.PrivateFields)
	flag("must-revalidate", cc.MustRevalidate)
	flag("proxy-revalidate", cc.ProxyRevalidate)
	flag("must-understand", cc.MustUnderstand)
	flag("immutable", cc.Immutable)
	return string(b)
}
