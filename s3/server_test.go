package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"engine/burstbuffer"
)

const (
	testAK = "AKTESTENGINE"
	testSK = "sEcReT/tEsT+kEy"
)

// oneNode is a single-node cluster for the burst buffer under test: it
// never calls a peer.
type oneNode struct{}

func (oneNode) Live() []string { return []string{"n0"} }

type noPeers struct{}

var errNoPeer = errors.New("no peers in this test")

func (noPeers) PutShard(context.Context, string, int, uint64, int, []byte, bool) error {
	return errNoPeer
}
func (noPeers) ReadShard(context.Context, string, int, uint64, int, int, int, int, int, int) ([]byte, error) {
	return nil, errNoPeer
}
func (noPeers) SyncStores(context.Context, string, []int) error { return errNoPeer }
func (noPeers) GetShard(context.Context, string, int, uint64, int) ([]byte, error) {
	return nil, errNoPeer
}
func (noPeers) Publish(context.Context, string, []*burstbuffer.Meta) error { return errNoPeer }
func (noPeers) Drop(context.Context, string, []burstbuffer.Piece) error    { return errNoPeer }
func (noPeers) Dump(context.Context, string) (*burstbuffer.Dump, error)    { return nil, errNoPeer }
func (noPeers) Truncate(context.Context, string, burstbuffer.FileRef, int64) error {
	return errNoPeer
}
func (noPeers) Call(context.Context, string, string, string) error { return errNoPeer }

// testServer is a Server over a one-node burst buffer in a temporary
// directory, listening on 127.0.0.1.
type testServer struct {
	*Server
	root string
	addr string
	bb   *burstbuffer.Service
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	return startServerWith(t, func(*Server) {})
}

// startServerWith is startServer with tweak applied to the Server before
// it serves.
func startServerWith(t testing.TB, tweak func(*Server)) *testServer {
	t.Helper()
	s, bb, root := newServer(t)
	tweak(s)
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
		bb.Close()
	})
	return &testServer{Server: s, root: root, addr: ln.Addr().String(), bb: bb}
}

// newServer makes a Server over a one-node burst buffer in a temporary
// directory, not serving yet; it returns the burst buffer (the caller
// closes it) and the backing root.
func newServer(t testing.TB) (*Server, *burstbuffer.Service, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "backing")
	os.MkdirAll(root, 0o755)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bb, err := burstbuffer.Open(burstbuffer.Config{Node: "n0", FlashDir: filepath.Join(dir, "flash"), BackingDir: root,
		Cluster: oneNode{}, Transport: noPeers{}, FlashLimit: 1 << 30, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Root: root, Data: bb, Creds: Credentials{testAK: testSK}, Log: log})
	if err != nil {
		bb.Close()
		t.Fatal(err)
	}
	return s, bb, root
}

