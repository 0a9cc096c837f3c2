package httpx

import (
	"math"
	"time"
)

// Lexical helpers shared by the parsers (RFC 9110 §5.6). None of them allocate.

// tchar reports whether c is a token character (RFC 9110 §5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS removes optional whitespace (SP / HTAB) from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// skipOWS returns the index of the first non-OWS byte of s at or after i.
func skipOWS(s string, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

// tokenEnd returns the index just past the token starting at s[i].
func tokenEnd(s string, i int) int {
	for i < len(s) && tchar[s[i]] {
		i++
	}
	return i
}

// parseDigits parses 1*DIGIT, saturating at math.MaxInt64 instead of
// failing, so that syntactically valid but huge numbers stay valid.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// MaxDeltaSeconds is the value a delta-seconds saturates at
// (RFC 9111 §1.2.2: 2^31, about 68 years).
const MaxDeltaSeconds = 1 << 31

// ParseDeltaSeconds parses a delta-seconds value (RFC 9111 §1.2.2: 1*DIGIT),
// as used by Age and the Cache-Control arguments. Values larger than
// MaxDeltaSeconds saturate to it; anything that is not 1*DIGIT (signs,
// spaces, fractions, empty) is invalid.
func ParseDeltaSeconds(s string) (int64, bool) {
	n, ok := parseDigits(s)
	if !ok {
		return 0, false
	}
	return min(n, MaxDeltaSeconds), true
}

// seconds converts a saturated delta-seconds to a Duration.
func seconds(n int64) time.Duration {
	return time.Duration(min(max(n, 0), MaxDeltaSeconds)) * time.Second
}

// TimeFormat is the IMF-fixdate layout that HTTP dates must be sent in
// (RFC 9110 §5.6.7).
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// The two obsolete date formats recipients must still accept.
const (
	rfc850Format  = "Monday, 02-Jan-06 15:04:05 GMT"
	asctimeFormat = "Mon Jan _2 15:04:05 2006"
)

// ParseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// formats: IMF-fixdate, the obsolete RFC 850 form, and ANSI C asctime. The
// result is in UTC. Two-digit RFC 850 years follow time.Parse (69–99 →
// 19xx, 00–68 → 20xx), not the "50 years in the future" rule, which
// would need a clock.
func ParseHTTPDate(s string) (time.Time, bool) {
	s = trimOWS(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range [...]string{TimeFormat, rfc850Format, asctimeFormat} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// AppendHTTPDate appends t as an IMF-fixdate to dst.
func AppendHTTPDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeFormat)
}

// FormatHTTPDate returns t as an IMF-fixdate, e.g.
// "Sun, 06 Nov 1994 08:49:37 GMT".
func FormatHTTPDate(t time.Time) string {
	return t.UTC().Format(TimeFormat)
}
