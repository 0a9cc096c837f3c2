package s3

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7/pkg/signer"
)

// The chunk signatures of AWS's examples of aws-chunked uploads: 65536
// bytes of 'a', 1024 bytes of 'a', and the final chunk; without and with a
// trailer (x-amz-checksum-crc32c:sOO8/Q==, trailer signature last).
var (
	chunkedExampleSigs        = [3]string{"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"}
	chunkedExampleTrailerSigs = [4]string{"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2", "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7", "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"}
	chunkedExampleData        = bytes.Repeat([]byte("a"), 66560)
)

// chunkedExampleBody is the body of AWS's example without a trailer.
func chunkedExampleBody() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "10000;chunk-signature=%s\r\n%s\r\n", chunkedExampleSigs[0], chunkedExampleData[:65536])
	fmt.Fprintf(&b, "400;chunk-signature=%s\r\n%s\r\n", chunkedExampleSigs[1], chunkedExampleData[65536:])
	fmt.Fprintf(&b, "0;chunk-signature=%s\r\n\r\n", chunkedExampleSigs[2])
	return b.Bytes()
}

// chunkedExampleTrailerBody is the body of AWS's example with a trailer.
func chunkedExampleTrailerBody() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "10000;chunk-signature=%s\r\n%s\r\n", chunkedExampleTrailerSigs[0], chunkedExampleData[:65536])
	fmt.Fprintf(&b, "400;chunk-signature=%s\r\n%s\r\n", chunkedExampleTrailerSigs[1], chunkedExampleData[65536:])
	fmt.Fprintf(&b, "0;chunk-signature=%s\r\n", chunkedExampleTrailerSigs[2])
	fmt.Fprintf(&b, "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:%s\r\n\r\n", chunkedExampleTrailerSigs[3])
	return b.Bytes()
}

// chunkedExampleAuth verifies the request of AWS's example.
func chunkedExampleAuth(t testing.TB, trailer bool) *Auth {
	t.Helper()
	a, err := sigv4TestVerifier(sigv4TestTime).Verify(sigv4ChunkedExampleRequest(trailer))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// chunkedReadAll reads r to its end with reads of n bytes, checking that
// no read returns more than asked.
func chunkedReadAll(t testing.TB, r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		m, err := r.Read(buf)
		if m < 0 || m > n {
			t.Fatalf("Read returned %d of %d", m, n)
		}
		out = append(out, buf[:m]...)
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
	}
}

