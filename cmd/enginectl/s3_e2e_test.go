package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	s3AK = "AKE2ETEST"
	s3SK = "e2e/Secret+Key"
)

// s3Node is one engined serving S3 (and, as root, mounting the namespace).
type s3Node struct {
	endpoint string // http://127.0.0.1:PORT
	addr     string
	backing  string
	mnt      string // "" when not mounted
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

// startS3Node starts engined with the burst buffer, an S3 endpoint on
// 127.0.0.1 and, when mount is set (root only), the FUSE mount.
func startS3Node(t *testing.T, mount bool) *s3Node {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(creds, []byte("# e2e\n"+s3AK+" "+s3SK+"\n"), 0o600)
	backing := filepath.Join(dir, "backing")
	os.MkdirAll(backing, 0o755)
	// Port 0: engined prints the address it got (a port picked here and
	// passed on could be taken by another test in between).
	args := []string{"--data", filepath.Join(dir, "data"), "--api", "127.0.0.1:0", "--flash", filepath.Join(dir, "flash"),
		"--backing", backing, "--s3", "127.0.0.1:0", "--credentials", creds, "--workers", "1"}
	n := &s3Node{backing: backing, log: &bytes.Buffer{}}
	if mount {
		n.mnt = filepath.Join(dir, "mnt")
		os.MkdirAll(n.mnt, 0o755)
		args = append(args, "--mount", n.mnt)
		t.Cleanup(func() { lazyUnmount(n.mnt) })
	}
	n.cmd = exec.Command(enginedBin(), args...)
	stderr, _ := n.cmd.StderrPipe()
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("engined log (tail):\n%s", tailLines(n.log.String(), 40))
		}
	})
	sc := bufio.NewScanner(stderr)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		n.log.WriteString(line + "\n")
		if regexp.MustCompile(`ENGINE_ADDR=`).MatchString(line) {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("engined did not start:\n%s", n.log)
	}
	go func() {
		for sc.Scan() {
			n.log.WriteString(sc.Text() + "\n")
		}
	}()
	m := regexp.MustCompile(`S3 endpoint http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(n.log.String())
	if m == nil {
		t.Fatalf("engined did not print its S3 endpoint:\n%s", n.log)
	}
	n.addr, n.endpoint = m[1], "http://"+m[1]
	return n
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// s3Env is the environment for the aws CLI, boto3 and rclone: only our
// credentials and endpoint, no configuration files of this machine.
func s3Env(n *s3Node) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "RCLONE_") {
			continue
		}
		env = append(env, kv)
	}
	home := filepath.Join(os.TempDir(), "s3e2e-home")
	os.MkdirAll(home, 0o700)
	return append(env, "AWS_ACCESS_KEY_ID="+s3AK, "AWS_SECRET_ACCESS_KEY="+s3SK, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=", "HOME="+home,
		"RCLONE_CONFIG=/dev/null", "RCLONE_CONFIG_E_TYPE=s3", "RCLONE_CONFIG_E_PROVIDER=Other",
		"RCLONE_CONFIG_E_ACCESS_KEY_ID="+s3AK, "RCLONE_CONFIG_E_SECRET_ACCESS_KEY="+s3SK,
		"RCLONE_CONFIG_E_ENDPOINT="+n.endpoint, "RCLONE_CONFIG_E_REGION=us-east-1")
}

// s3client finds a client program: the Debian one first (the project's
// install script installs it), else the PATH's.
func s3client(t *testing.T, debian, name string) string {
	t.Helper()
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (scripts/install-deps.sh installs it)", name)
	}
	return p
}

// s3run runs a client command and returns its stdout; failing runs fail the
// test unless wantFail.
func s3run(t *testing.T, n *s3Node, wantFail bool, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = s3Env(n)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if (err != nil) != wantFail {
		t.Fatalf("%s %s: err %v (want failure: %v)\nstdout: %s\nstderr: %s", filepath.Base(prog), strings.Join(args, " "), err, wantFail, so.String(), se.String())
	}
	if wantFail {
		return se.String()
	}
	return so.String()
}

func writeRandom(t *testing.T, path string, seed int64, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func fileMD5(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestS3AwsCLI runs the aws CLI against a real engined: make bucket, put a
// small and a 100 MB (multipart) object, list with prefix and delimiter,
// ranged and conditional gets, copy, delete, remove bucket.
func TestS3AwsCLI(t *testing.T) {
	aws := s3client(t, "/usr/bin/aws", "aws")
	n := startS3Node(t, false)
	dir := t.TempDir()
	ep := "--endpoint-url=" + n.endpoint
	s3run(t, n, false, aws, ep, "s3", "mb", "s3://cli-bucket")
	small := filepath.Join(dir, "small.txt")
	os.WriteFile(small, []byte("hello from the aws cli\n"), 0o644)
	big := filepath.Join(dir, "big.bin")
	bigMD5 := writeRandom(t, big, 7, 100<<20)
	s3run(t, n, false, aws, ep, "s3", "cp", small, "s3://cli-bucket/docs/small.txt")
	s3run(t, n, false, aws, ep, "s3", "cp", big, "s3://cli-bucket/data/big.bin")
	out := s3run(t, n, false, aws, ep, "s3", "ls", "s3://cli-bucket/data/")
	if !strings.Contains(out, "104857600 big.bin") {
		t.Fatalf("ls data/:\n%s", out)
	}
	out = s3run(t, n, false, aws, ep, "s3api", "list-objects-v2", "--bucket", "cli-bucket", "--delimiter", "/", "--output", "text",
		"--query", "CommonPrefixes[].Prefix")
	if strings.Join(strings.Fields(out), " ") != "data/ docs/" {
		t.Fatalf("common prefixes: %q", out)
	}
	got := filepath.Join(dir, "got.bin")
	s3run(t, n, false, aws, ep, "s3", "cp", "s3://cli-bucket/data/big.bin", got)
	if m := fileMD5(t, got); m != bigMD5 {
		t.Fatalf("100 MB object read back with MD5 %s, wrote %s", m, bigMD5)
	}
	head := s3run(t, n, false, aws, ep, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "data/big.bin", "--output", "text",
		"--query", "[ContentLength,ETag]")
	if !strings.Contains(head, "104857600") || !strings.Contains(head, "-") {
		t.Fatalf("head of the multipart object: %s", head)
	}
	part := filepath.Join(dir, "part")
	s3run(t, n, false, aws, ep, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "docs/small.txt", "--range", "bytes=6-9", part)
	if b, _ := os.ReadFile(part); string(b) != "from" {
		t.Fatalf("ranged get: %q", b)
	}
	etag := strings.TrimSpace(s3run(t, n, false, aws, ep, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "docs/small.txt",
		"--output", "text", "--query", "ETag"))
	errOut := s3run(t, n, true, aws, ep, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "docs/small.txt", "--if-none-match", etag, part)
	if !strings.Contains(errOut, "304") && !strings.Contains(errOut, "Not Modified") {
		t.Fatalf("if-none-match: %s", errOut)
	}
	errOut = s3run(t, n, true, aws, ep, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "docs/small.txt", "--if-match", `"0000"`, part)
	if !strings.Contains(errOut, "PreconditionFailed") && !strings.Contains(errOut, "412") {
		t.Fatalf("if-match: %s", errOut)
	}
	s3run(t, n, false, aws, ep, "s3", "cp", "s3://cli-bucket/docs/small.txt", "s3://cli-bucket/docs/copy.txt")
	s3run(t, n, false, aws, ep, "s3", "cp", "s3://cli-bucket/docs/copy.txt", part)
	if b, _ := os.ReadFile(part); string(b) != "hello from the aws cli\n" {
		t.Fatalf("copy: %q", b)
	}
	errOut = s3run(t, n, true, aws, ep, "s3", "rb", "s3://cli-bucket")
	if !strings.Contains(errOut, "BucketNotEmpty") {
		t.Fatalf("rb of a non-empty bucket: %s", errOut)
	}
	s3run(t, n, false, aws, ep, "s3", "rm", "s3://cli-bucket/docs/copy.txt")
	s3run(t, n, false, aws, ep, "s3", "rm", "--recursive", "s3://cli-bucket/")
	s3run(t, n, false, aws, ep, "s3", "rb", "s3://cli-bucket")
	if _, err := os.Stat(filepath.Join(n.backing, "cli-bucket")); !os.IsNotExist(err) {
		t.Fatalf("bucket directory left: %v", err)
	}
}

const boto3Script = `
import sys, hashlib, boto3, botocore
from boto3.s3.transfer import TransferConfig
ep, path = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=ep, config=botocore.config.Config(s3={"addressing_style": "path"}))
def code(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return "OK"
s3.create_bucket(Bucket="py-bucket")
assert code(lambda: s3.create_bucket(Bucket="py-bucket")) == "BucketAlreadyOwnedByYou"
body = b"boto3 says hello" * 1000
r = s3.put_object(Bucket="py-bucket", Key="a/b/c.txt", Body=body, ContentType="text/plain", Metadata={"k": "v"})
assert r["ETag"].strip('"') == hashlib.md5(body).hexdigest(), r["ETag"]
g = s3.get_object(Bucket="py-bucket", Key="a/b/c.txt", Range="bytes=-5")
assert g["Body"].read() == body[-5:] and g["ContentRange"] == "bytes %d-%d/%d" % (len(body)-5, len(body)-1, len(body))
h = s3.head_object(Bucket="py-bucket", Key="a/b/c.txt")
assert h["ContentType"] == "text/plain" and h["Metadata"] == {"k": "v"}, h
assert code(lambda: s3.get_object(Bucket="py-bucket", Key="a/b/c.txt", Range="bytes=%d-" % len(body))) == "InvalidRange"
assert code(lambda: s3.get_object(Bucket="py-bucket", Key="a/b/c.txt", IfMatch='"nope"')) == "PreconditionFailed"
assert code(lambda: s3.get_object(Bucket="py-bucket", Key="a/b/c.txt", IfNoneMatch=h["ETag"])) == "304"
assert code(lambda: s3.get_object(Bucket="py-bucket", Key="nope")) == "NoSuchKey"
assert code(lambda: s3.get_object(Bucket="no-bucket", Key="x")) == "NoSuchBucket"
s3.copy_object(Bucket="py-bucket", Key="a/copy.txt", CopySource={"Bucket": "py-bucket", "Key": "a/b/c.txt"},
               MetadataDirective="REPLACE", Metadata={"n": "2"}, ContentType="text/x-copy")
h = s3.head_object(Bucket="py-bucket", Key="a/copy.txt")
assert h["Metadata"] == {"n": "2"} and h["ContentType"] == "text/x-copy", h
# 100 MB through the managed transfer: multipart, parts in parallel.
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
s3.upload_file(path, "py-bucket", "big/obj.bin", Config=cfg)
s3.download_file("py-bucket", "big/obj.bin", path + ".back", Config=cfg)
a, b = open(path, "rb").read(), open(path + ".back", "rb").read()
assert a == b, "100 MB object differs"
p = s3.get_object(Bucket="py-bucket", Key="big/obj.bin", PartNumber=2)
assert p["ContentLength"] == 8 << 20 and p["PartsCount"] == 13, (p["ContentLength"], p.get("PartsCount"))
l = s3.list_objects_v2(Bucket="py-bucket", Delimiter="/", Prefix="a/")
assert [c["Prefix"] for c in l["CommonPrefixes"]] == ["a/b/"] and [o["Key"] for o in l["Contents"]] == ["a/copy.txt"], l
l = s3.list_objects(Bucket="py-bucket", Prefix="a/", MaxKeys=1)
assert l["IsTruncated"] and [o["Key"] for o in l["Contents"]] == ["a/b/c.txt"], l
v = s3.list_object_versions(Bucket="py-bucket")
assert sorted(x["Key"] for x in v["Versions"]) == ["a/b/c.txt", "a/copy.txt", "big/obj.bin"] and all(x["VersionId"] == "null" for x in v["Versions"])
d = s3.delete_objects(Bucket="py-bucket", Delete={"Objects": [{"Key": "a/b/c.txt"}, {"Key": "a/copy.txt"}, {"Key": "big/obj.bin"}]})
assert len(d["Deleted"]) == 3 and not d.get("Errors"), d
assert s3.list_objects_v2(Bucket="py-bucket")["KeyCount"] == 0
s3.delete_bucket(Bucket="py-bucket")
print("boto3 ok")
`

// TestS3Boto3 runs a boto3 program (Debian's python3-boto3) against a real
// engined.
func TestS3Boto3(t *testing.T) {
	py := s3client(t, "/usr/bin/python3", "python3")
	if err := exec.Command(py, "-c", "import boto3").Run(); err != nil {
		t.Skip("boto3 is not installed (scripts/install-deps.sh installs python3-boto3)")
	}
	n := startS3Node(t, false)
	dir := t.TempDir()
	script := filepath.Join(dir, "t.py")
	os.WriteFile(script, []byte(boto3Script), 0o644)
	big := filepath.Join(dir, "big.bin")
	writeRandom(t, big, 9, 100<<20)
	if out := s3run(t, n, false, py, script, n.endpoint, big); !strings.Contains(out, "boto3 ok") {
		t.Fatalf("boto3: %s", out)
	}
}

// TestS3Rclone copies a tree up and down with rclone (and its multipart
// uploads), and checks it.
func TestS3Rclone(t *testing.T) {
	rc := s3client(t, "/usr/bin/rclone", "rclone")
	n := startS3Node(t, false)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	sums := map[string]string{}
	for i, size := range []int{0, 1, 4096, 300 << 10, 12 << 20} {
		p := filepath.Join(src, fmt.Sprintf("d%d/f%d.bin", i%2, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		sums[fmt.Sprintf("d%d/f%d.bin", i%2, i)] = writeRandom(t, p, int64(i), size)
	}
	common := []string{"--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1", "--low-level-retries", "1"}
	s3run(t, n, false, rc, append([]string{"mkdir", "e:rc-bucket"}, common...)...)
	s3run(t, n, false, rc, append([]string{"copy", src, "e:rc-bucket/tree"}, common...)...)
	out := s3run(t, n, false, rc, append([]string{"lsf", "-R", "--files-only", "e:rc-bucket/tree"}, common...)...)
	if got := strings.Join(strings.Fields(out), " "); got != "d0/f0.bin d0/f2.bin d0/f4.bin d1/f1.bin d1/f3.bin" {
		t.Fatalf("lsf: %q", got)
	}
	s3run(t, n, false, rc, append([]string{"check", src, "e:rc-bucket/tree"}, common...)...)
	back := filepath.Join(dir, "back")
	s3run(t, n, false, rc, append([]string{"copy", "e:rc-bucket/tree", back}, common...)...)
	for k, want := range sums {
		if got := fileMD5(t, filepath.Join(back, k)); got != want {
			t.Fatalf("%s: MD5 %s, want %s", k, got, want)
		}
	}
	s3run(t, n, false, rc, append([]string{"purge", "e:rc-bucket"}, common...)...)
	if _, err := os.Stat(filepath.Join(n.backing, "rc-bucket")); !os.IsNotExist(err) {
		t.Fatalf("bucket left after purge: %v", err)
	}
}

// TestS3MountInterop writes through the FUSE mount and reads through S3,
// and the reverse, on one engined (root only: the mount).
func TestS3MountInterop(t *testing.T) {
	needFUSE(t)
	n := startS3Node(t, true)
	pollUntil(t, "the mount serves", 30*time.Second, func() (bool, string) {
		fs := mountedFS(n.mnt)
		return strings.HasPrefix(fs, "fuse"), fs
	})
	c, err := minio.New(n.addr, &minio.Options{Creds: credentials.NewStaticV4(s3AK, s3SK, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Mount → S3: a directory made through the mount is a bucket; a file
	// written there (not yet drained) is an object.
	if err := os.MkdirAll(filepath.Join(n.mnt, "shared/in"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(n.mnt, "shared/in/from-mount.bin"), 3, 3<<20+17)
	o, err := c.GetObject(ctx, "shared", "in/from-mount.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	if s := md5.Sum(b); hex.EncodeToString(s[:]) != want {
		t.Fatalf("object written through the mount reads back through S3 with MD5 %x, want %s", s, want)
	}
	st, err := c.StatObject(ctx, "shared", "in/from-mount.bin", minio.StatObjectOptions{})
	if err != nil || st.ETag != want || st.Size != 3<<20+17 {
		t.Fatalf("stat through S3: %+v %v (want the MD5 as ETag)", st, err)
	}
	// S3 → mount.
	data := bytes.Repeat([]byte("S3 to the mount. "), 200000)
	if _, err := c.PutObject(ctx, "shared", "out/from-s3.txt", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(n.mnt, "shared/out/from-s3.txt"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object put through S3 reads through the mount: %d bytes, %v", len(got), err)
	}
	// An overwrite through S3 is seen whole through the mount.
	data2 := bytes.Repeat([]byte("second version "), 100)
	if _, err := c.PutObject(ctx, "shared", "out/from-s3.txt", bytes.NewReader(data2), int64(len(data2)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(n.mnt, "shared/out/from-s3.txt")); err != nil || !bytes.Equal(got, data2) {
		t.Fatalf("overwritten object through the mount: %d bytes, %v", len(got), err)
	}
	// A write through the mount to an object S3 wrote: S3 serves the new
	// bytes with their own MD5 as ETag, not the one it stored.
	data3 := []byte("rewritten through the mount")
	if err := os.WriteFile(filepath.Join(n.mnt, "shared/out/from-s3.txt"), data3, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = c.StatObject(ctx, "shared", "out/from-s3.txt", minio.StatObjectOptions{})
	if s := md5.Sum(data3); err != nil || st.ETag != hex.EncodeToString(s[:]) || st.Size != int64(len(data3)) {
		t.Fatalf("after a write through the mount: %+v %v, want ETag %x", st, err, s)
	}
}

// TestS3ClusterUp: "enginectl cluster up" gives every node an S3
// endpoint and prints it with the keys; an object put through one node
// reads back through the others.
func TestS3ClusterUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	r := ctl(t, nil, "cluster", "up", "--nodes", "3", "--dir", dir)
	t.Cleanup(func() { ctl(t, nil, "cluster", "down", "--dir", dir) })
	mustOK(t, r, "cluster up")
	eps := regexp.MustCompile(`s3 http://(127\.0\.0\.1:\d+)`).FindAllStringSubmatch(r.stdout, -1)
	keys := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(r.stdout)
	if len(eps) != 3 || keys == nil {
		t.Fatalf("cluster up printed no S3 endpoints or keys:\n%s", r.stdout)
	}
	ctx := context.Background()
	var cs []*minio.Client
	for _, ep := range eps {
		c, err := minio.New(ep[1], &minio.Options{Creds: credentials.NewStaticV4(keys[1], keys[2], ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := cs[0].MakeBucket(ctx, "shared", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	rand.New(rand.NewSource(5)).Read(data)
	if _, err := cs[0].PutObject(ctx, "shared", "x/obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs[1:] {
		o, err := c.GetObject(ctx, "shared", "x/obj", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node %d reads %d bytes (%v), want the %d put through node 0", i+1, len(got), err, len(data))
		}
	}
	n := 0
	for oi := range cs[2].ListObjects(ctx, "shared", minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil || oi.Key != "x/obj" || oi.Size != int64(len(data)) {
			t.Fatalf("list through node 2: %+v", oi)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("list through node 2: %d objects", n)
	}

	// Every node's edge serves the objects of a public-read bucket from
	// the cluster's S3 endpoints, which it learns through gossip: the
	// first read through the ring fetches once, the others are hits or
	// peer fills.
	edges := regexp.MustCompile(`edge (http://127\.0\.0\.1:\d+)`).FindAllStringSubmatch(r.stdout, -1)
	if len(edges) != 3 {
		t.Fatalf("cluster up printed %d edge endpoints:\n%s", len(edges), r.stdout)
	}
	makePublicBucket(t, eps[0][1], keys[1], keys[2], "site")
	token, err := os.ReadFile(filepath.Join(dir, "edge-token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs[1].PutObject(ctx, "site", "index.html", bytes.NewReader(data[:100<<10]), 100<<10, minio.PutObjectOptions{ContentType: "text/html"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range edges {
		got := mustGet(t, e[1]+"/site/index.html", nil, http.StatusOK, data[:100<<10])
		if got.cacheStatus() == "" {
			t.Errorf("%s: no Cache-Status", e[1])
		}
	}
	fetches := 0
	for _, e := range edges {
		st, err := readEdgeStatsWith(e[1], strings.TrimSpace(string(token)))
		if err != nil {
			t.Fatal(err)
		}
		fetches += int(st.OriginFetches)
	}
	if fetches != 1 {
		t.Errorf("%d origin fetches across the 3 edges for one object, want 1 (peer fill through the ring)", fetches)
	}
}

// boto3PresignScript makes the buckets secret-src (with the object
// plans) and drop, and prints a URL boto3 presigns for a PUT of
// drop/upload (it signs only host).
const boto3PresignScript = `
import sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=sys.argv[1],
    config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="secret-src")
s3.create_bucket(Bucket="drop")
s3.put_object(Bucket="secret-src", Key="plans", Body=b"the secret plans")
print(s3.generate_presigned_url("put_object", Params={"Bucket": "drop", "Key": "upload"}, ExpiresIn=600))
`

// TestS3PresignedUnsignedHeader: a PUT URL presigned by boto3 (which
// signs only host) with an x-amz-copy-source header added is refused
// (AccessDenied, HeadersNotSigned), as S3 refuses it; the same URL with
// a body and a Content-Type uploads. The endpoint honoured the unsigned
// header: anyone with an upload URL copied any object of any bucket into
// its key.
func TestS3PresignedUnsignedHeader(t *testing.T) {
	py := s3client(t, "/usr/bin/python3", "python3")
	if err := exec.Command(py, "-c", "import boto3").Run(); err != nil {
		t.Skip("boto3 is not installed (scripts/install-deps.sh installs python3-boto3)")
	}
	n := startS3Node(t, false)
	script := filepath.Join(t.TempDir(), "presign.py")
	os.WriteFile(script, []byte(boto3PresignScript), 0o644)
	url := strings.TrimSpace(s3run(t, n, false, py, script, n.endpoint))
	if !strings.Contains(url, "X-Amz-SignedHeaders=host&") {
		t.Fatalf("boto3 presigned %q, the test wants a URL that signs only host", url)
	}
	put := func(body string, hdr ...string) (int, string) {
		req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	c, err := minio.New(n.addr, &minio.Options{Creds: credentials.NewStaticV4(s3AK, s3SK, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	status, body := put("", "x-amz-copy-source", "/secret-src/plans")
	if status != http.StatusForbidden || !strings.Contains(body, "<Code>AccessDenied</Code>") ||
		!strings.Contains(body, "<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>") {
		t.Errorf("presigned PUT with an unsigned x-amz-copy-source: %d %s, want 403 AccessDenied naming x-amz-copy-source", status, body)
	}
	if st, err := c.StatObject(ctx, "drop", "upload", minio.StatObjectOptions{}); err == nil {
		t.Fatalf("the refused copy stored drop/upload: %+v", st)
	}
	if status, body := put("uploaded", "Content-Type", "text/plain"); status != http.StatusOK {
		t.Fatalf("presigned PUT with a body: %d %s", status, body)
	}
	o, err := c.GetObject(ctx, "drop", "upload", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(o); err != nil || string(b) != "uploaded" {
		t.Fatalf("drop/upload reads %q, %v", b, err)
	}
}

// TestS3FIFOThroughMount: a FIFO made through the mount in a bucket is
// no object: GET and HEAD answer NoSuchKey within a second, and engined
// then stops on SIGTERM. The endpoint opened the FIFO before checking
// what it was: the request blocked a thread forever, and SIGTERM hung.
func TestS3FIFOThroughMount(t *testing.T) {
	needFUSE(t)
	n := startS3Node(t, true)
	pollUntil(t, "the mount serves", 30*time.Second, func() (bool, string) {
		fs := mountedFS(n.mnt)
		return strings.HasPrefix(fs, "fuse"), fs
	})
	if err := os.MkdirAll(filepath.Join(n.mnt, "fifos/d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fifos/fifo", "fifos/d/fifo"} {
		if err := syscall.Mkfifo(filepath.Join(n.mnt, p), 0o666); err != nil {
			t.Fatalf("mkfifo %s through the mount: %v", p, err)
		}
	}
	c, err := minio.New(n.addr, &minio.Options{Creds: credentials.NewStaticV4(s3AK, s3SK, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"fifo", "d/fifo"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.StatObject(ctx, "fifos", key, minio.StatObjectOptions{})
		if code := minio.ToErrorResponse(err).Code; code != "NoSuchKey" {
			t.Errorf("HEAD fifos/%s: %v (code %q), want NoSuchKey within 1 s", key, err, code)
		}
		o, err := c.GetObject(ctx, "fifos", key, minio.GetObjectOptions{})
		if err == nil {
			_, err = io.ReadAll(o)
		}
		if code := minio.ToErrorResponse(err).Code; code != "NoSuchKey" {
			t.Errorf("GET fifos/%s: %v (code %q), want NoSuchKey within 1 s", key, err, code)
		}
		cancel()
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("engined did not stop within 30 s of SIGTERM")
		n.cmd.Process.Kill()
		<-done
	}
}
