package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
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
