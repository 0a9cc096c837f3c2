// Package httpx holds the HTTP semantics an edge cache needs, as pure
// functions over header values: no server, no clock, no I/O beyond
// writing a multipart body. Empty strings mean "header absent"; times are
// parsed by the caller with ParseHTTPDate.
//
// Ranges (RFC 9110 §14):
//
//	if method == "GET" && rangeHdr != "" && (ifRange == "" || httpx.IfRangeMatches(ifRange, etag, lastMod)) {
//		ranges, err := httpx.ParseRange(rangeHdr, size)
//		switch {
//		case err == httpx.ErrUnsatisfiable: // 416, Content-Range: httpx.UnsatisfiedContentRange(size)
//		case len(ranges) == 1:             // 206, Content-Range: httpx.ContentRange(ranges[0], size)
//		case len(ranges) > 1:              // 206 with m := httpx.NewMultipart(ranges, ctype, size):
//			// Content-Type m.ContentType(), Content-Length m.Len(), body m.WriteBody(w, file)
//		default:                            // ignore Range: 200 with the full body
//		}
//	}
//
// Conditionals (RFC 9110 §13.2.2): httpx.Evaluate(method, ifMatch,
// ifNoneMatch, ifModifiedSince, ifUnmodifiedSince, etag, lastMod) gives 0
// (go on), 304 or 412.
//
// Caching (RFC 9111, RFC 5861) for a shared cache:
//
//	req := httpx.ParseCacheControl(reqCacheControlLines...)
//	resp := httpx.ParseCacheControl(respCacheControlLines...)
//	if httpx.Storable(method, status, req, resp, hasAuthorization, hasExpires) {
//		lifetime, heuristic := httpx.FreshnessLifetime(resp, date, expires, lastMod, hasExpires, status)
//		age := httpx.CurrentAge(date, ageHdr, requestTime, responseTime, now)
//		fresh := lifetime > age
//		// stale: resp.StaleWhileRevalidate / resp.StaleIfError extend it
//	}
//
// Compression (RFC 9110 §12.5.3): httpx.Negotiate(acceptEncoding, "br",
// "gzip") returns the coding to send, and httpx.Compressible(ctype) says
// whether compressing is worth it.
//
// Cache-Status (RFC 9211): httpx.CacheStatus{Cache: "engine-edge", Hit:
// true, TTL: 3600, HasTTL: true}.String() == "engine-edge; hit; ttl=3600".
//
// Everything that parses untrusted input is fuzzed and does work bounded
// by the input length; ParseRange additionally caps the number of ranges
// at MaxRanges and coalesces overlapping ones.
package httpx
