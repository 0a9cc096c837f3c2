package main

// End-to-end fault tests of the burst buffer (issue 4 §4, "Faults that must
// be survived"): real "enginectl mount" and engined processes serving real
// FUSE mounts, written through by the test with fsync, then killed with
// SIGKILL, corrupted or restarted. What a test checks is what an
// application relies on: every file whose fsync returned reads back with
// the same bytes (sha256) through a mount, and after "bb sync /" from the
// backing directory; a read never returns wrong bytes (EIO instead).
//
// Where a test is about data held in flash, the backing directory is a
// full tmpfs while the fault hits (fullBacking): the drainer's writes fail
// with ENOSPC and every written byte stays in the erasure-coded stores.
// Otherwise the drainer writes a file out 300 ms after its last write and
// reads would come from the backing file, never touching the shards.
//
// They need root (FUSE direct mounts, tmpfs) and /dev/fuse. Run them with:
// go test -count=1 -run TestBB -v ./cmd/enginectl

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"engine/node"
)

// needFUSE skips the test, saying why, unless it can mount FUSE.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: the burst buffer fault tests mount FUSE and tmpfs directly, which needs root (running as uid %d)", os.Geteuid())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: the burst buffer fault tests need FUSE: %v", err)
	}
}

// lazyUnmount detaches whatever is mounted at dir (umount -l), ignoring
// "not mounted".
func lazyUnmount(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exec.CommandContext(ctx, "umount", "-l", dir).Run()
}

// mountedFS returns the file system type mounted at dir ("" if none).
func mountedFS(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	fstype := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[4] != dir {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1] // the last mount on dir wins
			}
		}
	}
	return fstype
}

// bbLogTail is logTail without the drainer's retries against a full
// backing file system (counted instead), which fill a log while a test
// holds data in flash.
func bbLogTail(path string, lines int) string {
	tail := logTail(path, 1<<30)
	var ls []string
	noise := 0
	for _, l := range strings.Split(tail, "\n") {
		if strings.Contains(l, "drain failed; will retry") && strings.Contains(l, "no space left on device") {
			noise++
			continue
		}
		ls = append(ls, l)
	}
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	if noise > 0 {
		ls = append(ls, fmt.Sprintf("(%d \"drain failed; will retry ... no space left on device\" lines left out)", noise))
	}
	return strings.Join(ls, "\n")
}

// firstOf joins the first n of ss, saying how many more there are.
func firstOf(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(ss[:n], "; "), len(ss)-n)
}

// watchdog bounds a test: after d it fails the test and runs stop (which
// kills the test's processes, so that a FUSE request they left hanging
// fails with ENOTCONN instead of hanging the test binary).
func watchdog(t *testing.T, d time.Duration, stop func()) {
	timer := time.AfterFunc(d, func() {
		t.Errorf("watchdog: the test did not finish within %s; killing its processes", d)
		stop()
	})
	t.Cleanup(func() { timer.Stop() })
}

// mountProc is a running "enginectl mount".
type mountProc struct {
	cmd  *exec.Cmd
	mnt  string
	api  string // its node's API address
	node string // its node's name
	log  string // its stderr
	out  lockedBuf
	done chan struct{}
	err  error
}

var mountedLine = regexp.MustCompile(`^mounted (\S+) \(api (\S+), node (\S+)\)`)

// startMount runs "enginectl mount MNT ARGS..." and waits (60 s at most)
// until it prints that it serves. Its stderr goes to logPath. A cleanup
// stops it (SIGTERM, then SIGKILL) and lazily unmounts MNT.
func startMount(t *testing.T, mnt, logPath string, args ...string) *mountProc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m := &mountProc{mnt: mnt, log: logPath, done: make(chan struct{})}
	ready := make(chan []string, 1)
	m.out.onLine = func(l string) {
		if s := mountedLine.FindStringSubmatch(l); s != nil {
			select {
			case ready <- s:
			default:
			}
		}
	}
	m.cmd = exec.Command(filepath.Join(binDir, "enginectl"), append([]string{"mount", mnt}, args...)...)
	m.cmd.Env = cleanEnv()
	m.cmd.Stdout, m.cmd.Stderr = &m.out, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start enginectl mount: %v", err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		m.stop(10 * time.Second)
		lazyUnmount(mnt)
		if t.Failed() {
			t.Logf("==== %s (tail) ====\n%s", logPath, bbLogTail(logPath, 40))
		}
	})
	select {
	case s := <-ready:
		m.api, m.node = s[2], s[3]
	case <-m.done:
		t.Fatalf("enginectl mount %s exited before mounting: %v\n%s", mnt, m.err, bbLogTail(logPath, 40))
	case <-time.After(60 * time.Second):
		t.Fatalf("enginectl mount %s did not mount within 60s\n%s", mnt, bbLogTail(logPath, 40))
	}
	if fs := mountedFS(mnt); !strings.HasPrefix(fs, "fuse") {
		t.Fatalf("enginectl mount said it mounted %s, but /proc/self/mountinfo shows %q there", mnt, fs)
	}
	return m
}

