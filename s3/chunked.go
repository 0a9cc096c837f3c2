package s3

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"strconv"
	"strings"
)

// Decoding of aws-chunked bodies ("Transferring Payload in Multiple
// Chunks" and "Signature Calculations for Trailing Headers" in the S3
// SigV4 documentation). A signed body is a sequence of
//
//	HEX-SIZE;chunk-signature=SIG\r\n DATA \r\n
//
// ending with a chunk of size 0, each signature chained from the previous
// one, the first from the request's (seed) signature; with -TRAILER,
// trailer lines "name:value\r\n" and "x-amz-trailer-signature:SIG\r\n"
// follow the last chunk. An unsigned body
// (STREAMING-UNSIGNED-PAYLOAD-TRAILER) has "HEX-SIZE\r\n DATA \r\n" chunks,
// "0\r\n", trailer lines and an empty line.

const (
	// awsChunkMaxSize bounds a chunk: a signed chunk is held whole until
	// its signature is checked.
	awsChunkMaxSize = 16 << 20
	// awsChunkMaxLine bounds a chunk header or trailer line.
	awsChunkMaxLine = 4 << 10
	// awsChunkMaxTrailer bounds the trailer section.
	awsChunkMaxTrailer = 16 << 10
	// awsChunkReadBuffer is the size of the reader's buffer of the body.
	awsChunkReadBuffer = 32 << 10

	awsChunkPayloadAlgorithm = "AWS4-HMAC-SHA256-PAYLOAD"
	awsChunkTrailerAlgorithm = "AWS4-HMAC-SHA256-TRAILER"
	awsChunkSignatureExt     = "chunk-signature="
	awsChunkTrailerSignature = "x-amz-trailer-signature"
)

// ChunkedReader reads the decoded payload of an aws-chunked body,
// verifying chunk signatures as it goes. It holds at most one chunk (16
// MiB at most): a signed chunk's bytes are returned only once its
// signature is verified. Errors are *Error, except errors of the
// underlying reader other than its end, which are returned as they are.
type ChunkedReader struct {
	r             *bufio.Reader
	signed        bool // chunks carry chunk-signature
	trailer       bool // trailer lines follow the final chunk
	trailerSigned bool // and end with x-amz-trailer-signature
	key           []byte
	amzDate       string
	scope         string
	prev          string   // the previous signature, lowercase hex
	want          []string // the trailers x-amz-trailer declares
	length        int64    // x-amz-decoded-content-length
	n             int64    // decoded bytes in the chunks so far
	chunk         int      // the number of the current chunk, from 1
	buf           []byte   // signed: the current chunk, verified
	off           int      // signed: how much of buf was returned
	left          int64    // unsigned: bytes of the current chunk still to return
	crlf          bool     // unsigned: the current chunk's CRLF is still to read
	err           error    // sticky; io.EOF once the body ended well
	trailers      map[string]string
}

// NewChunkedReader returns a reader of the decoded payload of an
// aws-chunked body. a is the request's verified authentication, whose
// PayloadHash gives the form (STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or
// STREAMING-UNSIGNED-PAYLOAD-TRAILER); decodedLength is the request's
// x-amz-decoded-content-length, the payload's exact length.
func NewChunkedReader(body io.Reader, a *Auth, decodedLength int64) (*ChunkedReader, error) {
	if a == nil {
		return nil, errorf("AccessDenied", "an aws-chunked body needs an authenticated request")
	}
	if decodedLength < 0 {
		return nil, errorf("MissingContentLength",
			"an aws-chunked body needs x-amz-decoded-content-length: send the length of the decoded payload")
	}
	c := &ChunkedReader{
		r:       bufio.NewReaderSize(body, awsChunkReadBuffer),
		key:     a.signingKey,
		amzDate: a.amzDate,
		scope:   a.scope,
		prev:    a.seed,
		want:    a.trailers,
		length:  decodedLength,
	}
	switch a.PayloadHash {
	case sigv4StreamingPayload:
		c.signed = true
	case sigv4StreamingPayloadTrailer:
		c.signed, c.trailer, c.trailerSigned = true, true, true
	case sigv4StreamingUnsignedTrailer:
		c.trailer = true
	default:
		return nil, errorf("InvalidRequest",
			"x-amz-content-sha256 is %.80q, which is not an aws-chunked form: send %s, %s or %s with an aws-chunked body",
			a.PayloadHash, sigv4StreamingPayload, sigv4StreamingPayloadTrailer, sigv4StreamingUnsignedTrailer)
	}
	if c.signed && (len(c.key) == 0 || c.prev == "") {
		return nil, errorf("AccessDenied", "a signed aws-chunked body (%s) needs a request signed with an access key", a.PayloadHash)
	}
	return c, nil
}

