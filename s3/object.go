package s3

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// maxPutSize is S3's limit on a single PUT.
const maxPutSize = 5 << 30

// standardHeaders are kept with an object and returned with it.
var standardHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// checksumAlgos are the x-amz-checksum-* algorithms, by header suffix.
var checksumAlgos = []string{"crc32", "crc32c", "crc64nvme", "sha1", "sha256"}

// metaFromRequest reads the metadata a PUT, a copy with REPLACE, or a
// multipart create gives.
func metaFromRequest(h *fasthttp.RequestHeader) (*objectMeta, error) {
	m := &objectMeta{ContentType: string(h.ContentType())}
	if m.ContentType == "" {
		m.ContentType = "binary/octet-stream"
	}
	for _, name := range standardHeaders {
		v := string(h.Peek(name))
		if name == "Content-Encoding" {
			v = stripAWSChunked(v)
		}
		if v != "" {
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[name] = v
		}
	}
	size := 0
	for k, v := range h.All() {
		name := strings.ToLower(string(k))
		if rest, ok := strings.CutPrefix(name, "x-amz-meta-"); ok {
			if m.User == nil {
				m.User = map[string]string{}
			}
			m.User[rest] = string(v)
			size += len(rest) + len(v)
		}
	}
	if size > 2048 {
		return nil, errorf("InvalidArgument", "user metadata (x-amz-meta-*) is %d bytes; the limit is 2048", size)
	}
	return m, nil
}

// stripAWSChunked removes aws-chunked from a Content-Encoding list: it
// describes the upload's framing, not the object.
func stripAWSChunked(v string) string {
	var keep []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" && !strings.EqualFold(p, "aws-chunked") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ",")
}

// payload is a request body as uploaded data: its decoded bytes and the
// checks to run on them once read.
type payload struct {
	r       io.Reader
	size    int64 // decoded length; -1 unknown
	chunked *ChunkedReader
	sha     hash.Hash // x-amz-content-sha256 is a hash: check it
	md5     []byte    // Content-MD5, decoded
	sums    map[string]hash.Hash
	want    map[string]string // algo → base64 from a header ("" when it comes in a trailer)
	auth    *Auth
}

// openPayload prepares reading the request body of an upload.
func openPayload(r *request) (*payload, error) {
	h := &r.ctx.Request.Header
	p := &payload{auth: r.auth, size: -1, sums: map[string]hash.Hash{}, want: map[string]string{}}
	if v := h.Peek("Content-MD5"); len(v) > 0 {
		b, err := base64.StdEncoding.DecodeString(string(v))
		if err != nil || len(b) != md5.Size {
			return nil, errorf("InvalidDigest", "the Content-MD5 header is not a base64 MD5")
		}
		p.md5 = b
	}
	for _, algo := range checksumAlgos {
		if v := h.Peek("x-amz-checksum-" + algo); len(v) > 0 {
			p.want[algo] = string(v)
		}
	}
	if t := strings.ToLower(strings.TrimSpace(string(h.Peek("x-amz-trailer")))); t != "" {
		algo, ok := strings.CutPrefix(t, "x-amz-checksum-")
		if !ok {
			return nil, errorf("InvalidArgument", "x-amz-trailer %q: only x-amz-checksum-* trailers are supported", t)
		}
		p.want[algo] = ""
	}
	for algo := range p.want {
		hh, err := NewChecksum(strings.ToUpper(algo))
		if err != nil {
			return nil, err
		}
		p.sums[algo] = hh
	}
	body := bodyReader(r.ctx)
	ph := ""
	if r.auth != nil {
		ph = r.auth.PayloadHash
	}
	switch {
	case strings.HasPrefix(ph, "STREAMING-"):
		dl, err := strconv.ParseInt(string(h.Peek("x-amz-decoded-content-length")), 10, 64)
		if err != nil || dl < 0 {
			return nil, errorf("MissingContentLength", "a streaming upload needs x-amz-decoded-content-length")
		}
		cr, err := NewChunkedReader(body, r.auth, dl)
		if err != nil {
			return nil, err
		}
		p.r, p.size, p.chunked = cr, dl, cr
	default:
		cl := h.ContentLength() // -1: chunked transfer encoding
		if cl == -2 {
			return nil, errorf("MissingContentLength", "the request has no Content-Length")
		}
		p.r = body
		if cl >= 0 {
			p.size = int64(cl)
			p.r = io.LimitReader(body, int64(cl))
		}
		if len(ph) == 64 {
			p.sha = sha256.New()
		}
	}
	if p.size > maxPutSize {
		return nil, errorf("EntityTooLarge", "a single PUT is limited to 5 GiB: upload larger objects in parts (multipart upload)")
	}
	return p, nil
}