// stop stops the mount process: SIGTERM (a clean unmount), then SIGKILL
// after grace. It returns whether the process exited on SIGTERM.
func (m *mountProc) stop(grace time.Duration) bool {
	select {
	case <-m.done:
		return true
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return true
	case <-time.After(grace):
	}
	m.cmd.Process.Kill()
	<-m.done
	return false
}

// kill SIGKILLs the mount process, waits for it to be gone and lazily
// unmounts its dead mount.
func (m *mountProc) kill(t *testing.T) {
	t.Helper()
	m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("enginectl mount (pid %d) still runs 10s after SIGKILL", m.cmd.Process.Pid)
	}
	lazyUnmount(m.mnt)
}

// terminate stops the mount process cleanly and fails the test if it does
// not exit on SIGTERM, or exits with an error.
func (m *mountProc) terminate(t *testing.T) {
	t.Helper()
	if !m.stop(30 * time.Second) {
		t.Fatalf("enginectl mount did not exit within 30s of SIGTERM\n%s", bbLogTail(m.log, 40))
	}
	if m.err != nil {
		t.Errorf("enginectl mount exited with %v after SIGTERM\n%s", m.err, bbLogTail(m.log, 40))
	}
	lazyUnmount(m.mnt)
}

// fullBacking mounts a tmpfs of size bytes at dir and fills it: names,
// modes and sizes can still change (a tmpfs needs no blocks for them), but
// the drainer's writes fail with ENOSPC, so everything written through a
// mount stays in flash. The returned function frees the space.
// flashOnlySetup makes a test's directories: a backing directory on a full
// tmpfs (so the drainer cannot empty the flash tier until free is called)
// and a mount point; and a seeded random source, the seed logged.
func flashOnlySetup(t *testing.T) (root, backing, mnt string, free func(), rng *rand.Rand) {
	t.Helper()
	root = t.TempDir()
	backing, mnt = filepath.Join(root, "backing"), filepath.Join(root, "mnt")
	os.MkdirAll(backing, 0o755)
	os.MkdirAll(mnt, 0o755)
	free = fullBacking(t, backing, 64<<20)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return root, backing, mnt, free, rand.New(rand.NewPCG(seed, 1))
}

func fullBacking(t *testing.T, dir string, size int64) (free func()) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs as the backing file system (%v: %s)", err, out)
	}
	t.Cleanup(func() { lazyUnmount(dir) })
	filler := filepath.Join(dir, ".filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Bavail != 0 {
		t.Fatalf("backing tmpfs %s not full: %d blocks free (%v)", dir, st.Bavail, err)
	}
	return func() {
		if err := os.Remove(filler); err != nil {
			t.Fatalf("free the backing file system: %v", err)
		}
	}
}

// bbFile is a file the test wrote through a mount.
type bbFile struct {
	name  string
	size  int
	sum   [32]byte // of its content when fsync returned
	acked bool     // fsync returned: sum must be read back
}

// writeFile writes a file of size bytes at path as a checkpointing
// application might: 4 KiB pwrites at random offsets over all but its last
// bytes (a fifth of the blocks written twice), then appends of odd sizes
// through a second descriptor opened with O_APPEND, then fsync. It returns
// the sha256 of what the file holds when fsync returned.
func writeFile(path string, rng *rand.Rand, size int) ([32]byte, error) {
	var sum [32]byte
	src := rand.NewChaCha8([32]byte{byte(rng.Uint64()), byte(rng.Uint64()), byte(size)})
	tail := rng.IntN(min(size/4, 256<<10) + 1)
	base := (size - tail) &^ 4095
	model := make([]byte, base, size)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	blocks := rng.Perm(base / 4096)
	for _, b := range blocks[:len(blocks)/5] {
		blocks = append(blocks, b) // written again, later, with new bytes
	}
	for _, b := range blocks {
		p := model[b*4096 : (b+1)*4096]
		src.Read(p)
		if _, err := f.WriteAt(p, int64(b*4096)); err != nil {
			return sum, err
		}
	}
	a, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return sum, err
	}
	for len(model) < size {
		n := min(1+rng.IntN(64<<10), size-len(model))
		p := make([]byte, n)
		src.Read(p)
		if _, err := a.Write(p); err != nil {
			a.Close()
			return sum, err
		}
		model = append(model, p...)
	}
	if err := a.Close(); err != nil {
		return sum, err
	}
	if err := f.Sync(); err != nil {
		return sum, err
	}
	return sha256.Sum256(model), nil
}

