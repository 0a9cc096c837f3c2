package httpx

import (
	"crypto/rand"
	"fmt"
	"io"
)

// Multipart writes a multipart/byteranges body (RFC 9110 §14.6) whose exact
// length is known before the first byte is written, so the response can
// carry a Content-Length. A Multipart is immutable and safe for concurrent
// use; each WriteBody call writes the whole body.
//
// Use it only for two or more ranges: a single range is sent as a plain 206
// with a Content-Range header (RFC 9110 §15.3.7.1).
type Multipart struct {
	ranges      []Range
	contentType string // "" when the part Content-Type line is omitted
	size        int64
	boundary    string
	length      int64
}

// NewMultipart returns a writer for the given ranges (as returned by
// ParseRange, so within [0, size)) of a representation of size bytes whose
// media type is contentType. Each part carries contentType (omitted when
// empty or containing control characters) and its Content-Range. The
// boundary is 26 random base32 characters, so it cannot plausibly occur in
// the body.
func NewMultipart(ranges []Range, contentType string, size int64) *Multipart {
	return newMultipart(ranges, contentType, size, rand.Text())
}

func newMultipart(ranges []Range, contentType string, size int64, boundary string) *Multipart {
	for i := 0; i < len(contentType); i++ {
		if c := contentType[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			contentType = "" // never let a header value inject lines
			break
		}
	}
	m := &Multipart{
		ranges:      append([]Range(nil), ranges...),
		contentType: trimOWS(contentType),
		size:        size,
		boundary:    boundary,
	}
	var hdr []byte
	for i, r := range m.ranges {
		hdr = m.appendPartHeader(hdr[:0], i)
		m.length += int64(len(hdr)) + r.Length
	}
	m.length += int64(len(m.appendClose(hdr[:0])))
	return m
}

// Boundary returns the multipart boundary.
func (m *Multipart) Boundary() string { return m.boundary }

// ContentType returns the Content-Type of the whole response:
// "multipart/byteranges; boundary=...".
func (m *Multipart) ContentType() string {
	return "multipart/byteranges; boundary=" + m.boundary
}

// Len returns the exact number of bytes WriteBody writes.
func (m *Multipart) Len() int64 { return m.length }

// appendPartHeader appends the delimiter and header section of part i.
// Parts after the first start with the CRLF that ends the previous part's
// data (RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it).
func (m *Multipart) appendPartHeader(dst []byte, i int) []byte {
	if i > 0 {
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "--"...)
	dst = append(dst, m.boundary...)
	dst = append(dst, "\r\n"...)
	if m.contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, m.contentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Range: "...)
	dst = AppendContentRange(dst, m.ranges[i], m.size)
	return append(dst, "\r\n\r\n"...)
}

// appendClose appends the close delimiter.
func (m *Multipart) appendClose(dst []byte) []byte {
	dst = append(dst, "\r\n--"...)
	dst = append(dst, m.boundary...)
	return append(dst, "--\r\n"...)
}

// WriteBody writes the multipart body to w, reading each range from body,
// and returns the number of bytes written, which is Len() on success. It
// fails if body ends before a range does (io.ErrUnexpectedEOF). (It is not
// named WriteTo because it is not an io.WriterTo.)
func (m *Multipart) WriteBody(w io.Writer, body io.ReaderAt) (int64, error) {
	var written int64
	hdr := make([]byte, 0, 128)
	buf := make([]byte, 32<<10)
	for i, r := range m.ranges {
		hdr = m.appendPartHeader(hdr[:0], i)
		n, err := w.Write(hdr)
		written += int64(n)
		if err != nil {
			return written, fmt.Errorf("httpx: multipart part %d header: %w", i, err)
		}
		c, err := io.CopyBuffer(w, io.NewSectionReader(body, r.Start, r.Length), buf)
		written += c
		if err != nil {
			return written, fmt.Errorf("httpx: multipart part %d (bytes %d-%d): %w", i, r.Start, r.End(), err)
		}
		if c != r.Length {
			return written, fmt.Errorf("httpx: multipart part %d (bytes %d-%d): body ended after %d bytes: %w",
				i, r.Start, r.End(), c, io.ErrUnexpectedEOF)
		}
	}
	n, err := w.Write(m.appendClose(hdr[:0]))
	written += int64(n)
	if err != nil {
		return written, fmt.Errorf("httpx: multipart close delimiter: %w", err)
	}
	return written, nil
}

// Reader returns a reader of the multipart body that reads each range from
// body as it goes: the body is never held whole, only the part header
// being sent. It reads exactly Len() bytes, or fails with
// io.ErrUnexpectedEOF if body ends before a range does.
func (m *Multipart) Reader(body io.ReaderAt) io.Reader {
	return &multipartReader{m: m, body: body}
}

type multipartReader struct {
	m         *Multipart
	body      io.ReaderAt
	next      int    // the next part whose header is to be made
	hdr       []byte // header bytes not yet read
	off, left int64  // the current part's next body offset and bytes left
	closed    bool   // the close delimiter was made
	err       error
}

func (r *multipartReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if len(r.hdr) > 0 {
			n := copy(p, r.hdr)
			r.hdr = r.hdr[n:]
			return n, nil
		}
		if r.left > 0 {
			if int64(len(p)) > r.left {
				p = p[:r.left]
			}
			n, err := r.body.ReadAt(p, r.off)
			r.off += int64(n)
			r.left -= int64(n)
			if n > 0 {
				return n, nil
			}
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			i := r.next - 1
			rg := r.m.ranges[i]
			r.err = fmt.Errorf("httpx: multipart part %d (bytes %d-%d): %w", i, rg.Start, rg.End(), err)
			return 0, r.err
		}
		switch {
		case r.next < len(r.m.ranges):
			rg := r.m.ranges[r.next]
			r.hdr = r.m.appendPartHeader(r.hdr[:0], r.next)
			r.off, r.left = rg.Start, rg.Length
			r.next++
		case !r.closed:
			r.hdr = r.m.appendClose(r.hdr[:0])
			r.closed = true
		default:
			return 0, io.EOF
		}
	}
}