// hashes returns the hashes the body must go through besides MD5.
func (p *payload) hashes() []hash.Hash {
	var hs []hash.Hash
	if p.sha != nil {
		hs = append(hs, p.sha)
	}
	for _, h := range p.sums {
		hs = append(hs, h)
	}
	return hs
}

// check verifies what was read: its length, Content-MD5, the payload
// hash and the checksums. It returns the checksums to keep.
func (p *payload) check(n int64, md5sum []byte) (map[string]string, error) {
	if p.size >= 0 && n != p.size {
		return nil, errorf("IncompleteBody", "the body has %d bytes, fewer than the %d the request announced", n, p.size)
	}
	if p.md5 != nil && string(p.md5) != string(md5sum) {
		return nil, errorf("BadDigest", "the Content-MD5 you specified did not match what was received")
	}
	if p.sha != nil {
		var sum [32]byte
		copy(sum[:], p.sha.Sum(nil))
		if err := p.auth.CheckBody(sum); err != nil {
			return nil, err
		}
	}
	var trailers map[string]string
	if p.chunked != nil {
		trailers = p.chunked.Trailers()
	}
	var keep map[string]string
	for algo, h := range p.sums {
		got := ChecksumValue(h)
		want := p.want[algo]
		if want == "" {
			want = trailers["x-amz-checksum-"+algo]
		}
		if want == "" {
			return nil, errorf("InvalidRequest", "the x-amz-checksum-%s trailer announced by x-amz-trailer is missing", algo)
		}
		if got != want {
			return nil, errorf("BadDigest", "the x-amz-checksum-%s you specified (%s) did not match the calculated checksum (%s)", algo, want, got)
		}
		if keep == nil {
			keep = map[string]string{}
		}
		keep[strings.ToUpper(algo)] = got
	}
	return keep, nil
}

// putObject serves PUT /bucket/key (and dispatches copies).
func (s *Server) putObject(r *request) error {
	h := &r.ctx.Request.Header
	if len(h.Peek("x-amz-copy-source")) > 0 {
		return s.copyObject(r)
	}
	dir, err := s.st.checkBucket(r.bucket)
	if err != nil {
		return err
	}
	meta, err := metaFromRequest(h)
	if err != nil {
		return err
	}
	p, err := openPayload(r)
	if err != nil {
		return err
	}
	if strings.HasSuffix(r.key, dirObjSuffix) {
		if p.size != 0 {
			return errorf("InvalidArgument", "a key ending in '/' names a directory of the namespace: it can only be put empty")
		}
		if err := s.st.putDirObject(r.bucket, r.key, meta); err != nil {
			return err
		}
		r.ctx.Response.Header.Set("ETag", `"`+emptyMD5+`"`)
		return nil
	}
	rel, err := keyPath(r.key)
	if err != nil {
		return err
	}
	u, err := s.st.newUpload(r.ctx)
	if err != nil {
		return err
	}
	defer u.abort()
	if err := u.copyFrom(p.r, p.hashes()...); err != nil {
		return bodyError(err)
	}
	sums, err := p.check(u.size, u.md5.Sum(nil))
	if err != nil {
		return err
	}
	meta.Checksums = sums
	if err := u.commit(r.ctx, dir, rel, meta); err != nil {
		return err
	}
	r.ctx.Response.Header.Set("ETag", `"`+meta.ETag+`"`)
	for algo, v := range sums {
		r.ctx.Response.Header.Set("x-amz-checksum-"+strings.ToLower(algo), v)
	}
	return nil
}

// bodyError maps an error reading a request body.
func bodyError(err error) error {
	if _, ok := err.(*Error); ok {
		return err
	}
	if err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "unexpected EOF") {
		return errorf("IncompleteBody", "the body ended before the length the request announced")
	}
	return err
}