// Read reads decoded payload bytes. It returns io.EOF once the whole body
// was read and verified: its final chunk, its trailers and their
// signature, and a decoded length of exactly decodedLength.
func (c *ChunkedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.err != nil {
			return 0, c.err
		}
		if c.signed && c.off < len(c.buf) {
			n := copy(p, c.buf[c.off:])
			c.off += n
			return n, nil
		}
		if !c.signed && c.left > 0 {
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.r.Read(p)
			c.left -= int64(n)
			switch {
			case err == io.EOF && c.left > 0:
				c.err = c.ended("in the middle of chunk %d", c.chunk)
			case err != nil && err != io.EOF:
				c.err = err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		c.err = c.next()
	}
}

// Trailers returns the body's trailers, lowercase names to values
// (without x-amz-trailer-signature). It is valid once Read returned
// io.EOF; it is nil before, and for a body without trailers.
func (c *ChunkedReader) Trailers() map[string]string {
	if c.err != io.EOF {
		return nil
	}
	return c.trailers
}

// next reads the body up to the next chunk's data: it returns nil when
// there is data to return, io.EOF when the body ended well, and the error
// otherwise.
func (c *ChunkedReader) next() error {
	if c.crlf {
		if err := c.readCRLF(); err != nil {
			return err
		}
		c.crlf = false
	}
	c.chunk++
	line, err := c.readLine()
	if err != nil {
		return err
	}
	size, sig, err := c.parseHeader(line)
	if err != nil {
		return err
	}
	if size > c.length-c.n {
		return errorf("IncompleteBody",
			"chunk %d of the aws-chunked body has %d bytes, making more than the %d bytes x-amz-decoded-content-length gives: send the decoded length in x-amz-decoded-content-length",
			c.chunk, size, c.length)
	}
	c.n += size
	if !c.signed {
		if size == 0 {
			return c.finish()
		}
		c.left, c.crlf = size, true
		return nil
	}
	if err := c.readChunk(int(size)); err != nil {
		return err
	}
	if size > 0 {
		if err := c.readCRLF(); err != nil {
			return err
		}
	}
	data := sha256.Sum256(c.buf)
	sts := awsChunkPayloadAlgorithm + "\n" + c.amzDate + "\n" + c.scope + "\n" + c.prev + "\n" + sigv4EmptySHA256 + "\n" + hex.EncodeToString(data[:])
	want := sigv4HMAC(c.key, sts)
	if !hmac.Equal(want, sig) {
		return errorf("SignatureDoesNotMatch",
			"the signature of chunk %d of the aws-chunked body does not match: the chunk was altered, or signed with another key or after another signature (string to sign %q)",
			c.chunk, sts)
	}
	c.prev = hex.EncodeToString(want)
	c.off = 0
	if size == 0 {
		return c.finish()
	}
	return nil
}

// parseHeader parses a chunk header (without its CRLF): HEX-SIZE, then
// ";chunk-signature=SIG" when signed. Extensions of unsigned chunks are
// ignored.
func (c *ChunkedReader) parseHeader(line string) (int64, []byte, error) {
	hexSize, ext, hasExt := strings.Cut(line, ";")
	size, err := strconv.ParseUint(hexSize, 16, 64)
	if err != nil {
		return 0, nil, errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has the header %.100q, whose size is not hexadecimal: frame the body as HEX-SIZE;chunk-signature=SIG CRLF DATA CRLF",
			c.chunk, line)
	}
	if size > awsChunkMaxSize {
		return 0, nil, errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has %d bytes, more than the %d a chunk may have here: send smaller chunks",
			c.chunk, size, awsChunkMaxSize)
	}
	if !c.signed {
		return int64(size), nil, nil
	}
	sigHex, ok := strings.CutPrefix(ext, awsChunkSignatureExt)
	if !hasExt || !ok {
		return 0, nil, errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has the header %.100q without ;chunk-signature=: a signed body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) signs every chunk",
			c.chunk, line)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return 0, nil, errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has the chunk-signature %.80q, which is not 64 hexadecimal digits", c.chunk, sigHex)
	}
	return int64(size), sig, nil
}

