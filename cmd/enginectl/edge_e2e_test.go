package main

// End-to-end tests of the edge cache (engined --edge): real engined
// processes on 127.0.0.1, an S3 origin (engined --s3, a public-read bucket)
// and edges in front of it, driven with Go's HTTP client and curl. The
// origin and an edge of a 3-edge ring are killed with SIGKILL. Every wait is
// bounded; every process is stopped in t.Cleanup. Origin fetches are counted
// with the edges' /_edge/stats (the S3 server does not count requests).
//
// Run them with: go test -count=1 -run Edge -v ./cmd/enginectl

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"

	"engine/node"
)

// edgeToken is the edges' admin token (--edge-admin-token).
const edgeToken = "e2e-edge-admin-token-0123456789abcdef"

var (
	readyLine   = regexp.MustCompile(`ENGINE_ADDR=(\S+)\)`)
	s3Line      = regexp.MustCompile(`engined: S3 endpoint http://(127\.0\.0\.1:\d+)`)
	edgeURLLine = regexp.MustCompile(`engined: edge endpoint (http://127\.0\.0\.1:\d+)`)
)

// enginedProc is one engined process a test started.
type enginedProc struct {
	cmd    *exec.Cmd
	log    *lockedBuf
	exited chan struct{}
	api    string // its API address
	s3     string // its S3 endpoint's address ("" without one)
	edge   string // its edge's base URL ("" without one)
}