// objectHeaders sets the headers describing o.
func objectHeaders(ctx *fasthttp.RequestCtx, o *object) {
	rh := &ctx.Response.Header
	rh.Set("ETag", `"`+o.meta.ETag+`"`)
	rh.Set("Last-Modified", o.mtime.UTC().Format(http.TimeFormat))
	rh.Set("Accept-Ranges", "bytes")
	ct := o.meta.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	rh.SetContentType(ct)
	for k, v := range o.meta.Headers {
		rh.Set(k, v)
	}
	for k, v := range o.meta.User {
		rh.Set("x-amz-meta-"+k, v)
	}
	if n := len(o.meta.Parts); n > 0 {
		rh.Set("x-amz-mp-parts-count", strconv.Itoa(n))
	}
}

// getObject serves GET and HEAD of an object.
func (s *Server) getObject(r *request, head bool) error {
	o, err := s.st.openObject(r.ctx, r.bucket, r.key)
	if err != nil {
		return err
	}
	closeObj := true
	defer func() {
		if closeObj {
			o.Close()
		}
	}()
	ctx := r.ctx
	h := &ctx.Request.Header
	if status, err := preconditions(h, o.meta.ETag, o.mtime, false); err != nil || status != 0 {
		if status == http.StatusNotModified {
			ctx.Response.Header.Set("ETag", `"`+o.meta.ETag+`"`)
			ctx.Response.Header.Set("Last-Modified", o.mtime.UTC().Format(http.TimeFormat))
			ctx.SetStatusCode(status)
			ctx.Response.SkipBody = true
			return nil
		}
		return err
	}
	objectHeaders(ctx, o)
	if !r.auth.Anonymous {
		for _, q := range []struct{ param, header string }{
			{"response-content-type", "Content-Type"}, {"response-content-language", "Content-Language"},
			{"response-expires", "Expires"}, {"response-cache-control", "Cache-Control"},
			{"response-content-disposition", "Content-Disposition"}, {"response-content-encoding", "Content-Encoding"},
		} {
			if v := r.query.Get(q.param); v != "" {
				ctx.Response.Header.Set(q.header, v)
			}
		}
	}
	start, length := int64(0), o.size
	partial := false
	if pn := r.query.Get("partNumber"); pn != "" {
		n, err := strconv.Atoi(pn)
		if err != nil || n < 1 || n > 10000 {
			return errorf("InvalidArgument", "partNumber must be an integer from 1 to 10000")
		}
		parts := o.meta.Parts
		if len(parts) == 0 {
			parts = []int64{o.size}
		}
		if n > len(parts) {
			return errorf("InvalidPartNumber", "the object has %d part(s); part %d does not exist", len(parts), n)
		}
		for _, sz := range parts[:n-1] {
			start += sz
		}
		length = parts[n-1]
		partial = len(parts) > 1
		ctx.Response.Header.Set("x-amz-mp-parts-count", strconv.Itoa(len(parts)))
	} else if rg := string(h.Peek("Range")); rg != "" {
		st, n, ok, err := parseRange(rg, o.size)
		if err != nil {
			ctx.Response.Header.Set("Content-Range", fmt.Sprintf("bytes */%d", o.size))
			return err
		}
		if ok {
			start, length, partial = st, n, true
		}
	}
	if partial {
		ctx.Response.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, o.size))
		ctx.SetStatusCode(http.StatusPartialContent)
	}
	if strings.EqualFold(string(h.Peek("x-amz-checksum-mode")), "ENABLED") && !partial {
		for algo, v := range o.meta.Checksums {
			ctx.Response.Header.Set("x-amz-checksum-"+strings.ToLower(algo), v)
		}
	}
	if head {
		ctx.Response.Header.SetContentLength(int(length))
		ctx.Response.SkipBody = true
		return nil
	}
	if o.dirObj || length == 0 {
		ctx.Response.Header.SetContentLength(0)
		return nil
	}
	closeObj = false
	ctx.SetBodyStream(&readCloser{Reader: o.reader(r.ctx, start, length), c: o}, int(length))
	return nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r *readCloser) Close() error { return r.c.Close() }

