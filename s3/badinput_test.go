package s3

// Bad input and security: malformed XML, truncated and overlong bodies,
// digests, streaming signatures, keys that are not paths of the
// namespace, symlinks planted in it, oversized headers, unsigned and badly
// signed requests, a flood of bogus requests, ranges and conditional GETs.
// Every case checks the exact S3 error and status, that nothing was
// written (the whole tree under the namespace root is compared), and that
// the server still serves a normal request afterwards.
//
// Helpers here are prefixed bi (bad input) to keep clear of other tests'
// names.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7/pkg/signer"
	"golang.org/x/sys/unix"

	"engine/burstbuffer"
)

const (
	biBucket   = "bad"
	biKeep     = "keep.txt"
	biKeepData = "keep me: the control object of the bad-input tests"
)

// biResp is a response, its body read.
type biResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r biResp) String() string {
	b := r.Body
	if len(b) > 400 {
		b = append(b[:400:400], "…"...)
	}
	return fmt.Sprintf("%d %q", r.Status, b)
}

// biErrorBody is an S3 XML error body.
type biErrorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource"`
	RequestID string   `xml:"RequestId"`
}

// biS3Error parses r as an S3 XML error: application/xml, an <Error> with
// a Code, a Message and a RequestId, and a status that is the code's.
// (biRequestID checks the x-amz-request-id header.)
func biS3Error(r biResp) (biErrorBody, error) {
	var e biErrorBody
	if ct := r.Header.Get("Content-Type"); ct != "application/xml" {
		return e, fmt.Errorf("Content-Type %q, not application/xml (%s)", ct, r)
	}
	if err := xml.Unmarshal(r.Body, &e); err != nil {
		return e, fmt.Errorf("the body is no S3 XML error: %v (%s)", err, r)
	}
	if e.Code == "" || e.Message == "" || e.RequestID == "" {
		return e, fmt.Errorf("the error lacks Code, Message or RequestId (%s)", r)
	}
	if st, ok := errorStatus[e.Code]; !ok || st != r.Status {
		return e, fmt.Errorf("status %d for %s, whose status is %d", r.Status, e.Code, st)
	}
	return e, nil
}

// biWantError fails t unless r is the S3 error code with status (for a
// HEAD, the status and no body).
func biWantError(t testing.TB, what string, r biResp, head bool, code string, status int) {
	t.Helper()
	if err := biCheckError(r, head, code, status); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// biCheckError is biWantError's check.
func biCheckError(r biResp, head bool, code string, status int) error {
	if head {
		if r.Status != status || len(r.Body) != 0 {
			return fmt.Errorf("%s, want %d (%s) and no body", r, status, code)
		}
		return nil
	}
	if r.Status != status {
		return fmt.Errorf("%s, want %d %s", r, status, code)
	}
	e, err := biS3Error(r)
	if err != nil {
		return err
	}
	if e.Code != code {
		return fmt.Errorf("%s (%s), want %s", e.Code, e.Message, code)
	}
	return biRequestID(r, e)
}

// biRequestID checks that an S3 error response has the x-amz-request-id
// header of its RequestId, as every S3 response has.
func biRequestID(r biResp, e biErrorBody) error {
	if id := r.Header.Get("x-amz-request-id"); id != e.RequestID {
		return fmt.Errorf("x-amz-request-id %q, RequestId %q: an S3 response has the header", id, e.RequestID)
	}
	return nil
}

// biWantStatus fails t unless r has status.
func biWantStatus(t testing.TB, what string, r biResp, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: %s, want %d", what, r, status)
	}
}

// biNew returns a request for target, the request-URI as on the wire
// (escaped path, query), with body.
func (ts *testServer) biNew(t testing.TB, method, target string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+ts.addr+target, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return req
}

// biSign signs req with the test credentials: x-amz-content-sha256 is the
// body's SHA-256 unless set. minio-go's SignV4 signs the path as
// s3utils.EncodePath(URL.Path), which turns bytes that are not UTF-8 into
// U+FFFD: such paths are signed with biSignV4At instead.
func biSign(req *http.Request, body []byte) *http.Request {
	return biSignWith(req, body, testAK, testSK)
}

func biSignWith(req *http.Request, body []byte, ak, sk string) *http.Request {
	if req.Header.Get("X-Amz-Content-Sha256") == "" {
		sum := sha256.Sum256(body)
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	}
	if !utf8.ValidString(req.URL.Path) {
		biSignV4At(req, ak, sk, time.Now())
		return req
	}
	return signer.SignV4(*req, ak, sk, "", "us-east-1")
}

