package s3bench

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeS3 is just enough of an S3 server for the load generator: PUT
// (plain or aws-chunked bodies), GET, HEAD and DeleteObjects of one
// bucket, in memory. It checks no signature. corrupt makes every GET
// answer with one byte changed.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	etags   map[string]string
	corrupt bool
	discard string // PUTs of keys with this prefix are not kept
	puts    int
	deletes int
	addr    string
}

func startFake(t testing.TB) *fakeS3 {
	t.Helper()
	f := &fakeS3{objects: map[string][]byte{}, etags: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.addr = ln.Addr().String()
	return f
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if b != bucket {
		http.Error(w, "no such bucket", http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodPut && key != "":
		var body []byte
		var err error
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			body, err = readChunked(r.Body)
		} else {
			body, err = io.ReadAll(r.Body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); dl != "" && dl != strconv.Itoa(len(body)) {
			http.Error(w, "decoded length "+dl+" but "+strconv.Itoa(len(body))+" bytes", http.StatusBadRequest)
			return
		}
		etag := md5hex(body)
		f.mu.Lock()
		if f.discard == "" || !strings.HasPrefix(key, f.discard) {
			f.objects[key], f.etags[key] = body, etag
		}
		f.puts++
		f.mu.Unlock()
		w.Header().Set("ETag", `"`+etag+`"`)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && key != "":
		f.mu.Lock()
		body, ok := f.objects[key]
		etag := f.etags[key]
		corrupt := f.corrupt
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("ETag", `"`+etag+`"`)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		h.Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodGet {
			if corrupt {
				body = bytes.Clone(body)
				body[len(body)/2] ^= 1
			}
			w.Write(body)
		}
	case r.Method == http.MethodPost && r.URL.Query().Has("delete"):
		var req struct {
			Objects []struct {
				Key string `xml:"Key"`
			} `xml:"Object"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		for _, o := range req.Objects {
			delete(f.objects, o.Key)
			delete(f.etags, o.Key)
			f.deletes++
		}
		f.mu.Unlock()
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>`)
	default:
		http.Error(w, "not in the fake", http.StatusNotImplemented)
	}
}

// readChunked decodes an aws-chunked body (signatures not checked).
func readChunked(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var out []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("chunk header: %w", err)
		}
		hexLen, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(hexLen, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("chunk size %q: %w", hexLen, err)
		}
		if n == 0 {
			return out, nil
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, fmt.Errorf("chunk: %w", err)
		}
		out = append(out, chunk[:n]...)
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// fakeTarget fills a fake with objects of p's size and returns a client
// for it.
func fakeTarget(t testing.TB, p *payload, objects int) (*fakeS3, *target) {
	t.Helper()
	f := startFake(t)
	c, tr, err := newClient(f.addr, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	if err := fill(t.Context(), c, p, objects, Unsigned); err != nil {
		t.Fatal(err)
	}
	return f, &target{name: "fake", client: c, tr: tr}
}
