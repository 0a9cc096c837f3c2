package httpx

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
)

func TestMultipartGolden(t *testing.T) {
	body := []byte("0123456789abcdefghij")
	m := newMultipart([]Range{{0, 3}, {15, 5}}, "text/plain", 20, "BOUND")
	want := "--BOUND\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Range: bytes 0-2/20\r\n" +
		"\r\n" +
		"012" +
		"\r\n--BOUND\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Range: bytes 15-19/20\r\n" +
		"\r\n" +
		"fghij" +
		"\r\n--BOUND--\r\n"
	var buf bytes.Buffer
	n, err := m.WriteBody(&buf, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("body:\n%q\nwant\n%q", buf.String(), want)
	}
	if n != int64(buf.Len()) || m.Len() != n {
		t.Errorf("WriteBody = %d, Len = %d, wrote %d", n, m.Len(), buf.Len())
	}
	if got := m.ContentType(); got != "multipart/byteranges; boundary=BOUND" {
		t.Errorf("ContentType = %q", got)
	}
}

func TestMultipartRoundTrip(t *testing.T) {
	body := make([]byte, 100_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	size := int64(len(body))
	tests := []struct {
		h, ctype string
	}{
		{"bytes=0-0,-1", "application/pdf"},
		{"bytes=500-999,7000-7999", "text/html; charset=utf-8"},
		{"bytes=-40000,0-39999,45000-45010", "video/mp4"}, // parts larger than the copy buffer
		{"bytes=1-1,3-3,5-5,7-7,9-9", ""},
		{"bytes=10-20,30-40", "text/plain\r\nX-Injected: 1"}, // content type dropped
	}
	for _, tt := range tests {
		ranges, err := ParseRange(tt.h, size)
		if err != nil || len(ranges) < 2 {
			t.Fatalf("ParseRange(%q) = %v, %v", tt.h, ranges, err)
		}
		m := NewMultipart(ranges, tt.ctype, size)
		if len(m.Boundary()) < 20 {
			t.Errorf("boundary %q too short", m.Boundary())
		}
		var buf bytes.Buffer
		n, err := m.WriteBody(&buf, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%q: WriteBody: %v", tt.h, err)
		}
		if n != m.Len() || int64(buf.Len()) != m.Len() {
			t.Errorf("%q: Len %d, WriteBody returned %d, wrote %d", tt.h, m.Len(), n, buf.Len())
		}
		mt, params, err := mime.ParseMediaType(m.ContentType())
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("%q: ContentType %q: %v", tt.h, m.ContentType(), err)
		}
		mr := multipart.NewReader(&buf, params["boundary"])
		for i, r := range ranges {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("%q part %d: %v", tt.h, i, err)
			}
			wantCT := tt.ctype
			if strings.ContainsAny(wantCT, "\r\n") {
				wantCT = ""
			}
			if got := p.Header.Get("Content-Type"); got != wantCT {
				t.Errorf("%q part %d: Content-Type %q, want %q", tt.h, i, got, wantCT)
			}
			if got, want := p.Header.Get("Content-Range"), ContentRange(r, size); got != want {
				t.Errorf("%q part %d: Content-Range %q, want %q", tt.h, i, got, want)
			}
			if len(p.Header) > 2 {
				t.Errorf("%q part %d: unexpected headers %v", tt.h, i, p.Header)
			}
			got, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body[r.Start:r.Start+r.Length]) {
				t.Errorf("%q part %d: %d bytes differ from body[%d:%d]", tt.h, i, len(got), r.Start, r.Start+r.Length)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("%q: after last part: %v, want EOF", tt.h, err)
		}
	}
}

func TestMultipartShortBody(t *testing.T) {
	m := NewMultipart([]Range{{0, 2}, {8, 4}}, "text/plain", 12)
	n, err := m.WriteBody(io.Discard, strings.NewReader("0123456789")) // 2 bytes short
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("WriteBody = %d, %v; want ErrUnexpectedEOF", n, err)
	}
	if !strings.Contains(err.Error(), "bytes 8-11") {
		t.Errorf("error %q does not name the range", err)
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk on fire")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestMultipartWriteError(t *testing.T) {
	body := strings.NewReader(strings.Repeat("x", 100))
	m := NewMultipart([]Range{{0, 10}, {50, 10}}, "text/plain", 100)
	for after := 0; after < int(m.Len()); after += 7 {
		n, err := m.WriteBody(&failWriter{after: after}, body)
		if err == nil || n != int64(after) {
			t.Fatalf("fail after %d: WriteBody = %d, %v", after, n, err)
		}
	}
}

// TestMultipartReader: Reader streams the same bytes WriteBody writes,
// whatever the read sizes, and fails on a body shorter than a range.
func TestMultipartReader(t *testing.T) {
	body := make([]byte, 100_000)
	for i := range body {
		body[i] = byte(i * 13)
	}
	for _, h := range []string{"bytes=0-0,-1", "bytes=-40000,0-39999,45000-45010", "bytes=1-1,3-3,5-5,7-7,9-9", "bytes=0-,0-"} {
		ranges, err := ParseRange(h, int64(len(body)))
		if err != nil {
			t.Fatal(h, err)
		}
		m := NewMultipart(ranges, "application/octet-stream", int64(len(body)))
		var want bytes.Buffer
		if _, err := m.WriteBody(&want, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		for _, bufSize := range []int{1, 7, 4096, 1 << 20} {
			var got bytes.Buffer
			n, err := io.CopyBuffer(&got, struct{ io.Reader }{m.Reader(bytes.NewReader(body))}, make([]byte, bufSize))
			if err != nil || n != m.Len() || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s, reads of %d: %d bytes (%v), Len %d, same as WriteBody %v", h, bufSize, n, err, m.Len(), bytes.Equal(got.Bytes(), want.Bytes()))
			}
		}
	}
	ranges, _ := ParseRange("bytes=0-9,90-99", 100)
	m := NewMultipart(ranges, "", 100)
	if _, err := io.ReadAll(m.Reader(bytes.NewReader(body[:95]))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a short body: %v, want io.ErrUnexpectedEOF", err)
	}
}