// writeFiles writes n files of random sizes in [minSize, maxSize] into dir
// with writeFile; each is acked once its fsync returned.
func writeFiles(t *testing.T, dir, prefix string, rng *rand.Rand, n, minSize, maxSize int) []*bbFile {
	t.Helper()
	var files []*bbFile
	for i := range n {
		bf := &bbFile{name: fmt.Sprintf("%s-%02d", prefix, i), size: minSize + rng.IntN(maxSize-minSize+1)}
		sum, err := writeFile(filepath.Join(dir, bf.name), rng, bf.size)
		if err != nil {
			t.Fatalf("write %s (%d bytes) through the mount: %v", bf.name, bf.size, err)
		}
		bf.sum, bf.acked = sum, true
		files = append(files, bf)
	}
	return files
}

// readBack reads f under dir and says what is wrong ("" if nothing): a
// file whose fsync returned must hold the bytes it held then, and every
// file must read without error. err is the read's error.
func readBack(dir string, f *bbFile) (problem string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, f.name))
	switch {
	case err != nil && f.acked:
		return fmt.Sprintf("read %s (fsynced, %d bytes): %v", f.name, f.size, err), err
	case err != nil:
		return fmt.Sprintf("read %s (never fsynced; any bytes would do): %v", f.name, err), err
	case f.acked && (len(b) != f.size || sha256.Sum256(b) != f.sum):
		return fmt.Sprintf("%s (fsynced) reads back %d bytes with sha256 %x, want %d bytes with sha256 %x",
			f.name, len(b), sha256.Sum256(b), f.size, f.sum), nil
	}
	return "", nil
}

// checkFiles checks every file under dir with readBack.
func checkFiles(t *testing.T, dir string, files []*bbFile, where string) {
	t.Helper()
	bad := 0
	for _, f := range files {
		if p, _ := readBack(dir, f); p != "" {
			t.Errorf("%s: %s", where, p)
			bad++
		}
	}
	if bad == 0 {
		t.Logf("%s: all %d files read back as fsynced", where, len(files))
	}
}

// inFlashOnly checks that none of files has a block in the backing
// directory: what the test does next hits data held in flash only.
func inFlashOnly(t *testing.T, backing string, files []*bbFile) {
	t.Helper()
	for _, f := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(backing, f.name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks != 0 {
			t.Fatalf("%s has %d blocks in the backing directory: it was drained, the test would not read it from flash", f.name, st.Blocks)
		}
	}
}

// bbStatus runs "enginectl --addr API bb status --json".
func bbStatus(t *testing.T, api string) node.BBStatusResponse {
	t.Helper()
	r, _ := ctlWithin(t, 30*time.Second, "--addr", api, "bb", "status", "--json")
	mustOK(t, r, "bb status --json")
	var st node.BBStatusResponse
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("bb status --json: %v\n%s", err, r.stdout)
	}
	return st
}

func describeBB(st node.BBStatusResponse) string {
	var b strings.Builder
	for _, n := range st.Nodes {
		fmt.Fprintf(&b, "[%s live=%d stripes=%d buffered=%d degraded_reads=%d repaired=%d health=%q] ",
			n.Node, n.LiveNodes, n.Stripes, n.Buffered, n.DegradedReads, n.Repaired, n.Health)
	}
	if len(st.Errors) > 0 {
		fmt.Fprintf(&b, "errors %q", st.Errors)
	}
	return b.String()
}

// bbSync runs "enginectl --addr API bb sync /".
func bbSync(t *testing.T, api string) {
	t.Helper()
	r, took := ctlWithin(t, 120*time.Second, "--addr", api, "bb", "sync", "/")
	mustOK(t, r, "bb sync /")
	t.Logf("bb sync / through %s: %s", api, took.Round(time.Millisecond))
}

// flipBytes flips one byte every `every` bytes at or past from[path] in
// every segment file of the store directories, in place, and returns how
// many bytes it flipped.
func flipBytes(t *testing.T, dirs []string, every int64, from map[string]int64) int {
	t.Helper()
	flipped := 0
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "seg-*.log"))
		for _, p := range segs {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			var b [1]byte
			for off := from[p]; off < fi.Size(); off += every {
				if _, err := f.ReadAt(b[:], off); err != nil {
					t.Fatal(err)
				}
				b[0] ^= 0xff
				if _, err := f.WriteAt(b[:], off); err != nil {
					t.Fatal(err)
				}
				flipped++
			}
			f.Close()
		}
	}
	return flipped
}

