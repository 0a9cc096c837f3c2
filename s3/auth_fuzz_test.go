package s3

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzParseAuthorization checks that no Authorization header makes the
// parser or Verify panic, that what parses is well formed and parses
// again the same, and that errors are S3 errors.
func FuzzParseAuthorization(f *testing.F) {
	for _, ex := range sigv4AWSExamples() {
		f.Add(ex.authz)
	}
	for _, s := range []string{
		"",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f/20130524/r/s3/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("0", 64),
		"AWS4-HMAC-SHA256 Credential=/20130524/r/s3/aws4_request,SignedHeaders=;,Signature=zz",
		"AWS4-HMAC-SHA256 Credential==,SignedHeaders==,Signature==",
		"AWS4-HMAC-SHA256,,,,",
		"AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
		"AWS4-ECDSA-P256-SHA256 Credential=x",
		"Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
		"AWS4-HMAC-SHA256 Credential=AK/99999999/r/s3/aws4_request,SignedHeaders=Host;HOST,Signature=" + strings.Repeat("F", 64),
		"AWS4-HMAC-SHA256 Credential=AK/20130524/r/s3/aws4_request\x00,SignedHeaders=host\xff,Signature=\t",
	} {
		f.Add(s)
	}
	v := sigv4TestVerifier(sigv4TestTime)
	good := sigv4AWSExamples()[0]
	f.Fuzz(func(t *testing.T, s string) {
		h, err := sigv4ParseAuthorization(s)
		if err != nil {
			if c := sigv4Code(err); c != "AuthorizationHeaderMalformed" && c != "InvalidRequest" {
				t.Fatalf("%q: error %v", s, err)
			}
			if h != nil {
				t.Fatalf("%q: parsed %+v with the error", s, h)
			}
		} else {
			if h.accessKey == "" || !sigv4IsDate(h.date) || h.region == "" || h.service != "s3" || len(h.signature) != 32 || len(h.signedHeaders) == 0 {
				t.Fatalf("%q parses to %+v", s, h)
			}
			for _, n := range h.signedHeaders {
				if n == "" || n != strings.ToLower(n) {
					t.Fatalf("%q: signed header %q", s, n)
				}
			}
			again, err := sigv4ParseAuthorization("AWS4-HMAC-SHA256 Credential=" + h.accessKey + "/" + h.scope() +
				", SignedHeaders=" + h.signedRaw + ", Signature=" + hex.EncodeToString(h.signature))
			if err != nil || again.accessKey != h.accessKey || again.scope() != h.scope() ||
				again.signedRaw != h.signedRaw || !bytes.Equal(again.signature, h.signature) {
				t.Fatalf("%q parses to %+v, which formatted parses to %+v, %v", s, h, again, err)
			}
		}
		ex := good
		ex.authz = s
		a, err := v.Verify(ex.request())
		if err == nil {
			// Only the signature of the example verifies.
			if h == nil || hex.EncodeToString(h.signature) != "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41" || a.AccessKey != sigv4TestAccessKey {
				t.Fatalf("%q verifies: %+v", s, a)
			}
		} else if sigv4Code(err) == "" {
			t.Fatalf("%q: Verify's error %v is not an S3 error", s, err)
		}
	})
}

// chunkedFuzzAuth returns the Auth of a body form for FuzzChunkedReader:
// AWS's example's signing key and seed for the signed forms.
func chunkedFuzzAuth(form uint8) *Auth {
	a := &Auth{
		AccessKey:   sigv4TestAccessKey,
		PayloadHash: sigv4StreamingPayload,
		signingKey:  sigv4SigningKey(sigv4TestSecret, "20130524", "us-east-1", "s3"),
		scope:       "20130524/us-east-1/s3/aws4_request",
		amzDate:     "20130524T000000Z",
		seed:        sigv4ChunkedExampleSeed(false),
	}
	switch form % 3 {
	case 1:
		a.PayloadHash = sigv4StreamingPayloadTrailer
		a.seed = sigv4ChunkedExampleSeed(true)
		a.trailers = []string{"x-amz-checksum-crc32c"}
	case 2:
		a = &Auth{Anonymous: true, PayloadHash: sigv4StreamingUnsignedTrailer, trailers: []string{"x-amz-checksum-crc32"}}
	}
	return a
}

// FuzzChunkedReader checks that no body makes the reader panic or return
// more than decodedLength bytes, that it ends with io.EOF only after
// exactly decodedLength bytes, and that its errors are S3 errors.
func FuzzChunkedReader(f *testing.F) {
	hello := [][]byte{[]byte("hello "), []byte("world")}
	f.Add(chunkedSign(chunkedFuzzAuth(0), hello), uint8(0), int64(11))
	f.Add(chunkedSign(chunkedFuzzAuth(1), hello, "x-amz-checksum-crc32c:yZRlqg=="), uint8(1), int64(11))
	f.Add(chunkedSign(nil, hello, "x-amz-checksum-crc32:DUoRhQ=="), uint8(2), int64(11))
	f.Add(chunkedSign(nil, nil, "x-amz-checksum-crc32:AAAAAA=="), uint8(2), int64(0))
	f.Add(chunkedSign(chunkedFuzzAuth(0), nil), uint8(0), int64(0))
	// (AWS's 65 KiB examples are left to the unit tests: the fuzzer
	// spends its time minimizing inputs that large.)
	f.Add(chunkedSign(chunkedFuzzAuth(1), [][]byte{[]byte("a"), []byte("b")}, "x-amz-checksum-crc32c:x", "other:y"), uint8(1), int64(2))
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(2), int64(5))
	f.Add([]byte("ffffffff;chunk-signature=00\r\n"), uint8(0), int64(1<<40))
	f.Add([]byte("0\r\n\n\r\nx:y\nx-amz-checksum-crc32:a\r\n\r\n\r\n"), uint8(2), int64(0))
	f.Add([]byte(""), uint8(1), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, form uint8, length int64) {
		a := chunkedFuzzAuth(form)
		c, err := NewChunkedReader(bytes.NewReader(body), a, length)
		if length < 0 {
			if sigv4Code(err) != "MissingContentLength" {
				t.Fatalf("decodedLength %d: %v", length, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1+len(body)%5000)
		var total int64
		for zero := 0; ; {
			n, err := c.Read(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("Read returned %d of %d", n, len(buf))
			}
			total += int64(n)
			if total > length {
				t.Fatalf("%d bytes returned, more than decodedLength %d", total, length)
			}
			if errors.Is(err, io.EOF) {
				if total != length {
					t.Fatalf("io.EOF after %d bytes of %d", total, length)
				}
				for _, name := range a.trailers {
					if _, ok := c.Trailers()[name]; !ok {
						t.Fatalf("the declared trailer %s is missing: trailers %v", name, c.Trailers())
					}
				}
				return
			}
			if err != nil {
				if sigv4Code(err) == "" {
					t.Fatalf("error %v is not an S3 error", err)
				}
				if c.Trailers() != nil {
					t.Fatalf("trailers %v after %v", c.Trailers(), err)
				}
				return
			}
			if n == 0 {
				if zero++; zero > 100 {
					t.Fatal("Read makes no progress")
				}
			}
		}
	})
}