func (ts *testServer) client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(ts.addr, &minio.Options{Creds: credentials.NewStaticV4(testAK, testSK, ""), Secure: false,
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func errCode(err error) string { return minio.ToErrorResponse(err).Code }

// TestMinioObjects: buckets, put/get/head/delete, ranges, conditional
// gets, copies, user metadata and listings with minio-go (which signs
// with streaming signatures over plain HTTP).
func TestMinioObjects(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); errCode(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("second create: %v", err)
	}
	if ok, err := c.BucketExists(ctx, "photos"); !ok || err != nil {
		t.Fatalf("exists: %v %v", ok, err)
	}
	if ok, err := c.BucketExists(ctx, "nothere"); ok || err != nil {
		t.Fatalf("missing bucket exists: %v %v", ok, err)
	}
	data := randBytes(1, 300<<10)
	info, err := c.PutObject(ctx, "photos", "2026/nov/a.jpg", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "image/jpeg", UserMetadata: map[string]string{"Camera": "x100"}, CacheControl: "max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	if info.ETag != md5hex(data) {
		t.Fatalf("etag %s, want %s", info.ETag, md5hex(data))
	}
	// The object is a file of the namespace.
	if fi, err := os.Stat(filepath.Join(ts.root, "photos/2026/nov/a.jpg")); err != nil || fi.IsDir() {
		t.Fatalf("namespace file: %v", err)
	}
	obj, err := c.GetObject(ctx, "photos", "2026/nov/a.jpg", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	st, err := c.StatObject(ctx, "photos", "2026/nov/a.jpg", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(data)) || st.ContentType != "image/jpeg" || st.UserMetadata["Camera"] != "x100" ||
		st.Metadata.Get("Cache-Control") != "max-age=60" || st.ETag != md5hex(data) {
		t.Fatalf("stat: %+v", st)
	}
	// Ranges: first-last, open, suffix; one past the end is 416.
	for _, rg := range []struct {
		start, end int64
		want       []byte
	}{{0, 0, data[:1]}, {10, 99, data[10:100]}, {1000, 0, data[1000:]}, {0, -500, data[len(data)-500:]}} {
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(rg.start, rg.end); err != nil {
			t.Fatal(err)
		}
		o, err := c.GetObject(ctx, "photos", "2026/nov/a.jpg", opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(b, rg.want) {
			t.Fatalf("range %d,%d: %d bytes, want %d, %v", rg.start, rg.end, len(b), len(rg.want), err)
		}
	}
	opts := minio.GetObjectOptions{}
	opts.SetRange(int64(len(data)), 0)
	if o, err := c.GetObject(ctx, "photos", "2026/nov/a.jpg", opts); err == nil {
		if _, err = io.ReadAll(o); errCode(err) != "InvalidRange" {
			t.Fatalf("range past the end: %v", err)
		}
	}
	// Conditional gets.
	opts = minio.GetObjectOptions{}
	opts.SetMatchETag("nope")
	if o, err := c.GetObject(ctx, "photos", "2026/nov/a.jpg", opts); err == nil {
		if _, err = io.ReadAll(o); errCode(err) != "PreconditionFailed" {
			t.Fatalf("if-match other etag: %v", err)
		}
	}
	opts = minio.GetObjectOptions{}
	opts.SetMatchETag(md5hex(data))
	if o, err := c.GetObject(ctx, "photos", "2026/nov/a.jpg", opts); err != nil {
		t.Fatal(err)
	} else if b, err := io.ReadAll(o); err != nil || len(b) != len(data) {
		t.Fatalf("if-match etag: %d %v", len(b), err)
	}
	// Copy with metadata COPY and REPLACE.
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: "photos", Object: "copy.jpg"},
		minio.CopySrcOptions{Bucket: "photos", Object: "2026/nov/a.jpg"}); err != nil {
		t.Fatal(err)
	}
	st, err = c.StatObject(ctx, "photos", "copy.jpg", minio.StatObjectOptions{})
	if err != nil || st.ContentType != "image/jpeg" || st.UserMetadata["Camera"] != "x100" || st.ETag != md5hex(data) {
		t.Fatalf("copy stat: %+v %v", st, err)
	}
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: "photos", Object: "copy2.jpg", ReplaceMetadata: true,
		UserMetadata: map[string]string{"Lens": "23mm"}}, minio.CopySrcOptions{Bucket: "photos", Object: "copy.jpg", MatchETag: md5hex(data)}); err != nil {
		t.Fatal(err)
	}
	st, err = c.StatObject(ctx, "photos", "copy2.jpg", minio.StatObjectOptions{})
	if err != nil || st.UserMetadata["Lens"] != "23mm" || st.UserMetadata["Camera"] != "" {
		t.Fatalf("copy replace stat: %+v %v", st, err)
	}
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: "photos", Object: "copy3.jpg"},
		minio.CopySrcOptions{Bucket: "photos", Object: "copy.jpg", MatchETag: "other"}); errCode(err) != "PreconditionFailed" {
		t.Fatalf("conditional copy: %v", err)
	}
	// Listings.
	for _, k := range []string{"2026/nov/b.jpg", "2026/dec/c.jpg", "2025/x.jpg", "top.txt"} {
		if _, err := c.PutObject(ctx, "photos", k, bytes.NewReader([]byte(k)), int64(len(k)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(o minio.ListObjectsOptions) []string {
		var out []string
		for oi := range c.ListObjects(ctx, "photos", o) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			out = append(out, oi.Key)
		}
		return out
	}
	all := list(minio.ListObjectsOptions{Recursive: true})
	want := []string{"2025/x.jpg", "2026/dec/c.jpg", "2026/nov/a.jpg", "2026/nov/b.jpg", "copy.jpg", "copy2.jpg", "top.txt"}
	if strings.Join(all, ",") != strings.Join(want, ",") {
		t.Fatalf("recursive list %v, want %v", all, want)
	}
	if !sort.StringsAreSorted(all) {
		t.Fatal("not sorted")
	}
	if got := list(minio.ListObjectsOptions{Prefix: "2026/"}); strings.Join(got, ",") != "2026/dec/,2026/nov/" {
		t.Fatalf("delimited list %v", got)
	}
	if got := list(minio.ListObjectsOptions{Prefix: "2026/n", Recursive: true}); strings.Join(got, ",") != "2026/nov/a.jpg,2026/nov/b.jpg" {
		t.Fatalf("prefix list %v", got)
	}
	// Pages of 2 (continuation tokens), and V1 markers.
	if got := list(minio.ListObjectsOptions{Recursive: true, MaxKeys: 2}); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged list %v", got)
	}
	if got := list(minio.ListObjectsOptions{Recursive: true, MaxKeys: 3, UseV1: true}); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("V1 paged list %v", got)
	}
	if got := list(minio.ListObjectsOptions{MaxKeys: 1}); strings.Join(got, ",") != "2025/,2026/,copy.jpg,copy2.jpg,top.txt" {
		t.Fatalf("paged delimited list %v", got)
	}
	if got := list(minio.ListObjectsOptions{Recursive: true, StartAfter: "2026/nov/a.jpg"}); strings.Join(got, ",") != "2026/nov/b.jpg,copy.jpg,copy2.jpg,top.txt" {
		t.Fatalf("start-after list %v", got)
	}
	// A non-empty bucket stays; deletes remove empty prefixes.
	if err := c.RemoveBucket(ctx, "photos"); errCode(err) != "BucketNotEmpty" {
		t.Fatalf("remove non-empty bucket: %v", err)
	}
	if err := c.RemoveObject(ctx, "photos", "2025/x.jpg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "photos/2025")); !os.IsNotExist(err) {
		t.Fatalf("empty prefix directory left: %v", err)
	}
	if _, err := c.StatObject(ctx, "photos", "2025/x.jpg", minio.StatObjectOptions{}); errCode(err) != "NoSuchKey" {
		t.Fatalf("stat deleted: %v", err)
	}
	objs := make(chan minio.ObjectInfo)
	go func() {
		defer close(objs)
		for _, k := range all {
			objs <- minio.ObjectInfo{Key: k}
		}
	}()
	for e := range c.RemoveObjects(ctx, "photos", objs, minio.RemoveObjectsOptions{}) {
		t.Fatalf("multi-delete %s: %v", e.ObjectName, e.Err)
	}
	if got := list(minio.ListObjectsOptions{Recursive: true}); len(got) != 0 {
		t.Fatalf("left after multi-delete: %v", got)
	}
	if err := c.RemoveBucket(ctx, "photos"); err != nil {
		t.Fatal(err)
	}
}

