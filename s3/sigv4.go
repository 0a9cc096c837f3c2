package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// AWS Signature Version 4 for S3, as AWS documents it in "Authenticating
// Requests (AWS Signature Version 4)": the Authorization header form, the
// presigned (query string) form, and the seed of aws-chunked bodies, whose
// chunks chunked.go verifies.

const (
	sigv4Algorithm    = "AWS4-HMAC-SHA256"
	sigv4TimeFormat   = "20060102T150405Z"
	sigv4DateFormat   = "20060102"
	sigv4Terminator   = "aws4_request"
	sigv4Service      = "s3"
	sigv4MaxExpires   = 7 * 24 * 60 * 60 // a week, in seconds
	sigv4DefaultSkew  = 15 * time.Minute
	sigv4EmptySHA256  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	sigv4CredentialOf = "<ACCESS_KEY>/YYYYMMDD/REGION/s3/aws4_request"

	// The values of x-amz-content-sha256 other than a hex SHA-256.
	sigv4UnsignedPayload          = "UNSIGNED-PAYLOAD"
	sigv4StreamingPayload         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	sigv4StreamingPayloadTrailer  = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	sigv4StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// Request is what verification needs from an HTTP request, independent of
// fasthttp.
type Request struct {
	Method string
	// RawPath is the path exactly as on the wire, escaped, without the
	// query.
	RawPath string
	// RawQuery is the query string exactly as on the wire ("" if none).
	RawQuery string
	// Host is the Host header.
	Host string
	// Header returns every value of the header named lowerName, in the
	// order sent, or nil if the request has none.
	Header func(lowerName string) []string
	// Names returns the name of every header the request has, lowercase
	// (in any order, repeats allowed). Verification refuses a request
	// with an x-amz-* header (or Content-MD5, Content-Type) outside the
	// signed headers; with Names nil it cannot see them and refuses every
	// signed request.
	Names func() []string
}

// header returns every value of the header name (lowercase).
func (r *Request) header(name string) []string {
	if r.Header == nil {
		return nil
	}
	return r.Header(name)
}

// header1 returns the first value of the header name (lowercase), "" if
// there is none.
func (r *Request) header1(name string) string {
	if v := r.header(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// RequestFromFastHTTP returns the Request of req. The path and query are
// the request line's as received (req.Header.RequestURI), not fasthttp's
// normalized path, so that the canonical request is the client's. The
// Request reads req's headers: use it only while req is valid (during the
// handler).
func RequestFromFastHTTP(req *fasthttp.Request) *Request {
	h := &req.Header
	uri := string(h.RequestURI())
	path, query, _ := strings.Cut(uri, "?")
	if !strings.HasPrefix(path, "/") {
		// Absolute form (http://host/path): the path starts after the
		// authority.
		if i := strings.Index(path, "://"); i >= 0 {
			path = path[i+3:]
			if j := strings.IndexByte(path, '/'); j >= 0 {
				path = path[j:]
			} else {
				path = "/"
			}
		}
	}
	return &Request{
		Method:   string(h.Method()),
		RawPath:  path,
		RawQuery: query,
		Host:     string(h.Host()),
		Header: func(name string) []string {
			vals := h.PeekAll(name)
			if len(vals) == 0 {
				return nil
			}
			out := make([]string, len(vals))
			for i, v := range vals {
				out[i] = string(v)
			}
			return out
		},
		Names: func() []string {
			var names []string
			for k := range h.All() {
				names = append(names, strings.ToLower(string(k)))
			}
			return names
		},
	}
}

// Verifier checks the AWS Signature Version 4 of requests against a set
// of credentials.
type Verifier struct {
	// Creds are the access keys accepted.
	Creds Credentials
	// MaxSkew is how far a request's date may be from the server's clock
	// (15 minutes when zero).
	MaxSkew time.Duration
	// Now is the server's clock (time.Now when nil).
	Now func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return sigv4DefaultSkew
}

// Auth is a request's verified authentication.
type Auth struct {
	// AccessKey is the access key that signed the request ("" if
	// Anonymous).
	AccessKey string
	// Anonymous is set when the request has no Authorization header and
	// no X-Amz-Algorithm query parameter: whether it may proceed is the
	// caller's decision (public-read buckets).
	Anonymous bool
	// Presigned is set when the request was authenticated by query
	// parameters (a presigned URL).
	Presigned bool
	// PayloadHash is x-amz-content-sha256 as sent: a hex SHA-256 (which
	// the caller checks the body against with CheckBody),
	// UNSIGNED-PAYLOAD, or an aws-chunked form
	// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
	// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER,
	// STREAMING-UNSIGNED-PAYLOAD-TRAILER), whose body NewChunkedReader
	// decodes. Presigned requests have UNSIGNED-PAYLOAD (or the
	// X-Amz-Content-Sha256 query parameter if signed with one).
	PayloadHash string

	// What NewChunkedReader needs to verify chunk signatures.
	signingKey []byte
	scope      string   // YYYYMMDD/REGION/s3/aws4_request
	amzDate    string   // the request's time, ISO 8601 basic
	seed       string   // the request's signature, lowercase hex
	trailers   []string // the trailer names x-amz-trailer declares, lowercase
}

// CheckBody checks sum, the SHA-256 of the request body as received,
// against PayloadHash when that is a hex SHA-256; it returns an
// XAmzContentSHA256Mismatch error if they differ. It returns nil for the
// other payload forms.
func (a *Auth) CheckBody(sum [32]byte) error {
	if !sigv4IsHexSHA256(a.PayloadHash) {
		return nil
	}
	got := hex.EncodeToString(sum[:])
	if !strings.EqualFold(got, a.PayloadHash) {
		return errorf("XAmzContentSHA256Mismatch",
			"the body's SHA-256 is %s but x-amz-content-sha256 says %s: send the hex SHA-256 of the body as sent (or UNSIGNED-PAYLOAD)",
			got, strings.ToLower(a.PayloadHash))
	}
	return nil
}

// Chunked reports whether the body is aws-chunked (PayloadHash is one of
// the STREAMING- forms): NewChunkedReader decodes it.
func (a *Auth) Chunked() bool {
	return strings.HasPrefix(a.PayloadHash, "STREAMING-")
}

// Verify authenticates r: by its Authorization header, by presigned query
// parameters, or as anonymous when it has neither. Errors are *Error with
// the S3 code that fits: AuthorizationHeaderMalformed,
// AuthorizationQueryParametersError, MissingSecurityHeader,
// InvalidAccessKeyId, SignatureDoesNotMatch, RequestTimeTooSkewed,
// AccessDenied (expired or not yet valid), InvalidArgument or
// InvalidRequest.
func (v *Verifier) Verify(r *Request) (*Auth, error) {
	authz := r.header("authorization")
	q := sigv4ParseQuery(r.RawQuery)
	_, presigned := q.get("X-Amz-Algorithm")
	switch {
	case len(authz) > 0 && presigned:
		return nil, errorf("InvalidArgument",
			"the request has both an Authorization header and an X-Amz-Algorithm query parameter: authenticate with one of them only")
	case len(authz) > 1:
		return nil, errorf("AuthorizationHeaderMalformed",
			"the request has %d Authorization headers: send one", len(authz))
	case len(authz) == 1:
		return v.verifyHeader(r, authz[0], q)
	case presigned:
		return v.verifyPresigned(r, q)
	}
	if _, ok := q.get("AWSAccessKeyId"); ok {
		if _, ok := q.get("Signature"); ok {
			return nil, errorf("InvalidRequest",
				"the request is presigned with Signature Version 2 (AWSAccessKeyId and Signature), which this server does not support: presign with AWS4-HMAC-SHA256 (Signature Version 4)")
		}
	}
	a := &Auth{Anonymous: true, PayloadHash: sigv4UnsignedPayload}
	// An anonymous body is not signed, but its hash or unsigned chunked
	// framing still describe it.
	switch p := r.header1("x-amz-content-sha256"); {
	case sigv4IsHexSHA256(p):
		a.PayloadHash = p
	case p == sigv4StreamingUnsignedTrailer:
		a.PayloadHash = p
		a.trailers = sigv4TrailerNames(r)
	}
	return a, nil
}

// sigv4Authorization is a parsed Authorization header or the equivalent
// query parameters.
type sigv4Authorization struct {
	accessKey     string
	date          string // YYYYMMDD of the credential scope
	region        string
	service       string
	signedHeaders []string // lowercase, in the order given
	signedRaw     string   // the SignedHeaders value as given
	signature     []byte   // 32 bytes
}

func (h *sigv4Authorization) scope() string {
	return h.date + "/" + h.region + "/" + h.service + "/" + sigv4Terminator
}

// signs reports whether name is one of the signed headers.
func (h *sigv4Authorization) signs(name string) bool {
	for _, s := range h.signedHeaders {
		if s == name {
			return true
		}
	}
	return false
}

// sigv4ParseAuthorization parses an Authorization header of Signature
// Version 4:
//
//	AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=HEX
//
// The parameters may be separated by commas, spaces or both.
func sigv4ParseAuthorization(s string) (*sigv4Authorization, error) {
	malformed := func(format string, args ...any) error {
		return errorf("AuthorizationHeaderMalformed", format, args...)
	}
	s = strings.TrimSpace(s)
	algo, rest := s, ""
	if i := strings.IndexAny(s, " \t,"); i >= 0 {
		algo, rest = s[:i], s[i:]
	}
	if algo != sigv4Algorithm {
		if strings.Contains(algo, "=") || algo == "" {
			return nil, malformed("the Authorization header does not start with the algorithm: send %q followed by Credential=, SignedHeaders= and Signature=", sigv4Algorithm)
		}
		return nil, errorf("InvalidRequest",
			"the authorization mechanism %.40q is not supported: sign requests with %s (Signature Version 4)", algo, sigv4Algorithm)
	}
	var cred, signed, sig string
	var seen [3]bool
	for _, f := range strings.FieldsFunc(rest, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, malformed("the Authorization header has %.60q where a NAME=VALUE parameter (Credential, SignedHeaders or Signature) is expected", f)
		}
		var i int
		switch k {
		case "Credential":
			i, cred = 0, val
		case "SignedHeaders":
			i, signed = 1, val
		case "Signature":
			i, sig = 2, val
		default:
			return nil, malformed("the Authorization header has an unknown parameter %.40q: only Credential, SignedHeaders and Signature are allowed", k)
		}
		if seen[i] {
			return nil, malformed("the Authorization header gives %s twice", k)
		}
		seen[i] = true
	}
	for i, name := range []string{"Credential", "SignedHeaders", "Signature"} {
		if !seen[i] {
			return nil, malformed("the Authorization header has no %s=: it must have Credential, SignedHeaders and Signature", name)
		}
	}
	h := &sigv4Authorization{}
	if err := h.parseCredential(cred, "AuthorizationHeaderMalformed", "the Authorization header's Credential"); err != nil {
		return nil, err
	}
	if err := h.parseSignedHeaders(signed, "AuthorizationHeaderMalformed", "the Authorization header's SignedHeaders"); err != nil {
		return nil, err
	}
	if err := h.parseSignature(sig, "AuthorizationHeaderMalformed", "the Authorization header's Signature"); err != nil {
		return nil, err
	}
	return h, nil
}

// parseCredential parses AK/YYYYMMDD/REGION/s3/aws4_request. code and
// what name the error to return and the thing parsed.
func (h *sigv4Authorization) parseCredential(s, code, what string) error {
	parts := strings.Split(s, "/")
	if len(parts) < 5 {
		return errorf(code, "%s %.120q is malformed: it must be %s", what, s, sigv4CredentialOf)
	}
	n := len(parts)
	h.accessKey = strings.Join(parts[:n-4], "/")
	h.date, h.region, h.service = parts[n-4], parts[n-3], parts[n-2]
	switch {
	case h.accessKey == "":
		return errorf(code, "%s %.120q has no access key: it must be %s", what, s, sigv4CredentialOf)
	case !sigv4IsDate(h.date):
		return errorf(code, "%s %.120q has the date %.20q where YYYYMMDD is expected: it must be %s", what, s, h.date, sigv4CredentialOf)
	case h.region == "":
		return errorf(code, "%s %.120q has no region: it must be %s", what, s, sigv4CredentialOf)
	case h.service != sigv4Service:
		return errorf(code, "%s %.120q is scoped to the service %.20q: sign for the service \"s3\"", what, s, h.service)
	case parts[n-1] != sigv4Terminator:
		return errorf(code, "%s %.120q ends in %.20q: the scope must end in %q", what, s, parts[n-1], sigv4Terminator)
	}
	return nil
}

// parseSignedHeaders parses a ;-separated list of header names.
func (h *sigv4Authorization) parseSignedHeaders(s, code, what string) error {
	if s == "" {
		return errorf(code, "%s is empty: list the signed headers, host among them, separated by ';'", what)
	}
	h.signedRaw = s
	names := strings.Split(s, ";")
	for i, n := range names {
		if n == "" || strings.ContainsAny(n, " \t:") {
			return errorf(code, "%s %.200q has an empty or invalid name: list lowercase header names separated by ';'", what, s)
		}
		n = strings.ToLower(n)
		for _, m := range names[:i] {
			if m == n {
				return errorf(code, "%s %.200q lists %q twice", what, s, n)
			}
		}
		names[i] = n
	}
	h.signedHeaders = names
	return nil
}

// parseSignature parses a signature of 64 hexadecimal digits.
func (h *sigv4Authorization) parseSignature(s, code, what string) error {
	sig, err := hex.DecodeString(s)
	if err != nil || len(sig) != sha256.Size {
		return errorf(code, "%s %.80q is not 64 hexadecimal digits (a hex HMAC-SHA256)", what, s)
	}
	h.signature = sig
	return nil
}

// verifyHeader authenticates a request by its Authorization header.
func (v *Verifier) verifyHeader(r *Request, authz string, q sigv4Query) (*Auth, error) {
	h, err := sigv4ParseAuthorization(authz)
	if err != nil {
		return nil, err
	}
	payload := r.header1("x-amz-content-sha256")
	if payload == "" {
		return nil, errorf("MissingSecurityHeader",
			"the request has no x-amz-content-sha256 header, which Signature Version 4 requires: send the hex SHA-256 of the body, UNSIGNED-PAYLOAD or a STREAMING- form, and sign it")
	}
	if !sigv4ValidPayload(payload) {
		return nil, errorf("InvalidArgument",
			"x-amz-content-sha256 is %.80q: it must be a hex SHA-256, UNSIGNED-PAYLOAD, %s, %s or %s",
			payload, sigv4StreamingPayload, sigv4StreamingPayloadTrailer, sigv4StreamingUnsignedTrailer)
	}
	// The request's time: x-amz-date, or else Date.
	dateHeader := "x-amz-date"
	var t time.Time
	if d := r.header1("x-amz-date"); d != "" {
		t, err = time.Parse(sigv4TimeFormat, d)
		if err != nil {
			return nil, errorf("AccessDenied",
				"x-amz-date %.40q is not a date of the form YYYYMMDDTHHMMSSZ: send the request's time in that form (UTC)", d)
		}
	} else if d := r.header1("date"); d != "" {
		dateHeader = "date"
		t, err = http.ParseTime(d)
		if err != nil {
			return nil, errorf("AccessDenied", "the Date header %.40q is not an HTTP date: send x-amz-date (YYYYMMDDTHHMMSSZ) instead", d)
		}
	} else {
		return nil, errorf("AccessDenied",
			"the request has neither x-amz-date nor Date: Signature Version 4 needs the request's time; send x-amz-date (YYYYMMDDTHHMMSSZ)")
	}
	t = t.UTC()
	amzDate := t.Format(sigv4TimeFormat)
	if h.date != t.Format(sigv4DateFormat) {
		return nil, errorf("AuthorizationHeaderMalformed",
			"the Credential's date %s is not the date of the request's %s (%s): sign with the scope of the request's date", h.date, dateHeader, amzDate)
	}
	if err := v.checkSkew(t, amzDate); err != nil {
		return nil, err
	}
	for _, must := range []string{"host", "x-amz-content-sha256", dateHeader} {
		if !h.signs(must) {
			return nil, errorf("AuthorizationHeaderMalformed",
				"SignedHeaders %.200q does not list %s: the signature must cover host, x-amz-content-sha256 and the date (%s)", h.signedRaw, must, dateHeader)
		}
	}
	if err := checkAllSigned(r, h, false); err != nil {
		return nil, err
	}
	secret, ok := v.Creds[h.accessKey]
	if !ok {
		return nil, errorf("InvalidAccessKeyId",
			"the access key %q is not known to this server: use an access key from the server's credentials file", h.accessKey)
	}
	a := &Auth{
		AccessKey:   h.accessKey,
		PayloadHash: payload,
		signingKey:  sigv4SigningKey(secret, h.date, h.region, h.service),
		scope:       h.scope(),
		amzDate:     amzDate,
		seed:        hex.EncodeToString(h.signature),
		trailers:    sigv4TrailerNames(r),
	}
	if err := a.checkSignature(r, q, h, payload, false); err != nil {
		return nil, err
	}
	return a, nil
}

// verifyPresigned authenticates a request by its query parameters.
func (v *Verifier) verifyPresigned(r *Request, q sigv4Query) (*Auth, error) {
	const code = "AuthorizationQueryParametersError"
	if algo, _ := q.get("X-Amz-Algorithm"); algo != sigv4Algorithm {
		return nil, errorf(code, "X-Amz-Algorithm is %.40q: presign with %s (Signature Version 4)", algo, sigv4Algorithm)
	}
	var vals [5]string
	for i, name := range []string{"X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		val, ok := q.get(name)
		if !ok {
			return nil, errorf(code,
				"the presigned URL has no %s: query-string authentication needs X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature", name)
		}
		vals[i] = val
	}
	h := &sigv4Authorization{}
	if err := h.parseCredential(vals[0], code, "X-Amz-Credential"); err != nil {
		return nil, err
	}
	t, err := time.Parse(sigv4TimeFormat, vals[1])
	if err != nil {
		return nil, errorf(code, "X-Amz-Date %.40q is not a date of the form YYYYMMDDTHHMMSSZ: presign with the time in that form (UTC)", vals[1])
	}
	expires, err := strconv.ParseInt(vals[2], 10, 64)
	if err != nil {
		if !errors.Is(err, strconv.ErrRange) {
			return nil, errorf(code, "X-Amz-Expires %.40q is not a number of seconds", vals[2])
		}
		expires = sigv4MaxExpires + 1 // out of range: too long or negative
		if strings.HasPrefix(vals[2], "-") {
			expires = -1
		}
	}
	switch {
	case expires < 0:
		return nil, errorf(code, "X-Amz-Expires %.40s is negative: give the URL's lifetime in seconds (at most %d)", vals[2], sigv4MaxExpires)
	case expires > sigv4MaxExpires:
		return nil, errorf(code, "X-Amz-Expires %.40s is more than a week: a presigned URL lives at most %d seconds", vals[2], sigv4MaxExpires)
	}
	if err := h.parseSignedHeaders(vals[3], code, "X-Amz-SignedHeaders"); err != nil {
		return nil, err
	}
	if err := h.parseSignature(vals[4], code, "X-Amz-Signature"); err != nil {
		return nil, err
	}
	if h.date != t.Format(sigv4DateFormat) {
		return nil, errorf(code, "X-Amz-Credential's date %s is not the date of X-Amz-Date %s: presign with the scope of X-Amz-Date's date", h.date, vals[1])
	}
	if !h.signs("host") {
		return nil, errorf(code, "X-Amz-SignedHeaders %.200q does not list host: a presigned URL must sign host", h.signedRaw)
	}
	now := v.now()
	if ahead := t.Sub(now); ahead > v.maxSkew() {
		return nil, errorf("AccessDenied",
			"Request is not valid yet: X-Amz-Date %s is %s ahead of the server's clock (more than %s): fix the clock of the machine that presigned the URL",
			vals[1], ahead.Round(time.Second), v.maxSkew())
	}
	if end := t.Add(time.Duration(expires) * time.Second); now.After(end) {
		return nil, errorf("AccessDenied",
			"Request has expired: the URL was presigned at %s for %ds and expired at %s, %s ago: presign a new URL",
			vals[1], expires, end.UTC().Format(sigv4TimeFormat), now.Sub(end).Round(time.Second))
	}
	if err := checkAllSigned(r, h, true); err != nil {
		return nil, err
	}
	secret, ok := v.Creds[h.accessKey]
	if !ok {
		return nil, errorf("InvalidAccessKeyId",
			"the access key %q is not known to this server: presign with an access key from the server's credentials file", h.accessKey)
	}
	payload := sigv4UnsignedPayload
	if p, ok := q.get("X-Amz-Content-Sha256"); ok {
		if !sigv4IsHexSHA256(p) && p != sigv4UnsignedPayload {
			return nil, errorf(code, "X-Amz-Content-Sha256 is %.80q: it must be a hex SHA-256 or UNSIGNED-PAYLOAD", p)
		}
		payload = p
	}
	a := &Auth{
		AccessKey:   h.accessKey,
		Presigned:   true,
		PayloadHash: payload,
		signingKey:  sigv4SigningKey(secret, h.date, h.region, h.service),
		scope:       h.scope(),
		amzDate:     vals[1],
		seed:        hex.EncodeToString(h.signature),
	}
	if err := a.checkSignature(r, q, h, payload, true); err != nil {
		return nil, err
	}
	return a, nil
}

// checkAllSigned returns AccessDenied, with the names in
// HeadersNotSigned, if r has a header that must be signed and is not
// among h's signed headers, as S3 does: every x-amz-* header (each
// changes what the request does: x-amz-copy-source, x-amz-acl,
// x-amz-meta-*…) and Content-MD5; with header authentication also
// Content-Type (every SDK signs it). A presigned URL need not sign
// Content-Type (S3 accepts any with a URL that signs only host), and an
// unsigned x-amz-content-sha256 beside one is not used (the payload of a
// presigned request is X-Amz-Content-Sha256 of the query or
// UNSIGNED-PAYLOAD), so S3 does not name it either.
func checkAllSigned(r *Request, h *sigv4Authorization, presigned bool) error {
	if r.Names == nil {
		return errorf("AccessDenied", "There were headers present in the request which were not signed: the server cannot list this request's headers")
	}
	var unsigned []string
	for _, name := range r.Names() {
		must := strings.HasPrefix(name, "x-amz-") || name == "content-md5"
		switch {
		case name == "content-type":
			must = !presigned
		case presigned && name == "x-amz-content-sha256":
			must = false
		}
		if !must || h.signs(name) || slices.Contains(unsigned, name) {
			continue
		}
		unsigned = append(unsigned, name)
	}
	if len(unsigned) == 0 {
		return nil
	}
	sort.Strings(unsigned)
	how := "list them in SignedHeaders"
	if presigned {
		how = "presign the URL with them (X-Amz-SignedHeaders)"
	}
	e := errorf("AccessDenied",
		"There were headers present in the request which were not signed: %s; %s or do not send them",
		strings.Join(unsigned, ", "), how)
	e.HeadersNotSigned = strings.Join(unsigned, ", ")
	return e
}

// checkSkew returns RequestTimeTooSkewed if t is further than MaxSkew from
// the server's clock.
func (v *Verifier) checkSkew(t time.Time, amzDate string) error {
	skew := v.now().Sub(t)
	if skew < 0 {
		skew = -skew
	}
	if skew > v.maxSkew() {
		return errorf("RequestTimeTooSkewed",
			"the request's date %s is %s from the server's clock (more than %s): fix the client's clock",
			amzDate, skew.Round(time.Second), v.maxSkew())
	}
	return nil
}

// checkSignature computes the signature of r with a's signing key and
// compares it, in constant time, with the one h gives.
func (a *Auth) checkSignature(r *Request, q sigv4Query, h *sigv4Authorization, payload string, presigned bool) error {
	canon, missing := sigv4CanonicalRequest(r, q, h, payload, presigned)
	sum := sha256.Sum256([]byte(canon))
	sts := sigv4Algorithm + "\n" + a.amzDate + "\n" + a.scope + "\n" + hex.EncodeToString(sum[:])
	if !hmac.Equal(sigv4HMAC(a.signingKey, sts), h.signature) {
		hint := ""
		if len(missing) > 0 {
			hint = "; the request lacks signed header(s) " + strings.Join(missing, ", ")
		}
		return errorf("SignatureDoesNotMatch",
			"the signature does not match the one computed with the secret key of %q: check the secret key and how the client signs (string to sign %q, canonical request SHA-256 %x%s)",
			a.AccessKey, sts, sum, hint)
	}
	return nil
}

// sigv4CanonicalRequest returns the canonical request of r:
//
//	METHOD \n CANONICAL-URI \n CANONICAL-QUERY \n CANONICAL-HEADERS \n SIGNED-HEADERS \n PAYLOAD
//
// and the signed headers r lacks (taken as empty).
func sigv4CanonicalRequest(r *Request, q sigv4Query, h *sigv4Authorization, payload string, presigned bool) (string, []string) {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.RawPath
	if path == "" {
		path = "/"
	}
	// S3 does not normalize or double-encode the path: it is the path as
	// sent, decoded once and encoded the SigV4 way.
	b.WriteString(sigv4Encode(sigv4Unescape(path, false), true))
	b.WriteByte('\n')
	b.WriteString(q.canonical(presigned))
	b.WriteByte('\n')
	var missing []string
	for _, name := range h.signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		var vals []string
		if name == "host" && r.Host != "" {
			vals = []string{r.Host}
		} else {
			vals = r.header(name)
		}
		if vals == nil {
			missing = append(missing, name)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.Join(strings.Fields(v), " "))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(h.signedRaw)
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String(), missing
}

// sigv4Param is a query parameter, decoded.
type sigv4Param struct{ key, value string }

// sigv4Query is a query string's parameters, decoded, in the order sent.
type sigv4Query []sigv4Param

// sigv4ParseQuery splits a raw query string into its parameters. It never
// fails: a '%' not followed by two hex digits is taken literally, and '+'
// is a space.
func sigv4ParseQuery(raw string) sigv4Query {
	var q sigv4Query
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		q = append(q, sigv4Param{sigv4Unescape(k, true), sigv4Unescape(v, true)})
	}
	return q
}

// get returns the first value of the parameter key.
func (q sigv4Query) get(key string) (string, bool) {
	for _, p := range q {
		if p.key == key {
			return p.value, true
		}
	}
	return "", false
}

// canonical returns the canonical query string: every key and value
// URI-encoded, sorted by key then value, without X-Amz-Signature when
// presigned.
func (q sigv4Query) canonical(presigned bool) string {
	enc := make([]sigv4Param, 0, len(q))
	for _, p := range q {
		if presigned && p.key == "X-Amz-Signature" {
			continue
		}
		enc = append(enc, sigv4Param{sigv4Encode(p.key, false), sigv4Encode(p.value, false)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// sigv4Unescape decodes %XX escapes (and '+' as a space if plusIsSpace).
// A '%' not followed by two hex digits stays as it is.
func sigv4Unescape(s string, plusIsSpace bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && sigv4IsHex(s[i+1]) && sigv4IsHex(s[i+2]):
			b = append(b, sigv4Unhex(s[i+1])<<4|sigv4Unhex(s[i+2]))
			i += 2
		case c == '+' && plusIsSpace:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// sigv4Encode URI-encodes s the SigV4 way: every byte but the unreserved
// A-Z a-z 0-9 - . _ ~ (and '/' if keepSlash) as %XX, hex uppercase.
func sigv4Encode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !sigv4Unreserved(s[i], keepSlash) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if sigv4Unreserved(c, keepSlash) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

func sigv4Unreserved(c byte, keepSlash bool) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/' && keepSlash
}

func sigv4IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func sigv4Unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// sigv4IsDate reports whether s is a valid YYYYMMDD date.
func sigv4IsDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := time.Parse(sigv4DateFormat, s)
	return err == nil
}

// sigv4IsHexSHA256 reports whether s is 64 hexadecimal digits.
func sigv4IsHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !sigv4IsHex(s[i]) {
			return false
		}
	}
	return true
}

// sigv4ValidPayload reports whether s is a value x-amz-content-sha256 may
// have with header authentication.
func sigv4ValidPayload(s string) bool {
	switch s {
	case sigv4UnsignedPayload, sigv4StreamingPayload, sigv4StreamingPayloadTrailer, sigv4StreamingUnsignedTrailer:
		return true
	}
	return sigv4IsHexSHA256(s)
}

// sigv4TrailerNames returns the trailer names x-amz-trailer declares,
// lowercase.
func sigv4TrailerNames(r *Request) []string {
	var names []string
	for _, v := range r.header("x-amz-trailer") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// sigv4SigningKey derives the signing key of a secret key for a scope.
func sigv4SigningKey(secret, date, region, service string) []byte {
	k := sigv4HMAC([]byte("AWS4"+secret), date)
	k = sigv4HMAC(k, region)
	k = sigv4HMAC(k, service)
	return sigv4HMAC(k, sigv4Terminator)
}

// sigv4HMAC returns HMAC-SHA256(key, data).
func sigv4HMAC(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
