package httpx

import (
	"math"
	"time"
)

// Heuristic freshness policy (RFC 9111 §4.2.2 leaves the numbers to the
// cache): a fraction of the time since Last-Modified, capped.
const (
	HeuristicFraction    = 10 // lifetime = (Date - Last-Modified) / HeuristicFraction
	MaxHeuristicLifetime = 24 * time.Hour
)

// maxLifetime is the largest lifetime FreshnessLifetime returns.
const maxLifetime = MaxDeltaSeconds * time.Second

// HeuristicallyCacheable reports whether status is cacheable by default
// (RFC 9110 §15.1): 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414,
// 501.
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// FreshnessLifetime returns the freshness lifetime of a response for a
// shared cache (RFC 9111 §4.2.1), taking the first of:
//
//  1. s-maxage;
//  2. max-age;
//  3. Expires - Date, when hasExpires. An Expires value that did not parse
//     (passed as the zero time, e.g. "0") means already expired (§5.3).
//     Pass the response receipt time as date when the response has no
//     Date header (RFC 9110 §6.6.1); a zero date also gives 0;
//  4. a heuristic, only for responses without explicit expiry whose status
//     is HeuristicallyCacheable or that are marked public (§4.2.2):
//     (Date - Last-Modified) / HeuristicFraction, at most
//     MaxHeuristicLifetime; 0 without a usable Last-Modified.
//
// heuristic reports that case 4 produced a non-zero lifetime. The result
// is never negative and at most MaxDeltaSeconds seconds. Directives such as
// no-cache and must-revalidate do not change the lifetime; the caller
// applies them. Invalid or conflicting max-age/s-maxage arguments already
// parse as 0 (stale).
func FreshnessLifetime(cc CacheControl, date, expires, lastModified time.Time, hasExpires bool, status int) (lifetime time.Duration, heuristic bool) {
	switch {
	case cc.SMaxAge >= 0:
		return seconds(cc.SMaxAge), false
	case cc.MaxAge >= 0:
		return seconds(cc.MaxAge), false
	case hasExpires:
		if expires.IsZero() || date.IsZero() {
			return 0, false
		}
		return min(max(expires.Sub(date), 0), maxLifetime), false
	}
	if !HeuristicallyCacheable(status) && !cc.Public {
		return 0, false
	}
	if lastModified.IsZero() || date.IsZero() {
		return 0, false
	}
	since := date.Sub(lastModified)
	if since <= 0 {
		return 0, false
	}
	h := min(since/HeuristicFraction, MaxHeuristicLifetime)
	return h, h > 0
}

// CurrentAge returns the current age of a stored response (RFC 9111
// §4.2.3):
//
//	apparent_age          = max(0, response_time - date_value)
//	response_delay        = response_time - request_time
//	corrected_age_value   = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//	resident_time         = now - response_time
//	current_age           = corrected_initial_age + resident_time
//
// date is the response's Date (zero if absent: apparent_age is then 0),
// ageHeader its Age in seconds (negative if absent or invalid: 0),
// requestTime when the request that produced it was sent, responseTime
// when the response was received. Negative delays from clock skew count as
// 0; the sum saturates instead of overflowing.
func CurrentAge(date time.Time, ageHeader int64, requestTime, responseTime, now time.Time) time.Duration {
	var apparent time.Duration
	if !date.IsZero() {
		apparent = max(0, responseTime.Sub(date))
	}
	delay := max(0, responseTime.Sub(requestTime))
	corrected := satAdd(seconds(ageHeader), delay)
	resident := max(0, now.Sub(responseTime))
	return satAdd(max(apparent, corrected), resident)
}

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b { // a, b >= 0
		return math.MaxInt64
	}
	return a + b
}

// understood reports whether the cache implements the semantics of status
// for storing whole responses: the final status codes of RFC 9110 and
// RFC 6585/7725, except 206 (partial) and 304 (a validation update), which
// are never stored as responses in their own right.
func understood(status int) bool {
	switch status {
	case 200, 201, 202, 203, 204, 205,
		300, 301, 302, 303, 307, 308,
		400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
		421, 422, 426, 428, 429, 431, 451,
		500, 501, 502, 503, 504, 505, 511:
		return true
	}
	return false
}

// Storable reports whether a shared cache may store the response
// (RFC 9111 §3):
//
//   - the method is GET or HEAD (the only methods this cache understands;
//     whether to keep HEAD responses is the caller's choice);
//   - status is final, and if it is 206 or 304, or must-understand is
//     present, the cache understands it (206 and 304 are never stored as
//     whole responses here);
//   - neither the request nor the response has no-store; a response
//     no-store is ignored when must-understand is present and the status
//     is understood (§5.2.2.3);
//   - the response has no unqualified private (a qualified private is
//     storable without the listed fields);
//   - a request with Authorization is stored only if the response has
//     public, s-maxage or must-revalidate (§3.5);
//   - the response has public, an Expires header (hasExpires, even if
//     invalid), max-age or s-maxage, or a heuristically cacheable status.
//
// Vary: * and similar key questions are the caller's.
func Storable(method string, status int, reqCC, respCC CacheControl, hasAuthorization, hasExpires bool) bool {
	if method != "GET" && method != "HEAD" {
		return false
	}
	if status < 200 || status > 599 {
		return false
	}
	if reqCC.NoStore {
		return false
	}
	if status == 206 || status == 304 || respCC.MustUnderstand {
		if !understood(status) {
			return false
		}
	}
	if respCC.NoStore && !respCC.MustUnderstand {
		return false
	}
	if respCC.Private {
		return false
	}
	if hasAuthorization && !respCC.Public && respCC.SMaxAge < 0 && !respCC.MustRevalidate {
		return false
	}
	return respCC.Public || hasExpires || respCC.MaxAge >= 0 || respCC.SMaxAge >= 0 || HeuristicallyCacheable(status)
}