// segSizes returns the sizes of the segment files of the store dirs.
func segSizes(dirs []string) map[string]int64 {
	out := map[string]int64{}
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "seg-*.log"))
		for _, p := range segs {
			if fi, err := os.Stat(p); err == nil {
				out[p] = fi.Size()
			}
		}
	}
	return out
}

// cpuSeconds is the user+system CPU time pid has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

// 1. SIGKILL of the mount process in the middle of a stream of writes, and
// a restart on the same data directory: every file whose fsync returned
// reads back through the new mount, and from the backing directory after
// "bb sync /".
func TestBBKillMountProcess(t *testing.T) {
	needFUSE(t)
	start := time.Now()
	root := t.TempDir()
	data, mnt := filepath.Join(root, "data"), filepath.Join(root, "mnt")
	os.MkdirAll(mnt, 0o755)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	var cur atomic.Pointer[mountProc]
	watchdog(t, 150*time.Second, func() {
		if m := cur.Load(); m != nil {
			m.cmd.Process.Kill()
		}
		lazyUnmount(mnt)
	})
	m := startMount(t, mnt, filepath.Join(root, "mount.log"), "--data", data)
	cur.Store(m)
	t.Logf("mounted %s (node %s, api %s) in %s", mnt, m.node, m.api, time.Since(start).Round(time.Millisecond))

	// The writer: 40 files of 4 KiB to 3 MiB, one after the other.
	const n = 40
	files := make([]*bbFile, n)
	for i := range files {
		files[i] = &bbFile{name: fmt.Sprintf("f-%02d", i), size: 4096 + rng.IntN(3<<20-4096+1)}
	}
	var mu sync.Mutex
	acked := 0
	halfway := make(chan struct{})
	writerDone := make(chan struct{})
	var writeErr error
	wrng := rand.New(rand.NewPCG(seed, 2))
	go func() {
		defer close(writerDone)
		for i, f := range files {
			sum, err := writeFile(filepath.Join(mnt, f.name), wrng, f.size)
			if err != nil {
				writeErr = fmt.Errorf("%s: %w", f.name, err)
				return
			}
			mu.Lock()
			f.sum, f.acked = sum, true
			acked++
			mu.Unlock()
			if i+1 == n/2 {
				close(halfway)
			}
		}
	}()
	select {
	case <-halfway:
	case <-writerDone:
		t.Fatalf("the writer stopped before half of the files were written: %v", writeErr)
	case <-time.After(90 * time.Second):
		t.Fatal("half of the files were not written within 90s")
	}
	time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond) // into the next file's writes
	m.kill(t)
	select {
	case <-writerDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still runs 30s after the mount process was killed (a write hangs on the dead mount)")
	}
	mu.Lock()
	t.Logf("SIGKILLed the mount process after %d of %d files were fsynced (writer stopped with: %v)", acked, n, writeErr)
	mu.Unlock()
	if writeErr == nil {
		t.Fatal("the writer finished every file although the mount process was killed")
	}

	restart := time.Now()
	m = startMount(t, mnt, filepath.Join(root, "mount2.log"), "--data", data)
	cur.Store(m)
	t.Logf("remounted in %s", time.Since(restart).Round(time.Millisecond))
	var present []*bbFile
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(mnt, f.name)); err == nil || f.acked {
			present = append(present, f)
		}
	}
	checkFiles(t, mnt, present, "after the restart, through the mount")
	bbSync(t, m.api)
	var syncedFiles []*bbFile
	for _, f := range present {
		if f.acked {
			syncedFiles = append(syncedFiles, f)
		}
	}
	checkFiles(t, filepath.Join(data, "backing"), syncedFiles, "after bb sync /, in the backing directory")
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// bbCluster is a local cluster of engined processes running the burst
// buffer, with one shared backing directory and node 0 mounting it.
type bbCluster struct {
	*node.LocalCluster
	mnt  string
	args [][]string // each node's engined flags
}