// readLine reads a chunk header line, which must end in CRLF, and returns
// it without the CRLF.
func (c *ChunkedReader) readLine() (string, error) {
	line, err := c.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > awsChunkMaxLine:
		return "", errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has a header line over %d bytes: the framing is broken", c.chunk, awsChunkMaxLine)
	case err == io.EOF && c.chunk == 1 && len(line) == 0:
		return "", c.ended("before its first chunk")
	case err == io.EOF:
		return "", c.ended("before the end of chunk %d's header (after %d chunks): the body must end with a chunk of size 0", c.chunk, c.chunk-1)
	case err != nil:
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", errorf("InvalidArgument",
			"chunk %d of the aws-chunked body has a header that ends in LF without CR: end chunk headers with CRLF", c.chunk)
	}
	return string(line[:len(line)-2]), nil
}

// readCRLF reads the CRLF that ends a chunk's data.
func (c *ChunkedReader) readCRLF() error {
	var b [2]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return c.ended("after the data of chunk %d, without its CRLF", c.chunk)
		}
		return err
	}
	if b != [2]byte{'\r', '\n'} {
		return errorf("InvalidArgument",
			"the data of chunk %d of the aws-chunked body is followed by %q, not CRLF: the chunk's size does not match its data", c.chunk, b[:])
	}
	return nil
}

// readChunk reads size bytes of chunk data into c.buf. The buffer grows
// with the data received, not with the size announced.
func (c *ChunkedReader) readChunk(size int) error {
	buf := c.buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*cap(buf), 64<<10), size))
			copy(grown, buf)
			buf = grown
		}
		m, err := c.r.Read(buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+m]
		if err == io.EOF && len(buf) < size {
			c.buf = buf[:0]
			return c.ended("in the middle of chunk %d (%d of its %d bytes)", c.chunk, len(buf), size)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	c.buf = buf
	return nil
}

// finish reads what follows the final chunk: nothing (or a CRLF), or the
// trailers, which it checks.
func (c *ChunkedReader) finish() error {
	c.buf, c.off = c.buf[:0], 0
	if c.n != c.length {
		return errorf("IncompleteBody",
			"the aws-chunked body ended after %d decoded bytes but x-amz-decoded-content-length is %d: send the whole payload", c.n, c.length)
	}
	if !c.trailer {
		rest, err := io.ReadAll(io.LimitReader(c.r, 3))
		if err != nil {
			return err
		}
		if len(rest) > 0 && string(rest) != "\r\n" {
			return errorf("InvalidArgument",
				"the aws-chunked body goes on after its final chunk (%q…): end the body with the chunk of size 0 and a CRLF", rest)
		}
		return io.EOF
	}
	if err := c.readTrailers(); err != nil {
		return err
	}
	for _, name := range c.want {
		if _, ok := c.trailers[name]; !ok {
			return errorf("InvalidRequest",
				"the trailer %s that x-amz-trailer declares is not in the aws-chunked body: send it after the final chunk", name)
		}
	}
	return io.EOF
}