// TestMinioMultipart: a 23 MiB object in 5 MiB parts (minio-go's
// multipart path), its ETag, partNumber reads, and a too-small part.
func TestMinioMultipart(t *testing.T) {
	ts := startServer(t)
	c := ts.client(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, "big", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(2, 23<<20)
	info, err := c.PutObject(ctx, "big", "blob", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{PartSize: 5 << 20, ContentType: "application/x-blob"})
	if err != nil {
		t.Fatal(err)
	}
	var sums []byte
	for off := 0; off < len(data); off += 5 << 20 {
		s := md5.Sum(data[off:min(off+5<<20, len(data))])
		sums = append(sums, s[:]...)
	}
	want := fmt.Sprintf("%s-%d", md5hex(sums), 5)
	if info.ETag != want {
		t.Fatalf("etag %s, want %s", info.ETag, want)
	}
	o, err := c.GetObject(ctx, "big", "blob", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	opts := minio.GetObjectOptions{PartNumber: 5}
	o, err = c.GetObject(ctx, "big", "blob", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(o)
	if err != nil || !bytes.Equal(got, data[20<<20:]) {
		t.Fatalf("part 5: %d bytes, %v", len(got), err)
	}
	// Parts below 5 MiB, other than the last, are refused.
	core := minio.Core{Client: c}
	id, err := core.NewMultipartUpload(ctx, "big", "small", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []minio.CompletePart
	for i := 1; i <= 2; i++ {
		p, err := core.PutObjectPart(ctx, "big", "small", id, i, bytes.NewReader(data[:1<<20]), 1<<20, minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: i, ETag: p.ETag})
	}
	if _, err := core.CompleteMultipartUpload(ctx, "big", "small", id, parts, minio.PutObjectOptions{}); errCode(err) != "EntityTooSmall" {
		t.Fatalf("small parts: %v", err)
	}
	if _, err := core.CompleteMultipartUpload(ctx, "big", "small", id, []minio.CompletePart{{PartNumber: 1, ETag: "bad"}}, minio.PutObjectOptions{}); errCode(err) != "InvalidPart" {
		t.Fatalf("wrong etag: %v", err)
	}
	lp, err := core.ListObjectParts(ctx, "big", "small", id, 0, 100)
	if err != nil || len(lp.ObjectParts) != 2 {
		t.Fatalf("list parts: %+v %v", lp, err)
	}
	if err := core.AbortMultipartUpload(ctx, "big", "small", id); err != nil {
		t.Fatal(err)
	}
	if _, err := core.ListObjectParts(ctx, "big", "small", id, 0, 100); errCode(err) != "NoSuchUpload" {
		t.Fatalf("list parts after abort: %v", err)
	}
	if _, err := c.StatObject(ctx, "big", "small", minio.StatObjectOptions{}); errCode(err) != "NoSuchKey" {
		t.Fatalf("aborted upload left an object: %v", err)
	}
}

// TestAuthRequired: wrong secrets and unsigned requests are refused;
// a public-read bucket can be read anonymously, never written.
func TestAuthRequired(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	c := ts.client(t)
	if err := c.MakeBucket(ctx, "pub", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "pub", "k", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	bad, _ := minio.New(ts.addr, &minio.Options{Creds: credentials.NewStaticV4(testAK, "wrong", ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if _, err := bad.StatObject(ctx, "pub", "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("wrong secret accepted")
	}
	if _, err := bad.PutObject(ctx, "pub", "k2", strings.NewReader("x"), 1, minio.PutObjectOptions{}); errCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("put with wrong secret: %v", err)
	}
	unknown, _ := minio.New(ts.addr, &minio.Options{Creds: credentials.NewStaticV4("NOSUCHKEY", "x", ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if _, err := unknown.ListBuckets(ctx); errCode(err) != "InvalidAccessKeyId" {
		t.Fatalf("unknown key: %v", err)
	}
	anon, _ := minio.New(ts.addr, &minio.Options{BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if _, err := anon.StatObject(ctx, "pub", "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("anonymous read of a private bucket")
	}
	if err := ts.st.setBucketPublic("pub", true); err != nil {
		t.Fatal(err)
	}
	o, err := anon.GetObject(ctx, "pub", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(o); err != nil || string(b) != "hello" {
		t.Fatalf("anonymous read of a public bucket: %q %v", b, err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+ts.addr+"/pub/k3", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "<Code>AccessDenied</Code>") {
			t.Fatalf("anonymous write: %d %s", resp.StatusCode, b)
		}
	}
	if _, err := os.Stat(filepath.Join(ts.root, "pub/k3")); !os.IsNotExist(err) {
		t.Fatalf("anonymous write left an object: %v", err)
	}
	// Presigned GET works and expires.
	u, err := c.PresignedGetObject(ctx, "pub", "k", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpGet(u.String())
	if err != nil || resp != "hello" {
		t.Fatalf("presigned get: %q %v", resp, err)
	}
}

func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// TestTrailingChecksums: uploads with trailing checksums, as current SDKs
// send them (minio-go with TrailingHeaders: STREAMING-UNSIGNED-PAYLOAD-
// TRAILER and signed trailers), are verified, kept and returned.
func TestTrailingChecksums(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	for _, unsigned := range []bool{true, false} {
		c, err := minio.New(ts.addr, &minio.Options{Creds: credentials.NewStaticV4(testAK, testSK, ""),
			BucketLookup: minio.BucketLookupPath, Region: "us-east-1", TrailingHeaders: true})
		if err != nil {
			t.Fatal(err)
		}
		bucket := fmt.Sprintf("trail-%v", unsigned)
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		data := randBytes(3, 12<<20+5)
		_, err = c.PutObject(ctx, bucket, "obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
			PartSize: 5 << 20, DisableContentSha256: unsigned, Checksum: minio.ChecksumCRC32C})
		if err != nil {
			t.Fatalf("unsigned %v: %v", unsigned, err)
		}
		o, err := c.GetObject(ctx, bucket, "obj", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("unsigned %v: read back %d bytes, %v", unsigned, len(got), err)
		}
		small := []byte("a small object with a trailing checksum")
		if _, err := c.PutObject(ctx, bucket, "small", bytes.NewReader(small), int64(len(small)), minio.PutObjectOptions{
			DisableContentSha256: unsigned, Checksum: minio.ChecksumCRC32}); err != nil {
			t.Fatalf("unsigned %v: small: %v", unsigned, err)
		}
		st, err := c.StatObject(ctx, bucket, "small", minio.StatObjectOptions{Checksum: true})
		if err != nil {
			t.Fatal(err)
		}
		h := crc32IEEE(small)
		if st.ChecksumCRC32 != h {
			t.Fatalf("unsigned %v: stored CRC32 %q, want %q", unsigned, st.ChecksumCRC32, h)
		}
	}
}

func crc32IEEE(b []byte) string {
	h, _ := NewChecksum("CRC32")
	h.Write(b)
	return ChecksumValue(h)
}

// TestVirtualHostStyle: with a domain configured, BUCKET.DOMAIN names the
// bucket.
func TestVirtualHostStyle(t *testing.T) {
	ts := startServer(t)
	ts.cfg.Domain = "s3.test"
	ctx := context.Background()
	c := ts.client(t)
	if err := c.MakeBucket(ctx, "vhost", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "vhost", "dir/k.txt", strings.NewReader("virtual"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// minio-go decides the style from the endpoint's name: dial
	// 127.0.0.1 whatever the host.
	dialer := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, ts.addr)
	}}
	_, port, _ := net.SplitHostPort(ts.addr)
	vc, err := minio.New("s3.test:"+port, &minio.Options{Creds: credentials.NewStaticV4(testAK, testSK, ""),
		BucketLookup: minio.BucketLookupDNS, Region: "us-east-1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	o, err := vc.GetObject(ctx, "vhost", "dir/k.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(o); err != nil || string(b) != "virtual" {
		t.Fatalf("virtual-host get: %q %v", b, err)
	}
	n := 0
	for oi := range vc.ListObjects(ctx, "vhost", minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil || oi.Key != "dir/k.txt" {
			t.Fatalf("virtual-host list: %+v", oi)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("virtual-host list: %d keys", n)
	}
}

// TestCloseBeforeServe: a server closed before its Serve got going (or
// before Serve was called at all) does not serve on: Serve returns and
// the listener is closed.
func TestCloseBeforeServe(t *testing.T) {
	s, bb, _ := newServer(t)
	defer bb.Close()
	s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		t.Fatal("Serve after Close still running after 5s")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener given to Serve after Close still accepts connections")
	}
}