// biSigned is a signed request for target with body.
func (ts *testServer) biSigned(t testing.TB, method, target string, body []byte, hdr ...string) *http.Request {
	t.Helper()
	req := ts.biNew(t, method, target, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return biSign(req, body)
}

// biSignV4At signs req as of time at (Signature Version 4, header form,
// region us-east-1): an independent signer for what minio-go cannot sign
// (paths that are not UTF-8, a clock of our choosing). It signs host and
// every header req has.
func biSignV4At(req *http.Request, ak, sk string, at time.Time) {
	at = at.UTC()
	amzDate, day := at.Format("20060102T150405Z"), at.Format("20060102")
	req.Header.Set("X-Amz-Date", amzDate)
	if req.Header.Get("X-Amz-Content-Sha256") == "" {
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	}
	enc := func(s string, slash bool) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 || slash && c == '/' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	type kv struct{ k, v string }
	var params []kv
	q, _ := url.ParseQuery(req.URL.RawQuery)
	for k, vs := range q {
		for _, v := range vs {
			params = append(params, kv{enc(k, false), enc(v, false)})
		}
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var cq []string
	for _, p := range params {
		cq = append(cq, p.k+"="+p.v)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	vals := map[string]string{"host": host}
	names := []string{"host"}
	for k, vs := range req.Header {
		lk := strings.ToLower(k)
		if lk == "authorization" || lk == "host" {
			continue
		}
		var tv []string
		for _, v := range vs {
			tv = append(tv, strings.Join(strings.Fields(v), " "))
		}
		names = append(names, lk)
		vals[lk] = strings.Join(tv, ",")
	}
	sort.Strings(names)
	var ch strings.Builder
	for _, n := range names {
		ch.WriteString(n + ":" + vals[n] + "\n")
	}
	signed := strings.Join(names, ";")
	canon := strings.Join([]string{req.Method, enc(req.URL.Path, true), strings.Join(cq, "&"), ch.String(), signed,
		req.Header.Get("X-Amz-Content-Sha256")}, "\n")
	sum := sha256.Sum256([]byte(canon))
	scope := day + "/us-east-1/s3/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+sk), day), "us-east-1"), "s3"), "aws4_request")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+ak+"/"+scope+", SignedHeaders="+signed+
		", Signature="+hex.EncodeToString(mac(key, sts)))
}

// biClient sends requests on fresh connections (no keep-alive, so no
// connection outlives a test), without compression or redirects.
var biClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// biDo sends req and reads the response.
func biDo(t testing.TB, req *http.Request) biResp {
	t.Helper()
	resp, err := biClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", req.Method, req.URL.RequestURI(), err)
	}
	return biResp{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// biWire is req as sent on the wire (its body read).
func biWire(t testing.TB, req *http.Request) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// biConn is a raw connection to the server.
type biConn struct {
	net.Conn
	br *bufio.Reader
}

func (ts *testServer) biDial(t testing.TB) *biConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &biConn{Conn: c, br: bufio.NewReader(c)}
}

// read reads one response to a request of method (within 15 s).
func (c *biConn) read(method string) (biResp, error) {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return biResp{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return biResp{}, err
	}
	return biResp{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// biTree lists everything under root: each path with its kind, a link's
// target, a file's size and MD5. With data set, files are the burst
// buffer's, whose backing files change as they drain: a file with S3
// metadata (an object, a part) is its logical size and the metadata.
func biTree(t testing.TB, root string, data biSizer) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			f, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			defer f.Close()
			if data != nil {
				if meta, ok := biXattr(f, metaXattr); ok {
					fi, err := f.Stat()
					if err != nil {
						return err
					}
					ref, err := burstbuffer.RefOf(f)
					if err != nil {
						return err
					}
					out[rel] = fmt.Sprintf("object %d %s", data.Size(ref, fi.Size()), meta)
					return nil
				}
			}
			b, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %d %s", len(b), md5hex(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// biSizer gives the logical size of a file of the burst buffer.
type biSizer interface {
	Size(ref burstbuffer.FileRef, backingSize int64) int64
}

// biXattr returns the extended attribute name of f (up to 64 KiB).
func biXattr(f *os.File, name string) (string, bool) {
	buf := make([]byte, 64<<10)
	n, err := unix.Fgetxattr(int(f.Fd()), name, buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// biTreeDiff describes how after differs from before ("" if not).
func biTreeDiff(before, after map[string]string) string {
	var d []string
	for p, v := range after {
		if w, ok := before[p]; !ok {
			d = append(d, "+ "+p+" ("+v+")")
		} else if w != v {
			d = append(d, "~ "+p+" ("+w+" → "+v+")")
		}
	}
	for p, v := range before {
		if _, ok := after[p]; !ok {
			d = append(d, "- "+p+" ("+v+")")
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// biSameTree fails t if the tree under ts.root is not before, waiting up
// to 5 s for requests still being served to finish.
func (ts *testServer) biSameTree(t testing.TB, what string, before map[string]string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		diff := biTreeDiff(before, biTree(t, ts.root, ts.bb))
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the namespace changed:\n%s", what, diff)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// biChanged fails t if the tree under ts.root is not before, now; it
// returns the tree, so that one change is reported once.
func (ts *testServer) biChanged(t testing.TB, what string, before map[string]string) map[string]string {
	t.Helper()
	now := biTree(t, ts.root, ts.bb)
	if diff := biTreeDiff(before, now); diff != "" {
		t.Errorf("%s: the namespace changed:\n%s", what, diff)
	}
	return now
}

// biNoTemp fails t if an upload left a file in .engine-s3/tmp.
func (ts *testServer) biNoTemp(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(ts.root, ts.st.tmp))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in .engine-s3/tmp: %s", e.Name())
	}
}

// biAlive fails t unless the server serves a signed GET of the control
// object.
func (ts *testServer) biAlive(t testing.TB) {
	t.Helper()
	r := biDo(t, ts.biSigned(t, "GET", "/"+biBucket+"/"+biKeep, nil))
	if r.Status != 200 || string(r.Body) != biKeepData {
		t.Fatalf("the server no longer serves a GET: %s", r)
	}
}

// biPrepare makes the bucket "bad" with the control object keep.txt.
func (ts *testServer) biPrepare(t testing.TB) {
	t.Helper()
	if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket, nil)); r.Status != 200 {
		t.Fatalf("create bucket: %s", r)
	}
	if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/"+biKeep, []byte(biKeepData))); r.Status != 200 {
		t.Fatalf("put %s: %s", biKeep, r)
	}
}

// biSetup starts a server with the bucket "bad" and its control object.
func biSetup(t testing.TB) *testServer {
	t.Helper()
	ts := startServer(t)
	ts.biPrepare(t)
	return ts
}

// biCreateUpload starts a multipart upload of key and uploads part 1
// (data); it returns the upload id and the part's ETag.
func (ts *testServer) biCreateUpload(t testing.TB, key string, data []byte) (string, string) {
	t.Helper()
	r := biDo(t, ts.biSigned(t, "POST", "/"+biBucket+"/"+key+"?uploads", nil))
	var res struct {
		UploadID string `xml:"UploadId"`
	}
	if r.Status != 200 || xml.Unmarshal(r.Body, &res) != nil || res.UploadID == "" {
		t.Fatalf("create upload of %s: %s", key, r)
	}
	r = biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/"+key+"?partNumber=1&uploadId="+res.UploadID, data))
	if r.Status != 200 || r.Header.Get("ETag") == "" {
		t.Fatalf("upload part 1 of %s: %s", key, r)
	}
	return res.UploadID, r.Header.Get("ETag")
}

// TestBadInputMalformedXML: bodies of DeleteObjects,
// CompleteMultipartUpload and CreateBucket that are not the XML asked for
// (not XML, not well-formed, another root element, junk after the root)
// are MalformedXML 400, and nothing is deleted, completed or created.
func TestBadInputMalformedXML(t *testing.T) {
	ts := biSetup(t)
	const part = "the one and only part"
	put := func(key, data string) {
		t.Helper()
		if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/"+key, []byte(data))); r.Status != 200 {
			t.Fatalf("put %s: %s", key, r)
		}
	}
	put("victim", "deleted only by a DeleteObjects that parses")
	id, etag := ts.biCreateUpload(t, "mp", []byte(part))
	before := biTree(t, ts.root, ts.bb)
	// restore undoes what a body wrongly accepted did.
	restore := func(root string) {
		switch root {
		case "Delete":
			put("victim", "deleted only by a DeleteObjects that parses")
		case "CompleteMultipartUpload":
			biDo(t, ts.biSigned(t, "DELETE", "/"+biBucket+"/mp", nil))
			biDo(t, ts.biSigned(t, "DELETE", "/"+biBucket+"/mp?uploadId="+id, nil))
			id, _ = ts.biCreateUpload(t, "mp", []byte(part))
		default:
			biDo(t, ts.biSigned(t, "DELETE", "/newbucket", nil))
		}
		before = biTree(t, ts.root, ts.bb)
	}
	deep := strings.Repeat("<Object>", 20000)
	for _, root := range []string{"Delete", "CompleteMultipartUpload", "CreateBucketConfiguration"} {
		var good string
		switch root {
		case "Delete":
			good = "<Delete><Object><Key>victim</Key></Object></Delete>"
		case "CompleteMultipartUpload":
			good = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" + etag + "</ETag></Part></CompleteMultipartUpload>"
		default:
			good = "<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>"
		}
		bodies := map[string]string{
			"not XML":         "this is not XML at all",
			"lone <":          "<",
			"binary":          "\x00\xff\xfe\x01<\x00",
			"unclosed root":   "<" + root + ">",
			"truncated":       good[:len(good)-5],
			"no closing >":    good[:len(good)-1],
			"wrong root":      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Foo/>",
			"mismatched end":  strings.Replace(good, "</"+root+">", "</Wrong>", 1),
			"undefined ent":   "<" + root + ">&xxe;</" + root + ">",
			"doctype ent":     "<!DOCTYPE d [<!ENTITY x \"" + strings.Repeat("a", 100) + "\">]><" + root + ">&x;</" + root + ">",
			"deep, unclosed":  "<" + root + ">" + deep,
			"bad utf-8":       "<" + root + "><Object><Key>\xff\xfe</Key></Object></" + root + ">",
			"unclosed inside": strings.Replace(good, "</"+root+">", "", 1) + "<Object></" + root + ">",
			// Not well-formed XML either: a document has one root element.
			"junk after the root": good + "junk",
			"two roots":           good + good,
		}
		switch root {
		case "Delete":
			bodies["no object"] = "<Delete></Delete>"
			bodies["no object, quiet"] = "<Delete><Quiet>true</Quiet></Delete>"
			bodies["empty"] = ""
		case "CompleteMultipartUpload":
			bodies["empty"] = ""
			bodies["no part"] = "<CompleteMultipartUpload></CompleteMultipartUpload>"
		}
		names := make([]string, 0, len(bodies))
		for n := range bodies {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			body := []byte(bodies[name])
			var req *http.Request
			switch root {
			case "Delete":
				sum := md5.Sum(body)
				req = ts.biSigned(t, "POST", "/"+biBucket+"?delete", body, "Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
			case "CompleteMultipartUpload":
				req = ts.biSigned(t, "POST", "/"+biBucket+"/mp?uploadId="+id, body)
			default:
				req = ts.biSigned(t, "PUT", "/newbucket", body)
			}
			what := root + " " + name
			biWantError(t, what, biDo(t, req), false, "MalformedXML", 400)
			if d := biTreeDiff(before, biTree(t, ts.root, ts.bb)); d != "" {
				t.Errorf("%s: the namespace changed:\n%s", what, d)
				restore(root)
			}
		}
	}
	// The upload is still there, whole.
	r := biDo(t, ts.biSigned(t, "GET", "/"+biBucket+"/mp?uploadId="+id, nil))
	if r.Status != 200 || !bytes.Contains(r.Body, []byte("<PartNumber>1</PartNumber>")) {
		t.Errorf("list parts after the bad completions: %s", r)
	}
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// biSignedWire is a signed request for target whose Content-Length is
// contentLength while the signed payload hash is that of full.
func (ts *testServer) biSignedWire(t testing.TB, method, target string, full []byte) (head []byte) {
	t.Helper()
	req := ts.biSigned(t, method, target, full)
	w := biWire(t, req)
	i := bytes.Index(w, []byte("\r\n\r\n"))
	return w[:i+4]
}

// TestBadInputTruncatedBody: a PUT whose connection closes before its
// Content-Length arrived leaves nothing; a body shorter than
// Content-Length is IncompleteBody; bytes after Content-Length are not
// the object's, but the next request's, and a body the server did not
// read is never taken as a request.
func TestBadInputTruncatedBody(t *testing.T) {
	ts := biSetup(t)
	before := biTree(t, ts.root, ts.bb)
	for _, sz := range []struct{ size, sent int }{{1000, 10}, {300 << 10, 100 << 10}} {
		size, sent := sz.size, sz.sent
		full := randBytes(int64(size), size)
		// The connection closes before the body is whole.
		c := ts.biDial(t)
		c.Write(ts.biSignedWire(t, "PUT", "/"+biBucket+"/trunc", full))
		c.Write(full[:sent])
		c.Close()
		ts.biSameTree(t, fmt.Sprintf("closed after %d of %d bytes", sent, size), before)

		// The client sends less and half-closes: the body is incomplete.
		c = ts.biDial(t)
		c.Write(ts.biSignedWire(t, "PUT", "/"+biBucket+"/trunc", full))
		c.Write(full[:sent])
		c.Conn.(*net.TCPConn).CloseWrite()
		r, err := c.read("PUT")
		if err != nil {
			t.Errorf("%d of %d bytes, then end of stream: no response: %v", sent, size, err)
		} else {
			biWantError(t, fmt.Sprintf("%d of %d bytes, then end of stream", sent, size), r, false, "IncompleteBody", 400)
		}
		c.Close()
		ts.biSameTree(t, fmt.Sprintf("%d of %d bytes", sent, size), before)
	}
	ts.biNoTemp(t)

	// A body longer than Content-Length: the bytes after it are the next
	// request (here a GET of the object just put).
	c := ts.biDial(t)
	put := ts.biSigned(t, "PUT", "/"+biBucket+"/long", []byte("hello"))
	get := ts.biSigned(t, "GET", "/"+biBucket+"/long", nil)
	c.Write(append(biWire(t, put), biWire(t, get)...))
	if r, err := c.read("PUT"); err != nil || r.Status != 200 || r.Header.Get("ETag") != `"`+md5hex([]byte("hello"))+`"` {
		t.Fatalf("put of 5 bytes followed by a request: %s %v", r, err)
	}
	if r, err := c.read("GET"); err != nil || r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("the request after the body: %s %v", r, err)
	}
	// The bytes after Content-Length are garbage: the object is still the
	// 5 bytes announced; the garbage gets an error or the connection ends.
	c = ts.biDial(t)
	put = ts.biSigned(t, "PUT", "/"+biBucket+"/long", []byte("world"))
	c.Write(append(biWire(t, put), "EXTRA BYTES NOT OF THE BODY\r\n\r\n"...))
	if r, err := c.read("PUT"); err != nil || r.Status != 200 {
		t.Fatalf("put of 5 bytes followed by garbage: %s %v", r, err)
	}
	if r, err := c.read("GET"); err == nil {
		if e, err := biS3Error(r); err != nil || r.Status < 400 || r.Status >= 500 {
			t.Errorf("garbage after a body: %s (%v), want an S3 error 4xx", r, err)
		} else if err := biRequestID(r, e); err != nil {
			t.Errorf("garbage after a body: %v", err)
		}
	}
	if r := biDo(t, ts.biSigned(t, "GET", "/"+biBucket+"/long", nil)); r.Status != 200 || string(r.Body) != "world" {
		t.Errorf("the object is %s, want the 5 bytes of Content-Length, world", r)
	}

	// A body the server refuses without reading it (an unsigned PUT) is
	// not parsed as requests, even when it holds one.
	for _, pad := range []int{0, 64 << 10, 400 << 10} {
		smuggled := ts.biSigned(t, "PUT", "/"+biBucket+"/smuggled", []byte("smuggled"))
		inner := append(bytes.Repeat([]byte("\r\n"), pad/2), biWire(t, smuggled)...)
		outer := ts.biNew(t, "PUT", "/"+biBucket+"/outer", inner)
		c = ts.biDial(t)
		wrote := make(chan error, 1)
		go func(w []byte) { _, err := c.Write(w); wrote <- err }(biWire(t, outer))
		r, err := c.read("PUT")
		if err != nil {
			t.Fatalf("unsigned put: %v", err)
		}
		biWantError(t, "unsigned put", r, false, "AccessDenied", 403)
		<-wrote
		// Another request on the connection, if the server kept it, gets
		// its own response, not the smuggled request's.
		c.Write(biWire(t, ts.biSigned(t, "GET", "/"+biBucket+"/"+biKeep, nil)))
		if r, err := c.read("GET"); err == nil && (r.Status != 200 || string(r.Body) != biKeepData) {
			t.Errorf("the request after a refused body (padding %d): %s", pad, r)
		}
		c.Close()
		if _, err := os.Lstat(filepath.Join(ts.root, biBucket, "smuggled")); !os.IsNotExist(err) {
			t.Fatalf("a request inside a refused body was served (padding %d): %v", pad, err)
		}
	}
	before["bad/long"] = biTree(t, ts.root, ts.bb)["bad/long"]
	ts.biSameTree(t, "after all", before)
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// TestBadInputDigests: a Content-MD5, x-amz-checksum-crc32 or
// x-amz-content-sha256 that is not the body's refuses the upload, of an
// object or a part, leaving what was there.
func TestBadInputDigests(t *testing.T) {
	ts := biSetup(t)
	id, _ := ts.biCreateUpload(t, "mp", []byte("part one"))
	before := biTree(t, ts.root, ts.bb)
	body := []byte("the payload")
	other := []byte("another payload")
	md5b64 := func(b []byte) string { s := md5.Sum(b); return base64.StdEncoding.EncodeToString(s[:]) }
	crc := func(b []byte) string {
		var s [4]byte
		v := crc32.ChecksumIEEE(b)
		s[0], s[1], s[2], s[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		return base64.StdEncoding.EncodeToString(s[:])
	}
	sha := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for _, tc := range []struct {
		name   string
		hdr    []string
		code   string
		status int
	}{
		{"wrong Content-MD5", []string{"Content-MD5", md5b64(other)}, "BadDigest", 400},
		{"Content-MD5 not base64", []string{"Content-MD5", "not base64!!"}, "InvalidDigest", 400},
		{"Content-MD5 hex", []string{"Content-MD5", md5hex(body)}, "InvalidDigest", 400},
		{"Content-MD5 of 15 bytes", []string{"Content-MD5", base64.StdEncoding.EncodeToString(make([]byte, 15))}, "InvalidDigest", 400},
		{"wrong x-amz-checksum-crc32", []string{"x-amz-checksum-crc32", crc(other)}, "BadDigest", 400},
		{"x-amz-content-sha256 of another body", []string{"X-Amz-Content-Sha256", sha(other)}, "XAmzContentSHA256Mismatch", 400},
	} {
		for _, target := range []string{"/" + biBucket + "/digest", "/" + biBucket + "/" + biKeep, "/" + biBucket + "/mp?partNumber=2&uploadId=" + id} {
			r := biDo(t, ts.biSigned(t, "PUT", target, body, tc.hdr...))
			biWantError(t, tc.name+" on "+target, r, false, tc.code, tc.status)
			ts.biSameTree(t, tc.name+" on "+target, before)
		}
	}
	// The right digests are accepted (the helpers compute them right).
	r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/digest", body, "Content-MD5", md5b64(body), "x-amz-checksum-crc32", crc(body)))
	if r.Status != 200 || r.Header.Get("x-amz-checksum-crc32") != crc(body) {
		t.Fatalf("put with the right digests: %s", r)
	}
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// biSHA256 is a SHA-256 for minio-go's streaming signer.
type biSHA256 struct{ hash.Hash }

func (biSHA256) Close() {}

// biStreaming returns a PUT of data to target signed by minio-go's
// StreamingSignV4 as of at, and its aws-chunked body.
func (ts *testServer) biStreaming(t testing.TB, target string, data []byte, at time.Time) (*http.Request, []byte) {
	t.Helper()
	req := ts.biNew(t, "PUT", target, data)
	req = signer.StreamingSignV4(req, testAK, testSK, "", "us-east-1", int64(len(data)), at.UTC(), biSHA256{sha256.New()})
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(body)) != req.ContentLength {
		t.Fatalf("streaming body of %d bytes, Content-Length %d", len(body), req.ContentLength)
	}
	return req, body
}

// biChunks returns the offsets of each chunk's header line and data in
// an aws-chunked body.
func biChunks(t testing.TB, body []byte) (headers, data []int) {
	t.Helper()
	for off := 0; off < len(body); {
		i := bytes.Index(body[off:], []byte("\r\n"))
		if i < 0 {
			t.Fatalf("no chunk header at %d", off)
		}
		sz, _, _ := strings.Cut(string(body[off:off+i]), ";")
		n, err := strconv.ParseInt(sz, 16, 64)
		if err != nil {
			t.Fatalf("chunk header %q", body[off:off+i])
		}
		headers, data = append(headers, off), append(data, off+i+2)
		off += i + 2 + int(n) + 2
		if n == 0 {
			break
		}
	}
	return headers, data
}

// biSendBody sends req's head with body on a fresh connection (the body
// written while the response is read) and returns the response.
func (ts *testServer) biSendBody(t testing.TB, req *http.Request, body []byte) (biResp, error) {
	t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	w := biWire(t, req)
	c := ts.biDial(t)
	defer c.Close()
	go c.Write(w)
	return c.read(req.Method)
}

// TestBadInputStreamingSignature: an aws-chunked upload signed by
// minio-go whose second chunk does not match its signature is
// SignatureDoesNotMatch 403, and no object is left.
func TestBadInputStreamingSignature(t *testing.T) {
	ts := biSetup(t)
	data := randBytes(7, 150000) // chunks of 64 KiB, 64 KiB, 18 KiB, 0
	req, body := ts.biStreaming(t, "/"+biBucket+"/stream-ok", data, time.Now())
	if r, err := ts.biSendBody(t, req, body); err != nil || r.Status != 200 {
		t.Fatalf("a streaming upload as signed: %s %v", r, err)
	}
	if r := biDo(t, ts.biSigned(t, "GET", "/"+biBucket+"/stream-ok", nil)); r.Status != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("the streamed object: %d bytes, status %d", len(r.Body), r.Status)
	}
	before := biTree(t, ts.root, ts.bb)
	hdrs, offs := biChunks(t, body)
	if len(hdrs) != 4 {
		t.Fatalf("%d chunks, want 4", len(hdrs))
	}
	sigAt := func(chunk int) int {
		return bytes.Index(body[hdrs[chunk]:], []byte("chunk-signature=")) + hdrs[chunk] + len("chunk-signature=")
	}
	for _, tc := range []struct {
		name string
		at   int
	}{
		{"a byte of chunk 2's data", offs[1] + 1000},
		{"the last byte of chunk 2's data", offs[1] + 65535},
		{"chunk 2's signature", sigAt(1) + 10},
		{"the final chunk's signature", sigAt(3)},
	} {
		req, body := ts.biStreaming(t, "/"+biBucket+"/stream", data, time.Now())
		bad := bytes.Clone(body)
		if bad[tc.at] == '0' {
			bad[tc.at] = '1'
		} else {
			bad[tc.at] = '0'
		}
		r, err := ts.biSendBody(t, req, bad)
		if err != nil {
			t.Errorf("%s changed: no response: %v", tc.name, err)
		} else {
			biWantError(t, tc.name+" changed", r, false, "SignatureDoesNotMatch", 403)
		}
		ts.biSameTree(t, tc.name+" changed", before)
	}
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// biKeyCases are keys that name no path of the namespace, and the error
// each is.
var biKeyCases = []struct {
	name, key, code string
}{
	{"..", "..", "InvalidArgument"},
	{"../x", "../" + biKeep, "InvalidArgument"},
	{"a/../keep", "a/../" + biKeep, "InvalidArgument"},
	{"a/..", "a/..", "InvalidArgument"},
	{"../", "../", "InvalidArgument"},
	{".", ".", "InvalidArgument"},
	{"./keep", "./" + biKeep, "InvalidArgument"},
	{"a/./b", "a/./b", "InvalidArgument"},
	{"a//b", "a//b", "InvalidArgument"},
	{"leading slash", "/" + biKeep, "InvalidArgument"},
	{"a//", "a//", "InvalidArgument"},
	{"NUL", "a\x00b", "InvalidArgument"},
	{"NUL at the end", biKeep + "\x00", "InvalidArgument"},
	{"1025 bytes", strings.Repeat("k", 1025), "KeyTooLongError"},
	{"1025 bytes in parts", strings.Repeat(strings.Repeat("k", 200)+"/", 5) + strings.Repeat("k", 20), "KeyTooLongError"},
	{"a part of 256 bytes", "a/" + strings.Repeat("p", 256), "InvalidArgument"},
	{"a part of 256 bytes, dir", strings.Repeat("p", 256) + "/", "InvalidArgument"},
	{"invalid UTF-8", "a\xffb", "InvalidArgument"},
	{"invalid UTF-8 (overlong /)", "a\xc0\xafb", "InvalidArgument"},
	{"invalid UTF-8 (surrogate)", "a\xed\xa0\x80", "InvalidArgument"},
}

// biEscape escapes a key for a request path (slashes kept).
func biEscape(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestBadInputKeys: keys that are not paths of the namespace are refused
// with InvalidArgument (KeyTooLongError over 1024 bytes) by every
// operation that names one, and nothing is written.
func TestBadInputKeys(t *testing.T) {
	ts := biSetup(t)
	// Keys at the limits are fine: 1024 bytes in parts of 255, a part of
	// 255 bytes.
	for _, key := range []string{strings.Repeat(strings.Repeat("k", 254)+"/", 4) + "kkkk", strings.Repeat("p", 255)} {
		if len(key) > 1024 {
			t.Fatalf("key of %d bytes", len(key))
		}
		if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/"+key, []byte("x"))); r.Status != 200 {
			t.Fatalf("put of a %d-byte key: %s", len(key), r)
		}
		if r := biDo(t, ts.biSigned(t, "DELETE", "/"+biBucket+"/"+key, nil)); r.Status != 204 {
			t.Fatalf("delete of a %d-byte key: %s", len(key), r)
		}
	}
	// The independent signer is right (it signs the non-UTF-8 paths).
	req := ts.biNew(t, "GET", "/"+biBucket+"/"+biKeep, nil)
	biSignV4At(req, testAK, testSK, time.Now())
	if r := biDo(t, req); r.Status != 200 || string(r.Body) != biKeepData {
		t.Fatalf("get signed by biSignV4At: %s", r)
	}
	before := biTree(t, ts.root, ts.bb)
	// Wrong answers are reported by operation, the keys together.
	wrong := map[string][]string{}
	var ops []string
	for _, kc := range biKeyCases {
		path := "/" + biBucket + "/" + biEscape(kc.key)
		status := errorStatus[kc.code]
		for _, op := range []struct {
			name, method, target string
			hdr                  []string
			body                 []byte
		}{
			{"PUT", "PUT", path, nil, []byte("data")},
			{"PUT empty", "PUT", path, nil, []byte{}},
			{"GET", "GET", path, nil, nil},
			{"HEAD", "HEAD", path, nil, nil},
			{"DELETE", "DELETE", path, nil, nil},
			{"COPY to", "PUT", path, []string{"x-amz-copy-source", "/" + biBucket + "/" + biKeep}, nil},
			{"COPY from", "PUT", "/" + biBucket + "/copy-dest", []string{"x-amz-copy-source", path}, nil},
			{"multipart create", "POST", path + "?uploads", nil, nil},
		} {
			what := fmt.Sprintf("%s of key %s", op.name, kc.name)
			r := biDo(t, ts.biSigned(t, op.method, op.target, op.body, op.hdr...))
			if err := biCheckError(r, op.method == "HEAD", kc.code, status); err != nil {
				if wrong[op.name] == nil {
					ops = append(ops, op.name)
				}
				msg := fmt.Sprintf("%d", r.Status)
				if e, err := biS3Error(r); err == nil {
					msg += " " + e.Code
				}
				wrong[op.name] = append(wrong[op.name], fmt.Sprintf("%s: %s", kc.name, msg))
				if len(wrong[op.name]) == 1 {
					wrong[op.name][0] += fmt.Sprintf(" (%v)", err)
				}
			}
			before = ts.biChanged(t, what, before)
		}
	}
	for _, op := range ops {
		t.Errorf("%s of keys that are no path of the namespace: want InvalidArgument 400 (KeyTooLongError 400 over 1024 bytes), got:\n\t%s",
			op, strings.Join(wrong[op], "\n\t"))
	}
	// Paths that try to leave their bucket through the bucket name, or
	// name the server's own directory.
	for _, tc := range []struct{ method, target, code string }{
		{"GET", "/../" + biBucket + "/" + biKeep, "NoSuchBucket"},
		{"GET", "/..%2F" + biBucket + "/" + biKeep, "NoSuchBucket"},
		{"GET", "/%2E%2E/etc/hostname", "NoSuchBucket"},
		{"PUT", "/../x", "NoSuchBucket"},
		{"PUT", "/./x", "NoSuchBucket"},
		{"GET", "/" + internalDir + "/tmp", "NoSuchBucket"},
		{"PUT", "/" + internalDir + "/tmp/x", "NoSuchBucket"},
		{"GET", "/" + internalDir + "?list-type=2", "NoSuchBucket"},
		{"PUT", "/" + internalDir, "InvalidBucketName"},
		{"PUT", "/..", "InvalidBucketName"},
		{"PUT", "/.", "InvalidBucketName"},
		{"PUT", "/a%2Fb", "NoSuchBucket"},
		{"DELETE", "/" + internalDir, "NoSuchBucket"},
	} {
		r := biDo(t, ts.biSigned(t, tc.method, tc.target, nil))
		biWantError(t, tc.method+" "+tc.target, r, false, tc.code, errorStatus[tc.code])
		before = ts.biChanged(t, tc.method+" "+tc.target, before)
	}
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// TestBadInputSymlinks: symlinks planted in the namespace (to a directory
// outside it, to a file outside, to /etc/hostname, a bucket that is a
// symlink) are never followed: no request reads or writes outside the
// namespace through them, and nothing outside shows in a response.
func TestBadInputSymlinks(t *testing.T) {
	ts := biSetup(t)
	outside := t.TempDir()
	canary := "CANARY-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-outside-the-namespace"
	canaryPath := filepath.Join(outside, "canary.txt")
	if err := os.WriteFile(canaryPath, []byte(canary), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(canaryPath, past, past)
	hostname, _ := os.ReadFile("/etc/hostname")
	hostFi, hostErr := os.Stat("/etc/hostname")
	b := filepath.Join(ts.root, biBucket)
	os.Mkdir(filepath.Join(b, "sub"), 0o755)
	for link, target := range map[string]string{
		filepath.Join(b, "linkdir"):      outside,
		filepath.Join(b, "linkfile"):     canaryPath,
		filepath.Join(b, "host"):         "/etc/hostname",
		filepath.Join(b, "up"):           "../..",
		filepath.Join(b, "sub", "ln"):    outside,
		filepath.Join(b, "sub", "self"):  ".",
		filepath.Join(ts.root, "evil"):   outside,
		filepath.Join(ts.root, "evil2"):  filepath.Join(ts.root, biBucket),
		filepath.Join(b, "to-keep"):      biKeep,
		filepath.Join(b, "dangling"):     filepath.Join(outside, "new.txt"),
		filepath.Join(b, "sub", "upper"): "../" + biKeep,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	before := biTree(t, ts.root, ts.bb)
	outsideBefore := biTree(t, outside, nil)

	check := func(what string, r biResp) {
		t.Helper()
		all := string(r.Body)
		for k, vs := range r.Header {
			all += k + ": " + strings.Join(vs, ",") + "\n"
		}
		if strings.Contains(all, canary) {
			t.Errorf("%s: the canary outside the namespace is in the response: %s", what, r)
		}
		if h := strings.TrimSpace(string(hostname)); len(h) >= 8 && strings.Contains(all, h) {
			t.Errorf("%s: /etc/hostname's content %q is in the response: %s", what, h, r)
		}
		if got, err := os.ReadFile(canaryPath); err != nil || string(got) != canary {
			t.Fatalf("%s: the canary changed: %q %v", what, got, err)
		}
		if fi, err := os.Stat(canaryPath); err != nil || !fi.ModTime().Equal(past) {
			t.Fatalf("%s: the canary's mtime changed: %v", what, err)
		}
		buf := make([]byte, 64)
		if _, err := unix.Getxattr(canaryPath, metaXattr, buf); err == nil {
			t.Fatalf("%s: the canary was given an S3 xattr", what)
		}
		if _, err := unix.Getxattr(outside, metaXattr, buf); err == nil {
			t.Fatalf("%s: the directory outside was given an S3 xattr", what)
		}
		if d := biTreeDiff(outsideBefore, biTree(t, outside, nil)); d != "" {
			t.Fatalf("%s: written outside the namespace:\n%s", what, d)
		}
		if hostErr == nil {
			if got, _ := os.ReadFile("/etc/hostname"); !bytes.Equal(got, hostname) {
				t.Fatalf("%s: /etc/hostname changed", what)
			}
			if fi, err := os.Stat("/etc/hostname"); err != nil || !fi.ModTime().Equal(hostFi.ModTime()) {
				t.Fatalf("%s: /etc/hostname's mtime changed", what)
			}
		}
	}
	do := func(method, target string, body []byte, hdr ...string) biResp {
		t.Helper()
		r := biDo(t, ts.biSigned(t, method, target, body, hdr...))
		check(method+" "+target, r)
		return r
	}
	want := func(method, target string, body []byte, code string, hdr ...string) {
		t.Helper()
		r := do(method, target, body, hdr...)
		biWantError(t, method+" "+target, r, method == "HEAD", code, errorStatus[code])
	}
	bk := "/" + biBucket + "/"
	// Reads through a link: no such key.
	for _, key := range []string{"linkdir/canary.txt", "linkfile", "host", "up/backing/" + biBucket + "/" + biKeep,
		"sub/ln/canary.txt", "sub/self/ln/canary.txt", "to-keep", "sub/upper", "dangling", "linkdir/", "sub/ln/"} {
		want("GET", bk+key, nil, "NoSuchKey")
		want("HEAD", bk+key, nil, "NoSuchKey")
		want("GET", bk+key+"?partNumber=1", nil, "NoSuchKey")
		want("GET", bk+key, nil, "NoSuchKey", "Range", "bytes=0-3")
		want("GET", bk+key+"?acl", nil, "NoSuchKey")
		want("PUT", bk+"copied", nil, "NoSuchKey", "x-amz-copy-source", bk+key)
	}
	// Writes through a link are refused, and leave no trace outside.
	for _, key := range []string{"linkdir/new.txt", "linkdir/deep/new.txt", "sub/ln/new.txt", "up/new.txt", "sub/self/x",
		"linkdir/", "linkdir/newdir/"} {
		want("PUT", bk+key, []byte{}, "InvalidRequest")
		if !strings.HasSuffix(key, "/") {
			want("PUT", bk+key, []byte("written through a link"), "InvalidRequest")
			want("PUT", bk+key, nil, "InvalidRequest", "x-amz-copy-source", bk+biKeep)
		}
	}
	// Deletes through a link delete nothing.
	for _, key := range []string{"linkdir/canary.txt", "linkfile", "host", "sub/ln/canary.txt", "to-keep", "linkdir/", "dangling"} {
		if r := do("DELETE", bk+key, nil); r.Status != 204 {
			t.Errorf("DELETE %s: %s, want 204", key, r)
		}
	}
	del := "<Delete><Object><Key>linkdir/canary.txt</Key></Object><Object><Key>linkfile</Key></Object><Object><Key>host</Key></Object></Delete>"
	if r := do("POST", "/"+biBucket+"?delete", []byte(del)); r.Status != 200 {
		t.Errorf("DeleteObjects through links: %s", r)
	}
	// Listings do not show what links lead to.
	for _, q := range []string{"?list-type=2", "?list-type=2&prefix=linkdir/", "?list-type=2&prefix=sub/", "?list-type=2&delimiter=/",
		"?list-type=2&prefix=sub/&delimiter=/", "", "?prefix=linkdir", "?versions", "?uploads"} {
		r := do("GET", "/"+biBucket+q, nil)
		var res struct {
			Keys     []string `xml:"Contents>Key"`
			Prefixes []string `xml:"CommonPrefixes>Prefix"`
			Versions []string `xml:"Version>Key"`
			Uploads  []string `xml:"Upload>Key"`
		}
		if r.Status != 200 || xml.Unmarshal(r.Body, &res) != nil {
			t.Errorf("list %s: %s", q, r)
			continue
		}
		// Only the control object is an object: links are none, and a
		// directory holding only links holds no object.
		for _, k := range append(append(append(res.Keys, res.Prefixes...), res.Versions...), res.Uploads...) {
			if k != biKeep {
				t.Errorf("list %s shows %q, which is no object: %s", q, k, r)
			}
		}
	}
	// A multipart upload completed through a link is refused.
	id, etag := ts.biCreateUpload(t, "linkdir/mp", []byte("part"))
	r := do("POST", bk+"linkdir/mp?uploadId="+id, []byte("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"+etag+"</ETag></Part></CompleteMultipartUpload>"))
	biWantError(t, "complete through a link", r, false, "InvalidRequest", 400)
	id2, _ := ts.biCreateUpload(t, "mp2", []byte("part"))
	want("PUT", bk+"mp2?partNumber=2&uploadId="+id2, nil, "NoSuchKey", "x-amz-copy-source", bk+"linkdir/canary.txt")
	want("PUT", bk+"mp2?partNumber=2&uploadId="+id2, nil, "NoSuchKey", "x-amz-copy-source", bk+"host")
	for _, u := range []string{"linkdir/mp?uploadId=" + id, "mp2?uploadId=" + id2} {
		if r := do("DELETE", bk+u, nil); r.Status != 204 {
			t.Errorf("abort %s: %s", u, r)
		}
	}
	// Buckets that are links are no buckets.
	for _, bucket := range []string{"evil", "evil2"} {
		want("GET", "/"+bucket+"/canary.txt", nil, "NoSuchBucket")
		want("GET", "/"+bucket+"/"+biKeep, nil, "NoSuchBucket")
		want("HEAD", "/"+bucket, nil, "NoSuchBucket")
		want("GET", "/"+bucket+"?list-type=2", nil, "NoSuchBucket")
		want("PUT", "/"+bucket+"/new.txt", []byte("x"), "NoSuchBucket")
		want("PUT", "/"+bucket+"/new.txt", nil, "NoSuchBucket", "x-amz-copy-source", bk+biKeep)
		want("PUT", bk+"copied", nil, "NoSuchBucket", "x-amz-copy-source", "/"+bucket+"/canary.txt")
		want("DELETE", "/"+bucket+"/canary.txt", nil, "NoSuchBucket")
		want("DELETE", "/"+bucket, nil, "NoSuchBucket")
		want("POST", "/"+bucket+"/x?uploads", nil, "NoSuchBucket")
		want("PUT", "/"+bucket, nil, "BucketAlreadyOwnedByYou")
	}
	if r := do("GET", "/", nil); r.Status != 200 || bytes.Contains(r.Body, []byte("evil")) {
		t.Errorf("list buckets: %s", r)
	}
	ts.biSameTree(t, "after the requests through links", before)
	// A PUT of a key that is a link replaces the link with the object; what
	// it pointed to is untouched.
	for _, key := range []string{"linkfile", "dangling"} {
		if r := do("PUT", bk+key, []byte("replaces the link")); r.Status != 200 {
			t.Errorf("PUT %s: %s", key, r)
		}
		if fi, err := os.Lstat(filepath.Join(b, key)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file after the PUT: %v", key, err)
		}
	}
	check("at the end", biResp{})
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// TestBadInputHeaderTooLarge: a header section over the server's limit
// gets an S3 XML error, and the server stays up.
func TestBadInputHeaderTooLarge(t *testing.T) {
	ts := biSetup(t)
	before := biTree(t, ts.root, ts.bb)
	host := "Host: " + ts.addr + "\r\n"
	var many strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&many, "X-Amz-Meta-H%d: %s\r\n", i, strings.Repeat("v", 30))
	}
	for _, tc := range []struct{ name, req string }{
		{"a 64 KiB header", "GET /" + biBucket + "/" + biKeep + " HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"},
		{"2000 headers", "PUT /" + biBucket + "/many HTTP/1.1\r\n" + host + many.String() + "Content-Length: 1\r\n\r\nx"},
		{"a 64 KiB request line", "GET /" + biBucket + "/" + strings.Repeat("k", 64<<10) + " HTTP/1.1\r\n" + host + "\r\n"},
		{"a 20 KiB header", "GET /" + biBucket + "/" + biKeep + " HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"},
	} {
		for i := 0; i < 5; i++ {
			c := ts.biDial(t)
			go c.Write([]byte(tc.req))
			r, err := c.read("GET")
			c.Close()
			if err != nil {
				t.Errorf("%s: no response: %v", tc.name, err)
				continue
			}
			biWantError(t, tc.name, r, false, "RequestHeaderSectionTooLarge", 400)
		}
		ts.biSameTree(t, tc.name, before)
		ts.biAlive(t)
	}
}

// TestBadInputAuth: unsigned requests are AccessDenied, requests with a
// wrong or tampered signature SignatureDoesNotMatch, an unknown key
// InvalidAccessKeyId, a clock 16 minutes off RequestTimeTooSkewed; none
// writes anything.
func TestBadInputAuth(t *testing.T) {
	ts := biSetup(t)
	before := biTree(t, ts.root, ts.bb)
	bk := "/" + biBucket + "/"
	del := []byte("<Delete><Object><Key>" + biKeep + "</Key></Object></Delete>")
	type op struct {
		method, target string
		body           []byte
	}
	ops := []op{
		{"GET", bk + biKeep, nil}, {"HEAD", bk + biKeep, nil}, {"PUT", bk + "new", []byte("new")},
		{"PUT", bk + biKeep, []byte("overwritten")}, {"DELETE", bk + biKeep, nil}, {"POST", "/" + biBucket + "?delete", del},
		{"PUT", "/newbucket", nil}, {"DELETE", "/" + biBucket, nil}, {"GET", "/", nil}, {"GET", "/" + biBucket + "?list-type=2", nil},
		{"POST", bk + "mp?uploads", nil}, {"PUT", "/" + biBucket + "?acl", nil},
	}
	for _, o := range ops {
		head := o.method == "HEAD"
		what := o.method + " " + o.target
		// Unsigned.
		biWantError(t, "unsigned "+what, biDo(t, ts.biNew(t, o.method, o.target, o.body)), head, "AccessDenied", 403)
		// Signed with a wrong secret.
		req := biSignWith(ts.biNew(t, o.method, o.target, o.body), o.body, testAK, testSK+"x")
		biWantError(t, "wrong secret "+what, biDo(t, req), head, "SignatureDoesNotMatch", 403)
		// An unknown access key.
		req = biSignWith(ts.biNew(t, o.method, o.target, o.body), o.body, "NOSUCHACCESSKEY", testSK)
		biWantError(t, "unknown key "+what, biDo(t, req), head, "InvalidAccessKeyId", 403)
		// A signed header changed after signing.
		req = ts.biNew(t, o.method, o.target, o.body)
		req.Header.Set("X-Amz-Meta-Signed", "yes")
		req = biSign(req, o.body)
		req.Header.Set("X-Amz-Meta-Signed", "no")
		biWantError(t, "tampered header "+what, biDo(t, req), head, "SignatureDoesNotMatch", 403)
		// Signed for another path.
		req = biSign(ts.biNew(t, o.method, o.target, o.body), o.body)
		req.URL.Path += "x"
		biWantError(t, "tampered path "+what, biDo(t, req), head, "SignatureDoesNotMatch", 403)
		// Signed, then a query parameter added.
		req = biSign(ts.biNew(t, o.method, o.target, o.body), o.body)
		if req.URL.RawQuery != "" {
			req.URL.RawQuery += "&"
		}
		req.URL.RawQuery += "x-id=1"
		biWantError(t, "tampered query "+what, biDo(t, req), head, "SignatureDoesNotMatch", 403)
		// Signed with a signature that is not hex.
		req = biSign(ts.biNew(t, o.method, o.target, o.body), o.body)
		a := req.Header.Get("Authorization")
		req.Header.Set("Authorization", a[:len(a)-64]+strings.Repeat("z", 64))
		biWantError(t, "non-hex signature "+what, biDo(t, req), head, "AuthorizationHeaderMalformed", 400)
		// Signature version 2.
		req = ts.biNew(t, o.method, o.target, o.body)
		req.Header.Set("Authorization", "AWS "+testAK+":frJIUN8DYpKDtOLCwo//yllqDzg=")
		biWantError(t, "SigV2 "+what, biDo(t, req), head, "InvalidRequest", 400)
		// The clock 16 minutes off, either way, with both signers.
		for _, off := range []time.Duration{-16 * time.Minute, 16 * time.Minute} {
			req = ts.biNew(t, o.method, o.target, o.body)
			sum := sha256.Sum256(o.body)
			req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
			biSignV4At(req, testAK, testSK, time.Now().Add(off))
			biWantError(t, fmt.Sprintf("clock %v off, %s", off, what), biDo(t, req), head, "RequestTimeTooSkewed", 403)
		}
		ts.biSameTree(t, what, before)
	}
	// minio-go's streaming signer takes the time to sign with: a PUT
	// signed 16 minutes off is refused, 14 minutes off accepted.
	data := []byte("streamed with a clock off")
	for _, off := range []time.Duration{-16 * time.Minute, 16 * time.Minute, -20 * time.Hour} {
		req, body := ts.biStreaming(t, bk+"skewed", data, time.Now().Add(off))
		r, err := ts.biSendBody(t, req, body)
		if err != nil {
			t.Fatal(err)
		}
		biWantError(t, fmt.Sprintf("streaming PUT %v off", off), r, false, "RequestTimeTooSkewed", 403)
	}
	ts.biSameTree(t, "skewed streaming PUTs", before)
	for _, off := range []time.Duration{-14 * time.Minute, 14 * time.Minute} {
		req, body := ts.biStreaming(t, bk+"skewed", data, time.Now().Add(off))
		if r, err := ts.biSendBody(t, req, body); err != nil || r.Status != 200 {
			t.Fatalf("streaming PUT %v off: %s %v", off, r, err)
		}
		req = ts.biNew(t, "GET", bk+"skewed", nil)
		biSignV4At(req, testAK, testSK, time.Now().Add(off))
		if r := biDo(t, req); r.Status != 200 || !bytes.Equal(r.Body, data) {
			t.Fatalf("GET %v off: %s", off, r)
		}
	}
	ts.biNoTemp(t)
	ts.biAlive(t)
}

// TestBadInputFlood: 10,000 bogus requests from 200 connections at once
// (garbage paths, bad signatures, unsigned writes, bad digests, random
// bytes) each get a well-formed S3 XML error, or, for bytes that are no
// request, possibly the end of the connection; nothing is written, no
// goroutine is left behind, and the server serves on.
func TestBadInputFlood(t *testing.T) {
	ts := startServerWith(t, func(s *Server) {
		// Idle fasthttp workers go after 10 s by default: sooner, so that
		// goroutines left are leaks.
		s.srv.MaxIdleWorkerDuration = 200 * time.Millisecond
	})
	ts.biPrepare(t)
	bk := "/" + biBucket + "/"
	rng := rand.New(rand.NewSource(1))
	randKey := func() string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.~!$&'()*+,;=:@ é"
		var b strings.Builder
		for n := 1 + rng.Intn(40); n > 0; n-- {
			r := []rune(chars)
			b.WriteRune(r[rng.Intn(len(r))])
		}
		return b.String()
	}
	type bogus struct {
		wire  []byte
		codes []string // the codes it may get; nil for random bytes
	}
	var pool []bogus
	add := func(req *http.Request, codes ...string) { pool = append(pool, bogus{biWire(t, req), codes}) }
	raw := func(s string, codes ...string) { pool = append(pool, bogus{[]byte(s), codes}) }
	host := "Host: " + ts.addr + "\r\n"
	for i := 0; i < 40; i++ {
		k := randKey()
		// Garbage paths, signed.
		add(ts.biSigned(t, "GET", "/nosuch-"+strconv.Itoa(i)+"/"+biEscape(k), nil), "NoSuchBucket")
		add(ts.biSigned(t, "GET", bk+"no-such-"+biEscape(k), nil), "NoSuchKey")
		add(ts.biSigned(t, "GET", bk+"a/../"+biEscape(k), nil), "NoSuchKey", "InvalidArgument")
		add(ts.biSigned(t, "PUT", bk+"a//"+biEscape(k), []byte(k)), "InvalidArgument")
		add(ts.biSigned(t, "GET", "/"+internalDir+"/tmp/"+biEscape(k), nil), "NoSuchBucket")
		add(ts.biSigned(t, "PUT", bk+strings.Repeat(biEscape(k), 1100/len(k)+1), []byte("x")), "KeyTooLongError")
		add(ts.biSigned(t, "GET", bk+biEscape(k)+"?uploadId=zz", nil), "NoSuchUpload")
		add(ts.biSigned(t, "GET", "/"+biBucket+"?list-type=2&max-keys=-"+strconv.Itoa(i+1), nil), "InvalidArgument")
		add(ts.biSigned(t, "GET", "/"+biBucket+"?list-type=2&continuation-token=%21"+strconv.Itoa(i), nil), "InvalidArgument")
		add(ts.biSigned(t, "PUT", bk+"x?partNumber=0&uploadId=zz", []byte("x")), "InvalidArgument")
		add(ts.biSigned(t, "PATCH", bk+biEscape(k), nil), "MethodNotAllowed")
		add(ts.biSigned(t, "GET", bk+biEscape(k)+"?torrent", nil), "NotImplemented")
		// Bad signatures and unsigned writes.
		body := []byte(k)
		add(biSignWith(ts.biNew(t, "PUT", bk+biEscape(k), body), body, testAK, "wrong"), "SignatureDoesNotMatch")
		add(biSignWith(ts.biNew(t, "DELETE", bk+biKeep, nil), nil, testAK, "wrong"), "SignatureDoesNotMatch")
		add(biSignWith(ts.biNew(t, "GET", bk+biKeep, nil), nil, "NOSUCHKEY", testSK), "InvalidAccessKeyId")
		add(ts.biNew(t, "PUT", bk+biEscape(k), body), "AccessDenied")
		add(ts.biNew(t, "DELETE", bk+biKeep, nil), "AccessDenied")
		req := ts.biNew(t, "PUT", bk+biEscape(k), body)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 "+k)
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		add(req, "AuthorizationHeaderMalformed", "InvalidRequest")
		add(ts.biSigned(t, "PUT", bk+"digest-"+biEscape(k), body, "Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="), "BadDigest")
		// Request lines that do not unescape, unsigned.
		raw("GET /%zz"+strconv.Itoa(i)+" HTTP/1.1\r\n"+host+"\r\n", "InvalidArgument")
		raw("GET /"+biBucket+"?%zz="+strconv.Itoa(i)+" HTTP/1.1\r\n"+host+"\r\n", "InvalidArgument")
	}
	nTemplates := len(pool)
	// Random bytes, without line ends, then the end of a header section.
	for i := 0; i < 200; i++ {
		b := make([]byte, 1+rng.Intn(300))
		for j := range b {
			for b[j] = byte(rng.Intn(256)); b[j] == '\r' || b[j] == '\n'; b[j] = byte(rng.Intn(256)) {
			}
		}
		pool = append(pool, bogus{append(b, "\r\n\r\n"...), nil})
	}
	before := biTree(t, ts.root, ts.bb)
	ts.biAlive(t)
	runtime.GC()
	time.Sleep(500 * time.Millisecond) // let the workers of the requests so far go
	base := runtime.NumGoroutine()

	const workers, perWorker = 200, 50
	var (
		mu       sync.Mutex
		failures []string
		served   atomic.Int64
		closed   atomic.Int64
		noID     atomic.Int64
		noIDEx   atomic.Value
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := 0; i < perWorker; i++ {
				var b bogus
				if rng.Intn(10) == 0 {
					b = pool[nTemplates+rng.Intn(len(pool)-nTemplates)]
				} else {
					b = pool[rng.Intn(nTemplates)]
				}
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", ts.addr, 5*time.Second); err != nil {
						fail("dial: %v", err)
						return
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(15 * time.Second))
				_, werr := c.Write(b.wire)
				method, _, _ := strings.Cut(string(b.wire), " ")
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					if b.codes != nil || errors.Is(err, os.ErrDeadlineExceeded) {
						fail("%.80q: no response: %v (write: %v)", b.wire, err, werr)
					}
					closed.Add(1)
					c.Close()
					c = nil
					continue
				}
				served.Add(1)
				r := biResp{Status: resp.StatusCode, Header: resp.Header, Body: body}
				e, perr := biS3Error(r)
				switch {
				case perr != nil:
					fail("%.80q: %v", b.wire, perr)
				case r.Status < 400 || r.Status == 500:
					fail("%.80q: status %d %s", b.wire, r.Status, e.Code)
				case b.codes != nil && !strings.Contains(" "+strings.Join(b.codes, " ")+" ", " "+e.Code+" "):
					fail("%.80q: %s (%s), want one of %v", b.wire, e.Code, e.Message, b.codes)
				case biRequestID(r, e) != nil:
					noID.Add(1)
					noIDEx.Store(fmt.Sprintf("%.80q: %s: %v", b.wire, e.Code, biRequestID(r, e)))
				}
				if resp.Close {
					c.Close()
					c = nil
				}
			}
		}(w)
	}
	wg.Wait()
	t.Logf("%d requests in %v: %d responses, %d connections ended without one", workers*perWorker, time.Since(start).Round(time.Millisecond), served.Load(), closed.Load())
	for _, f := range failures {
		t.Error(f)
	}
	if n := noID.Load(); n > 0 {
		t.Errorf("%d error responses without x-amz-request-id, as %s", n, noIDEx.Load())
	}
	ts.biAlive(t)
	ts.biSameTree(t, "after the flood", before)
	ts.biNoTemp(t)
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > base+10; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the flood:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBadInputRanges: Range edge cases on a 5-byte object, by GET and
// HEAD.
func TestBadInputRanges(t *testing.T) {
	ts := biSetup(t)
	if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/five", []byte("hello"))); r.Status != 200 {
		t.Fatal(r)
	}
	if r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/empty", []byte{})); r.Status != 200 {
		t.Fatal(r)
	}
	for _, tc := range []struct {
		key, rg string
		status  int
		body    string // for 206 and 200
		cr      string // Content-Range
	}{
		{"five", "bytes=0-0", 206, "h", "bytes 0-0/5"},
		{"five", "bytes=-1", 206, "o", "bytes 4-4/5"},
		{"five", "bytes=4-", 206, "o", "bytes 4-4/5"},
		{"five", "bytes=1-3", 206, "ell", "bytes 1-3/5"},
		{"five", "bytes=0-4", 206, "hello", "bytes 0-4/5"},
		{"five", "bytes=0-99", 206, "hello", "bytes 0-4/5"},
		{"five", "bytes=3-999999999999999", 206, "lo", "bytes 3-4/5"},
		{"five", "bytes=-5", 206, "hello", "bytes 0-4/5"},
		{"five", "bytes=-99", 206, "hello", "bytes 0-4/5"},
		{"five", "bytes=5-", 416, "", "bytes */5"},
		{"five", "bytes=5-9", 416, "", "bytes */5"},
		{"five", "bytes=99-", 416, "", "bytes */5"},
		{"five", "bytes=-0", 416, "", "bytes */5"},
		{"empty", "bytes=0-0", 416, "", "bytes */0"},
		{"empty", "bytes=-1", 416, "", "bytes */0"},
		// Ignored: several ranges, other units, garbage.
		{"five", "bytes=0-1,3-4", 200, "hello", ""},
		{"five", "bytes=0-0,-1", 200, "hello", ""},
		{"five", "bytes=abc", 200, "hello", ""},
		{"five", "bytes=", 200, "hello", ""},
		{"five", "bytes=-", 200, "hello", ""},
		{"five", "bytes=3-1", 200, "hello", ""},
		{"five", "bytes=1-2-3", 200, "hello", ""},
		{"five", "bytes=--1", 200, "hello", ""},
		{"five", "bytes=+1-2", 200, "hello", ""},
		{"five", "bytes=1-+2", 200, "hello", ""},
		{"five", "bytes=-+2", 200, "hello", ""},
		{"five", "bytes=0x1-2", 200, "hello", ""},
		{"five", "lines=0-1", 200, "hello", ""},
		{"five", "0-1", 200, "hello", ""},
		{"empty", "bytes=0-1,2-3", 200, "", ""},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			what := fmt.Sprintf("%s %s Range: %s", method, tc.key, tc.rg)
			r := biDo(t, ts.biSigned(t, method, "/"+biBucket+"/"+tc.key, nil, "Range", tc.rg))
			if tc.status == 416 {
				biWantError(t, what, r, method == "HEAD", "InvalidRange", 416)
			} else if r.Status != tc.status {
				t.Errorf("%s: %s, want %d", what, r, tc.status)
				continue
			}
			if got := r.Header.Get("Content-Range"); got != tc.cr {
				t.Errorf("%s: Content-Range %q, want %q", what, got, tc.cr)
			}
			if tc.status == 416 {
				continue
			}
			if method == "GET" && string(r.Body) != tc.body {
				t.Errorf("%s: body %q, want %q", what, r.Body, tc.body)
			}
			if method == "HEAD" && (len(r.Body) != 0 || r.Header.Get("Content-Length") != strconv.Itoa(len(tc.body))) {
				t.Errorf("%s: Content-Length %q and %d bytes of body, want %d and none", what, r.Header.Get("Content-Length"), len(r.Body), len(tc.body))
			}
		}
	}
	ts.biAlive(t)
}

// TestBadInputConditionals: If-Match, If-None-Match, If-Modified-Since
// and If-Unmodified-Since by GET and HEAD, with RFC 9110's precedence
// (If-Match over If-Unmodified-Since, If-None-Match over
// If-Modified-Since), weak tags (never strongly equal: If-Match fails,
// If-None-Match compares weakly) and "*".
func TestBadInputConditionals(t *testing.T) {
	ts := biSetup(t)
	r := biDo(t, ts.biSigned(t, "PUT", "/"+biBucket+"/cond", []byte("conditional")))
	if r.Status != 200 {
		t.Fatal(r)
	}
	etag := r.Header.Get("ETag")
	// Drained now, so that no drain touches the file's mtime (the
	// object's Last-Modified) while the test runs.
	if err := ts.bb.SyncPath(context.Background(), filepath.Join(ts.root, biBucket, "cond")); err != nil {
		t.Fatal(err)
	}
	r = biDo(t, ts.biSigned(t, "HEAD", "/"+biBucket+"/cond", nil))
	lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
	if err != nil {
		t.Fatalf("Last-Modified: %s: %v", r.Header.Get("Last-Modified"), err)
	}
	at := func(d time.Duration) string { return lm.Add(d).UTC().Format(http.TimeFormat) }
	weak := "W/" + etag
	const other = `"0123456789abcdef0123456789abcdef"`
	for _, tc := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"If-Match the ETag", []string{"If-Match", etag}, 200},
		{"If-Match another", []string{"If-Match", other}, 412},
		{"If-Match *", []string{"If-Match", "*"}, 200},
		{"If-Match a list with the ETag", []string{"If-Match", other + ", " + etag}, 200},
		{"If-Match the weak ETag", []string{"If-Match", weak}, 412},
		{"If-Unmodified-Since before", []string{"If-Unmodified-Since", at(-time.Hour)}, 412},
		{"If-Unmodified-Since then", []string{"If-Unmodified-Since", at(0)}, 200},
		{"If-Unmodified-Since after", []string{"If-Unmodified-Since", at(time.Hour)}, 200},
		{"If-Unmodified-Since garbage", []string{"If-Unmodified-Since", "yesterday"}, 200},
		{"If-Match true, If-Unmodified-Since false", []string{"If-Match", etag, "If-Unmodified-Since", at(-time.Hour)}, 200},
		{"If-Match false, If-Unmodified-Since true", []string{"If-Match", other, "If-Unmodified-Since", at(time.Hour)}, 412},
		{"If-None-Match the ETag", []string{"If-None-Match", etag}, 304},
		{"If-None-Match the weak ETag", []string{"If-None-Match", weak}, 304},
		{"If-None-Match *", []string{"If-None-Match", "*"}, 304},
		{"If-None-Match another", []string{"If-None-Match", other}, 200},
		{"If-None-Match a list with the ETag", []string{"If-None-Match", other + ", " + weak}, 304},
		{"If-Modified-Since then", []string{"If-Modified-Since", at(0)}, 304},
		{"If-Modified-Since after", []string{"If-Modified-Since", at(time.Hour)}, 304},
		{"If-Modified-Since before", []string{"If-Modified-Since", at(-time.Hour)}, 200},
		{"If-Modified-Since garbage", []string{"If-Modified-Since", "yesterday"}, 200},
		{"If-None-Match false, If-Modified-Since not modified", []string{"If-None-Match", other, "If-Modified-Since", at(time.Hour)}, 200},
		{"If-None-Match true, If-Modified-Since modified", []string{"If-None-Match", etag, "If-Modified-Since", at(-time.Hour)}, 304},
		{"If-Match false, If-None-Match true", []string{"If-Match", other, "If-None-Match", other}, 412},
		{"If-Match true, If-None-Match false", []string{"If-Match", etag, "If-None-Match", etag}, 304},
		{"If-Unmodified-Since false, If-None-Match false", []string{"If-Unmodified-Since", at(-time.Hour), "If-None-Match", etag}, 412},
		{"If-Match true, If-Modified-Since not modified", []string{"If-Match", etag, "If-Modified-Since", at(0)}, 304},
		{"If-None-Match with Range", []string{"If-None-Match", etag, "Range", "bytes=0-0"}, 304},
		{"If-Match false with Range", []string{"If-Match", other, "Range", "bytes=0-0"}, 412},
		{"If-Match true with Range", []string{"If-Match", etag, "Range", "bytes=0-0"}, 206},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			what := method + " " + tc.name
			r := biDo(t, ts.biSigned(t, method, "/"+biBucket+"/cond", nil, tc.hdr...))
			switch tc.status {
			case 412:
				biWantError(t, what, r, method == "HEAD", "PreconditionFailed", 412)
			case 304:
				if r.Status != 304 || len(r.Body) != 0 || r.Header.Get("ETag") != etag || r.Header.Get("Last-Modified") == "" {
					t.Errorf("%s: %s ETag %q Last-Modified %q, want 304 with ETag %s", what, r, r.Header.Get("ETag"), r.Header.Get("Last-Modified"), etag)
				}
			default:
				want := "conditional"
				if tc.status == 206 {
					want = "c"
				}
				if r.Status != tc.status || method == "GET" && string(r.Body) != want || r.Header.Get("ETag") != etag {
					t.Errorf("%s: %s, want %d", what, r, tc.status)
				}
			}
		}
	}
	ts.biAlive(t)
}