// startEngined starts engined with args and waits until it is ready
// (bounded); t.Cleanup stops it (SIGINT, then SIGKILL) and, if the test
// failed, logs the tail of its stderr.
func startEngined(t *testing.T, args ...string) *enginedProc {
	t.Helper()
	p := &enginedProc{log: &lockedBuf{}, exited: make(chan struct{})}
	p.cmd = exec.Command(enginedBin(), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("engined %s (pid %d) stderr (tail):\n%s", strings.Join(args, " "), p.cmd.Process.Pid, tailLines(p.log.String(), 30))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := p.log.String()
		if m := readyLine.FindStringSubmatch(out); m != nil {
			p.api = m[1]
			if m := s3Line.FindStringSubmatch(out); m != nil {
				p.s3 = m[1]
			}
			if m := edgeURLLine.FindStringSubmatch(out); m != nil {
				p.edge = m[1]
			}
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("engined %s exited before it was ready:\n%s", strings.Join(args, " "), tailLines(out, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("engined %s not ready within 30s:\n%s", strings.Join(args, " "), tailLines(out, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop interrupts the process and kills it if it is still running after
// grace.
func (p *enginedProc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// kill9 kills the process with SIGKILL and waits until it is gone.
func (p *enginedProc) kill9(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("engined (pid %d) still runs 10s after SIGKILL", p.cmd.Process.Pid)
	}
}

// s3Origin is an engined serving S3: the edges' origin. Its data lives in
// dir, so that it restarts with its objects.
type s3Origin struct {
	dir  string
	addr string // its S3 endpoint, 127.0.0.1:PORT
	proc *enginedProc
}

// startOrigin starts an S3 origin on a port of its choosing.
func startOrigin(t *testing.T) *s3Origin {
	t.Helper()
	o := &s3Origin{dir: t.TempDir()}
	os.WriteFile(filepath.Join(o.dir, "credentials"), []byte("# e2e\n"+s3AK+" "+s3SK+"\n"), 0o600)
	os.MkdirAll(filepath.Join(o.dir, "backing"), 0o755)
	o.start(t, "127.0.0.1:0")
	return o
}

// start starts the origin's process with its S3 endpoint on s3addr.
func (o *s3Origin) start(t *testing.T, s3addr string) {
	t.Helper()
	o.proc = startEngined(t, "--data", filepath.Join(o.dir, "data"), "--api", "127.0.0.1:0", "--flash", filepath.Join(o.dir, "flash"),
		"--backing", filepath.Join(o.dir, "backing"), "--s3", s3addr, "--credentials", filepath.Join(o.dir, "credentials"), "--workers", "1")
	if o.proc.s3 == "" {
		t.Fatalf("the origin engined printed no S3 endpoint:\n%s", o.proc.log.String())
	}
	o.addr = o.proc.s3
}

// restart starts the origin again, on the same S3 address and data.
func (o *s3Origin) restart(t *testing.T) {
	t.Helper()
	addr := o.addr
	o.start(t, addr)
	if o.addr != addr {
		t.Fatalf("the origin restarted on %s, not on %s", o.addr, addr)
	}
}

func (o *s3Origin) url() string { return "http://" + o.addr }

func (o *s3Origin) client(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(o.addr, &minio.Options{Creds: credentials.NewStaticV4(s3AK, s3SK, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publicBucket makes a bucket and gives it the canned ACL public-read, so
// that the edge's anonymous GETs may read it.
func (o *s3Origin) publicBucket(t *testing.T, bucket string) {
	t.Helper()
	makePublicBucket(t, o.addr, s3AK, s3SK, bucket)
}

// makePublicBucket makes a public-read bucket on the S3 endpoint at addr.
func makePublicBucket(t *testing.T, addr, ak, sk, bucket string) {
	t.Helper()
	o := &s3Origin{addr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", bucket, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, o.url()+"/"+bucket+"?acl=", nil)
	req.Header.Set("x-amz-acl", "public-read")
	req.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	req = signer.SignV4(*req, ak, sk, "", "us-east-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /%s?acl x-amz-acl: public-read: %s %s", bucket, resp.Status, b)
	}
	// Anonymous reads work now (a listing of the empty bucket).
	if r, err := edgeGet(o.url()+"/"+bucket+"?list-type=2", nil); err != nil || r.status != http.StatusOK {
		t.Fatalf("anonymous listing of the public-read bucket %s: %v %d %s", bucket, err, r.status, r.body)
	}
}

// put uploads an object (contentType and cacheControl may be "").
func (o *s3Origin) put(t *testing.T, bucket, key string, data []byte, contentType, cacheControl string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := o.client(t).PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: contentType, CacheControl: cacheControl}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// edgeNode is an engined serving the edge cache.
type edgeNode struct {
	*enginedProc
	url       string // http://127.0.0.1:PORT
	accessLog string
}

// startEdge starts a lone edge in front of origins.
func startEdge(t *testing.T, origins ...string) *edgeNode {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte(edgeToken+"\n"), 0o600)
	e := &edgeNode{accessLog: filepath.Join(dir, "access.log")}
	args := []string{"--data", filepath.Join(dir, "data"), "--api", "127.0.0.1:0", "--workers", "1", "--edge", "127.0.0.1:0",
		"--edge-health-interval", "200ms", "--edge-admin-token", tok, "--edge-access-log", e.accessLog}
	for _, o := range origins {
		args = append(args, "--origin", o)
	}
	e.enginedProc = startEngined(t, args...)
	if e.edge == "" {
		t.Fatalf("engined --edge printed no edge endpoint:\n%s", e.log.String())
	}
	e.url = e.edge
	return e
}

// edgeStats is what the tests read of /_edge/stats.
type edgeStats struct {
	Requests      int64    `json:"requests"`
	Hits          int64    `json:"hits"`
	Misses        int64    `json:"misses"`
	Stale         int64    `json:"stale"`
	Errors        int64    `json:"errors"`
	Coalesced     int64    `json:"coalesced"`
	Stored        int64    `json:"stored"`
	Compressions  int64    `json:"compressions"`
	OriginFetches int64    `json:"origin_fetches"`
	PeerFetches   int64    `json:"peer_fetches"`
	PeerFills     int64    `json:"peer_fills"`
	Purged        int64    `json:"purged"`
	Bypass        int64    `json:"bypass"`
	BytesSent     int64    `json:"bytes_sent"`
	OriginsUp     []string `json:"origins_up"`
	OriginsDown   []string `json:"origins_down"`
	Ring          []string `json:"ring"` // peer addresses
	Self          string   `json:"self"` // this edge's peer address
}

func readEdgeStats(url string) (edgeStats, error) { return readEdgeStatsWith(url, edgeToken) }

// readEdgeStatsWith reads an edge's counters with the admin token.
func readEdgeStatsWith(url, token string) (edgeStats, error) {
	var st edgeStats
	r, err := edgeDo(http.MethodGet, url+"/_edge/stats", map[string]string{"Authorization": "Bearer " + token})
	if err != nil {
		return st, err
	}
	if r.status != http.StatusOK {
		return st, fmt.Errorf("GET /_edge/stats: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		return st, fmt.Errorf("GET /_edge/stats: %v: %s", err, r.body)
	}
	return st, nil
}

func stats(t *testing.T, url string) edgeStats {
	t.Helper()
	st, err := readEdgeStats(url)
	if err != nil {
		t.Fatalf("edge %s: %v", url, err)
	}
	return st
}

// edgeClient asks for no content coding unless told (Accept-Encoding is
// set by hand), and decodes nothing.
var edgeClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 128},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type edgeResp struct {
	status int
	hdr    http.Header
	body   []byte
	took   time.Duration
}

func (r edgeResp) cacheStatus() string { return r.hdr.Get("Cache-Status") }

func edgeDo(method, url string, hdr map[string]string) (edgeResp, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return edgeResp{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := edgeClient.Do(req)
	if err != nil {
		return edgeResp{took: time.Since(start)}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return edgeResp{status: resp.StatusCode, hdr: resp.Header, body: b, took: time.Since(start)}, err
}

func edgeGet(url string, hdr map[string]string) (edgeResp, error) {
	return edgeDo(http.MethodGet, url, hdr)
}

// mustGet GETs url and wants status and (when want is not nil) the body.
func mustGet(t *testing.T, url string, hdr map[string]string, status int, want []byte) edgeResp {
	t.Helper()
	r, err := edgeGet(url, hdr)
	if err != nil {
		t.Fatalf("GET %s %v: %v", url, hdr, err)
	}
	if r.status != status {
		t.Fatalf("GET %s %v: %d (Cache-Status %q), want %d: %.300s", url, hdr, r.status, r.cacheStatus(), status, r.body)
	}
	if want != nil && !bytes.Equal(r.body, want) {
		t.Fatalf("GET %s %v: %d bytes (MD5 %s), want %d (MD5 %s); Cache-Status %q", url, hdr, len(r.body), md5hex(r.body), len(want), md5hex(want), r.cacheStatus())
	}
	return r
}

// wantCacheStatus checks the Cache-Status of r has every part wants.
func wantCacheStatus(t *testing.T, what string, r edgeResp, wants ...string) {
	t.Helper()
	cs := r.cacheStatus()
	if !strings.HasPrefix(cs, "engine-edge") {
		t.Errorf("%s: Cache-Status %q does not name engine-edge", what, cs)
	}
	for _, w := range wants {
		if !strings.Contains(cs, w) {
			t.Errorf("%s: Cache-Status %q, want %q in it", what, cs, w)
		}
	}
}

func isHit(r edgeResp) bool { return strings.HasPrefix(r.cacheStatus(), "engine-edge; hit") }

// waitHit GETs url until the answer is a hit (bounded): a request that
// comes right after a fill's last byte reached its client may still join
// that fill (Cache-Status ...; collapsed) until the fill has stored it.
func waitHit(t *testing.T, url string, want []byte) {
	t.Helper()
	pollUntil(t, "GET "+url+" is a hit", 5*time.Second, func() (bool, string) {
		r := mustGet(t, url, nil, http.StatusOK, want)
		return isHit(r), r.cacheStatus()
	})
}

// linesWith returns the lines of s that contain sub.
func linesWith(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// needCurl returns curl's path, or skips the test.
func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: the edge's curl checks need it (apt-get install curl)")
	}
	return p
}

// runCurl runs curl with args and returns its stdout; a failure fails the
// test.
func runCurl(t *testing.T, curl string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var so, se bytes.Buffer
	cmd := exec.CommandContext(ctx, curl, args...)
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, se.String())
	}
	return so.String()
}

// parseDumpedHeaders reads the header block curl -D wrote (the last
// response's).
func parseDumpedHeaders(t *testing.T, dump string) (int, http.Header) {
	t.Helper()
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(dump, "\r\n", "\n")), "\n\n")
	lines := strings.Split(blocks[len(blocks)-1], "\n")
	f := strings.Fields(lines[0])
	if len(f) < 2 {
		t.Fatalf("curl -D wrote no status line: %q", dump)
	}
	status, _ := strconv.Atoi(f[1])
	h := http.Header{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return status, h
}

// TestEdgeOriginKilled: the origin is killed with SIGKILL. Cached objects
// keep being served as hits, a miss fails fast with 502/504 and says why,
// and once the origin restarts on the same port the miss succeeds.
func TestEdgeOriginKilled(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "live")
	a, b := randBytes(1, 1<<20+123), randBytes(2, 300<<10)
	o.put(t, "live", "a.bin", a, "application/octet-stream", "")
	o.put(t, "live", "never/b.bin", b, "application/octet-stream", "")
	// Short-lived objects: one may be served stale, one must not.
	sObj, mObj := randBytes(10, 5000), randBytes(11, 6000)
	o.put(t, "live", "short.bin", sObj, "application/octet-stream", "max-age=1")
	o.put(t, "live", "strict.bin", mObj, "application/octet-stream", "max-age=1, must-revalidate")
	e := startEdge(t, o.url())

	r := mustGet(t, e.url+"/live/a.bin", nil, http.StatusOK, a)
	wantCacheStatus(t, "first GET", r, "fwd=uri-miss", "fwd-status=200", "stored")
	waitHit(t, e.url+"/live/a.bin", a)
	filled := time.Now()
	mustGet(t, e.url+"/live/short.bin", nil, http.StatusOK, sObj)
	mustGet(t, e.url+"/live/strict.bin", nil, http.StatusOK, mObj)
	time.Sleep(time.Until(filled.Add(1200 * time.Millisecond))) // both stale now

	o.proc.kill9(t)
	killed := time.Now()
	// A stale entry is served when the origin fails (stale-if-error); one
	// marked must-revalidate is not.
	r = mustGet(t, e.url+"/live/short.bin", nil, http.StatusOK, sObj)
	wantCacheStatus(t, "stale entry with the origin just killed", r, "stale")
	t.Logf("stale entry with the origin just killed: %q", r.cacheStatus())
	r, err := edgeGet(e.url+"/live/strict.bin", nil)
	if err != nil || (r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout) || bytes.Equal(r.body, mObj) {
		t.Errorf("must-revalidate entry with the origin dead: %d %v %q, want 502/504", r.status, err, r.cacheStatus())
	}
	// A miss right after the kill, before the health checks notice:
	// the connection is refused, 502 at once.
	r, err = edgeGet(e.url+"/live/never/b.bin", nil)
	if err != nil || r.status != http.StatusBadGateway || r.took > 3*time.Second || !strings.Contains(string(r.body), "origin") {
		t.Errorf("miss right after the origin was killed: %d in %s (%v): %q, want 502 within 3s naming the origin", r.status, r.took, err, r.body)
	}
	t.Logf("miss right after the kill: %d in %s: %s", r.status, r.took.Round(time.Microsecond), strings.TrimSpace(string(r.body)))
	// Hits keep serving for 2 s, bounded in count too.
	n := 0
	for time.Since(killed) < 2*time.Second && n < 20000 {
		r := mustGet(t, e.url+"/live/a.bin", nil, http.StatusOK, a)
		if !isHit(r) {
			t.Fatalf("GET %d after the origin was killed: Cache-Status %q, want a hit", n, r.cacheStatus())
		}
		n++
	}
	t.Logf("%d hits served in the 2 s after the origin was killed", n)
	// Now the health checks (every 200 ms, 3 failures) have taken it out.
	pollUntil(t, "the edge takes the dead origin out of rotation", 5*time.Second, func() (bool, string) {
		st := stats(t, e.url)
		return slices.Contains(st.OriginsDown, o.url()) && len(st.OriginsUp) == 0, fmt.Sprintf("up %v down %v", st.OriginsUp, st.OriginsDown)
	})
	for i := range 2 {
		r, err = edgeGet(e.url+"/live/never/b.bin", nil)
		if err != nil {
			t.Fatalf("miss with the origin dead: %v", err)
		}
		if (r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout) || r.took > 3*time.Second {
			t.Fatalf("miss %d with the origin dead: %d in %s, want 502 or 504 within 3s: %s", i, r.status, r.took, r.body)
		}
		if !strings.Contains(string(r.body), "origin") {
			t.Errorf("miss with the origin dead: the body does not say the origin is the problem: %q", r.body)
		}
		wantCacheStatus(t, "miss with the origin dead", r, "fwd=uri-miss", fmt.Sprintf("fwd-status=%d", r.status))
		t.Logf("miss with the origin dead: %d in %s: %s", r.status, r.took.Round(time.Microsecond), strings.TrimSpace(string(r.body)))
	}
	mustGet(t, e.url+"/live/a.bin", nil, http.StatusOK, a)
	r = mustGet(t, e.url+"/live/short.bin", nil, http.StatusOK, sObj)
	wantCacheStatus(t, "stale entry with the origin out of rotation", r, "stale")
	t.Logf("stale entry with the origin out of rotation: %q", r.cacheStatus())

	o.restart(t)
	took := pollUntil(t, "the miss succeeds once the origin is back", 15*time.Second, func() (bool, string) {
		r, err := edgeGet(e.url+"/live/never/b.bin", nil)
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusOK && bytes.Equal(r.body, b), fmt.Sprintf("%d %q %.200s", r.status, r.cacheStatus(), r.body)
	})
	t.Logf("origin back: the miss succeeded %s after the restart (%s after the kill)", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	waitHit(t, e.url+"/live/never/b.bin", b)
	// The stale entries are revalidated with the origin back (304).
	r = mustGet(t, e.url+"/live/short.bin", nil, http.StatusOK, sObj)
	wantCacheStatus(t, "stale entry with the origin back", r, "fwd=stale", "fwd-status=304")
	r = mustGet(t, e.url+"/live/strict.bin", nil, http.StatusOK, mObj)
	wantCacheStatus(t, "must-revalidate entry with the origin back", r, "fwd=stale", "fwd-status=304")
	if st := stats(t, e.url); len(st.OriginsUp) != 1 || len(st.OriginsDown) != 0 {
		t.Errorf("after the restart: origins up %v down %v", st.OriginsUp, st.OriginsDown)
	}
}

// TestEdgeCoalescing: 64 concurrent GETs of one uncached 8 MiB object make
// one origin fetch; all 64 get the whole object.
func TestEdgeCoalescing(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "coal")
	obj := randBytes(3, 8<<20)
	want := md5hex(obj)
	o.put(t, "coal", "big.bin", obj, "application/octet-stream", "")
	e := startEdge(t, o.url())
	before := stats(t, e.url)

	const clients = 64
	type res struct {
		status int
		cs     string
		sum    string
		n      int64
		err    error
	}
	results := make([]res, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := edgeClient.Get(e.url + "/coal/big.bin")
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			h := md5.New()
			n, err := io.Copy(h, resp.Body)
			results[i] = res{resp.StatusCode, resp.Header.Get("Cache-Status"), hex.EncodeToString(h.Sum(nil)), n, err}
		}()
	}
	t0 := time.Now()
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("64 concurrent GETs did not finish within 60s")
	}
	t.Logf("64 concurrent GETs of 8 MiB in %s", time.Since(t0).Round(time.Millisecond))
	kinds := map[string]int{}
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || r.sum != want {
			t.Errorf("client %d: status %d, %d bytes, MD5 %s (want %s), err %v, Cache-Status %q", i, r.status, r.n, r.sum, want, r.err, r.cs)
		}
		kinds[r.cs]++
	}
	t.Logf("Cache-Status of the 64: %v", kinds)
	after := stats(t, e.url)
	if d := after.OriginFetches - before.OriginFetches; d != 1 {
		t.Errorf("origin fetches grew by %d, want 1", d)
	}
	// A GET that arrives after the one fill has been stored is a hit, not a
	// collapsed request; on a loaded machine a few do. Either way it must not
	// have gone to the origin.
	coalesced, hits := after.Coalesced-before.Coalesced, after.Hits-before.Hits
	if coalesced+hits != clients-1 || coalesced == 0 {
		t.Errorf("coalesced grew by %d and hits by %d, want %d together (and some coalesced)", coalesced, hits, clients-1)
	}
}

// TestEdgeRangeAnd304: ranges, multi-ranges and conditional requests are
// answered from the cache, with Go's client and curl, without asking the
// origin again.
func TestEdgeRangeAnd304(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "rng")
	data := randBytes(4, 4000)
	o.put(t, "rng", "obj.bin", data, "application/octet-stream", "")
	other := randBytes(5, 100<<10)
	o.put(t, "rng", "first-ranged.bin", other, "application/octet-stream", "")
	e := startEdge(t, o.url())
	u := e.url + "/rng/obj.bin"

	full := mustGet(t, u, nil, http.StatusOK, data)
	etag, lastMod := full.hdr.Get("ETag"), full.hdr.Get("Last-Modified")
	if etag == "" || lastMod == "" || full.hdr.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("no ETag, Last-Modified or Accept-Ranges: %v", full.hdr)
	}
	before := stats(t, e.url)

	r := mustGet(t, u, map[string]string{"Range": "bytes=100-199"}, http.StatusPartialContent, data[100:200])
	if cr := r.hdr.Get("Content-Range"); cr != "bytes 100-199/4000" || !isHit(r) {
		t.Errorf("Range bytes=100-199: Content-Range %q, Cache-Status %q", cr, r.cacheStatus())
	}
	mustGet(t, u, map[string]string{"Range": "bytes=-10"}, http.StatusPartialContent, data[3990:])

	r = mustGet(t, u, map[string]string{"Range": "bytes=0-9,3990-3999"}, http.StatusPartialContent, nil)
	mt, params, err := mime.ParseMediaType(r.hdr.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" || params["boundary"] == "" {
		t.Fatalf("multi-range: Content-Type %q (%v)", r.hdr.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	wantParts := []struct {
		cr   string
		body []byte
	}{{"bytes 0-9/4000", data[:10]}, {"bytes 3990-3999/4000", data[3990:]}}
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i != len(wantParts) {
				t.Fatalf("multi-range: %d parts, want %d", i, len(wantParts))
			}
			break
		}
		if err != nil || i >= len(wantParts) {
			t.Fatalf("multi-range part %d: %v\n%q", i, err, r.body)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Range") != wantParts[i].cr || !bytes.Equal(b, wantParts[i].body) || p.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("multi-range part %d: %v %x, want %s %x", i, p.Header, b, wantParts[i].cr, wantParts[i].body)
		}
	}
	if cl, _ := strconv.Atoi(r.hdr.Get("Content-Length")); cl != len(r.body) {
		t.Errorf("multi-range: Content-Length %d, body %d bytes", cl, len(r.body))
	}

	r = mustGet(t, u, map[string]string{"If-None-Match": etag}, http.StatusNotModified, []byte{})
	if r.hdr.Get("ETag") != etag || !isHit(r) {
		t.Errorf("304: ETag %q (want %q), Cache-Status %q", r.hdr.Get("ETag"), etag, r.cacheStatus())
	}
	mustGet(t, u, map[string]string{"If-None-Match": `"something-else"`}, http.StatusOK, data)
	mustGet(t, u, map[string]string{"If-Modified-Since": lastMod}, http.StatusNotModified, []byte{})
	mustGet(t, u, map[string]string{"If-Match": `"something-else"`}, http.StatusPreconditionFailed, nil)
	mustGet(t, u, map[string]string{"Range": "bytes=5000-"}, http.StatusRequestedRangeNotSatisfiable, nil)
	// If-Range with the ETag: the range; with another: the whole object.
	mustGet(t, u, map[string]string{"Range": "bytes=10-19", "If-Range": etag}, http.StatusPartialContent, data[10:20])
	mustGet(t, u, map[string]string{"Range": "bytes=10-19", "If-Range": `"old"`}, http.StatusOK, data)

	if curl, err := exec.LookPath("curl"); err != nil {
		t.Log("curl is not installed: its range and 304 checks are skipped")
	} else {
		out := filepath.Join(t.TempDir(), "part")
		code := runCurl(t, curl, "-sS", "-o", out, "-w", "%{http_code}", "-H", "Range: bytes=100-199", u)
		if got, _ := os.ReadFile(out); code != "206" || !bytes.Equal(got, data[100:200]) {
			t.Errorf("curl Range: %s, %d bytes", code, len(got))
		}
		if code := runCurl(t, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: "+etag, u); code != "304" {
			t.Errorf("curl If-None-Match: %s, want 304", code)
		}
		if code := runCurl(t, curl, "-sS", "-o", out, "-w", "%{http_code}", "-r", "0-0,-1", u); code != "206" {
			t.Errorf("curl -r 0-0,-1: %s, want 206", code)
		} else if b, _ := os.ReadFile(out); !bytes.Contains(b, []byte("multipart")) && !bytes.Contains(b, []byte("Content-Range: bytes 0-0/4000")) {
			t.Errorf("curl -r 0-0,-1: not multipart: %q", b)
		}
	}
	r, err = edgeDo(http.MethodHead, u, nil)
	if err != nil || r.status != http.StatusOK || r.hdr.Get("Content-Length") != "4000" || len(r.body) != 0 || !isHit(r) {
		t.Errorf("HEAD on a hit: %d %v, Content-Length %q, %d body bytes, Cache-Status %q", r.status, err, r.hdr.Get("Content-Length"), len(r.body), r.cacheStatus())
	}
	after := stats(t, e.url)
	if d := after.OriginFetches - before.OriginFetches; d != 0 {
		t.Errorf("ranges and conditionals on a hit made %d origin fetches, want 0", d)
	}

	// A missing object: the origin's 404 is relayed, and not kept.
	for range 2 {
		r = mustGet(t, e.url+"/rng/no-such-object", nil, http.StatusNotFound, nil)
		wantCacheStatus(t, "GET of a missing object", r, "fwd=uri-miss", "fwd-status=404")
		if !bytes.Contains(r.body, []byte("NoSuchKey")) {
			t.Errorf("GET of a missing object: the origin's error is not relayed: %q", r.body)
		}
	}
	if d := stats(t, e.url).OriginFetches - after.OriginFetches; d != 2 {
		t.Errorf("two GETs of a missing object made %d origin fetches, want 2 (a 404 is not stored)", d)
	}

	// A range as the very first request (a miss): served from the fill.
	r = mustGet(t, e.url+"/rng/first-ranged.bin", map[string]string{"Range": "bytes=70000-70099"}, http.StatusPartialContent, other[70000:70100])
	wantCacheStatus(t, "a range on a miss", r, "fwd=uri-miss", "stored")
	waitHit(t, e.url+"/rng/first-ranged.bin", other)
}

// TestEdgeGzip: a compressible object goes out gzip or br to clients that
// take it (curl --compressed, curl with Accept-Encoding: gzip, Go's
// default client) and identity to those that do not, from one origin
// fetch.
func TestEdgeGzip(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "web")
	var buf bytes.Buffer
	rng := rand.New(rand.NewSource(6))
	buf.WriteString("[")
	for i := 0; buf.Len() < 200<<10; i++ {
		if i > 0 {
			buf.WriteString(",\n")
		}
		fmt.Fprintf(&buf, `{"id": %d, "name": "item-%d", "price": %d.%02d, "tags": ["edge", "cache", "t%d"]}`, i, rng.Intn(1000), rng.Intn(100), rng.Intn(100), rng.Intn(10))
	}
	buf.WriteString("]\n")
	doc := buf.Bytes()
	o.put(t, "web", "data.json", doc, "application/json", "")
	e := startEdge(t, o.url())
	u := e.url + "/web/data.json"
	before := stats(t, e.url)

	// No Accept-Encoding: identity (and it fills the cache).
	r := mustGet(t, u, nil, http.StatusOK, doc)
	if ce := r.hdr.Get("Content-Encoding"); ce != "" {
		t.Errorf("no Accept-Encoding: Content-Encoding %q, want identity", ce)
	}
	if !strings.Contains(r.hdr.Get("Vary"), "Accept-Encoding") {
		t.Errorf("identity response of a compressible object: Vary %q, want Accept-Encoding", r.hdr.Get("Vary"))
	}
	if r.hdr.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", r.hdr.Get("Content-Type"))
	}
	identityETag := r.hdr.Get("ETag")

	// Go's client with its default transport: asks for gzip, decodes.
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !resp.Uncompressed || !bytes.Equal(got, doc) {
		t.Errorf("Go's default client: %d, Uncompressed %v, %d bytes (want %d), %v", resp.StatusCode, resp.Uncompressed, len(got), len(doc), err)
	}

	// gzip by hand: the raw bytes gunzip to the object.
	r = mustGet(t, u, map[string]string{"Accept-Encoding": "gzip"}, http.StatusOK, nil)
	if r.hdr.Get("Content-Encoding") != "gzip" || !strings.Contains(r.hdr.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("Accept-Encoding: gzip: Content-Encoding %q, Vary %q", r.hdr.Get("Content-Encoding"), r.hdr.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, doc) {
		t.Fatalf("gzip body gunzips to %d bytes (%v), want the %d of the object", len(plain), err, len(doc))
	}
	if len(r.body) > len(doc)/2 {
		t.Errorf("gzip body %d bytes for %d of JSON", len(r.body), len(doc))
	}
	gzETag := r.hdr.Get("ETag")
	if gzETag == "" || gzETag == identityETag {
		t.Errorf("gzip variant's ETag %q, identity's %q: a coded variant needs its own", gzETag, identityETag)
	}
	mustGet(t, u, map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gzETag}, http.StatusNotModified, []byte{})
	// A range addresses the identity bytes, whatever the client takes.
	r = mustGet(t, u, map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-99"}, http.StatusPartialContent, doc[:100])
	if ce := r.hdr.Get("Content-Encoding"); ce != "" {
		t.Errorf("a range with Accept-Encoding: gzip: Content-Encoding %q", ce)
	}
	// gzip;q=0 and identity only: identity.
	r = mustGet(t, u, map[string]string{"Accept-Encoding": "gzip;q=0, br;q=0"}, http.StatusOK, doc)
	if ce := r.hdr.Get("Content-Encoding"); ce != "" {
		t.Errorf("Accept-Encoding: gzip;q=0, br;q=0: Content-Encoding %q", ce)
	}

	if curl, err := exec.LookPath("curl"); err != nil {
		t.Log("curl is not installed: its content-coding checks are skipped")
	} else {
		dir := t.TempDir()
		out, raw := filepath.Join(dir, "out"), filepath.Join(dir, "raw")
		status, h := parseDumpedHeaders(t, runCurl(t, curl, "--compressed", "-sS", "-D", "-", "-o", out, u))
		ce := h.Get("Content-Encoding")
		if status != 200 || (ce != "gzip" && ce != "br") || !strings.Contains(h.Get("Vary"), "Accept-Encoding") {
			t.Errorf("curl --compressed: %d, Content-Encoding %q, Vary %q", status, ce, h.Get("Vary"))
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, doc) {
			t.Errorf("curl --compressed: %d bytes decoded, want the %d of the object", len(got), len(doc))
		}
		t.Logf("curl --compressed got Content-Encoding %s", ce)
		status, h = parseDumpedHeaders(t, runCurl(t, curl, "-sS", "-D", "-", "-o", raw, "-H", "Accept-Encoding: gzip", u))
		if status != 200 || h.Get("Content-Encoding") != "gzip" {
			t.Errorf("curl -H 'Accept-Encoding: gzip': %d, Content-Encoding %q", status, h.Get("Content-Encoding"))
		}
		rawb, _ := os.ReadFile(raw)
		zr, err := gzip.NewReader(bytes.NewReader(rawb))
		if err != nil {
			t.Fatalf("curl's raw output is not gzip: %v", err)
		}
		if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, doc) {
			t.Errorf("curl's raw output gunzips to %d bytes (%v), want %d", len(plain), err, len(doc))
		}
		if gz, err := exec.LookPath("gzip"); err == nil {
			if plain, err := exec.Command(gz, "-dc", raw).Output(); err != nil || !bytes.Equal(plain, doc) {
				t.Errorf("gzip -dc of curl's raw output: %d bytes, %v", len(plain), err)
			}
		}
		status, h = parseDumpedHeaders(t, runCurl(t, curl, "-sS", "-D", "-", "-o", out, u))
		if got, _ := os.ReadFile(out); status != 200 || h.Get("Content-Encoding") != "" || !bytes.Equal(got, doc) {
			t.Errorf("curl without Accept-Encoding: %d, Content-Encoding %q, %d bytes", status, h.Get("Content-Encoding"), len(got))
		}
	}
	after := stats(t, e.url)
	if d := after.OriginFetches - before.OriginFetches; d != 1 {
		t.Errorf("origin fetches grew by %d for every coding and client, want 1", d)
	}
	t.Logf("compressions made: %d", after.Compressions-before.Compressions)
}