// WriteTo sends the body in chunks of ioChunk (fasthttp would otherwise
// read it in small pieces, one burst buffer read each).
func (r *readCloser) WriteTo(w io.Writer) (int64, error) {
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	var n int64
	for {
		m, err := io.ReadFull(r.Reader, *buf)
		if m > 0 {
			wm, werr := w.Write((*buf)[:m])
			n += int64(wm)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// deleteObject serves DELETE of an object.
func (s *Server) deleteObject(r *request) error {
	if err := s.st.deleteObject(r.bucket, r.key); err != nil {
		return err
	}
	r.ctx.SetStatusCode(http.StatusNoContent)
	return nil
}

type deleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool     `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

type deleteResult struct {
	XMLName xml.Name        `xml:"http://s3.amazonaws.com/doc/2006-03-01/ DeleteResult"`
	Deleted []deletedObject `xml:"Deleted"`
	Errors  []deleteError   `xml:"Error"`
}

type deletedObject struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
}

type deleteError struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// deleteObjects serves POST /bucket?delete (DeleteObjects).
func (s *Server) deleteObjects(r *request) error {
	if _, err := s.st.checkBucket(r.bucket); err != nil {
		return err
	}
	var req deleteRequest
	if err := readXML(r, 2<<20, &req); err != nil {
		return err
	}
	if len(req.Objects) == 0 || len(req.Objects) > 1000 {
		return errorf("MalformedXML", "a Delete request names 1 to 1000 objects; this one names %d", len(req.Objects))
	}
	var res deleteResult
	for _, o := range req.Objects {
		err := s.st.deleteObject(r.bucket, o.Key)
		if err != nil {
			e := storeError(err)
			res.Errors = append(res.Errors, deleteError{Key: o.Key, Code: e.Code, Message: e.Message})
			continue
		}
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deletedObject{Key: o.Key, VersionID: o.VersionID})
		}
	}
	return writeXML(r.ctx, res)
}

type copyObjectResult struct {
	XMLName      xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CopyObjectResult"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag"`
}

// copySource parses x-amz-copy-source: [/]bucket/key[?versionId=…].
func copySource(v string) (bucket, key string, err error) {
	src, query, _ := strings.Cut(v, "?")
	if query != "" {
		q, _ := url.ParseQuery(query)
		if id := q.Get("versionId"); id != "" && id != "null" {
			return "", "", errorf("InvalidArgument", "versionId %q: this server keeps one version of an object (versionId null)", id)
		}
	}
	src, err = url.PathUnescape(src)
	if err != nil {
		return "", "", errorf("InvalidArgument", "x-amz-copy-source does not unescape: %v", err)
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if !ok || bucket == "" || key == "" {
		return "", "", errorf("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY")
	}
	return bucket, key, nil
}

// openCopySource opens the source of a copy and checks its
// x-amz-copy-source-if-* conditions.
func (s *Server) openCopySource(r *request) (*object, error) {
	h := &r.ctx.Request.Header
	sb, sk, err := copySource(string(h.Peek("x-amz-copy-source")))
	if err != nil {
		return nil, err
	}
	src, err := s.st.openObject(r.ctx, sb, sk)
	if err != nil {
		return nil, err
	}
	if _, err := preconditions(h, src.meta.ETag, src.mtime, true); err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

// copyObject serves PUT with x-amz-copy-source: the bytes are read
// through the burst buffer and written as a new object.
func (s *Server) copyObject(r *request) error {
	h := &r.ctx.Request.Header
	dir, err := s.st.checkBucket(r.bucket)
	if err != nil {
		return err
	}
	rel, err := keyPath(r.key)
	if err != nil {
		return err
	}
	src, err := s.openCopySource(r)
	if err != nil {
		return err
	}
	defer src.Close()
	if src.dirObj {
		return errorf("InvalidRequest", "a directory object cannot be copied")
	}
	if src.size > maxPutSize {
		return errorf("InvalidRequest", "objects over 5 GiB are copied in parts (UploadPartCopy)")
	}
	sb, sk, _ := copySource(string(h.Peek("x-amz-copy-source")))
	directive := strings.ToUpper(string(h.Peek("x-amz-metadata-directive")))
	var meta *objectMeta
	switch directive {
	case "", "COPY":
		if sb == r.bucket && sk == r.key {
			return errorf("InvalidRequest", "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes")
		}
		m := src.meta
		meta = &objectMeta{ContentType: m.ContentType, Headers: m.Headers, User: m.User, Checksums: m.Checksums, Parts: m.Parts, ETag: m.ETag}
	case "REPLACE":
		if meta, err = metaFromRequest(h); err != nil {
			return err
		}
	default:
		return errorf("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE, not %q", directive)
	}
	u, err := s.st.newUpload(r.ctx)
	if err != nil {
		return err
	}
	defer u.abort()
	if err := u.copyFrom(src.reader(r.ctx, 0, src.size)); err != nil {
		return err
	}
	if directive == "REPLACE" || len(meta.Parts) == 0 {
		meta.ETag = hex.EncodeToString(u.md5.Sum(nil))
		meta.Parts = nil
	}
	if err := u.commit(r.ctx, dir, rel, meta); err != nil {
		return err
	}
	return writeXML(r.ctx, copyObjectResult{ETag: `"` + meta.ETag + `"`,
		LastModified: time.Unix(0, meta.MTime).UTC().Format("2006-01-02T15:04:05.000Z")})
}

// preconditions evaluates the conditional headers of a GET or HEAD (or,
// with copy set, the x-amz-copy-source-if-* headers of a copy) against an
// object's ETag and modification time, in RFC 9110 order. It returns 304
// for a GET that need not send the body, or a PreconditionFailed error.
func preconditions(h *fasthttp.RequestHeader, etag string, mtime time.Time, copy bool) (int, error) {
	prefix := ""
	if copy {
		prefix = "x-amz-copy-source-"
	}
	get := func(name string) string {
		if copy {
			return string(h.Peek(prefix + strings.ToLower(name)))
		}
		return string(h.Peek(name))
	}
	failed := errorf("PreconditionFailed", "at least one of the preconditions you specified did not hold")
	mtime = mtime.Truncate(time.Second)
	im, ius := get("If-Match"), get("If-Unmodified-Since")
	if im != "" {
		if !etagMatches(im, etag, true) {
			return 0, failed
		}
	} else if ius != "" {
		if t, err := http.ParseTime(ius); err == nil && mtime.After(t) {
			return 0, failed
		}
	}
	inm, ims := get("If-None-Match"), get("If-Modified-Since")
	notModified := http.StatusNotModified
	if copy {
		notModified = 0
	}
	if inm != "" {
		if etagMatches(inm, etag, false) {
			if copy {
				return 0, failed
			}
			return notModified, nil
		}
	} else if ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !mtime.After(t) {
			if copy {
				return 0, failed
			}
			return notModified, nil
		}
	}
	return 0, nil
}

// etagMatches reports whether an If-Match / If-None-Match list names etag
// (or is "*"). If-Match compares strongly (RFC 9110 13.1.1): a weak tag
// (W/"…") never matches; If-None-Match compares weakly.
func etagMatches(list, etag string, strong bool) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if w, ok := strings.CutPrefix(t, "W/"); ok {
			if strong {
				continue
			}
			t = w
		}
		if strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// parseRange parses a Range header for an object of size bytes: one
// range, "bytes=a-b", "bytes=a-" or "bytes=-n". ok is false when the
// header is to be ignored (not bytes, several ranges, malformed), as S3
// does; a range that starts past the end is InvalidRange.
func parseRange(v string, size int64) (start, n int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	unsat := &Error{Code: "InvalidRange", Status: http.StatusRequestedRangeNotSatisfiable,
		Message: fmt.Sprintf("the requested range %q is not satisfiable for an object of %d bytes", v, size)}
	if !digits(a) || !digits(b) {
		return 0, 0, false, nil // not a byte range: ignored, as S3 does
	}
	if a == "" {
		m, err := strconv.ParseInt(b, 10, 64)
		if err != nil || m < 0 {
			return 0, 0, false, nil
		}
		if m == 0 || size == 0 {
			return 0, 0, false, unsat
		}
		m = min(m, size)
		return size - m, m, true, nil
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	if err1 != nil || first < 0 {
		return 0, 0, false, nil
	}
	last := size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false, nil
		}
		last = min(l, size-1)
	}
	if first >= size {
		return 0, 0, false, unsat
	}
	return first, last - first + 1, true, nil
}

// digits reports whether s is empty or only ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
