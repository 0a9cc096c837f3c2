package httpx

import (
	"strings"
	"time"
)

// parseETag parses the entity-tag at the start of s (RFC 9110 §8.8.3):
// [ "W/" ] DQUOTE *etagc DQUOTE. It returns the opaque tag without quotes,
// whether it is weak, and the rest of s.
func parseETag(s string) (tag string, weak bool, rest string, ok bool) {
	if strings.HasPrefix(s, "W/") { // %s"W/": case-sensitive
		weak, s = true, s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return "", false, "", false
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return "", false, "", false
	}
	tag = s[1 : 1+end]
	for i := 0; i < len(tag); i++ {
		// etagc = %x21 / %x23-7E / obs-text; '"' cannot occur here.
		if c := tag[i]; c < 0x21 || c == 0x7f {
			return "", false, "", false
		}
	}
	return tag, weak, s[2+end:], true
}

// parseOneETag parses a field value holding exactly one entity-tag, such
// as an ETag response header.
func parseOneETag(s string) (tag string, weak, ok bool) {
	tag, weak, rest, ok := parseETag(trimOWS(s))
	if !ok || rest != "" {
		return "", false, false
	}
	return tag, weak, true
}

// ETagMatch reports whether the ETag value etag (e.g. `"v1"` or `W/"v1"`)
// matches list, an If-Match or If-None-Match value: "*" or a
// comma-separated list of entity-tags. weak selects the weak comparison
// (opaque tags equal; If-None-Match) instead of the strong one (both
// strong and equal; If-Match, If-Range) of RFC 9110 §8.8.3.2.
//
// "*" matches any current representation, so it is true whatever etag is.
// An invalid etag matches nothing; parsing of a list stops at its first
// malformed element, so garbage never produces a match.
func ETagMatch(list, etag string, weak bool) bool {
	list = trimOWS(list)
	if list == "*" {
		return true
	}
	et, ew, ok := parseOneETag(etag)
	if !ok || (ew && !weak) {
		return false
	}
	for s := list; ; {
		for s != "" && (s[0] == ',' || isOWS(s[0])) {
			s = s[1:]
		}
		if s == "" {
			return false
		}
		tag, w, rest, ok := parseETag(s)
		if !ok {
			return false
		}
		if tag == et && (weak || !w) {
			return true
		}
		s = trimOWS(rest)
		if s != "" && s[0] != ',' {
			return false
		}
	}
}

// IfRangeMatches evaluates an If-Range value (RFC 9110 §13.1.5) against
// the selected representation: true if ifRange is an entity-tag that
// strongly matches etag, or an HTTP-date equal to lastModified (compared
// at one-second resolution, the resolution of Last-Modified). A weak
// entity-tag, an invalid value or a missing validator gives false, which
// means: ignore Range and send the whole representation with 200.
//
// Evaluate If-Range only for GET requests that carry a Range header.
func IfRangeMatches(ifRange, etag string, lastModified time.Time) bool {
	v := trimOWS(ifRange)
	if v == "" {
		return false
	}
	if v[0] == '"' || strings.HasPrefix(v, "W/") {
		tag, weak, ok := parseOneETag(v)
		if !ok || weak {
			return false
		}
		et, ew, ok := parseOneETag(etag)
		return ok && !ew && et == tag
	}
	t, ok := ParseHTTPDate(v)
	return ok && !lastModified.IsZero() && t.Unix() == lastModified.Unix()
}

// Evaluate evaluates the preconditions of a request against the selected
// representation, in the order of RFC 9110 §13.2.2, and returns 0 to
// proceed normally, 304 (Not Modified) or 412 (Precondition Failed).
// An empty header argument means the header is absent; etag is the
// representation's ETag value ("" if none) and lastModified its
// Last-Modified time (zero if none).
//
//  1. If-Match present: strong comparison; no match → 412.
//  2. Otherwise If-Unmodified-Since (ignored if not a valid HTTP-date or
//     there is no Last-Modified): modified after the date → 412.
//  3. If-None-Match present: weak comparison; a match → 304 for GET and
//     HEAD, 412 for other methods.
//  4. Otherwise, for GET and HEAD only, If-Modified-Since (ignored if not a
//     valid HTTP-date or there is no Last-Modified): not modified after the
//     date → 304.
//
// Dates compare at one-second resolution. If-Range (step 5) is separate:
// see IfRangeMatches. The caller must apply preconditions only when the
// response without them would be 2xx or 412 (RFC 9110 §13.2.1).
func Evaluate(method, ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince string, etag string, lastModified time.Time) int {
	getOrHead := method == "GET" || method == "HEAD"
	if ifMatch = trimOWS(ifMatch); ifMatch != "" {
		if !ETagMatch(ifMatch, etag, false) {
			return 412
		}
	} else if ifUnmodifiedSince != "" && !lastModified.IsZero() {
		if t, ok := ParseHTTPDate(ifUnmodifiedSince); ok && lastModified.Unix() > t.Unix() {
			return 412
		}
	}
	if ifNoneMatch = trimOWS(ifNoneMatch); ifNoneMatch != "" {
		if ETagMatch(ifNoneMatch, etag, true) {
			if getOrHead {
				return 304
			}
			return 412
		}
	} else if getOrHead && ifModifiedSince != "" && !lastModified.IsZero() {
		if t, ok := ParseHTTPDate(ifModifiedSince); ok && lastModified.Unix() <= t.Unix() {
			return 304
		}
	}
	return 0
}