// TestEdgePurge: purge by key and by prefix with the admin token (401
// without); the next GET is a miss again.
func TestEdgePurge(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "pbk")
	objs := map[string][]byte{"/pbk/p/a.bin": randBytes(7, 10000), "/pbk/p/b.bin": randBytes(8, 20000), "/pbk/q/c.bin": randBytes(9, 30000)}
	for k, v := range objs {
		o.put(t, "pbk", strings.TrimPrefix(k, "/pbk/"), v, "application/octet-stream", "")
	}
	style := bytes.Repeat([]byte("body { color: #123456; margin: 0 auto; }\n"), 2000)
	o.put(t, "pbk", "p/style.css", style, "text/css", "")
	e := startEdge(t, o.url())
	for k, v := range objs {
		mustGet(t, e.url+k, nil, http.StatusOK, v)
		waitHit(t, e.url+k, v)
	}
	mustGet(t, e.url+"/pbk/p/style.css", map[string]string{"Accept-Encoding": "gzip"}, http.StatusOK, nil)
	if r := mustGet(t, e.url+"/pbk/p/style.css", map[string]string{"Accept-Encoding": "gzip"}, http.StatusOK, nil); !isHit(r) || r.hdr.Get("Content-Encoding") != "gzip" {
		t.Fatalf("style.css: %q %q, want a gzip hit", r.cacheStatus(), r.hdr.Get("Content-Encoding"))
	}

	purge := func(query string, hdr map[string]string, status int) edgeResp {
		t.Helper()
		r, err := edgeDo(http.MethodPost, e.url+"/_edge/purge?"+query, hdr)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != status {
			t.Fatalf("POST /_edge/purge?%s %v: %d, want %d: %s", query, hdr, r.status, status, r.body)
		}
		return r
	}
	auth := map[string]string{"Authorization": "Bearer " + edgeToken}
	purge("key=/pbk/p/a.bin", nil, http.StatusUnauthorized)
	purge("key=/pbk/p/a.bin", map[string]string{"Authorization": "Bearer wrong-token-wrong-token"}, http.StatusUnauthorized)
	if r := mustGet(t, e.url+"/pbk/p/a.bin", nil, http.StatusOK, objs["/pbk/p/a.bin"]); !isHit(r) {
		t.Fatalf("an unauthorized purge removed the entry: %q", r.cacheStatus())
	}
	if r, err := edgeGet(e.url+"/_edge/purge?key=/pbk/p/a.bin", auth); err != nil || r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /_edge/purge: %d %v, want 405", r.status, err)
	}
	purge("key=pb/p/a.bin", auth, http.StatusBadRequest)
	purge("key=/pbk/p/a.bin&prefix=/pbk/", auth, http.StatusBadRequest)

	before := stats(t, e.url)
	r := purge("key=/pbk/p/a.bin", auth, http.StatusOK)
	var pr struct {
		Purged int `json:"purged"`
	}
	if json.Unmarshal(r.body, &pr) != nil || pr.Purged != 1 {
		t.Errorf("purge by key answered %s, want purged 1", r.body)
	}
	r = mustGet(t, e.url+"/pbk/p/a.bin", nil, http.StatusOK, objs["/pbk/p/a.bin"])
	wantCacheStatus(t, "GET after purge by key", r, "fwd=uri-miss", "stored")
	if r := mustGet(t, e.url+"/pbk/p/b.bin", nil, http.StatusOK, objs["/pbk/p/b.bin"]); !isHit(r) {
		t.Errorf("purge by key of a.bin removed b.bin too: %q", r.cacheStatus())
	}
	if d := stats(t, e.url).OriginFetches - before.OriginFetches; d != 1 {
		t.Errorf("after purge by key: %d origin fetches, want 1", d)
	}

	// By prefix: /pbk/p/ (a, b and style.css with its gzip variant), not /pbk/q/.
	r = purge("prefix=/pbk/p/", auth, http.StatusOK)
	if json.Unmarshal(r.body, &pr) != nil || pr.Purged < 3 {
		t.Errorf("purge by prefix answered %s, want at least 3 purged", r.body)
	}
	for _, k := range []string{"/pbk/p/a.bin", "/pbk/p/b.bin"} {
		r := mustGet(t, e.url+k, nil, http.StatusOK, objs[k])
		wantCacheStatus(t, "GET "+k+" after purge by prefix", r, "fwd=uri-miss")
	}
	r = mustGet(t, e.url+"/pbk/p/style.css", map[string]string{"Accept-Encoding": "gzip"}, http.StatusOK, nil)
	wantCacheStatus(t, "gzip GET of style.css after purge by prefix", r, "fwd=uri-miss")
	if r := mustGet(t, e.url+"/pbk/q/c.bin", nil, http.StatusOK, objs["/pbk/q/c.bin"]); !isHit(r) {
		t.Errorf("purge of /pbk/p/ removed /pbk/q/c.bin: %q", r.cacheStatus())
	}

	// bytes_sent counts the bodies of hits from the memory tier.
	before = stats(t, e.url)
	for range 3 {
		if r := mustGet(t, e.url+"/pbk/q/c.bin", nil, http.StatusOK, objs["/pbk/q/c.bin"]); !isHit(r) {
			t.Fatalf("c.bin: %q, want a hit", r.cacheStatus())
		}
	}
	if d := stats(t, e.url).BytesSent - before.BytesSent; d < 3*30000 {
		t.Errorf("bytes_sent grew by %d for 3 hits of 30000 bytes (and a stats answer), want at least 90000", d)
	}

	// The other admin endpoints: health open, stats and metrics need the token.
	if r, err := edgeGet(e.url+"/_edge/health", nil); err != nil || r.status != http.StatusOK {
		t.Errorf("/_edge/health: %d %v", r.status, err)
	}
	for _, p := range []string{"/_edge/stats", "/_edge/metrics"} {
		if r, err := edgeGet(e.url+p, nil); err != nil || r.status != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d %v, want 401", p, r.status, err)
		}
	}
	if r, err := edgeGet(e.url+"/_edge/metrics", auth); err != nil || r.status != http.StatusOK || !bytes.Contains(r.body, []byte("engine_edge_origin_fetches_total")) {
		t.Errorf("/_edge/metrics: %d %v %.200s", r.status, err, r.body)
	}
	// The access log has the hits and misses (it is flushed every second).
	pollUntil(t, "the access log records hits and misses", 3*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(e.accessLog)
		s := string(b)
		return strings.Contains(s, `"GET /pbk/p/a.bin HTTP/1.1" 200 10000 "" "Go-http-client/1.1" miss `) &&
			strings.Contains(s, `"GET /pbk/q/c.bin HTTP/1.1" 200 30000 "" "Go-http-client/1.1" hit `), linesWith(s, "/pbk/q/c.bin")
	})
}

