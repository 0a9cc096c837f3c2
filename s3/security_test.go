package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sys/unix"
)

// secWantNotSigned fails t unless r is AccessDenied naming exactly the
// headers want (", "-separated, as S3 lists them) in HeadersNotSigned.
func secWantNotSigned(t testing.TB, what string, r biResp, want string) {
	t.Helper()
	biWantError(t, what, r, false, "AccessDenied", http.StatusForbidden)
	body := string(r.Body)
	if !strings.Contains(body, "<HeadersNotSigned>"+want+"</HeadersNotSigned>") {
		t.Errorf("%s: the error does not name %q in HeadersNotSigned: %s", what, want, body)
	}
	if !strings.Contains(body, "There were headers present in the request which were not signed") {
		t.Errorf("%s: the error does not give S3's message: %s", what, body)
	}
}

// TestUnsignedHeadersRefused: a request with an x-amz-* header (or
// Content-MD5; Content-Type with header authentication) its signature
// does not cover is refused with AccessDenied and HeadersNotSigned, as
// S3 does. The attack: a presigned PUT URL (which signs only host) plus
// an unsigned x-amz-copy-source copied any object of any bucket into the
// key.
func TestUnsignedHeadersRefused(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	ctx := context.Background()
	for _, b := range []string{"secret", "drop"} {
		if err := c.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutObject(ctx, "secret", "plans", strings.NewReader("the secret plans"), 16, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := c.PresignedPutObject(ctx, "drop", "upload", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("X-Amz-SignedHeaders"); got != "host" {
		t.Fatalf("the presigned URL signs %q, the test wants a URL that signs only host", got)
	}
	put := func(body string, hdr ...string) biResp {
		req, err := http.NewRequest(http.MethodPut, u.String(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return biDo(t, req)
	}

	r := put("", "x-amz-copy-source", "/secret/plans")
	secWantNotSigned(t, "presigned PUT with an unsigned x-amz-copy-source", r, "x-amz-copy-source")
	if _, err := os.Stat(filepath.Join(ts.root, "drop", "upload")); !os.IsNotExist(err) {
		b, _ := os.ReadFile(filepath.Join(ts.root, "drop", "upload"))
		t.Fatalf("the refused copy left drop/upload (%q): %v", b, err)
	}
	r = put("x", "x-amz-meta-a", "1", "X-Amz-Acl", "public-read", "Content-MD5", "nonsense")
	secWantNotSigned(t, "presigned PUT with unsigned metadata, ACL and Content-MD5", r, "content-md5, x-amz-acl, x-amz-meta-a")

	// What S3 lets a presigned URL leave unsigned: Content-Type (any
	// type goes with a URL that signs only host) and
	// x-amz-content-sha256 (the payload is the query's).
	r = put("hello", "Content-Type", "text/plain", "x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	biWantStatus(t, "presigned PUT with an unsigned Content-Type", r, http.StatusOK)
	if b := secRead(t, c, "drop", "upload"); b != "hello" {
		t.Fatalf("presigned PUT: drop/upload is %q", b)
	}

	// Header authentication: a header added after signing.
	sum := md5.Sum([]byte("hi"))
	for _, tc := range []struct {
		name, value, want string
	}{
		{"x-amz-copy-source", "/secret/plans", "x-amz-copy-source"},
		{"X-Amz-Metadata-Directive", "REPLACE", "x-amz-metadata-directive"},
		{"Content-Type", "text/html", "content-type"},
		{"Content-MD5", base64.StdEncoding.EncodeToString(sum[:]), "content-md5"},
	} {
		req := ts.biSigned(t, http.MethodPut, "/drop/signed", []byte("hi"))
		req.Header.Set(tc.name, tc.value)
		secWantNotSigned(t, "signed PUT with "+tc.name+" added after signing", biDo(t, req), tc.want)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "drop", "signed")); !os.IsNotExist(err) {
		t.Fatalf("a refused PUT left drop/signed: %v", err)
	}
	// The same headers signed are honoured.
	req := ts.biSigned(t, http.MethodPut, "/drop/copy", nil, "x-amz-copy-source", "/secret/plans", "Content-Type", "text/plain")
	biWantStatus(t, "signed copy", biDo(t, req), http.StatusOK)
	if b := secRead(t, c, "drop", "copy"); b != "the secret plans" {
		t.Fatalf("signed copy: %q", b)
	}
}

// secRead returns the object bucket/key read with c.
func secRead(t testing.TB, c *minio.Client, bucket, key string) string {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return string(b)
}

// secUnblockFIFO opens the FIFO path for writing and closes it again,
// which releases a reader blocked in opening it (the old server), so that
// a failing test ends instead of hanging.
func secUnblockFIFO(path string) {
	if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
	}
}

// TestFIFOAnswers: a FIFO in a public bucket (made through the mount) is
// no object: GET, HEAD, a copy from it and a listing answer at once
// (NoSuchKey; the listing leaves it out), and Close returns after them.
// The server opened a key before checking it was a regular file: the
// open of a FIFO blocked a thread until a writer came, and Close (SIGTERM)
// hung with it.
func TestFIFOAnswers(t *testing.T) {
	s, bb, root := newServer(t)
	defer bb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	ts := &testServer{Server: s, root: root, addr: ln.Addr().String(), bb: bb}
	closed := false
	closeServer := func() {
		if closed {
			return
		}
		closed = true
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Close did not return within 10 s after the requests")
		}
		for _, p := range []string{"pub/fifo", "pub/d/fifo"} {
			secUnblockFIFO(filepath.Join(root, p)) // (old code: let it go)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	defer closeServer()

	c := ts.client(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "pub", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ts.st.setBucketPublic("pub", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "pub", "real", strings.NewReader("data"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "pub", "d"), 0o755)
	for _, p := range []string{"pub/fifo", "pub/d/fifo"} {
		if err := unix.Mkfifo(filepath.Join(root, p), 0o666); err != nil {
			t.Fatal(err)
		}
	}

	// Each request gets 1 s: the answer needs a few system calls. A
	// request still waiting then is released (the FIFO opened for
	// writing) and fails the test.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	do := func(what string, req *http.Request, fifo string) biResp {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			secUnblockFIFO(filepath.Join(root, fifo))
			t.Errorf("%s: no answer within 1 s: %v", what, err)
			return biResp{}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return biResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	anon := func(method, target string) *http.Request {
		req, err := http.NewRequest(method, "http://"+ts.addr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	for _, key := range []string{"fifo", "d/fifo"} {
		fifo := "pub/" + key
		biWantError(t, "anonymous GET of "+fifo, do("GET "+fifo, anon("GET", "/"+fifo), fifo), false, "NoSuchKey", 404)
		biWantError(t, "anonymous HEAD of "+fifo, do("HEAD "+fifo, anon("HEAD", "/"+fifo), fifo), true, "NoSuchKey", 404)
		biWantError(t, "signed GET of "+fifo, do("signed GET "+fifo, ts.biSigned(t, "GET", "/"+fifo, nil), fifo), false, "NoSuchKey", 404)
		biWantError(t, "copy from "+fifo, do("copy from "+fifo,
			ts.biSigned(t, "PUT", "/pub/copy", nil, "x-amz-copy-source", "/"+fifo), fifo), false, "NoSuchKey", 404)
	}
	r := do("listing", anon("GET", "/pub?list-type=2"), "pub/fifo")
	biWantStatus(t, "listing", r, 200)
	if strings.Contains(string(r.Body), "fifo") || !strings.Contains(string(r.Body), "<Key>real</Key>") {
		t.Errorf("the listing shows the FIFO or misses the object: %s", r.Body)
	}
	r = do("listing", anon("GET", "/pub?list-type=2&prefix=d/"), "pub/d/fifo")
	biWantStatus(t, "listing of d/", r, 200)
	if strings.Contains(string(r.Body), "<Key>") {
		t.Errorf("the listing of d/ shows the FIFO: %s", r.Body)
	}
	if r := do("GET real", anon("GET", "/pub/real"), "pub/fifo"); r.Status != 200 || string(r.Body) != "data" {
		t.Errorf("GET of the object beside the FIFO: %s", r)
	}
	closeServer()
}

// TestDeleteBucketPutRace: a DeleteBucket that runs while PUTs into the
// bucket commit never deletes an object whose PUT was answered 200.
// Either the bucket goes and the PUTs fail, or it stays (BucketNotEmpty)
// with every acknowledged object readable. The bucket holds many empty
// directories (made through the mount), so DeleteBucket takes a while.
// It checked that the bucket held no object and then removed the whole
// tree: a PUT that landed in between was answered 200 and deleted.
func TestDeleteBucketPutRace(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	ctx := context.Background()
	const (
		trials  = 50
		emptyN  = 200 // empty directories in the bucket
		putters = 2
	)
	acked, refused, deleted := 0, 0, 0
	for trial := 0; trial < trials; trial++ {
		if err := c.MakeBucket(ctx, "race", minio.MakeBucketOptions{}); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		for i := 0; i < emptyN; i++ {
			if err := os.Mkdir(filepath.Join(ts.root, "race", fmt.Sprintf("e%03d", i)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		keys := make([]string, putters)
		errs := make([]error, putters)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range keys {
			// A key in a directory that sorts before the empty ones and
			// one at the top: DeleteBucket has looked at both places
			// early, and takes a while over the rest.
			keys[i] = []string{"a/k", "top"}[i%2] + fmt.Sprint(trial)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = c.PutObject(ctx, "race", keys[i], strings.NewReader(keys[i]), int64(len(keys[i])),
					minio.PutObjectOptions{DisableMultipart: true})
			}()
		}
		close(start)
		delErr := c.RemoveBucket(ctx, "race")
		wg.Wait()
		if delErr == nil {
			deleted++
		} else if code := errCode(delErr); code != "BucketNotEmpty" {
			t.Fatalf("trial %d: DeleteBucket: %v", trial, delErr)
		}
		for i, k := range keys {
			if errs[i] != nil {
				refused++
				continue
			}
			acked++
			o, err := c.GetObject(ctx, "race", k, minio.GetObjectOptions{})
			var b []byte
			if err == nil {
				b, err = io.ReadAll(o)
				o.Close()
			}
			if err != nil || string(b) != k {
				t.Errorf("trial %d: PUT %s was answered 200 (DeleteBucket: %v), then reads %q, %v", trial, k, delErr, b, err)
			}
		}
		// Next trial: no bucket.
		for _, k := range keys {
			c.RemoveObject(ctx, "race", k, minio.RemoveObjectOptions{})
		}
		os.RemoveAll(filepath.Join(ts.root, "race"))
		if t.Failed() {
			break
		}
	}
	t.Logf("%d trials: %d PUTs acknowledged, %d refused; the bucket deleted %d times", trials, acked, refused, deleted)
}

// secServe serves s on 127.0.0.1 until the test ends.
func secServe(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestTempDirPerNode: starting a node's S3 endpoint does not touch an
// upload another node (or the same node's previous life's sharer) is
// writing: each node has its own temporary directory, and what is swept
// is only what is older than TempMaxAge. Starting a node removed
// everything in the shared .engine-s3/tmp, so every other node's
// uploads in flight failed.
func TestTempDirPerNode(t *testing.T) {
	for _, tc := range []struct{ name, first, second string }{
		{"own directories", "n1", "n2"},
		{"shared directory", "", ""}, // the default: one node alone, or nodes not told apart
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, bb, root := newServer(t)
			defer bb.Close()
			if tc.first != "" {
				// newServer's server is the default one: make n1's.
				s1.Close()
				var err error
				if s1, err = New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, NodeID: tc.first}); err != nil {
					t.Fatal(err)
				}
			}
			addr := secServe(t, s1)
			// An upload in flight on the first node: half its body sent
			// (bodies over 1 MiB reach the handler before they end).
			body := []byte(strings.Repeat("inflight", 512<<10))
			pr, pw := io.Pipe()
			req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/bkt/k", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(body))
			if err := s1.st.createBucket("bkt", false); err != nil {
				t.Fatal(err)
			}
			biSignV4At(req, testAK, testSK, time.Now())
			answered := make(chan biResp, 1)
			go func() { answered <- biDo(t, req) }()
			if _, err := pw.Write(body[:len(body)/2]); err != nil {
				t.Fatal(err)
			}
			// Its temporary file exists once the server reads the body.
			for i := 0; ; i++ {
				ents, _ := os.ReadDir(filepath.Join(root, s1.st.tmp))
				if len(ents) > 0 {
					break
				}
				if i == 2000 {
					t.Fatal("no temporary file appeared in 10 s of an upload in flight")
				}
				time.Sleep(5 * time.Millisecond)
			}
			s2, err := New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, NodeID: tc.second})
			if err != nil {
				t.Fatal(err)
			}
			secServe(t, s2)
			if _, err := pw.Write(body[len(body)/2:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			r := <-answered
			biWantStatus(t, "the upload in flight while another node started", r, http.StatusOK)
			if got := secRead(t, (&testServer{addr: addr}).client(t), "bkt", "k"); got != string(body) {
				t.Errorf("the object reads %d bytes, want the %d uploaded", len(got), len(body))
			}
		})
	}
}

// TestTempSweepByAge: what a node sweeps from the temporary directories
// (its own, other nodes', the single directory of earlier versions) is
// only what is older than TempMaxAge, at start and then as uploads come.
func TestTempSweepByAge(t *testing.T) {
	s, bb, root := newServer(t)
	defer bb.Close()
	s.Close()
	tmps := filepath.Join(root, internalDir, "tmp")
	now := time.Now()
	old, young := now.Add(-25*time.Hour), now.Add(-time.Hour)
	files := map[string]time.Time{
		"gone/old": old, "gone/young": young, // a node that is gone, or down for a while
		"n1/old": old, "n1/young": young, // this node's
		"legacy-old": old, "legacy-young": young, // the single directory of earlier versions
	}
	os.MkdirAll(filepath.Join(tmps, "gone"), 0o700)
	os.MkdirAll(filepath.Join(tmps, "n1"), 0o700)
	os.MkdirAll(filepath.Join(tmps, "empty-old"), 0o700)
	for name, mt := range files {
		p := filepath.Join(tmps, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	os.Chtimes(filepath.Join(tmps, "empty-old"), old, old)
	clock := now
	s, err := New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, NodeID: "n1", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(tmps, name))
		return err == nil
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"gone/old", false}, {"gone/young", true}, {"n1/old", false}, {"n1/young", true},
		{"legacy-old", false}, {"legacy-young", true}, {"empty-old", false}, {"gone", true}, {"n1", true},
	} {
		if got := exists(tc.name); got != tc.want {
			t.Errorf("after the start: %s exists %v, want %v", tc.name, got, tc.want)
		}
	}
	// A day later the young ones are old: the next upload sweeps them.
	clock = now.Add(24 * time.Hour)
	u, err := s.st.newUpload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u.abort()
	for _, name := range []string{"gone/young", "n1/young", "legacy-young"} {
		if exists(name) {
			t.Errorf("a day later: %s was not swept", name)
		}
	}
	if _, err := New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, NodeID: "../x"}); err == nil ||
		!strings.Contains(err.Error(), "NodeID") {
		t.Errorf("NodeID ../x: %v, want an error naming NodeID", err)
	}
	if _, err := New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, TempMaxAge: -time.Hour}); err == nil ||
		!strings.Contains(err.Error(), "TempMaxAge") {
		t.Errorf("TempMaxAge -1h: %v, want an error naming TempMaxAge", err)
	}
}

// TestFileModes: objects are 0640 (put, copied, completed from parts),
// temporary files, parts and upload records 0600, the directories of
// .engine-s3 0700. They were 0644 and 0755: every local user could read
// every object of every bucket on the backing file system.
func TestFileModes(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "mod", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "mod", "put", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: "mod", Object: "copy"}, minio.CopySrcOptions{Bucket: "mod", Object: "put"}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: c}
	id, err := core.NewMultipartUpload(ctx, "mod", "multi", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part, err := core.PutObjectPart(ctx, "mod", "multi", id, 1, strings.NewReader("part"), 4, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	want := func(what, p string, m os.FileMode) {
		t.Helper()
		if got := mode(p); got != m {
			t.Errorf("%s %s: mode %04o, want %04o", what, p, got, m)
		}
	}
	up := filepath.Join(ts.root, internalDir, "uploads", id)
	want("part", filepath.Join(up, partName(1)), 0o600)
	want("upload record", filepath.Join(up, "upload.json"), 0o600)
	want("upload directory", up, 0o700)
	u, err := ts.st.newUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want("temporary file", u.f.Name(), 0o600)
	u.abort()
	for _, d := range []string{"", "tmp", "tmp/" + defaultNodeID, "uploads"} {
		want("internal directory", filepath.Join(ts.root, internalDir, d), 0o700)
	}
	if _, err := core.CompleteMultipartUpload(ctx, "mod", "multi", id, []minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"put", "copy", "multi"} {
		want("object", filepath.Join(ts.root, "mod", k), 0o640)
	}
}

// TestRedactURI: the logs never hold a presigned URL's signature.
func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"/b/k":         "/b/k",
		"/b/k?uploads": "/b/k?uploads",
		"/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc123&X-Amz-SignedHeaders=host": "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=REDACTED&X-Amz-SignedHeaders=host",
		"/b/k?AWSAccessKeyId=AK&Signature=xyz%2B&Expires=1":                                     "/b/k?AWSAccessKeyId=AK&Signature=REDACTED&Expires=1",
	} {
		if got := redactURI([]byte(in)); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
	// A presigned GET, logged at debug level.
	var logs bytes.Buffer
	var mu sync.Mutex
	ts := startServerWith(t, func(s *Server) {
		s.log = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := ts.client(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "logged", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := c.PresignedGetObject(ctx, "logged", "k", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	biDo(t, ts.biNew(t, "GET", u.RequestURI(), nil))
	mu.Lock()
	defer mu.Unlock()
	if sig := u.Query().Get("X-Amz-Signature"); sig == "" || strings.Contains(logs.String(), sig) || !strings.Contains(logs.String(), "X-Amz-Signature=REDACTED") {
		t.Errorf("the log of a presigned GET (signature %q):\n%s", sig, logs.String())
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
