package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// The credentials and time of AWS's worked examples in "Authenticating
// Requests (AWS Signature Version 4)" of the S3 API reference.
const (
	sigv4TestAccessKey = "AKIAIOSFODNN7EXAMPLE"
	sigv4TestSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var sigv4TestTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

// sigv4TestVerifier returns a Verifier of the examples' credentials whose
// clock reads now.
func sigv4TestVerifier(now time.Time) *Verifier {
	return &Verifier{
		Creds: Credentials{sigv4TestAccessKey: sigv4TestSecret},
		Now:   func() time.Time { return now },
	}
}

// sigv4TestRequest returns a Request for a request line's method and
// target (path?query as on the wire), host and headers.
func sigv4TestRequest(method, target, host string, headers http.Header) *Request {
	path, query, _ := strings.Cut(target, "?")
	return &Request{
		Method:   method,
		RawPath:  path,
		RawQuery: query,
		Host:     host,
		Header: func(name string) []string {
			if name == "host" {
				return []string{host}
			}
			return headers.Values(name)
		},
		Names: func() []string {
			names := []string{"host"}
			for k := range headers {
				names = append(names, strings.ToLower(k))
			}
			return names
		},
	}
}

// sigv4FromHTTP returns the Request of an *http.Request as it would go on
// the wire.
func sigv4FromHTTP(req *http.Request) *Request {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return sigv4TestRequest(req.Method, req.URL.RequestURI(), host, req.Header)
}

// sigv4Code returns the S3 error code of err ("" if it is nil or not an
// *Error).
func sigv4Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// sigv4WantCode fails t unless err is an *Error with code whose message
// contains every one of msgs.
func sigv4WantCode(t *testing.T, err error, code string, msgs ...string) {
	t.Helper()
	if got := sigv4Code(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not say %q", err, m)
		}
	}
}

// sigv4AWSExample is one of AWS's worked examples of header
// authentication.
type sigv4AWSExample struct {
	name    string
	method  string
	target  string
	headers http.Header
	authz   string
	body    string
}