// TestChunkedAWSExample decodes AWS's example of an aws-chunked upload
// with its three chunk signatures, over reads of many sizes.
func TestChunkedAWSExample(t *testing.T) {
	a := chunkedExampleAuth(t, false)
	for _, n := range []int{1, 7, 4096, 65536, 70000} {
		for _, oneByte := range []bool{false, true} {
			var body io.Reader = bytes.NewReader(chunkedExampleBody())
			if oneByte {
				body = iotest.OneByteReader(body)
			}
			c, err := NewChunkedReader(body, a, int64(len(chunkedExampleData)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := chunkedReadAll(t, c, n)
			if err != nil || !bytes.Equal(got, chunkedExampleData) {
				t.Fatalf("reads of %d: %d bytes, %v", n, len(got), err)
			}
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("Read after the end: %v", err)
			}
			if c.Trailers() != nil {
				t.Errorf("trailers %v", c.Trailers())
			}
		}
	}
}

// TestChunkedAWSTrailerExample decodes AWS's example of an aws-chunked
// upload with a signed trailing checksum, and checks the checksum.
func TestChunkedAWSTrailerExample(t *testing.T) {
	a := chunkedExampleAuth(t, true)
	for _, body := range [][]byte{
		chunkedExampleTrailerBody(),
		// The variants clients send: a CRLF after the final chunk, LF
		// only after the trailers, no final empty line.
		bytes.Replace(chunkedExampleTrailerBody(), []byte("\r\nx-amz-checksum"), []byte("\r\n\r\nx-amz-checksum"), 1),
		bytes.Replace(chunkedExampleTrailerBody(), []byte("sOO8/Q==\r\n"), []byte("sOO8/Q==\n\r\n"), 1),
		bytes.TrimSuffix(chunkedExampleTrailerBody(), []byte("\r\n\r\n")),
	} {
		c, err := NewChunkedReader(bytes.NewReader(body), a, int64(len(chunkedExampleData)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := chunkedReadAll(t, c, 1000)
		if err != nil || !bytes.Equal(got, chunkedExampleData) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		tr := c.Trailers()
		if len(tr) != 1 || tr["x-amz-checksum-crc32c"] != "sOO8/Q==" {
			t.Fatalf("trailers %v", tr)
		}
		h, _ := NewChecksum("crc32c")
		h.Write(got)
		if v := ChecksumValue(h); v != tr["x-amz-checksum-crc32c"] {
			t.Errorf("CRC32C of the data %s, trailer %s", v, tr["x-amz-checksum-crc32c"])
		}
	}
	// The trailer altered.
	body := bytes.Replace(chunkedExampleTrailerBody(), []byte("sOO8/Q=="), []byte("sOO8/Q=0"), 1)
	c, _ := NewChunkedReader(bytes.NewReader(body), a, int64(len(chunkedExampleData)))
	got, err := chunkedReadAll(t, c, 1<<20)
	sigv4WantCode(t, err, "SignatureDoesNotMatch", "trailer signature", "AWS4-HMAC-SHA256-TRAILER")
	if len(got) != len(chunkedExampleData) || c.Trailers() != nil {
		t.Errorf("%d bytes, trailers %v", len(got), c.Trailers())
	}
}

// TestChunkedTrailerSignatureCRT checks the signature of several trailers
// against the AWS Common Runtime's test vector: trailers first:1st,
// second:2nd, third:3rd after the chunks of AWS's example.
func TestChunkedTrailerSignatureCRT(t *testing.T) {
	a := chunkedExampleAuth(t, false)
	a.PayloadHash = sigv4StreamingPayloadTrailer
	a.trailers = []string{"first", "second", "third"}
	body := bytes.TrimSuffix(chunkedExampleBody(), []byte("\r\n"))
	body = append(body, "first:1st\r\nsecond:2nd\r\nthird:3rd\r\nx-amz-trailer-signature:df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c\r\n\r\n"...)
	c, err := NewChunkedReader(bytes.NewReader(body), a, int64(len(chunkedExampleData)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, chunkedExampleData) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if tr := c.Trailers(); len(tr) != 3 || tr["first"] != "1st" || tr["second"] != "2nd" || tr["third"] != "3rd" {
		t.Errorf("trailers %v", tr)
	}
	// In another order, the trailers sign differently.
	body = bytes.Replace(body, []byte("first:1st\r\nsecond:2nd\r\n"), []byte("second:2nd\r\nfirst:1st\r\n"), 1)
	c, _ = NewChunkedReader(bytes.NewReader(body), a, int64(len(chunkedExampleData)))
	_, err = io.ReadAll(c)
	sigv4WantCode(t, err, "SignatureDoesNotMatch")
}

// chunkedSign returns an aws-chunked body of chunks signed with a's
// signing key (or unsigned if a is nil), and trailer lines (with their
// signature appended when signed).
func chunkedSign(a *Auth, chunks [][]byte, trailers ...string) []byte {
	var b bytes.Buffer
	prev := ""
	if a != nil {
		prev = a.seed
	}
	for _, data := range append(chunks, nil) {
		if a == nil {
			fmt.Fprintf(&b, "%x\r\n", len(data))
		} else {
			sum := sha256.Sum256(data)
			prev = hex.EncodeToString(sigv4HMAC(a.signingKey, awsChunkPayloadAlgorithm+"\n"+a.amzDate+"\n"+a.scope+"\n"+prev+"\n"+sigv4EmptySHA256+"\n"+hex.EncodeToString(sum[:])))
			fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", len(data), prev)
		}
		b.Write(data)
		if len(data) > 0 || len(trailers) == 0 {
			b.WriteString("\r\n")
		}
	}
	if len(trailers) == 0 {
		return b.Bytes()
	}
	var canon strings.Builder
	for _, tr := range trailers {
		b.WriteString(tr + "\r\n")
		canon.WriteString(tr + "\n")
	}
	if a != nil {
		sum := sha256.Sum256([]byte(canon.String()))
		sig := hex.EncodeToString(sigv4HMAC(a.signingKey, awsChunkTrailerAlgorithm+"\n"+a.amzDate+"\n"+a.scope+"\n"+prev+"\n"+hex.EncodeToString(sum[:])))
		b.WriteString("x-amz-trailer-signature:" + sig + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestChunkedSignHelper checks the tests' signer against AWS's example.
func TestChunkedSignHelper(t *testing.T) {
	a := chunkedExampleAuth(t, false)
	if got := chunkedSign(a, [][]byte{chunkedExampleData[:65536], chunkedExampleData[65536:]}); !bytes.Equal(got, chunkedExampleBody()) {
		t.Fatal("the tests' signer does not sign AWS's example as AWS does")
	}
	a = chunkedExampleAuth(t, true)
	if got := chunkedSign(a, [][]byte{chunkedExampleData[:65536], chunkedExampleData[65536:]}, "x-amz-checksum-crc32c:sOO8/Q=="); !bytes.Equal(got, chunkedExampleTrailerBody()) {
		t.Fatal("the tests' signer does not sign AWS's trailer example as AWS does")
	}
}

// TestChunkedErrors checks each way an aws-chunked body is refused, and
// that no byte is returned beyond decodedLength or from a chunk whose
// signature fails.
func TestChunkedErrors(t *testing.T) {
	signed := chunkedExampleAuth(t, false)
	trailer := chunkedExampleAuth(t, true)
	unsigned := &Auth{Anonymous: true, PayloadHash: sigv4StreamingUnsignedTrailer, trailers: []string{"x-amz-checksum-crc32"}}
	example := chunkedExampleBody()
	exampleLen := int64(len(chunkedExampleData))
	chunk2 := bytes.Index(example, []byte("400;"))
	final := bytes.Index(example, []byte("0;chunk-signature="+chunkedExampleSigs[2]))
	tamper := func(body []byte, at int, b byte) []byte {
		body = bytes.Clone(body)
		body[at] = b
		return body
	}
	for _, tc := range []struct {
		name   string
		a      *Auth
		body   []byte
		length int64
		code   string
		msg    string
		max    int64 // the most bytes that may be returned
	}{
		{"bad signature in chunk 2", signed, tamper(example, len(example)-100, 'b'), exampleLen, "SignatureDoesNotMatch", "chunk 2", 65536},
		{"bad signature of chunk 1", signed, tamper(example, 30, 'f'), exampleLen, "SignatureDoesNotMatch", "chunk 1", 0},
		{"chunks swapped", signed, append(append(append([]byte{}, example[chunk2:final]...), example[:chunk2]...), example[final:]...), exampleLen, "SignatureDoesNotMatch", "chunk 1", 0},
		{"final chunk dropped", signed, example[:final], exampleLen, "IncompleteBody", "size 0", exampleLen},
		{"truncated in chunk 2", signed, example[:chunk2+500], exampleLen, "IncompleteBody", "in the middle of chunk 2", 65536},
		{"truncated in chunk 1", signed, example[:1000], exampleLen, "IncompleteBody", "chunk 1", 0},
		{"truncated in a header", signed, example[:chunk2+10], exampleLen, "IncompleteBody", "chunk 2's header", 65536},
		{"truncated before a CRLF", signed, example[:chunk2-2], exampleLen, "IncompleteBody", "without its CRLF", 0},
		{"empty", signed, nil, exampleLen, "IncompleteBody", "before its first chunk", 0},
		{"over-long body", signed, example, exampleLen - 1, "IncompleteBody", "more than the 66559 bytes", 65536},
		{"short body", signed, example, exampleLen + 1, "IncompleteBody", "after 66560 decoded bytes", exampleLen},
		{"junk after the final chunk", signed, append(bytes.Clone(example), "junk"...), exampleLen, "InvalidArgument", "after its final chunk", exampleLen},
		{"bad hex size", signed, append([]byte("1g;chunk-signature="+chunkedExampleSigs[0]+"\r\n"), example[6+17+64:]...), exampleLen, "InvalidArgument", "not hexadecimal", 0},
		{"empty size", signed, []byte(";chunk-signature=" + chunkedExampleSigs[0] + "\r\n"), exampleLen, "InvalidArgument", "not hexadecimal", 0},
		{"signed size", signed, []byte("+10;chunk-signature=" + chunkedExampleSigs[0] + "\r\n"), exampleLen, "InvalidArgument", "not hexadecimal", 0},
		{"huge size", signed, []byte("fffffffffffffffffffff;chunk-signature=" + chunkedExampleSigs[0] + "\r\n"), exampleLen, "InvalidArgument", "not hexadecimal", 0},
		{"chunk over 16 MiB", signed, []byte("1000001;chunk-signature=" + chunkedExampleSigs[0] + "\r\n"), 1 << 30, "InvalidArgument", "more than the 16777216", 0},
		{"no chunk signature", signed, []byte("10000\r\n"), exampleLen, "InvalidArgument", "without ;chunk-signature=", 0},
		{"bad chunk signature hex", signed, []byte("10000;chunk-signature=xyz\r\n"), exampleLen, "InvalidArgument", "64 hexadecimal digits", 0},
		{"header without CR", signed, bytes.Replace(example, []byte(chunkedExampleSigs[0]+"\r\n"), []byte(chunkedExampleSigs[0]+"\n"), 1), exampleLen, "InvalidArgument", "CRLF", 0},
		{"data without CRLF", signed, tamper(example, chunk2-2, 'x'), exampleLen, "InvalidArgument", "not CRLF", 0},
		{"header line too long", signed, bytes.Repeat([]byte("0"), 40<<10), exampleLen, "InvalidArgument", "over 4096 bytes", 0},
		{"trailer signature missing", trailer, bytes.Replace(chunkedExampleTrailerBody(), []byte("x-amz-trailer-signature:"+chunkedExampleTrailerSigs[3]+"\r\n"), nil, 1), exampleLen,
			"IncompleteBody", "x-amz-trailer-signature", exampleLen},
		{"trailer after the signature", trailer, append(chunkedExampleTrailerBody(), "x-amz-checksum-crc32:AAAAAA==\r\n"...), exampleLen, "InvalidArgument", "must come last", exampleLen},
		{"declared trailer missing", trailer, bytes.Replace(chunkedExampleTrailerBody(), []byte("x-amz-checksum-crc32c:sOO8/Q==\r\n"), nil, 1), exampleLen, "SignatureDoesNotMatch", "", exampleLen},
		{"unsigned: declared trailer missing", unsigned, chunkedSign(nil, [][]byte{[]byte("hello")}, "x-amz-checksum-sha256:x"), 5, "InvalidRequest", "x-amz-checksum-crc32", 5},
		{"unsigned: junk line in trailers", unsigned, append(chunkedSign(nil, [][]byte{[]byte("hello")}), "junk\r\n"...), 5, "InvalidArgument", `"junk"`, 5},
		{"unsigned: trailer twice", unsigned, chunkedSign(nil, [][]byte{[]byte("hello")}, "x-amz-checksum-crc32:a", "x-amz-checksum-crc32:b"), 5, "InvalidArgument", "twice", 5},
		{"unsigned: trailers too long", unsigned, append(chunkedSign(nil, [][]byte{[]byte("hello")}), chunkedManyTrailers(2000)...), 5, "InvalidArgument", "over 16384 bytes", 5},
		{"unsigned: truncated", unsigned, chunkedSign(nil, [][]byte{[]byte("hello")})[:6], 5, "IncompleteBody", "in the middle of chunk 1", 3},
		{"unsigned: over-long", unsigned, chunkedSign(nil, [][]byte{[]byte("hello"), []byte("world")}, "x-amz-checksum-crc32:a"), 8, "IncompleteBody", "more than the 8 bytes", 5},
		{"unsigned: bad hex", unsigned, []byte("5x\r\nhello\r\n0\r\n\r\n"), 5, "InvalidArgument", "not hexadecimal", 0},
		{"unsigned: data without CRLF", unsigned, []byte("5\r\nhelloX\r\n0\r\n\r\n"), 5, "InvalidArgument", "not CRLF", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChunkedReader(bytes.NewReader(tc.body), tc.a, tc.length)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, n := range []int{1 << 20, 3} {
				c, _ = NewChunkedReader(bytes.NewReader(tc.body), tc.a, tc.length)
				got, err = chunkedReadAll(t, c, n)
				if int64(len(got)) > tc.max || int64(len(got)) > tc.length {
					t.Errorf("reads of %d: %d bytes returned, want at most %d", n, len(got), tc.max)
				}
				if !bytes.Equal(got, chunkedExampleData[:min(len(got), len(chunkedExampleData))]) && tc.a != unsigned {
					t.Errorf("reads of %d: wrong bytes returned", n)
				}
				sigv4WantCode(t, err, tc.code, tc.msg)
				// The error sticks.
				if _, again := c.Read(make([]byte, 10)); again != err {
					t.Errorf("Read after %v: %v", err, again)
				}
				if c.Trailers() != nil {
					t.Errorf("trailers %v after an error", c.Trailers())
				}
			}
		})
	}
}

// chunkedManyTrailers returns n distinct trailer lines.
func chunkedManyTrailers(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "x-t%d:v\r\n", i)
	}
	return b.Bytes()
}

// TestNewChunkedReaderErrors checks the requests NewChunkedReader refuses.
func TestNewChunkedReaderErrors(t *testing.T) {
	signed := chunkedExampleAuth(t, false)
	_, err := NewChunkedReader(nil, signed, -1)
	sigv4WantCode(t, err, "MissingContentLength", "x-amz-decoded-content-length")
	for _, p := range []string{sigv4UnsignedPayload, sigv4EmptySHA256, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"} {
		_, err = NewChunkedReader(nil, &Auth{AccessKey: "a", PayloadHash: p}, 0)
		sigv4WantCode(t, err, "InvalidRequest", p)
	}
	// A signed form without a signing key: an anonymous request.
	_, err = NewChunkedReader(nil, &Auth{Anonymous: true, PayloadHash: sigv4StreamingPayload}, 0)
	sigv4WantCode(t, err, "AccessDenied", sigv4StreamingPayload)
	_, err = NewChunkedReader(nil, nil, 0)
	sigv4WantCode(t, err, "AccessDenied")
}

// TestChunkedUnsigned decodes STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies
// as AWS SDKs send them.
func TestChunkedUnsigned(t *testing.T) {
	a := &Auth{Anonymous: true, PayloadHash: sigv4StreamingUnsignedTrailer, trailers: []string{"x-amz-checksum-crc32"}}
	body := "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
	for _, n := range []int{1, 4, 100} {
		c, err := NewChunkedReader(iotest.HalfReader(strings.NewReader(body)), a, 11)
		if err != nil {
			t.Fatal(err)
		}
		got, err := chunkedReadAll(t, c, n)
		if err != nil || string(got) != "hello world" {
			t.Fatalf("%q, %v", got, err)
		}
		if tr := c.Trailers(); len(tr) != 1 || tr["x-amz-checksum-crc32"] != "DUoRhQ==" {
			t.Errorf("trailers %v", tr)
		}
		h, _ := NewChecksum("CRC32")
		h.Write(got)
		if ChecksumValue(h) != "DUoRhQ==" {
			t.Errorf("CRC32 %s", ChecksumValue(h))
		}
	}
	// An empty payload.
	c, _ := NewChunkedReader(strings.NewReader("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"), a, 0)
	if got, err := io.ReadAll(c); err != nil || len(got) != 0 || c.Trailers()["x-amz-checksum-crc32"] != "AAAAAA==" {
		t.Errorf("%q %v %v", got, err, c.Trailers())
	}
}

// chunkedSHA256Hasher is a SHA-256 for minio-go's streaming signer.
type chunkedSHA256Hasher struct{ hash.Hash }

func (chunkedSHA256Hasher) Close() {}

// TestChunkedMinio decodes bodies that minio-go's streaming signers
// make: signed (StreamingSignV4), signed with a trailer, and unsigned
// with a trailer (SignV4Trailer), of sizes around its 64 KiB chunks.
func TestChunkedMinio(t *testing.T) {
	const ak, sk = "minio-access", "minio-secret"
	v := &Verifier{Creds: Credentials{ak: sk}}
	for _, size := range []int{0, 1, 65535, 65536, 65537, 200000} {
		data := make([]byte, size)
		rand.Read(data)
		crc, _ := NewChecksum("CRC32C")
		crc.Write(data)
		sum := ChecksumValue(crc)
		for _, form := range []string{sigv4StreamingPayload, sigv4StreamingPayloadTrailer, sigv4StreamingUnsignedTrailer} {
			req := sigv4MinioRequest(t, "PUT", "bucket", "dir/ключ+1", nil, data)
			req.Header.Set("X-Amz-Meta-Foo", "bar")
			var trailer http.Header
			if form != sigv4StreamingPayload {
				trailer = http.Header{"X-Amz-Checksum-Crc32c": {sum}}
			}
			switch form {
			case sigv4StreamingUnsignedTrailer:
				req.Header.Set("X-Amz-Content-Sha256", sigv4StreamingUnsignedTrailer)
				req.ContentLength = int64(size)
				req = signer.SignV4Trailer(*req, ak, sk, "", "us-east-1", trailer)
			default:
				req.Trailer = trailer
				req = signer.StreamingSignV4(req, ak, sk, "", "us-east-1", int64(size), time.Now().UTC(), chunkedSHA256Hasher{sha256.New()})
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				t.Fatal(err)
			}
			a, err := v.Verify(sigv4FromHTTP(req))
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", form, size, err)
			}
			if a.PayloadHash != form || !a.Chunked() {
				t.Fatalf("%s: auth %+v", form, a)
			}
			c, err := NewChunkedReader(bytes.NewReader(body), a, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			got, err := chunkedReadAll(t, c, 5000)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s of %d bytes: %d bytes decoded, %v", form, size, len(got), err)
			}
			if trailer != nil && c.Trailers()["x-amz-checksum-crc32c"] != sum {
				t.Errorf("%s of %d bytes: trailers %v, want crc32c %s", form, size, c.Trailers(), sum)
			}
			if size > 0 && form != sigv4StreamingUnsignedTrailer {
				// A byte of data changed on the way fails.
				body[bytes.Index(body, []byte("\r\n"))+2] ^= 1
				c, _ = NewChunkedReader(bytes.NewReader(body), a, int64(size))
				_, err = io.ReadAll(c)
				sigv4WantCode(t, err, "SignatureDoesNotMatch", "chunk 1")
			}
		}
	}
}

// TestChunkedMemory checks that a reader holds one chunk, and that a
// chunk's announced size is not allocated before its bytes arrive.
func TestChunkedMemory(t *testing.T) {
	a := chunkedExampleAuth(t, false)
	const chunk = 1 << 20
	chunks := make([][]byte, 8)
	for i := range chunks {
		chunks[i] = bytes.Repeat([]byte{byte(i)}, chunk)
	}
	c, err := NewChunkedReader(bytes.NewReader(chunkedSign(a, chunks)), a, 8*chunk)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	total := 0
	for {
		n, err := c.Read(buf)
		total += n
		if cap(c.buf) > chunk {
			t.Fatalf("the reader holds %d bytes for chunks of %d", cap(c.buf), chunk)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != 8*chunk {
		t.Errorf("%d bytes", total)
	}
	// A chunk of 16 MiB announced, 10 bytes sent.
	c, _ = NewChunkedReader(strings.NewReader("1000000;chunk-signature="+chunkedExampleSigs[0]+"\r\n0123456789"), a, 1<<30)
	_, err = io.ReadAll(c)
	sigv4WantCode(t, err, "IncompleteBody", "10 of its 16777216 bytes")
	if cap(c.buf) > 64<<10 {
		t.Errorf("%d bytes held for 10 received", cap(c.buf))
	}
}

// TestChecksums checks NewChecksum's algorithms against their check
// values (the CRC catalogue's, of "123456789"), CRC64NVME against
// minio's implementation, and their S3 form.
func TestChecksums(t *testing.T) {
	check := []byte("123456789")
	for _, tc := range []struct {
		algo, want string
	}{
		{"CRC32", "cbf43926"},
		{"crc32c", "e3069283"},
		{"CRC64NVME", "ae8b14860a799888"},
		{"SHA1", "f7c3bc1d808e04732adf679965ccc34ca7ae3441"},
		{"sha256", "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"},
	} {
		h, err := NewChecksum(tc.algo)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(check)
		if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.algo, got, tc.want)
		}
		raw, _ := hex.DecodeString(tc.want)
		if got, want := ChecksumValue(h), base64.StdEncoding.EncodeToString(raw); got != want {
			t.Errorf("%s: value %s, want %s", tc.algo, got, want)
		}
	}
	data := make([]byte, 100000)
	rand.Read(data)
	h, _ := NewChecksum("CRC64NVME")
	h.Write(data)
	var want [8]byte
	binary.BigEndian.PutUint64(want[:], crc64nvme.Checksum(data))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("CRC64NVME %x, minio's %x", h.Sum(nil), want)
	}
	_, err := NewChecksum("MD5")
	sigv4WantCode(t, err, "InvalidArgument", "MD5")
}

// TestChunkedReadError checks that an error of the body's reader, other
// than its end, is returned as it is, in each part of the body.
func TestChunkedReadError(t *testing.T) {
	broken := errors.New("connection reset")
	signed := chunkedExampleAuth(t, false)
	trailer := chunkedExampleAuth(t, true)
	unsigned := &Auth{Anonymous: true, PayloadHash: sigv4StreamingUnsignedTrailer}
	for _, tc := range []struct {
		a    *Auth
		body []byte
	}{
		{signed, chunkedExampleBody()},
		{trailer, chunkedExampleTrailerBody()},
		{unsigned, chunkedSign(nil, [][]byte{[]byte("hello"), []byte("world")}, "x-amz-checksum-crc32:a")},
	} {
		for cut := 0; cut < len(tc.body); cut += 1 + cut/3 {
			body := io.MultiReader(bytes.NewReader(tc.body[:cut]), iotest.ErrReader(broken))
			c, _ := NewChunkedReader(body, tc.a, 66560)
			if tc.a == unsigned {
				c.length = 10
			}
			if _, err := io.ReadAll(c); err != broken {
				t.Fatalf("%s cut at %d: %v", tc.a.PayloadHash, cut, err)
			}
		}
	}
}