// TestEdgeRing: three engined nodes of one cluster, each an edge in front
// of one S3 origin. A key is fetched from the origin once, by its owner;
// the other edges fill from the owner. One edge is killed with SIGKILL:
// the others' rings shrink and every key still reads through them.
func TestEdgeRing(t *testing.T) {
	o := startOrigin(t)
	o.publicBucket(t, "ring")
	const nkeys = 6
	keys := map[string][]byte{}
	var first, second, third []string // fetched before the kill, right after it, after the rings shrank
	for i := range 3 * nkeys {
		k := fmt.Sprintf("/ring/k%02d.bin", i)
		keys[k] = randBytes(int64(100+i), 64<<10+i)
		o.put(t, "ring", strings.TrimPrefix(k, "/ring/"), keys[k], "application/octet-stream", "")
		switch i / nkeys {
		case 0:
			first = append(first, k)
		case 1:
			second = append(second, k)
		default:
			third = append(third, k)
		}
	}
	dir := t.TempDir()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(edgeToken+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	c, err := node.StartLocal(ctx, node.LocalConfig{Nodes: 3, Dir: dir, Engined: enginedBin(), ClientToken: testToken, Timeout: 45 * time.Second,
		Args: []string{"--workers", "1", "--edge", "127.0.0.1:0", "--origin", o.url(), "--edge-health-interval", "200ms",
			"--edge-admin-token", tok, "--edge-access-log", "-"}})
	if err != nil {
		logTails(t, dir)
		t.Fatalf("start a 3-node cluster with edges: %v", err)
	}
	t.Cleanup(func() { stopCluster(t, c) })
	urls := make([]string, 3)
	pollUntil(t, "every node prints its edge endpoint", 20*time.Second, func() (bool, string) {
		for i := range urls {
			b, _ := os.ReadFile(filepath.Join(c.NodeDir(i), "engined.log"))
			if m := edgeURLLine.FindSubmatch(b); m != nil {
				urls[i] = string(m[1])
			}
		}
		return !slices.Contains(urls, ""), fmt.Sprint(urls)
	})
	t.Logf("3 edges ready in %s: %v", time.Since(start).Round(time.Millisecond), urls)
	// The ring holds the edges' peer addresses (their nodes' internal
	// ports), which each edge reports as self.
	selfs := make([]string, 3)
	for i := range urls {
		selfs[i] = stats(t, urls[i]).Self
	}
	all := slices.Sorted(slices.Values(selfs))
	ringIs := func(i int, want []string) (bool, string) {
		st, err := readEdgeStats(urls[i])
		if err != nil {
			return false, err.Error()
		}
		got := slices.Sorted(slices.Values(st.Ring))
		return slices.Equal(got, want), fmt.Sprintf("edge %d ring %v", i, st.Ring)
	}
	// waitRing waits until the /_edge/stats ring of every edge of idx is
	// want. The ring should follow the membership by itself; if it does
	// not within quiet, that is reported, and the wait goes on with a
	// miss on the edge every poll (a GET of a missing key), which
	// refreshes it.
	probes := 0
	waitRing := func(idx []int, want []string, quiet time.Duration) {
		t.Helper()
		start := time.Now()
		var last []string
		for time.Since(start) < quiet {
			last = nil
			for _, i := range idx {
				if ok, desc := ringIs(i, want); !ok {
					last = append(last, desc)
				}
			}
			if last == nil {
				t.Logf("edges %v: ring %v after %s", idx, want, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("BUG: the /_edge/stats ring of edges %v is not %v %s on (last: %v) while no request comes: Stats().Ring only changes on a miss (fromOwner calls ring.set)", idx, want, quiet, last)
		for _, i := range idx {
			pollUntil(t, fmt.Sprintf("edge %d's ring is %v (with misses)", i, want), 20*time.Second, func() (bool, string) {
				probes++
				edgeGet(fmt.Sprintf("%s/ring/missing-%d", urls[i], probes), nil)
				return ringIs(i, want)
			})
		}
		t.Logf("edges %v: ring %v after %s (with misses)", idx, want, time.Since(start).Round(time.Millisecond))
	}
	waitRing([]int{0, 1, 2}, all, 3*time.Second)

	statsAll := func(idx []int) []edgeStats {
		out := make([]edgeStats, 3)
		for _, i := range idx {
			out[i] = stats(t, urls[i])
		}
		return out
	}
	// get GETs key through every edge of order, and returns the index of
	// the edge that fetched it from the origin (-1: none) and the peer
	// fills the others made.
	get := func(key string, order []int, live []int) (owner int, originFetches, peerFills int64) {
		t.Helper()
		before := statsAll(live)
		for _, i := range order {
			r := mustGet(t, urls[i]+key, nil, http.StatusOK, keys[key])
			if r.took > 5*time.Second {
				t.Errorf("GET %s through edge %d took %s", key, i, r.took)
			}
		}
		after := statsAll(live)
		owner = -1
		for _, i := range live {
			d := after[i].OriginFetches - before[i].OriginFetches
			originFetches += d
			if d > 0 {
				owner = i
			}
			peerFills += after[i].PeerFills - before[i].PeerFills
		}
		return owner, originFetches, peerFills
	}
	owned := map[int][]string{}
	nonOwnerFirst := 0
	for j, k := range first {
		order := []int{j % 3, (j + 1) % 3, (j + 2) % 3}
		owner, fetches, fills := get(k, order, []int{0, 1, 2})
		if fetches != 1 || fills != 2 {
			t.Errorf("%s through edges %v: %d origin fetches (want 1), %d peer fills (want 2)", k, order, fetches, fills)
		}
		if owner >= 0 {
			owned[owner] = append(owned[owner], k)
			if owner != order[0] {
				nonOwnerFirst++
			}
		}
	}
	t.Logf("owners: %v; %d keys asked first of a non-owner", owned, nonOwnerFirst)
	st := statsAll([]int{0, 1, 2})
	for i := range st {
		// An edge that owns every key (the ring's hash of random ports
		// can give it all six) fills nothing from a peer.
		if st[i].PeerFills == 0 && len(owned[i]) < len(first) {
			t.Errorf("edge %d made no peer fill though it owns %d of the %d keys: %+v", i, len(owned[i]), len(first), st[i])
		}
	}

	// Kill the edge that owns the most keys.
	victim := 0
	for i := range 3 {
		if len(owned[i]) > len(owned[victim]) {
			victim = i
		}
	}
	var live []int
	for i := range 3 {
		if i != victim {
			live = append(live, i)
		}
	}
	killNode(t, c, victim, syscall.SIGKILL, 10*time.Second)
	killed := time.Now()
	t.Logf("killed edge %d (%s), owner of %v", victim, urls[victim], owned[victim])
	// Right away (the survivors may still count the dead edge in): every
	// key reads through both survivors, new ones included.
	for _, k := range append(slices.Clone(first), second...) {
		for _, i := range live {
			r := mustGet(t, urls[i]+k, nil, http.StatusOK, keys[k])
			if r.took > 5*time.Second {
				t.Errorf("GET %s through edge %d right after the kill took %s", k, i, r.took)
			}
		}
	}
	t.Logf("all %d keys read through the survivors %s after the kill", len(first)+len(second), time.Since(killed).Round(time.Millisecond))
	var liveURLs []string
	for _, i := range live {
		liveURLs = append(liveURLs, selfs[i])
	}
	slices.Sort(liveURLs)
	waitRing(live, liveURLs, 10*time.Second)
	t.Logf("the survivors' rings are %v %s after the kill", liveURLs, time.Since(killed).Round(time.Millisecond))
	// With the ring of two: one origin fetch per new key again.
	for j, k := range third {
		order := []int{live[j%2], live[(j+1)%2]}
		_, fetches, fills := get(k, order, live)
		if fetches != 1 || fills != 1 {
			t.Errorf("%s through the survivors %v: %d origin fetches (want 1), %d peer fills (want 1)", k, order, fetches, fills)
		}
	}
	for _, k := range owned[victim] {
		for _, i := range live {
			mustGet(t, urls[i]+k, nil, http.StatusOK, keys[k])
		}
	}
}

// TestEdgePurgeDuringFill: a purge while a fill of the key runs. The
// origin here is a server in the test process that stalls halfway through
// version 1 of the object; meanwhile the object becomes version 2 at the
// origin and is purged. A request after the purge must not be given
// version 1, neither by joining the old fill nor from the entry that fill
// stores when it ends.
func TestEdgePurgeDuringFill(t *testing.T) {
	v1, v2 := randBytes(20, 1<<20), randBytes(21, 1<<20)
	var mu sync.Mutex
	cur, fetches := 1, 0
	half := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow/obj.bin" {
			http.NotFound(w, r) // the health checks' HEAD /: below 500, a pass
			return
		}
		mu.Lock()
		v, n := cur, fetches
		fetches++
		mu.Unlock()
		body := v1
		if v == 2 {
			body = v2
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+md5hex(body)+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if v == 1 && n == 0 {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			close(half)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			w.Write(body[len(body)/2:])
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before srv.Close
	e := startEdge(t, srv.URL)
	u := e.url + "/slow/obj.bin"

	type res struct {
		r   edgeResp
		err error
	}
	first := make(chan res, 1)
	go func() { r, err := edgeGet(u, nil); first <- res{r, err} }()
	select {
	case <-half:
	case <-time.After(10 * time.Second):
		t.Fatal("the edge did not fetch the object within 10s")
	}
	mu.Lock()
	cur = 2
	mu.Unlock()
	r, err := edgeDo(http.MethodPost, e.url+"/_edge/purge?key=/slow/obj.bin", map[string]string{"Authorization": "Bearer " + edgeToken})
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("purge: %d %v %s", r.status, err, r.body)
	}
	// A request after the purge, while the old fill still runs.
	before := stats(t, e.url)
	second := make(chan res, 1)
	go func() { r, err := edgeGet(u, nil); second <- res{r, err} }()
	pollUntil(t, "the edge takes the request after the purge", 5*time.Second, func() (bool, string) {
		st := stats(t, e.url)
		return st.Misses > before.Misses || st.Hits > before.Hits, fmt.Sprintf("misses %d hits %d", st.Misses, st.Hits)
	})
	releaseOnce.Do(func() { close(release) })
	wait := func(ch chan res, what string) edgeResp {
		select {
		case x := <-ch:
			if x.err != nil || x.r.status != http.StatusOK {
				t.Fatalf("%s: %d %v", what, x.r.status, x.err)
			}
			return x.r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer within 10s", what)
		}
		return edgeResp{}
	}
	if r := wait(first, "the GET that started the fill"); !bytes.Equal(r.body, v1) {
		t.Errorf("the GET that started before the purge got %d bytes that are not version 1", len(r.body))
	}
	if r := wait(second, "the GET after the purge"); !bytes.Equal(r.body, v2) {
		t.Errorf("BUG: the GET after the purge got version 1 (Cache-Status %q): it joined the fill the purge should have cut off", r.cacheStatus())
	}
	time.Sleep(300 * time.Millisecond) // the old fill ends and stores what it has
	r = mustGet(t, u, nil, http.StatusOK, nil)
	if !bytes.Equal(r.body, v2) {
		t.Errorf("BUG: a GET after the purge and the end of the old fill got version 1 (Cache-Status %q): the fill that ran during the purge stored its entry after it", r.cacheStatus())
	}
	mu.Lock()
	t.Logf("origin fetches: %d; the last GET: %q", fetches, r.cacheStatus())
	mu.Unlock()
}

// TestEdgeCredentialsBypass: requests with credentials go to the origin
// with them and are never stored: a signed S3 client (minio-go) reads a
// private bucket through the edge, an anonymous client still cannot.
func TestEdgeCredentialsBypass(t *testing.T) {
	o := startOrigin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.client(t).MakeBucket(ctx, "private", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := randBytes(30, 50000)
	o.put(t, "private", "secret.bin", secret, "application/octet-stream", "")
	e := startEdge(t, o.url())
	u := e.url + "/private/secret.bin"

	r := mustGet(t, u, nil, http.StatusForbidden, nil)
	if !bytes.Contains(r.body, []byte("AccessDenied")) {
		t.Errorf("anonymous GET of a private object: %q", r.body)
	}
	// minio-go signs for the edge's host; the edge relays with it.
	c, err := minio.New(strings.TrimPrefix(e.url, "http://"), &minio.Options{Creds: credentials.NewStaticV4(s3AK, s3SK, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		obj, err := c.GetObject(ctx, "private", "secret.bin", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("signed GET through the edge: %d bytes, %v", len(got), err)
		}
	}
	st := stats(t, e.url)
	if st.Bypass < 2 || st.Stored != 0 {
		t.Errorf("after two signed GETs: bypass %d (want 2), stored %d (want 0)", st.Bypass, st.Stored)
	}
	r = mustGet(t, u, nil, http.StatusForbidden, nil)
	if bytes.Equal(r.body, secret) {
		t.Fatal("an anonymous GET got the private object after a signed one")
	}
	// Writes go to the origin, not through the edge.
	if _, err := c.PutObject(ctx, "private", "w.bin", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err == nil {
		t.Error("a PUT through the edge succeeded; the edge serves GET and HEAD only")
	}
}

// vmRSS reads a process's resident set size (bytes) from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the edge's RSS: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestEdgeMultiRangeMemory is the attack of issue 13: slow anonymous
// clients asking a cached 96 MiB object for a multi-range response. The
// edge built each such body whole in memory before sending a byte (8
// clients: RSS from 246 MB to 1 GB); it streams them part by part now, so
// its RSS grows by less than 64 MiB while the 8 clients hold their
// connections, reading slowly.
func TestEdgeMultiRangeMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the edge's RSS")
	}
	const size = 96 << 20
	o := startOrigin(t)
	o.publicBucket(t, "mranges")
	data := randBytes(96, size)
	o.put(t, "mranges", "big.bin", data, "application/octet-stream", "")
	e := startEdge(t, o.url())
	url := e.url + "/mranges/big.bin"
	mustGet(t, url, nil, http.StatusOK, data) // the fill
	waitHit(t, url, data)
	data = nil
	pid := e.cmd.Process.Pid
	base := vmRSS(t, pid)

	// Two disjoint ranges covering nearly all the object: a multipart body
	// of 96 MiB.
	const rangeHdr = "bytes=0-49999999,50000100-"
	host := strings.TrimPrefix(e.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var readers []*bufio.Reader
	for i := range 8 {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(c, "GET /mranges/big.bin HTTP/1.1\r\nHost: edge\r\nRange: %s\r\n\r\n", rangeHdr)
		br := bufio.NewReaderSize(c, 64<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
			t.Fatalf("client %d: %s %q, want a 206 multipart/byteranges", i, resp.Status, resp.Header.Get("Content-Type"))
		}
		readers = append(readers, br)
	}
	// Read slowly: 64 KiB per client every 20 ms, for 1 s, sampling the
	// edge's RSS.
	peak := base
	buf := make([]byte, 64<<10)
	got := make([]int, len(readers))
	for range 50 {
		for i, br := range readers {
			n, err := io.ReadFull(br, buf)
			got[i] += n
			if err != nil {
				t.Fatalf("client %d after %d bytes: %v", i, got[i], err)
			}
		}
		peak = max(peak, vmRSS(t, pid))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("edge RSS: %d MiB before, %d MiB at most with 8 slow multi-range clients (each read %d KiB)", base>>20, peak>>20, got[0]>>10)
	if grew := peak - base; grew >= 64<<20 {
		t.Errorf("the edge's RSS grew by %d MiB with 8 slow multi-range clients on a %d MiB object, want under 64 MiB", grew>>20, size>>20)
	}
	// Each client gets the right bytes: the first part's head, then the
	// object's first bytes.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	r, err := edgeGet(url, map[string]string{"Range": "bytes=0-9,100-109"})
	if err != nil || r.status != http.StatusPartialContent {
		t.Fatalf("a small multi-range GET: %v %d", err, r.status)
	}
	_, params, _ := mime.ParseMediaType(r.hdr.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	want := randBytes(96, 110)
	for _, w := range [][]byte{want[:10], want[100:110]} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if !bytes.Equal(b, w) {
			t.Errorf("part %q: %x, want %x", p.Header.Get("Content-Range"), b, w)
		}
	}
}