// startBBCluster starts n engined processes on 127.0.0.1 with the erasure
// code ec, each with its own flash directory and the one backing
// directory, node 0 mounting the namespace at mnt, and waits until the
// cluster is ready and the mount serves.
func startBBCluster(t *testing.T, n int, ec, backing, mnt string) *bbCluster {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cluster")
	var lns []net.Listener
	c := &bbCluster{LocalCluster: &node.LocalCluster{Dir: dir}, mnt: mnt}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureToken(testToken); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ln := node.LocalNode{Name: fmt.Sprintf("node-%d", i)}
		for k := range ln.Ports {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, l)
			ln.Ports[k] = l.Addr().(*net.TCPAddr).Port
		}
		addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(ln.Ports[k]) }
		ln.API, ln.Raft, ln.Gossip, ln.Internal = addr(0), addr(1), addr(2), addr(3)
		c.Nodes = append(c.Nodes, ln)
	}
	for _, l := range lns {
		l.Close()
	}
	for i := range n {
		a := []string{"--workers", "1", "--flash", filepath.Join(c.NodeDir(i), "flash"), "--backing", backing, "--ec", ec}
		if i == 0 {
			a = append(a, "--mount", mnt)
		}
		c.args = append(c.args, a)
	}
	t.Cleanup(func() { lazyUnmount(mnt) })
	t.Cleanup(func() {
		c.Stop(5 * time.Second)
		if t.Failed() {
			for i := range c.Nodes {
				p := filepath.Join(c.NodeDir(i), "engined.log")
				t.Logf("==== %s (tail) ====\n%s", p, bbLogTail(p, 40))
			}
		}
	})
	c.start(t)
	return c
}