// readTrailers reads trailer lines, "name:value" each ending in CRLF or
// LF, up to the end of the body; blank lines are skipped. A signed
// trailer section ends with x-amz-trailer-signature, which signs the
// others.
func (c *ChunkedReader) readTrailers() error {
	c.trailers = map[string]string{}
	var canon bytes.Buffer
	sigHex, signedSeen, total := "", false, 0
	for {
		line, err := c.r.ReadSlice('\n')
		total += len(line)
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > awsChunkMaxLine || total > awsChunkMaxTrailer {
			return errorf("InvalidArgument",
				"the trailers of the aws-chunked body are over %d bytes (or a line over %d): send only the declared trailers", awsChunkMaxTrailer, awsChunkMaxLine)
		}
		if err != nil && err != io.EOF {
			return err
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if s != "" {
			if signedSeen {
				return errorf("InvalidArgument",
					"the aws-chunked body goes on after x-amz-trailer-signature (%.60q): the trailer signature must come last", s)
			}
			name, value, ok := strings.Cut(s, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			value = strings.TrimSpace(value)
			if !ok || name == "" || strings.ContainsAny(name, " \t") {
				return errorf("InvalidArgument",
					"the aws-chunked body has %.60q after its final chunk, where a trailer NAME:VALUE is expected", s)
			}
			if name == awsChunkTrailerSignature {
				sigHex, signedSeen = value, true
			} else {
				if _, dup := c.trailers[name]; dup {
					return errorf("InvalidArgument", "the aws-chunked body gives the trailer %s twice: give each trailer once", name)
				}
				c.trailers[name] = value
				canon.WriteString(name + ":" + value + "\n")
			}
		}
		if err == io.EOF {
			break
		}
	}
	if !c.trailerSigned {
		return nil
	}
	if !signedSeen {
		return errorf("IncompleteBody",
			"the aws-chunked body ends without x-amz-trailer-signature: a signed body with trailers (%s) signs its trailers", sigv4StreamingPayloadTrailer)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return errorf("InvalidArgument", "x-amz-trailer-signature %.80q is not 64 hexadecimal digits", sigHex)
	}
	sum := sha256.Sum256(canon.Bytes())
	sts := awsChunkTrailerAlgorithm + "\n" + c.amzDate + "\n" + c.scope + "\n" + c.prev + "\n" + hex.EncodeToString(sum[:])
	want := sigv4HMAC(c.key, sts)
	if !hmac.Equal(want, sig) {
		return errorf("SignatureDoesNotMatch",
			"the trailer signature of the aws-chunked body does not match: the trailers were altered, or signed with another key or after another signature (string to sign %q)", sts)
	}
	c.prev = hex.EncodeToString(want)
	return nil
}

// ended returns the IncompleteBody error of a body that ended early.
func (c *ChunkedReader) ended(format string, args ...any) error {
	return errorf("IncompleteBody", "the aws-chunked body ended "+format+": send the whole body", args...)
}

// awsChunkCRC64NVME is the table of CRC-64/NVME (the reversed form of the
// polynomial 0xad93d23594c935a9, which S3 calls CRC64NVME).
var awsChunkCRC64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// NewChecksum returns a hash of an S3 checksum algorithm: CRC32, CRC32C,
// CRC64NVME, SHA1 or SHA256 (case-insensitive), as x-amz-checksum-* and
// x-amz-sdk-checksum-algorithm name them. Other names are an
// InvalidArgument error.
func NewChecksum(algo string) (hash.Hash, error) {
	switch strings.ToUpper(algo) {
	case "CRC32":
		return crc32.NewIEEE(), nil
	case "CRC32C":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli)), nil
	case "CRC64NVME":
		return crc64.New(awsChunkCRC64NVME), nil
	case "SHA1":
		return sha1.New(), nil
	case "SHA256":
		return sha256.New(), nil
	}
	return nil, errorf("InvalidArgument",
		"the checksum algorithm %.40q is not supported: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256", algo)
}

// ChecksumValue returns the value of h as S3 sends checksums: its sum
// (big-endian for the CRCs), base64-encoded.
func ChecksumValue(h hash.Hash) string {
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
