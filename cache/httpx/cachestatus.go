package httpx

import (
	"strconv"
)

// CacheStatus is one member of a Cache-Status response header (RFC 9211):
// how one cache handled the request.
type CacheStatus struct {
	Cache string // cache identifier, e.g. "engine-edge"; sent as a token when it is one
	Hit   bool   // served from cache without going forward (§2.1)

	// Fwd says why the request went forward (§2.2): "bypass", "method",
	// "uri-miss", "vary-miss", "miss", "request", "stale" or "partial".
	// FwdStatus, Stored and Collapsed are only sent along with Fwd, as
	// RFC 9211 gives them meaning only then.
	Fwd       string
	FwdStatus int  // status the next hop returned (§2.3); sent when > 0
	Stored    bool // the response was stored (§2.5)
	Collapsed bool // the request was collapsed with another one (§2.6)

	// TTL is the remaining freshness lifetime in seconds (§2.4), sent when
	// HasTTL; negative when the response is stale. (A separate flag rather
	// than a -1 sentinel, because -1 is a valid TTL.)
	TTL    int64
	HasTTL bool

	Key    string // cache key, for debugging (§2.7); sent as an sf-string
	Detail string // implementation-specific detail (§2.8); token or sf-string
}

// sfMaxInt is the largest magnitude of a Structured Field integer
// (RFC 8941 §3.3.1: at most 15 digits).
const sfMaxInt = 999_999_999_999_999

// String formats s as one Cache-Status list member, e.g.
// `engine-edge; hit; ttl=3600` or
// `engine-edge; fwd=miss; fwd-status=200; stored; collapsed`.
// Parameters follow the order of RFC 9211 §2. An Fwd value that is not a
// token is dropped. Append it to the value received from upstream with
// ", " (RFC 9211 §2: the cache nearest the client is last).
func (s CacheStatus) String() string {
	b := make([]byte, 0, 64)
	b = appendTokenOrString(b, s.Cache)
	if s.Hit {
		b = append(b, "; hit"...)
	}
	if s.Fwd != "" && isSFToken(s.Fwd) {
		b = append(b, "; fwd="...)
		b = append(b, s.Fwd...)
		if s.FwdStatus > 0 {
			b = append(b, "; fwd-status="...)
			b = strconv.AppendInt(b, int64(min(s.FwdStatus, sfMaxInt)), 10)
		}
	}
	if s.HasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, min(max(s.TTL, -sfMaxInt), sfMaxInt), 10)
	}
	if s.Fwd != "" && isSFToken(s.Fwd) {
		if s.Stored {
			b = append(b, "; stored"...)
		}
		if s.Collapsed {
			b = append(b, "; collapsed"...)
		}
	}
	if s.Key != "" {
		b = append(b, "; key="...)
		b = appendSFString(b, s.Key)
	}
	if s.Detail != "" {
		b = append(b, "; detail="...)
		b = appendTokenOrString(b, s.Detail)
	}
	return string(b)
}

// isSFToken reports whether s is a Structured Field token (RFC 8941
// §3.3.4): ( ALPHA / "*" ) *( tchar / ":" / "/" ).
func isSFToken(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; c != '*' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !tchar[c] && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

func appendTokenOrString(b []byte, s string) []byte {
	if isSFToken(s) {
		return append(b, s...)
	}
	return appendSFString(b, s)
}

// appendSFString appends s as a Structured Field string (RFC 8941
// §3.3.3). Bytes outside printable ASCII cannot be sent there and are
// written as %XX.
func appendSFString(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '%', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
