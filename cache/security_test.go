package cache

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorBodyHidesOrigin: when the origin cannot be reached, the 502 a
// client gets names no origin address or URL (it did: "the origin could
// not be reached: origin 127.0.0.1:PORT: Get \"http://…\": …"); the log
// has the details, with presigned credentials redacted.
func TestErrorBodyHidesOrigin(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	addr := o.addr
	o.stop()
	var logBuf syncBuffer
	cfg := edgeConfig(o.URL())
	cfg.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	e := startEdge(t, cfg)
	c := newClient(t)
	for _, tc := range []struct {
		what   string
		method string
		path   string
		kv     []string
	}{
		{"a miss", http.MethodGet, "/secret/path/obj", nil},
		{"a HEAD miss (relayed)", http.MethodHead, "/secret/path/head", nil},
		{"a presigned request (bypass)", http.MethodGet, "/secret/path/p?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIDEXAMPLE", nil},
		{"a request with credentials", http.MethodGet, "/secret/path/a", []string{"Authorization", "Bearer x"}},
	} {
		r := do(t, c, tc.method, e.URL+tc.path, tc.kv...)
		if r.status != http.StatusBadGateway {
			t.Errorf("%s: status %d, want 502", tc.what, r.status)
		}
		for _, leak := range []string{addr, "127.0.0.1", "http://", "/secret/path", "dial", "refused"} {
			if bytes.Contains(r.body, []byte(leak)) {
				t.Errorf("%s: the %d body %q contains %q", tc.what, r.status, r.body, leak)
			}
		}
	}
	log := logBuf.String()
	if !strings.Contains(log, "origin fetch failed") || !strings.Contains(log, addr) {
		t.Errorf("the log does not say which origin failed:\n%s", log)
	}
	if strings.Contains(log, "deadbeef") || strings.Contains(log, "AKIDEXAMPLE") {
		t.Errorf("the log holds a presigned credential:\n%s", log)
	}
}

// TestAccessLogRedactsSignatures: presigned URLs' signatures, credentials
// and session tokens are logged as REDACTED (they were logged whole: a
// reader of the log could replay the URL until it expired).
func TestAccessLogRedactsSignatures(t *testing.T) {
	o := startOrigin(t, serveObjects(nil, map[string]*object{"/a": {body: []byte("hello")}}))
	var buf syncBuffer
	cfg := edgeConfig(o.URL())
	cfg.AccessLog = &buf
	e := startEdge(t, cfg)
	c := newClient(t)
	do(t, c, "GET", e.URL+"/a?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0123abcd&X-Amz-Security-Token=sessiontok&versionId=v1")
	do(t, c, "GET", e.URL+"/a?AWSAccessKeyId=AKIDV2&Signature=sigv2value&Expires=1")
	do(t, c, "GET", e.URL+"/a?x-amz-signature=lowercasesig&%58-Amz-Signature=encodedname")
	c.Transport.(*http.Transport).CloseIdleConnections()
	e.close(t)
	log := buf.String()
	for _, secret := range []string{"AKIDEXAMPLE", "0123abcd", "sessiontok", "sigv2value", "lowercasesig", "encodedname"} {
		if strings.Contains(log, secret) {
			t.Errorf("the access log holds %q:\n%s", secret, log)
		}
	}
	for _, kept := range []string{"X-Amz-Signature=REDACTED", "X-Amz-Credential=REDACTED", "X-Amz-Security-Token=REDACTED", "Signature=REDACTED", "versionId=v1", "X-Amz-Algorithm=AWS4-HMAC-SHA256", "AWSAccessKeyId=AKIDV2"} {
		if !strings.Contains(log, kept) {
			t.Errorf("the access log lacks %q:\n%s", kept, log)
		}
	}
}

// TestOpenAccessLogMode: the access log is created 0640 (it was 0644) and
// an existing world-readable one is narrowed.
func TestOpenAccessLogMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	f, err := OpenAccessLog(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(p); fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("a new access log has mode %v, want no access for others", fi.Mode().Perm())
	}
	old := filepath.Join(dir, "old.log")
	if err := os.WriteFile(old, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o644)
	f, err = OpenAccessLog(old)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(old); fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("an existing 0644 access log still has mode %v", fi.Mode().Perm())
	}
}