func sigv4AWSExamples() []sigv4AWSExample {
	const host = "examplebucket.s3.amazonaws.com"
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	cred := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
	return []sigv4AWSExample{
		{
			name: "GET Object", method: "GET", target: "/test.txt",
			headers: hdr("Range", "bytes=0-9", "x-amz-content-sha256", sigv4EmptySHA256, "x-amz-date", "20130524T000000Z"),
			authz:   cred + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		},
		{
			name: "PUT Object", method: "PUT", target: "/test%24file.text",
			headers: hdr("Date", "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date", "20130524T000000Z", "x-amz-storage-class", "REDUCED_REDUNDANCY",
				"x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
			authz: cred + "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
			body:  "Welcome to Amazon S3.",
		},
		{
			// The same request with '$' as the client may send it, unescaped.
			name: "PUT Object, $ unescaped", method: "PUT", target: "/test$file.text",
			headers: hdr("Date", "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date", "20130524T000000Z", "x-amz-storage-class", "REDUCED_REDUNDANCY",
				"x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
			authz: cred + "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
			body:  "Welcome to Amazon S3.",
		},
		{
			name: "GET Bucket Lifecycle", method: "GET", target: "/?lifecycle",
			headers: hdr("x-amz-content-sha256", sigv4EmptySHA256, "x-amz-date", "20130524T000000Z"),
			authz:   cred + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
		},
		{
			name: "Get Bucket (List Objects)", method: "GET", target: "/?max-keys=2&prefix=J",
			headers: hdr("x-amz-content-sha256", sigv4EmptySHA256, "x-amz-date", "20130524T000000Z"),
			authz:   cred + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		},
		{
			// The query in another order, as a client may send it.
			name: "Get Bucket (List Objects), query reordered", method: "GET", target: "/?prefix=J&max-keys=2",
			headers: hdr("x-amz-content-sha256", sigv4EmptySHA256, "x-amz-date", "20130524T000000Z"),
			authz:   cred + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		},
	}
}

func (e sigv4AWSExample) request() *Request {
	h := e.headers.Clone()
	h.Add("Authorization", e.authz)
	return sigv4TestRequest(e.method, e.target, "examplebucket.s3.amazonaws.com", h)
}

// TestVerifyAWSExamples verifies AWS's worked examples of header
// authentication, with their exact signatures.
func TestVerifyAWSExamples(t *testing.T) {
	v := sigv4TestVerifier(sigv4TestTime)
	for _, ex := range sigv4AWSExamples() {
		t.Run(ex.name, func(t *testing.T) {
			a, err := v.Verify(ex.request())
			if err != nil {
				t.Fatal(err)
			}
			if a.AccessKey != sigv4TestAccessKey || a.Anonymous || a.Presigned || a.PayloadHash != ex.headers.Get("x-amz-content-sha256") {
				t.Fatalf("auth %+v", a)
			}
			if err := a.CheckBody(sha256.Sum256([]byte(ex.body))); err != nil {
				t.Errorf("the example's body: %v", err)
			}
			sigv4WantCode(t, a.CheckBody(sha256.Sum256([]byte(ex.body+"!"))), "XAmzContentSHA256Mismatch", "x-amz-content-sha256")
			if a.Chunked() {
				t.Error("Chunked for a plain body")
			}
		})
	}
}

// TestVerifyUnsignedHeaders: AWS's examples with a header added that the
// signature does not cover: an x-amz-* header or Content-MD5 is
// AccessDenied naming it (before the signature is checked, as S3 does),
// Content-Type too with header authentication; a Request that cannot
// list its headers is refused.
func TestVerifyUnsignedHeaders(t *testing.T) {
	v := sigv4TestVerifier(sigv4TestTime)
	ex := sigv4AWSExamples()[0] // GET Object: signs host, range, x-amz-content-sha256, x-amz-date
	for _, tc := range []struct{ name, value, want string }{
		{"X-Amz-Copy-Source", "/other/key", "x-amz-copy-source"},
		{"x-amz-meta-a", "1", "x-amz-meta-a"},
		{"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==", "content-md5"},
		{"Content-Type", "text/plain", "content-type"},
	} {
		r := ex
		r.headers = ex.headers.Clone()
		r.headers.Set(tc.name, tc.value)
		_, err := v.Verify(r.request())
		sigv4WantCode(t, err, "AccessDenied", "There were headers present in the request which were not signed", tc.want)
		var e *Error
		if errors.As(err, &e) && e.HeadersNotSigned != tc.want {
			t.Errorf("%s: HeadersNotSigned %q, want %q", tc.name, e.HeadersNotSigned, tc.want)
		}
	}
	// Signed-only headers and headers that need no signature pass.
	r := ex
	r.headers = ex.headers.Clone()
	r.headers.Set("User-Agent", "test")
	r.headers.Set("Accept-Encoding", "gzip")
	if _, err := v.Verify(r.request()); err != nil {
		t.Errorf("with unsigned User-Agent and Accept-Encoding: %v", err)
	}
	req := ex.request()
	req.Names = nil
	_, err := v.Verify(req)
	sigv4WantCode(t, err, "AccessDenied", "cannot list")
}

// TestCanonicalRequestAWSExamples checks the canonical requests' hashes
// AWS gives in the examples' string to sign.
func TestCanonicalRequestAWSExamples(t *testing.T) {
	exs := sigv4AWSExamples()
	for _, tc := range []struct {
		ex   sigv4AWSExample
		want string
	}{
		{exs[0], "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"},
		{exs[1], "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"},
		{exs[2], "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"},
	} {
		h, err := sigv4ParseAuthorization(tc.ex.authz)
		if err != nil {
			t.Fatal(err)
		}
		r := tc.ex.request()
		canon, missing := sigv4CanonicalRequest(r, sigv4ParseQuery(r.RawQuery), h, tc.ex.headers.Get("x-amz-content-sha256"), false)
		if sum := sha256.Sum256([]byte(canon)); hex.EncodeToString(sum[:]) != tc.want || missing != nil {
			t.Errorf("%s: canonical request %q hashes to %x (missing %v), want %s", tc.ex.name, canon, sum, missing, tc.want)
		}
	}
}

// TestVerifyAuthorizationVariants checks the spacing of the
// Authorization header's parameters that clients send.
func TestVerifyAuthorizationVariants(t *testing.T) {
	v := sigv4TestVerifier(sigv4TestTime)
	ex := sigv4AWSExamples()[0]
	const (
		cred   = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
		signed = "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"
		sig    = "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	)
	for _, authz := range []string{
		"AWS4-HMAC-SHA256 " + cred + "," + signed + "," + sig,
		"AWS4-HMAC-SHA256 " + cred + ", " + signed + ", " + sig,
		"AWS4-HMAC-SHA256  " + cred + " ,  " + signed + " ,\t" + sig + " ",
		"AWS4-HMAC-SHA256\t" + cred + " " + signed + " " + sig,
		"  AWS4-HMAC-SHA256," + sig + "," + cred + ",," + signed,
	} {
		ex.authz = authz
		if _, err := v.Verify(ex.request()); err != nil {
			t.Errorf("%q: %v", authz, err)
		}
	}
}

// TestVerifyPresignedAWSExample verifies AWS's worked example of a
// presigned URL, over its lifetime.
func TestVerifyPresignedAWSExample(t *testing.T) {
	const target = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	req := sigv4TestRequest("GET", target, "examplebucket.s3.amazonaws.com", http.Header{})

	// The canonical request hash the example's string to sign gives.
	q := sigv4ParseQuery(req.RawQuery)
	h := &sigv4Authorization{signedHeaders: []string{"host"}, signedRaw: "host"}
	canon, _ := sigv4CanonicalRequest(req, q, h, sigv4UnsignedPayload, true)
	if sum := sha256.Sum256([]byte(canon)); hex.EncodeToString(sum[:]) != "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04" {
		t.Errorf("canonical request %q hashes to %x", canon, sum)
	}

	for _, now := range []time.Time{sigv4TestTime, sigv4TestTime.Add(-10 * time.Minute), sigv4TestTime.Add(86400 * time.Second)} {
		a, err := sigv4TestVerifier(now).Verify(req)
		if err != nil {
			t.Fatalf("at %v: %v", now, err)
		}
		if !a.Presigned || a.AccessKey != sigv4TestAccessKey || a.PayloadHash != sigv4UnsignedPayload || a.Anonymous {
			t.Fatalf("auth %+v", a)
		}
	}
	_, err := sigv4TestVerifier(sigv4TestTime.Add(86401 * time.Second)).Verify(req)
	sigv4WantCode(t, err, "AccessDenied", "Request has expired", "20130525T000000Z")
	_, err = sigv4TestVerifier(sigv4TestTime.Add(-16 * time.Minute)).Verify(req)
	sigv4WantCode(t, err, "AccessDenied", "not valid yet", "16m0s")

	for _, tampered := range []string{
		strings.Replace(target, "/test.txt", "/test.txT", 1),
		strings.Replace(target, "Expires=86400", "Expires=86401", 1),
		target + "&x-id=GetObject",
	} {
		_, err := sigv4TestVerifier(sigv4TestTime).Verify(sigv4TestRequest("GET", tampered, "examplebucket.s3.amazonaws.com", nil))
		sigv4WantCode(t, err, "SignatureDoesNotMatch", sigv4TestAccessKey)
	}
	_, err = sigv4TestVerifier(sigv4TestTime).Verify(sigv4TestRequest("GET", target, "otherbucket.s3.amazonaws.com", nil))
	sigv4WantCode(t, err, "SignatureDoesNotMatch")

	// The URL signs only host: Content-Type and x-amz-content-sha256 may
	// come unsigned (as on S3), Content-MD5 and other x-amz-* may not.
	with := func(kv ...string) *Request {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return sigv4TestRequest("GET", target, "examplebucket.s3.amazonaws.com", h)
	}
	if _, err := sigv4TestVerifier(sigv4TestTime).Verify(with("Content-Type", "text/plain", "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")); err != nil {
		t.Errorf("presigned with an unsigned Content-Type and x-amz-content-sha256: %v", err)
	}
	_, err = sigv4TestVerifier(sigv4TestTime).Verify(with("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==", "X-Amz-Copy-Source", "/b/k"))
	sigv4WantCode(t, err, "AccessDenied", "content-md5, x-amz-copy-source")
}

// TestVerifySeedAWSExamples verifies the seed signatures of AWS's
// examples of aws-chunked uploads, and keeps what the chunks need.
func TestVerifySeedAWSExamples(t *testing.T) {
	v := sigv4TestVerifier(sigv4TestTime)
	for _, trailer := range []bool{false, true} {
		r := sigv4ChunkedExampleRequest(trailer)
		a, err := v.Verify(r)
		if err != nil {
			t.Fatalf("trailer %v: %v", trailer, err)
		}
		want := sigv4StreamingPayload
		if trailer {
			want = sigv4StreamingPayloadTrailer
		}
		if a.PayloadHash != want || !a.Chunked() || a.seed != sigv4ChunkedExampleSeed(trailer) ||
			a.scope != "20130524/us-east-1/s3/aws4_request" || a.amzDate != "20130524T000000Z" {
			t.Fatalf("auth %+v", a)
		}
		if trailer && (len(a.trailers) != 1 || a.trailers[0] != "x-amz-checksum-crc32c") {
			t.Errorf("trailers %q", a.trailers)
		}
	}
}

// sigv4ChunkedExampleSeed is the seed signature of AWS's example of an
// aws-chunked upload, without or with a trailer.
func sigv4ChunkedExampleSeed(trailer bool) string {
	if trailer {
		return "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
	}
	return "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
}

// sigv4ChunkedExampleRequest is the request of AWS's example of an
// aws-chunked upload (PUT of 66560 bytes of 'a' in 64 KiB chunks), without
// or with a trailing x-amz-checksum-crc32c.
func sigv4ChunkedExampleRequest(trailer bool) *Request {
	h := http.Header{}
	h.Set("Content-Encoding", "aws-chunked")
	h.Set("x-amz-date", "20130524T000000Z")
	h.Set("x-amz-decoded-content-length", "66560")
	h.Set("x-amz-storage-class", "REDUCED_REDUNDANCY")
	if trailer {
		h.Set("x-amz-content-sha256", sigv4StreamingPayloadTrailer)
		h.Set("x-amz-trailer", "x-amz-checksum-crc32c")
		h.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"+
			"SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"+
			"Signature="+sigv4ChunkedExampleSeed(true))
	} else {
		h.Set("Content-Length", "66824")
		h.Set("x-amz-content-sha256", sigv4StreamingPayload)
		h.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"+
			"SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"+
			"Signature="+sigv4ChunkedExampleSeed(false))
	}
	return sigv4TestRequest("PUT", "/examplebucket/chunkObject.txt", "s3.amazonaws.com", h)
}

// TestVerifyErrors checks each way a request fails verification, on the
// AWS GET Object example made wrong.
func TestVerifyErrors(t *testing.T) {
	base := sigv4AWSExamples()[0]
	type change func(ex *sigv4AWSExample, v *Verifier)
	setHeader := func(k, val string) change {
		return func(ex *sigv4AWSExample, _ *Verifier) { ex.headers = ex.headers.Clone(); ex.headers.Set(k, val) }
	}
	delHeader := func(k string) change {
		return func(ex *sigv4AWSExample, _ *Verifier) { ex.headers = ex.headers.Clone(); ex.headers.Del(k) }
	}
	authz := func(old, new string) change {
		return func(ex *sigv4AWSExample, _ *Verifier) { ex.authz = strings.Replace(ex.authz, old, new, 1) }
	}
	clock := func(d time.Duration) change {
		return func(_ *sigv4AWSExample, v *Verifier) { v.Now = func() time.Time { return sigv4TestTime.Add(d) } }
	}
	for _, tc := range []struct {
		name   string
		change change
		code   string
		msgs   []string
	}{
		{"wrong secret", func(_ *sigv4AWSExample, v *Verifier) { v.Creds[sigv4TestAccessKey] = "not-the-secret" },
			"SignatureDoesNotMatch", []string{"AKIAIOSFODNN7EXAMPLE", "string to sign", "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"}},
		{"unknown access key", func(_ *sigv4AWSExample, v *Verifier) { v.Creds = Credentials{"OTHER": sigv4TestSecret} },
			"InvalidAccessKeyId", []string{`"AKIAIOSFODNN7EXAMPLE"`}},
		{"tampered header", setHeader("Range", "bytes=0-10"), "SignatureDoesNotMatch", nil},
		{"tampered method", func(ex *sigv4AWSExample, _ *Verifier) { ex.method = "HEAD" }, "SignatureDoesNotMatch", nil},
		{"tampered path", func(ex *sigv4AWSExample, _ *Verifier) { ex.target = "/test2.txt" }, "SignatureDoesNotMatch", nil},
		{"added query", func(ex *sigv4AWSExample, _ *Verifier) { ex.target += "?acl" }, "SignatureDoesNotMatch", nil},
		{"signed header missing", delHeader("Range"), "SignatureDoesNotMatch", []string{"lacks signed header(s) range"}},
		{"tampered signature", authz("Signature=f0e8", "Signature=f0e9"), "SignatureDoesNotMatch", nil},
		{"skew 16 minutes behind", clock(16 * time.Minute), "RequestTimeTooSkewed",
			[]string{"20130524T000000Z is 16m0s from the server's clock (more than 15m0s): fix the client's clock"}},
		{"skew 16 minutes ahead", clock(-16 * time.Minute), "RequestTimeTooSkewed", []string{"16m0s"}},
		{"tighter MaxSkew", func(_ *sigv4AWSExample, v *Verifier) {
			v.MaxSkew = time.Minute
			v.Now = func() time.Time { return sigv4TestTime.Add(2 * time.Minute) }
		},
			"RequestTimeTooSkewed", []string{"more than 1m0s"}},
		{"no x-amz-content-sha256", delHeader("x-amz-content-sha256"), "MissingSecurityHeader", []string{"x-amz-content-sha256"}},
		{"bad x-amz-content-sha256", setHeader("x-amz-content-sha256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"), "InvalidArgument", []string{"STREAMING-AWS4-ECDSA"}},
		{"no date", delHeader("x-amz-date"), "AccessDenied", []string{"x-amz-date"}},
		{"bad x-amz-date", setHeader("x-amz-date", "2013-05-24T00:00:00Z"), "AccessDenied", []string{"YYYYMMDDTHHMMSSZ"}},
		{"scope of another day", setHeader("x-amz-date", "20130523T235959Z"), "AuthorizationHeaderMalformed", []string{"20130524", "20130523T235959Z"}},
		{"host not signed", authz("SignedHeaders=host;", "SignedHeaders="), "AuthorizationHeaderMalformed", []string{"does not list host"}},
		{"payload hash not signed", authz("x-amz-content-sha256;", ""), "AuthorizationHeaderMalformed", []string{"does not list x-amz-content-sha256"}},
		{"other service", authz("/s3/", "/ec2/"), "AuthorizationHeaderMalformed", []string{`"ec2"`}},
		{"bad terminator", authz("aws4_request", "aws4_reqest"), "AuthorizationHeaderMalformed", []string{"aws4_request"}},
		{"bad credential date", authz("/20130524/", "/2013-05-24/"), "AuthorizationHeaderMalformed", []string{"YYYYMMDD"}},
		{"short credential", authz("AKIAIOSFODNN7EXAMPLE/20130524/", "AKIAIOSFODNN7EXAMPLE/"), "AuthorizationHeaderMalformed", []string{"<ACCESS_KEY>/YYYYMMDD/REGION/s3/aws4_request"}},
		{"no access key", authz("AKIAIOSFODNN7EXAMPLE/", "/"), "AuthorizationHeaderMalformed", []string{"no access key"}},
		{"short signature", authz("Signature=f0e8", "Signature="), "AuthorizationHeaderMalformed", []string{"64 hexadecimal digits"}},
		{"no signature", authz(",Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", ""), "AuthorizationHeaderMalformed", []string{"no Signature="}},
		{"unknown parameter", authz("Signature=", "Sig="), "AuthorizationHeaderMalformed", []string{`"Sig"`}},
		{"parameter twice", authz("Signature=", "Credential=x,Signature="), "AuthorizationHeaderMalformed", []string{"Credential twice"}},
		{"not NAME=VALUE", authz(",Signature", ",junk,Signature"), "AuthorizationHeaderMalformed", []string{`"junk"`}},
		{"header listed twice", authz("host;range", "host;range;host"), "AuthorizationHeaderMalformed", []string{`"host" twice`}},
		{"empty header name", authz("host;range", "host;;range"), "AuthorizationHeaderMalformed", []string{"empty or invalid name"}},
		{"no algorithm", authz("AWS4-HMAC-SHA256 ", ""), "AuthorizationHeaderMalformed", []string{"algorithm"}},
		{"Signature Version 2", func(ex *sigv4AWSExample, _ *Verifier) {
			ex.authz = "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="
		},
			"InvalidRequest", []string{"AWS4-HMAC-SHA256"}},
		{"SigV4a", authz("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), "InvalidRequest", []string{"AWS4-ECDSA-P256-SHA256"}},
		{"header and query", func(ex *sigv4AWSExample, _ *Verifier) { ex.target += "?X-Amz-Algorithm=AWS4-HMAC-SHA256" },
			"InvalidArgument", []string{"only"}},
		{"two Authorization headers", func(ex *sigv4AWSExample, _ *Verifier) {
			ex.headers = ex.headers.Clone()
			ex.headers.Add("Authorization", ex.authz)
		}, "AuthorizationHeaderMalformed", []string{"2 Authorization headers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := base
			v := sigv4TestVerifier(sigv4TestTime)
			tc.change(&ex, v)
			a, err := v.Verify(ex.request())
			if a != nil {
				t.Errorf("auth %+v with the error", a)
			}
			sigv4WantCode(t, err, tc.code, tc.msgs...)
			if strings.Contains(err.Error(), sigv4TestSecret) {
				t.Errorf("the error %q tells the secret", err)
			}
		})
	}
	// Within the skew, the example verifies.
	for _, d := range []time.Duration{-14 * time.Minute, 15 * time.Minute} {
		if _, err := sigv4TestVerifier(sigv4TestTime.Add(d)).Verify(base.request()); err != nil {
			t.Errorf("clock %v from the request: %v", d, err)
		}
	}
}

// TestVerifyPresignedErrors checks each way a presigned URL fails.
func TestVerifyPresignedErrors(t *testing.T) {
	params := func(drop string, set ...string) string {
		q := []string{
			"X-Amz-Algorithm=AWS4-HMAC-SHA256",
			"X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
			"X-Amz-Date=20130524T000000Z",
			"X-Amz-Expires=86400",
			"X-Amz-SignedHeaders=host",
			"X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
		}
		var out []string
		for _, p := range q {
			k, _, _ := strings.Cut(p, "=")
			if k == drop {
				continue
			}
			for _, s := range set {
				if sk, _, _ := strings.Cut(s, "="); sk == k {
					p = s
				}
			}
			out = append(out, p)
		}
		for _, s := range set {
			sk, _, _ := strings.Cut(s, "=")
			if !strings.Contains(strings.Join(q, "&"), sk+"=") {
				out = append(out, s)
			}
		}
		return "/test.txt?" + strings.Join(out, "&")
	}
	const code = "AuthorizationQueryParametersError"
	for _, tc := range []struct {
		name, target, code, msg string
	}{
		{"no credential", params("X-Amz-Credential"), code, "no X-Amz-Credential"},
		{"no date", params("X-Amz-Date"), code, "no X-Amz-Date"},
		{"no expires", params("X-Amz-Expires"), code, "no X-Amz-Expires"},
		{"no signed headers", params("X-Amz-SignedHeaders"), code, "no X-Amz-SignedHeaders"},
		{"no signature", params("X-Amz-Signature"), code, "no X-Amz-Signature"},
		{"other algorithm", params("", "X-Amz-Algorithm=AWS4-HMAC-SHA1"), code, "AWS4-HMAC-SHA1"},
		{"expires over a week", params("", "X-Amz-Expires=604801"), code, "more than a week"},
		{"expires far over a week", params("", "X-Amz-Expires=99999999999999999999999"), code, "more than a week"},
		{"negative expires", params("", "X-Amz-Expires=-1"), code, "negative"},
		{"expires not a number", params("", "X-Amz-Expires=1d"), code, "not a number"},
		{"bad date", params("", "X-Amz-Date=2013-05-24"), code, "YYYYMMDDTHHMMSSZ"},
		{"date not the scope's", params("", "X-Amz-Date=20130525T000000Z"), code, "not the date of X-Amz-Date"},
		{"host not signed", params("", "X-Amz-SignedHeaders=range"), code, "does not list host"},
		{"bad credential", params("", "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE"), code, "X-Amz-Credential"},
		{"bad signature", params("", "X-Amz-Signature=zz"), code, "64 hexadecimal digits"},
		{"bad content sha256", params("", "X-Amz-Content-Sha256=STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), code, "X-Amz-Content-Sha256"},
		{"signed content sha256", params("", "X-Amz-Content-Sha256="+sigv4EmptySHA256), "SignatureDoesNotMatch", ""},
		{"wrong key", strings.Replace(params(""), "AKIAIOSFODNN7EXAMPLE", "AKIAOTHER", 1), "InvalidAccessKeyId", "AKIAOTHER"},
		{"Signature Version 2", "/test.txt?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D", "InvalidRequest", "Signature Version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sigv4TestVerifier(sigv4TestTime).Verify(sigv4TestRequest("GET", tc.target, "examplebucket.s3.amazonaws.com", nil))
			sigv4WantCode(t, err, tc.code, tc.msg)
		})
	}
	// Expires 0 is allowed, and ends at once.
	target := params("", "X-Amz-Expires=0")
	if _, err := sigv4TestVerifier(sigv4TestTime.Add(time.Second)).Verify(sigv4TestRequest("GET", target, "examplebucket.s3.amazonaws.com", nil)); sigv4Code(err) != "AccessDenied" {
		t.Errorf("expires 0, a second later: %v", err)
	}
}

// TestVerifyAnonymous checks that a request without authentication is
// anonymous, and that its payload hash is kept when it describes the
// body.
func TestVerifyAnonymous(t *testing.T) {
	v := sigv4TestVerifier(sigv4TestTime)
	for _, tc := range []struct{ sent, want string }{
		{"", sigv4UnsignedPayload},
		{sigv4EmptySHA256, sigv4EmptySHA256},
		{sigv4StreamingUnsignedTrailer, sigv4StreamingUnsignedTrailer},
		{sigv4StreamingPayload, sigv4UnsignedPayload},
		{"junk", sigv4UnsignedPayload},
	} {
		h := http.Header{}
		if tc.sent != "" {
			h.Set("x-amz-content-sha256", tc.sent)
		}
		a, err := v.Verify(sigv4TestRequest("GET", "/bucket/key?prefix=a", "localhost", h))
		if err != nil {
			t.Fatal(err)
		}
		if !a.Anonymous || a.AccessKey != "" || a.Presigned || a.PayloadHash != tc.want {
			t.Errorf("sent %q: auth %+v", tc.sent, a)
		}
	}
	a, _ := v.Verify(sigv4TestRequest("PUT", "/b/k", "h", nil))
	if err := a.CheckBody(sha256.Sum256([]byte("x"))); err != nil {
		t.Errorf("CheckBody of UNSIGNED-PAYLOAD: %v", err)
	}
}

// TestSigV4Encode checks the URI encoding of canonical paths and query
// parameters.
func TestSigV4Encode(t *testing.T) {
	for _, tc := range []struct {
		in             string
		slash, noSlash string
	}{
		{"", "", ""},
		{"AZaz09-._~", "AZaz09-._~", "AZaz09-._~"},
		{"/a b/c", "/a%20b/c", "%2Fa%20b%2Fc"},
		{"+=!*'()$&,;:@?#[]%", "%2B%3D%21%2A%27%28%29%24%26%2C%3B%3A%40%3F%23%5B%5D%25", "%2B%3D%21%2A%27%28%29%24%26%2C%3B%3A%40%3F%23%5B%5D%25"},
		{"ü€", "%C3%BC%E2%82%AC", "%C3%BC%E2%82%AC"},
		{"\x00\xff", "%00%FF", "%00%FF"},
	} {
		if got := sigv4Encode(tc.in, true); got != tc.slash {
			t.Errorf("path %q: %q, want %q", tc.in, got, tc.slash)
		}
		if got := sigv4Encode(tc.in, false); got != tc.noSlash {
			t.Errorf("query %q: %q, want %q", tc.in, got, tc.noSlash)
		}
	}
	for _, tc := range []struct {
		in   string
		plus bool
		want string
	}{
		{"a%20b+c", false, "a b+c"},
		{"a%20b+c", true, "a b c"},
		{"%2f%2F%zz%4", false, "//%zz%4"},
		{"%", true, "%"},
		{"%C3%BC", false, "ü"},
	} {
		if got := sigv4Unescape(tc.in, tc.plus); got != tc.want {
			t.Errorf("unescape %q (plus %v): %q, want %q", tc.in, tc.plus, got, tc.want)
		}
	}
	q := sigv4ParseQuery("b=2&a=2&&a=1&c&d=x=y&e+f=%2B")
	if got := q.canonical(false); got != "a=1&a=2&b=2&c=&d=x%3Dy&e%20f=%2B" {
		t.Errorf("canonical query %q", got)
	}
}

// sigv4MinioKeys are object keys that need encoding, to sign with
// minio-go.
var sigv4MinioKeys = []string{
	"plain.txt",
	"dir/sub/file",
	"a+b=c!*'()",
	"sp ace/and%percent",
	"ünïcödé/日本語 ключ",
	"semi;colon,comma:colon@at$dollar&amp",
	"tilde~under_dash-dot.",
	"x//y/./z/../w",
}

// sigv4MinioRequest returns an http.Request for key in bucket with query
// values, as minio-go's client builds it.
func sigv4MinioRequest(t *testing.T, method, bucket, key string, query url.Values, body []byte) *http.Request {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: "127.0.0.1:9000", Path: "/" + bucket + "/" + key}
	u.RawPath = "/" + bucket + "/" + sigv4Encode(key, true)
	u.RawQuery = strings.ReplaceAll(query.Encode(), "+", "%20")
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestVerifyMinioSignV4 verifies requests signed by minio-go's SignV4 and
// PreSignV4, with keys and query values that need encoding.
func TestVerifyMinioSignV4(t *testing.T) {
	const ak, sk = "minio-access", "minio/secret+key="
	v := &Verifier{Creds: Credentials{ak: sk}}
	// Values of a repeated key in sorted order: minio-go signs them in the
	// order given, AWS (and Verify) sorted.
	query := url.Values{"prefix": {"a b+c/ü"}, "delimiter": {"/"}, "uploads": {""}, "x": {"1", "2"}}
	for _, key := range sigv4MinioKeys {
		for _, region := range []string{"us-east-1", "eu-west-3", "garage"} {
			body := []byte("hello " + key)
			req := sigv4MinioRequest(t, "PUT", "bucket", key, query, body)
			sum := sha256.Sum256(body)
			req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Add("X-Amz-Meta-Spaces", "  a   lot  of   spaces  ")
			req.Header.Add("X-Amz-Meta-Twice", "one")
			req.Header.Add("X-Amz-Meta-Twice", "two")
			req = signer.SignV4(*req, ak, sk, "", region)
			a, err := v.Verify(sigv4FromHTTP(req))
			if err != nil {
				t.Fatalf("SignV4 %q in %s: %v", key, region, err)
			}
			if a.AccessKey != ak || a.CheckBody(sum) != nil || a.CheckBody(sha256.Sum256(nil)) == nil {
				t.Fatalf("auth %+v", a)
			}
			// A signed header changed on the way fails.
			req.Header.Set("X-Amz-Meta-Twice", "three")
			_, err = v.Verify(sigv4FromHTTP(req))
			sigv4WantCode(t, err, "SignatureDoesNotMatch")

			req = sigv4MinioRequest(t, "GET", "bucket", key, query, nil)
			req = signer.PreSignV4(*req, ak, sk, "", region, 3600)
			a, err = v.Verify(sigv4FromHTTP(req))
			if err != nil {
				t.Fatalf("PreSignV4 %q in %s: %v (%s)", key, region, err, req.URL.RequestURI())
			}
			if !a.Presigned || a.AccessKey != ak || a.PayloadHash != sigv4UnsignedPayload {
				t.Fatalf("auth %+v", a)
			}
			_, err = (&Verifier{Creds: Credentials{ak: "other"}}).Verify(sigv4FromHTTP(req))
			sigv4WantCode(t, err, "SignatureDoesNotMatch")
		}
	}
}

// TestVerifyOverFastHTTP sends requests signed by minio-go through Go's
// HTTP client to a fasthttp server, which verifies them with
// RequestFromFastHTTP: the path and query as they are on the wire.
func TestVerifyOverFastHTTP(t *testing.T) {
	const ak, sk = "wire-access", "wire-secret"
	v := &Verifier{Creds: Credentials{ak: sk}}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.URI() // fasthttp's parsed, normalized URI must not matter
		a, err := v.Verify(RequestFromFastHTTP(&ctx.Request))
		if err != nil {
			ctx.SetStatusCode(http.StatusForbidden)
			fmt.Fprint(ctx, err)
			return
		}
		fmt.Fprintf(ctx, "%s presigned=%v", a.AccessKey, a.Presigned)
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	client := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}}
	query := url.Values{"prefix": {"a b+c/ü"}, "list-type": {"2"}}
	for _, key := range sigv4MinioKeys {
		for _, presign := range []bool{false, true} {
			req := sigv4MinioRequest(t, "GET", "bucket", key, query, nil)
			if presign {
				req = signer.PreSignV4(*req, ak, sk, "", "us-east-1", 60)
			} else {
				req.Header.Set("X-Amz-Content-Sha256", sigv4EmptySHA256)
				req = signer.SignV4(*req, ak, sk, "", "us-east-1")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%s presigned=%v", ak, presign); resp.StatusCode != 200 || string(body) != want {
				t.Errorf("%q presigned %v: %d %s", key, presign, resp.StatusCode, body)
			}
		}
	}
}

// TestRequestFromFastHTTP checks that the Request of a fasthttp request
// has the raw path and query, the Host, and every value of a header.
func TestRequestFromFastHTTP(t *testing.T) {
	for _, tc := range []struct {
		line, path, query string
	}{
		{"PUT /bucket/a%2Bb/../c//d%20e?x=1&y=a+b HTTP/1.1", "/bucket/a%2Bb/../c//d%20e", "x=1&y=a+b"},
		{"GET / HTTP/1.1", "/", ""},
		{"GET /b?lifecycle HTTP/1.1", "/b", "lifecycle"},
		{"GET http://example.com/b/k%3F?acl HTTP/1.1", "/b/k%3F", "acl"},
		{"GET http://example.com HTTP/1.1", "/", ""},
	} {
		raw := tc.line + "\r\nHost: example.com:9000\r\nX-Amz-Meta-A: one\r\nx-amz-meta-a:  two  \r\nContent-Length: 0\r\n\r\n"
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
		req.URI() // parse, and normalize, the URI: the raw one must stay
		r := RequestFromFastHTTP(&req)
		if r.RawPath != tc.path || r.RawQuery != tc.query || r.Method != strings.Fields(tc.line)[0] {
			t.Errorf("%q: path %q query %q method %q", tc.line, r.RawPath, r.RawQuery, r.Method)
		}
		if !strings.HasPrefix(tc.line, "GET http://") && r.Host != "example.com:9000" {
			t.Errorf("%q: host %q", tc.line, r.Host)
		}
		if got := r.Header("x-amz-meta-a"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
			t.Errorf("x-amz-meta-a: %q", got)
		}
		if got := r.Header("content-length"); len(got) != 1 || got[0] != "0" {
			t.Errorf("content-length: %q", got)
		}
		if got := r.Header("x-absent"); got != nil {
			t.Errorf("absent header: %q", got)
		}
	}
}

// TestVerifyDateHeader checks the Date header, used when x-amz-date is
// absent: the string to sign has its time in ISO 8601 basic form.
func TestVerifyDateHeader(t *testing.T) {
	h := http.Header{}
	h.Set("Date", "Fri, 24 May 2013 00:00:00 GMT")
	h.Set("x-amz-content-sha256", sigv4EmptySHA256)
	req := sigv4TestRequest("GET", "/test.txt", "examplebucket.s3.amazonaws.com", h)
	auth := &sigv4Authorization{signedHeaders: []string{"date", "host", "x-amz-content-sha256"}, signedRaw: "date;host;x-amz-content-sha256"}
	canon, _ := sigv4CanonicalRequest(req, nil, auth, sigv4EmptySHA256, false)
	sum := sha256.Sum256([]byte(canon))
	key := sigv4SigningKey(sigv4TestSecret, "20130524", "us-east-1", "s3")
	sig := sigv4HMAC(key, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"+hex.EncodeToString(sum[:]))
	h.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature="+hex.EncodeToString(sig))
	a, err := sigv4TestVerifier(sigv4TestTime).Verify(req)
	if err != nil {
		t.Fatal(err)
	}
	if a.amzDate != "20130524T000000Z" {
		t.Errorf("date %s", a.amzDate)
	}
	// The Date header must be signed when it gives the time.
	h.Set("Authorization", strings.Replace(h.Get("Authorization"), "date;", "", 1))
	_, err = sigv4TestVerifier(sigv4TestTime).Verify(req)
	sigv4WantCode(t, err, "AuthorizationHeaderMalformed", "does not list date")
	h.Set("Date", "yesterday")
	_, err = sigv4TestVerifier(sigv4TestTime).Verify(req)
	sigv4WantCode(t, err, "AccessDenied", `"yesterday"`)
}