// start starts every node that is not running and waits until the cluster
// is ready and node 0's mount serves.
func (c *bbCluster) start(t *testing.T) {
	t.Helper()
	start := time.Now()
	for i := range c.Nodes {
		if procAlive(nodePID(c.LocalCluster, i)) {
			continue
		}
		if err := c.Start(i, enginedBin(), c.args[i]...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "node 0 mounts "+c.mnt, 30*time.Second, func() (bool, string) {
		fs := mountedFS(c.mnt)
		return strings.HasPrefix(fs, "fuse"), fmt.Sprintf("file system %q there", fs)
	})
	t.Logf("%d-node cluster ready, %s mounted on node 0, in %s", len(c.Nodes), c.mnt, time.Since(start).Round(time.Millisecond))
}

// kill SIGKILLs the cluster's processes (stop for the watchdog).
func (c *bbCluster) kill() {
	for i := range c.Nodes {
		if pid := nodePID(c.LocalCluster, i); procAlive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	lazyUnmount(c.mnt)
}

// 2. kill -9 of two of four nodes holding 2+2 stripes: every fsynced file
// reads back through the mount (degraded reads), the stripes are rebuilt
// onto the two live nodes, and "bb sync /" writes every file out.
func TestBBKillNodes(t *testing.T) {
	needFUSE(t)
	start := time.Now()
	_, backing, mnt, free, rng := flashOnlySetup(t)

	c := startBBCluster(t, 4, "2+2", backing, mnt)
	watchdog(t, 150*time.Second, c.kill)
	files := writeFiles(t, mnt, "k", rng, 12, 4096, 1<<20)
	inFlashOnly(t, backing, files)
	st := bbStatus(t, c.Nodes[0].API)
	t.Logf("written and fsynced %d files; bb status: %s", len(files), describeBB(st))

	// Kill a voter other than node 0 (not the leader if it can be
	// helped) and the non-voter: Raft keeps its quorum of 2 of 3 voters.
	var victims []int
	var roles string
	pollUntil(t, "three voters and a non-voter", 30*time.Second, func() (bool, string) {
		ns, err := nodeStatus(c.Nodes[0].API)
		if err != nil {
			return false, err.Error()
		}
		var voter, leaderVoter, nonVoter = -1, -1, -1
		for _, m := range ns.Members {
			i := nodeIndex(c.LocalCluster, m.ID)
			switch {
			case i <= 0:
			case m.Role == "non-voter":
				nonVoter = i
			case m.Role == "leader":
				leaderVoter = i
			case m.Role == "voter":
				voter = i
			}
		}
		if voter < 0 {
			voter = leaderVoter
		}
		roles = describeStatus(ns)
		if voter < 0 || nonVoter < 0 {
			return false, roles
		}
		victims = []int{voter, nonVoter}
		return true, ""
	})
	t.Logf("roles: %s; killing %s and %s", roles, c.Nodes[victims[0]].Name, c.Nodes[victims[1]].Name)
	for _, v := range victims {
		killNode(t, c.LocalCluster, v, syscall.SIGKILL, 10*time.Second)
	}

	readStart := time.Now()
	checkFiles(t, mnt, files, "two nodes down, through the mount")
	t.Logf("read every file with two nodes down in %s", time.Since(readStart).Round(time.Millisecond))
	st = bbStatus(t, c.Nodes[0].API)
	var degraded int64
	for _, n := range st.Nodes {
		degraded += n.DegradedReads
	}
	if degraded == 0 {
		t.Errorf("no degraded reads counted after reading with two of four nodes down: %s", describeBB(st))
	}

	healed := pollUntil(t, "the stripes rebuilt onto the two live nodes", 60*time.Second, func() (bool, string) {
		st := bbStatus(t, c.Nodes[0].API)
		if len(st.Nodes) != 2 || len(st.Errors) > 0 {
			return false, describeBB(st)
		}
		for _, n := range st.Nodes {
			if n.LiveNodes != 2 || strings.HasPrefix(n.Health, "degraded") {
				return false, describeBB(st)
			}
		}
		return true, ""
	})
	st = bbStatus(t, c.Nodes[0].API)
	t.Logf("healed %s after the reads; bb status: %s", healed.Round(time.Millisecond), describeBB(st))
	checkFiles(t, mnt, files, "healed, through the mount")

	free()
	bbSync(t, c.Nodes[0].API)
	checkFiles(t, backing, files, "after bb sync /, in the backing directory")
	if st := bbStatus(t, c.Nodes[0].API); len(st.Nodes) == 0 || st.Nodes[0].Buffered != 0 {
		t.Errorf("bytes still buffered after bb sync /: %s", describeBB(st))
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// 3. Corrupt and lost shard stores under a one-node mount (4+2 over six
// stores): with two stores bad every file reads back (reconstructed and
// repaired); with three bad, reads fail with EIO, never with wrong bytes.
func TestBBCorruptShard(t *testing.T) {
	needFUSE(t)
	start := time.Now()
	root, backing, mnt, free, rng := flashOnlySetup(t)
	data := filepath.Join(root, "data")
	store := func(i int) string { return filepath.Join(data, "flash", fmt.Sprintf("store-%d", i)) }

	mountArgs := []string{"--data", data, "--backing", backing}
	var cur atomic.Pointer[mountProc]
	watchdog(t, 150*time.Second, func() {
		if m := cur.Load(); m != nil {
			m.cmd.Process.Kill()
		}
		lazyUnmount(mnt)
	})
	m := startMount(t, mnt, filepath.Join(root, "mount.log"), mountArgs...)
	cur.Store(m)
	files := writeFiles(t, mnt, "c", rng, 8, 4096, 768<<10)
	inFlashOnly(t, backing, files)
	m.terminate(t)

	// Store 0: a byte flipped every 2 KiB of every segment; store 1: its
	// segments gone.
	flipped := flipBytes(t, []string{store(0)}, 2048, nil)
	segs, _ := filepath.Glob(filepath.Join(store(1), "seg-*.log"))
	for _, p := range segs {
		os.Remove(p)
	}
	t.Logf("flipped %d bytes in store-0, removed %d segment files of store-1", flipped, len(segs))

	m = startMount(t, mnt, filepath.Join(root, "mount2.log"), mountArgs...)
	cur.Store(m)
	checkFiles(t, mnt, files, "store-0 corrupt and store-1 gone, through the mount")
	st := bbStatus(t, m.api)
	if len(st.Nodes) != 1 || st.Nodes[0].DegradedReads == 0 && st.Nodes[0].Repaired == 0 {
		t.Errorf("reads from two bad stores were neither degraded nor repaired: %s", describeBB(st))
	}
	t.Logf("bb status: %s", describeBB(st))
	cpu0 := cpuSeconds(m.cmd.Process.Pid)
	time.Sleep(2 * time.Second)
	t.Logf("the mount process, idle with %d files it cannot drain (backing full), used %.2f CPU seconds in 2s",
		len(files), cpuSeconds(m.cmd.Process.Pid)-cpu0)

	// Three of six stores bad under the running mount. The files written
	// now were never read, so no shard of theirs is cached: their reads
	// must fail with EIO. (The drainer reads a file 300 ms after its last
	// write; one it read before the bytes were flipped may still read
	// back right, from the shards it cached: right bytes are fine too.)
	dirs := []string{store(0), store(1), store(2)}
	before := segSizes(dirs)
	lost := writeFiles(t, mnt, "lost", rng, 3, 64<<10, 256<<10)
	flipped = flipBytes(t, dirs, 256, before)
	t.Logf("flipped %d bytes of the new records in store-0, store-1 and store-2", flipped)
	eio := 0
	for _, f := range lost {
		p, err := readBack(mnt, f)
		switch {
		case errors.Is(err, syscall.EIO):
			eio++
		case p == "":
			t.Logf("%s read back right with three of six stores corrupt (its shards were cached before)", f.name)
		default:
			t.Errorf("three of six stores corrupt: %s; want EIO (or its bytes)", p)
		}
	}
	if eio == 0 {
		t.Errorf("no read of %d files with three of six shards corrupt failed with EIO", len(lost))
	}
	// The earlier files lost three shards per stripe too, where their
	// stripes were not repaired into new records: EIO or their bytes.
	for _, f := range files {
		if p, err := readBack(mnt, f); p != "" && !errors.Is(err, syscall.EIO) {
			t.Errorf("three of six stores corrupt: %s; want EIO or its bytes", p)
		}
	}

	// The same after a restart: stripes with three of six shards left
	// cannot be read, and must not read as something else.
	m.terminate(t)
	m = startMount(t, mnt, filepath.Join(root, "mount3.log"), mountArgs...)
	cur.Store(m)
	t.Run("three stores lost across a restart", func(t *testing.T) {
		var silent []string
		for _, f := range lost {
			p, err := readBack(mnt, f)
			switch {
			case errors.Is(err, syscall.EIO):
			case p == "":
				t.Errorf("%s reads back right after a restart with three of its six shards corrupt", f.name)
			case err == nil:
				silent = append(silent, p)
			default:
				t.Errorf("%s; want EIO", p)
			}
		}
		if len(silent) > 0 && !t.Failed() {
			t.Errorf("a stripe with fewer than k shards left reads as the backing file with no error, instead of EIO: %s",
				firstOf(silent, 2))
		}
	})
	free()
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// 4. SIGKILL of every node of a 3-node cluster (4+2: two shards per node)
// and a restart of all three on their data directories: every fsynced file
// reads back through the new mount, and from the backing directory after
// "bb sync /".
func TestBBWholeClusterRestart(t *testing.T) {
	needFUSE(t)
	start := time.Now()
	_, backing, mnt, free, rng := flashOnlySetup(t)

	c := startBBCluster(t, 3, "4+2", backing, mnt)
	watchdog(t, 150*time.Second, c.kill)
	files := writeFiles(t, mnt, "w", rng, 10, 4096, 1<<20)
	inFlashOnly(t, backing, files)
	st := bbStatus(t, c.Nodes[0].API)
	stripes := st.Nodes[0].Stripes
	for i := range c.Nodes {
		killNode(t, c.LocalCluster, i, syscall.SIGKILL, 10*time.Second)
	}
	lazyUnmount(mnt)
	t.Logf("wrote and fsynced %d files (%d stripes), then SIGKILLed all three nodes", len(files), stripes)

	restart := time.Now()
	for i := range c.Nodes {
		if err := c.Start(i, enginedBin(), c.args[i]...); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "node 0 mounts "+mnt+" again", 60*time.Second, func() (bool, string) {
		fs := mountedFS(mnt)
		return strings.HasPrefix(fs, "fuse"), fmt.Sprintf("file system %q there", fs)
	})
	t.Logf("node 0 mounted %s again %s after the restart", mnt, time.Since(restart).Round(time.Millisecond))
	t.Run("read as soon as the mount serves", func(t *testing.T) {
		var wrong []string
		for _, f := range files {
			p, err := readBack(mnt, f)
			switch {
			case p == "" || errors.Is(err, syscall.EIO):
			case err == nil:
				wrong = append(wrong, p)
			default:
				t.Error(p)
			}
		}
		if len(wrong) > 0 {
			t.Errorf("the mount served before its node had resynced with its peers: "+
				"%d of %d fsynced files read as their backing files with no error: %s",
				len(wrong), len(files), firstOf(wrong, 2))
		}
	})

	c.start(t)
	waited := pollUntil(t, "node 0 knows every stripe again", 30*time.Second, func() (bool, string) {
		st := bbStatus(t, c.Nodes[0].API)
		return len(st.Nodes) > 0 && st.Nodes[0].Stripes >= stripes, describeBB(st)
	})
	t.Logf("node 0 knew all %d stripes %s after the cluster was ready", stripes, waited.Round(time.Millisecond))
	checkFiles(t, mnt, files, "after restarting the whole cluster, through the new mount")
	free()
	bbSync(t, c.Nodes[0].API)
	checkFiles(t, backing, files, "after bb sync /, in the backing directory")
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// symlinkAttacker is the attacker of TestBBMountSymlinkRace, run as uid
// 65534: in its own directory MNT/att it chmods, chowns, truncates,
// renames and unlinks its own files while swapping MNT/att/d (its
// directory) with MNT/att/lnk (a symlink to the root-owned MNT/vdir), for
// SECONDS. Standard library only, so it builds anywhere.
const symlinkAttacker = `package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func exchange(a, b string) error {
	nr := map[string]uintptr{"amd64": 316, "arm64": 276, "riscv64": 276, "386": 353}[runtime.GOARCH]
	if nr == 0 {
		return syscall.ENOSYS
	}
	pa, _ := syscall.BytePtrFromString(a)
	pb, _ := syscall.BytePtrFromString(b)
	const atFdcwd = ^uintptr(99) // AT_FDCWD, -100
	_, _, e := syscall.Syscall6(nr, atFdcwd, uintptr(unsafe.Pointer(pa)), atFdcwd, uintptr(unsafe.Pointer(pb)), 2 /* RENAME_EXCHANGE */, 0)
	if e != 0 {
		return e
	}
	return nil
}

func main() {
	mnt := os.Args[1]
	secs, _ := strconv.Atoi(os.Args[2])
	d, lnk := filepath.Join(mnt, "att", "d"), filepath.Join(mnt, "att", "lnk")
	if err := os.Mkdir(d, 0o755); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := os.Symlink("../vdir", lnk); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var stop atomic.Bool
	var swaps, done atomic.Int64
	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				f()
			}
		}()
	}
	own := func(n string) string { return filepath.Join(d, n) }
	try := func(err error) {
		if err == nil {
			done.Add(1)
		}
	}
	run(func() {
		for _, n := range []string{"secret", "keep"} {
			if _, err := os.Lstat(own(n)); err != nil {
				os.WriteFile(own(n), nil, 0o600)
			}
		}
		for i := 0; i < 100; i++ {
			if exchange(d, lnk) == nil {
				swaps.Add(1)
			}
		}
	})
	for i := 0; i < 2; i++ {
		run(func() { try(os.Chmod(own("secret"), 0o777)) })
		run(func() { try(os.Remove(own("keep"))) })
	}
	run(func() {
		try(os.Chown(own("secret"), 65534, 65534))
		try(os.Truncate(own("secret"), 0))
		try(os.Rename(own("keep"), filepath.Join(mnt, "att", "stolen")))
	})
	time.Sleep(time.Duration(secs) * time.Second)
	stop.Store(true)
	wg.Wait()
	fmt.Printf("%d swaps, %d operations on the attacker's own files went through\n", swaps.Load(), done.Load())
}
`

// TestBBMountSymlinkRace: an unprivileged user (uid 65534) races a real
// "enginectl mount" (root, allow_other) for 10 s, swapping a directory of
// its own for a symlink to a root-owned directory while it chmods,
// chowns, truncates, renames and unlinks its own files in it. The
// root-owned 0600 files must come out unchanged (the mount acts on
// descriptors beneath the backing root, never on path strings).
func TestBBMountSymlinkRace(t *testing.T) {
	needFUSE(t)
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, mnt, src := filepath.Join(root, "data"), filepath.Join(root, "mnt"), filepath.Join(root, "attacker-src")
	for _, d := range []string{mnt, src} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(symlinkAttacker), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module attacker\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	attacker := filepath.Join(root, "attacker")
	build := exec.Command("go", "build", "-o", attacker, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the attacker: %v\n%s", err, out)
	}

	watchdog(t, 120*time.Second, func() { lazyUnmount(mnt) })
	startMount(t, mnt, filepath.Join(root, "mount.log"), "--data", data)
	p := func(name string) string { return filepath.Join(mnt, name) }
	if err := os.Mkdir(p("vdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"secret", "keep"} {
		if err := os.WriteFile(p("vdir/"+n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(p("att"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p("att"), 65534, 65534); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(attacker, mnt, "10")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("attacker (uid 65534, 10 s): %s", out)
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}

	ents, err := os.ReadDir(p("vdir"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "keep secret" {
		t.Errorf("root-owned vdir holds %q, want [keep secret]", names)
	}
	for _, n := range []string{"secret", "keep"} {
		st, err := os.Lstat(p("vdir/" + n))
		if err != nil {
			t.Errorf("root-owned vdir/%s: %v", n, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != 0o600 || sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("root-owned vdir/%s: mode %v uid %d gid %d, want -rw------- 0 0", n, st.Mode(), sys.Uid, sys.Gid)
		}
		if b, err := os.ReadFile(p("vdir/" + n)); err != nil || string(b) != n {
			t.Errorf("root-owned vdir/%s reads %q (%v), want %q", n, b, err, n)
		}
	}
}
