package fuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"engine/burstbuffer"
)

// helperEnv selects a helper mode of the test binary, run in a child
// process as another user (see runHelper).
const helperEnv = "BBFUSE_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv("BBFUSE_TEST_DIR")))
	}
	os.Exit(m.Run())
}

type testMount struct {
	base    string // world-readable directory holding the two below
	dir     string // mount point
	backing string
	data    *fakeData
	srv     *Server
}

// mount mounts a fresh backing directory over fakeData, unmounted when the
// test ends. It skips the test without root or /dev/fuse.
func mount(t testing.TB) *testMount {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: FUSE mount tests need root (DirectMount, chown, switching users)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse: %v", err)
	}
	base := t.TempDir()
	// Let the unprivileged helper reach the mount.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tm := &testMount{base: base, dir: filepath.Join(base, "mnt"), backing: filepath.Join(base, "backing"), data: newFakeData()}
	for _, d := range []string{tm.dir, tm.backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := Mount(context.Background(), tm.dir, tm.backing, tm.data, Options{Logger: logger})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	tm.srv = srv
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(tm.dir, unix.MNT_DETACH)
		}
		srv.Wait()
	})
	return tm
}

func (tm *testMount) path(name string) string { return filepath.Join(tm.dir, name) }

// ref returns the FileRef of the backing file name.
func (tm *testMount) ref(t *testing.T, name string) burstbuffer.FileRef {
	t.Helper()
	f, err := os.Open(filepath.Join(tm.backing, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref, err := burstbuffer.RefOf(f)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func writeFile(t *testing.T, p string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func TestWriteReadThroughBuffer(t *testing.T) {
	tm := mount(t)
	p := tm.path("f")
	writeFile(t, p, []byte("hello, buffer"), 0o644)
	if got := readFile(t, p); string(got) != "hello, buffer" {
		t.Fatalf("read %q", got)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 13 {
		t.Errorf("size %d, want 13", st.Size())
	}
	// The data went to the buffer, not the backing file.
	bst, err := os.Stat(filepath.Join(tm.backing, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if bst.Size() != 0 {
		t.Errorf("backing file has %d bytes, want 0 (writes must go through Data)", bst.Size())
	}
	if n := tm.data.buffered(tm.ref(t, "f")); n != 13 {
		t.Errorf("buffered %d bytes, want 13", n)
	}
	// Directory listings (READDIRPLUS) report the logical size too.
	ents, err := os.ReadDir(tm.dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("readdir: %v, %v", ents, err)
	}
	if info, err := ents[0].Info(); err != nil || info.Size() != 13 {
		t.Errorf("listed size: %v, %v; want 13", info, err)
	}
}

// TestRandomWrites writes, truncates and reads random ranges, including
// holes past the end, against a byte-slice model.
func TestRandomWrites(t *testing.T) {
	tm := mount(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	p := tm.path("r")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close() }()
	var model []byte
	check := func(step int) {
		t.Helper()
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(model)) {
			t.Fatalf("seed %d step %d: size %d, want %d", seed, step, st.Size(), len(model))
		}
		got := make([]byte, len(model)+10)
		n, err := f.ReadAt(got, 0)
		if err != io.EOF {
			t.Fatalf("seed %d step %d: read to end: %v", seed, step, err)
		}
		if !bytes.Equal(got[:n], model) {
			t.Fatalf("seed %d step %d: content differs from model (got %d bytes, want %d)", seed, step, n, len(model))
		}
	}
	const maxOff = 4 << 20
	for step := range 80 {
		switch r := rng.IntN(10); {
		case r < 6:
			off := rng.IntN(maxOff)
			b := make([]byte, 1+rng.IntN(300<<10))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(b, int64(off)); err != nil {
				t.Fatal(err)
			}
			if end := off + len(b); end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], b)
		case r < 8:
			size := rng.IntN(maxOff)
			if rng.IntN(2) == 0 {
				err = f.Truncate(int64(size))
			} else {
				err = os.Truncate(p, int64(size))
			}
			if err != nil {
				t.Fatal(err)
			}
			if size <= len(model) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
		case r < 9:
			// Reopen: drops the page cache, reads come from Data.
			f.Close()
			if f, err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
				t.Fatal(err)
			}
		default:
			if len(model) == 0 {
				continue
			}
			off := rng.IntN(len(model))
			b := make([]byte, rng.IntN(200<<10))
			n, err := f.ReadAt(b, int64(off))
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:n], model[off:min(len(model), off+len(b))]) {
				t.Fatalf("seed %d step %d: read at %d differs", seed, step, off)
			}
		}
		check(step)
	}
}

func TestSparseHoleReadsZeros(t *testing.T) {
	tm := mount(t)
	p := tm.path("sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const off = 10<<20 + 123
	if _, err := f.WriteAt([]byte("tail"), off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b := readFile(t, p)
	if len(b) != off+4 {
		t.Fatalf("size %d, want %d", len(b), off+4)
	}
	if !bytes.Equal(b[:off], make([]byte, off)) || string(b[off:]) != "tail" {
		t.Fatal("hole does not read as zeros or tail lost")
	}
	// Lseek is left to go-fuse: all data, one hole at the end.
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, err := unix.Seek(fd, 0, unix.SEEK_HOLE); err != nil || got != off+4 {
		t.Errorf("SEEK_HOLE = %d, %v; want %d", got, err, off+4)
	}
}

func TestTruncate(t *testing.T) {
	tm := mount(t)
	p := tm.path("t")
	writeFile(t, p, bytes.Repeat([]byte("a"), 100), 0o644)
	if err := os.Truncate(p, 50); err != nil {
		t.Fatal(err)
	}
	if b := readFile(t, p); !bytes.Equal(b, bytes.Repeat([]byte("a"), 50)) {
		t.Fatalf("after truncate down: %q", b)
	}
	if err := os.Truncate(p, 200); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("a"), 50), make([]byte, 150)...)
	if b := readFile(t, p); !bytes.Equal(b, want) {
		t.Fatalf("after truncate up: %q", b)
	}
	// O_TRUNC at open.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("size after O_TRUNC %d, want 0", st.Size())
	}
	f.WriteString("new")
	f.Close()
	if b := readFile(t, p); string(b) != "new" {
		t.Fatalf("after O_TRUNC and write: %q", b)
	}
}

// TestAppend has two goroutines append records through their own
// descriptors: none may be lost or interleaved.
func TestAppend(t *testing.T) {
	tm := mount(t)
	p := tm.path("log")
	writeFile(t, p, nil, 0o644)
	const records, size = 300, 64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for i := range records {
				rec := fmt.Sprintf("w%d r%05d ", w, i)
				rec += strings.Repeat(string(rune('a'+w)), size-1-len(rec)) + "\n"
				if _, err := f.WriteString(rec); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b := readFile(t, p)
	if len(b) != 2*records*size {
		t.Fatalf("size %d, want %d", len(b), 2*records*size)
	}
	next := [2]int{}
	for i := 0; i < len(b); i += size {
		rec := string(b[i : i+size])
		var w, r int
		if _, err := fmt.Sscanf(rec, "w%d r%05d ", &w, &r); err != nil || w < 0 || w > 1 {
			t.Fatalf("record at %d garbled: %q", i, rec)
		}
		if r != next[w] || !strings.HasSuffix(rec, strings.Repeat(string(rune('a'+w)), 20)+"\n") {
			t.Fatalf("record at %d: %q, want w%d r%05d intact", i, rec, w, next[w])
		}
		next[w]++
	}
}

func TestSyncOnFsyncAndClose(t *testing.T) {
	tm := mount(t)
	p := tm.path("s")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	ref := tm.ref(t, "s")
	f.WriteString("x")
	before := tm.data.syncs(ref)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := tm.data.syncs(ref); got != before+1 {
		t.Errorf("fsync: %d Syncs, want %d", got, before+1)
	}
	f.WriteString("y")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tm.data.syncs(ref); got != before+2 {
		t.Errorf("close: %d Syncs, want %d", got, before+2)
	}
	// A read-only descriptor wrote nothing: closing it needs no Sync.
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if got := tm.data.syncs(ref); got != before+2 {
		t.Errorf("close of read-only fd: %d Syncs, want %d", got, before+2)
	}
}

func TestRename(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("a"), []byte("A"), 0o644)
	writeFile(t, tm.path("b"), []byte("B"), 0o644)
	if err := unix.Rename(tm.path("a"), tm.path("b")); err != nil {
		t.Fatal(err)
	}
	if b := readFile(t, tm.path("b")); string(b) != "A" {
		t.Errorf("renamed over file reads %q, want A", b)
	}
	_, err := os.Stat(tm.path("a"))
	wantErrno(t, "stat old name", err, syscall.ENOENT)

	for _, d := range []string{"d1", "d2", "full"} {
		if err := os.Mkdir(tm.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, tm.path("d1/f"), []byte("in d1"), 0o644)
	writeFile(t, tm.path("full/g"), nil, 0o644)
	if err := unix.Rename(tm.path("d1"), tm.path("d2")); err != nil {
		t.Fatalf("rename dir over empty dir: %v", err)
	}
	if b := readFile(t, tm.path("d2/f")); string(b) != "in d1" {
		t.Errorf("d2/f reads %q", b)
	}
	wantErrno(t, "rename dir over non-empty dir", unix.Rename(tm.path("d2"), tm.path("full")), syscall.ENOTEMPTY)
	if err := os.Mkdir(tm.path("empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "rename file over dir", unix.Rename(tm.path("b"), tm.path("empty")), syscall.EISDIR)
}

func TestHardLink(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("one"), nil, 0o644)
	if err := os.Link(tm.path("one"), tm.path("two")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tm.path("one"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("shared")
	// Read through the other name while the writer is still open.
	if b := readFile(t, tm.path("two")); string(b) != "shared" {
		t.Errorf("other name reads %q", b)
	}
	f.Close()
	st, err := os.Stat(tm.path("two"))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Sys().(*syscall.Stat_t).Nlink; n != 2 || st.Size() != 6 {
		t.Errorf("nlink %d size %d, want 2 and 6", n, st.Size())
	}
	if tm.ref(t, "one").ID != tm.ref(t, "two").ID {
		t.Error("two names of one file have different refs")
	}
}

func TestSymlink(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("target"), []byte("via link"), 0o644)
	if err := os.Symlink("target", tm.path("link")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(tm.path("link")); err != nil || got != "target" {
		t.Errorf("readlink = %q, %v", got, err)
	}
	if st, err := os.Lstat(tm.path("link")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat: %v, %v", st, err)
	}
	if b := readFile(t, tm.path("link")); string(b) != "via link" {
		t.Errorf("read through link: %q", b)
	}
}

func TestUnlinkedOpenFile(t *testing.T) {
	tm := mount(t)
	p := tm.path("gone")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("hello")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(" world"), 5); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	b := make([]byte, 20)
	n, _ := f.ReadAt(b, 0)
	if string(b[:n]) != "hello world" {
		t.Errorf("read after unlink: %q", b[:n])
	}
	st, err := f.Stat()
	if err != nil || st.Size() != 11 {
		t.Errorf("fstat after unlink: %v, %v", st, err)
	}
	if err := f.Chmod(0o600); err != nil {
		t.Errorf("fchmod after unlink: %v", err)
	}
	if err := f.Truncate(5); err != nil {
		t.Errorf("ftruncate after unlink: %v", err)
	}
	if st, _ := f.Stat(); st.Size() != 5 || st.Mode().Perm() != 0o600 {
		t.Errorf("after fchmod and ftruncate: size %d mode %v", st.Size(), st.Mode())
	}
}

func TestTmpfile(t *testing.T) {
	tm := mount(t)
	fd, err := unix.Open(tm.dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("O_TMPFILE: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, []byte("anonymous"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, tm.path("named"), unix.AT_SYMLINK_FOLLOW); err != nil {
		t.Fatalf("link O_TMPFILE file: %v", err)
	}
	if b := readFile(t, tm.path("named")); string(b) != "anonymous" {
		t.Errorf("linked tmpfile reads %q", b)
	}
}

func TestCopyFileRangeGoesThroughBuffer(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("src"), []byte("copied through the buffer"), 0o644)
	in, err := os.Open(tm.path("src"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(tm.path("dst"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, 100, 0)
	if err != nil || n != 25 {
		t.Fatalf("copy_file_range = %d, %v", n, err)
	}
	out.Close()
	if b := readFile(t, tm.path("dst")); string(b) != "copied through the buffer" {
		t.Errorf("copy reads %q", b)
	}
}

// TestMmap writes through a shared mapping and msyncs. The mapping is
// touched in a child process: a page fault on a FUSE file in the process
// that serves the mount can deadlock with Go's stop-the-world GC (the
// faulting thread holds its P while the kernel waits for this server).
func TestMmap(t *testing.T) {
	tm := mount(t)
	p := tm.path("m")
	writeFile(t, p, make([]byte, 8192), 0o644)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=mmap", "BBFUSE_TEST_DIR="+p)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mmap helper: %v: %s", err, out)
	}
	if n := tm.data.buffered(tm.ref(t, "m")); n <= 8192 {
		t.Errorf("mmap write did not reach Data (%d bytes buffered)", n)
	}
	b := readFile(t, p)
	if string(b[4096:4102]) != "mapped" {
		t.Errorf("mmap write reads back %q", b[4096:4102])
	}
}

// mmapHelper maps path, writes "mapped" at 4096 and msyncs (TestMmap's child).
func mmapHelper(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Println("mmap:", err)
		return 1
	}
	copy(m[4096:], "mapped")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		fmt.Println("msync:", err)
		return 1
	}
	unix.Munmap(m)
	return 0
}

func TestErrnos(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("file"), nil, 0o644)
	if err := os.Mkdir(tm.path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tm.path("dir/x"), nil, 0o644)

	_, err := os.Open(tm.path("missing"))
	wantErrno(t, "open missing", err, syscall.ENOENT)
	_, err = os.OpenFile(tm.path("file"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, "O_EXCL on existing", err, syscall.EEXIST)
	wantErrno(t, "mkdir existing", os.Mkdir(tm.path("dir"), 0o755), syscall.EEXIST)
	wantErrno(t, "rmdir non-empty", unix.Rmdir(tm.path("dir")), syscall.ENOTEMPTY)
	_, err = os.OpenFile(tm.path("dir"), os.O_WRONLY, 0)
	wantErrno(t, "open dir for write", err, syscall.EISDIR)
	_, err = os.Open(tm.path("file/x"))
	wantErrno(t, "open under a file", err, syscall.ENOTDIR)
	wantErrno(t, "mkdir under a file", os.Mkdir(tm.path("file/x"), 0o755), syscall.ENOTDIR)
	wantErrno(t, "rmdir file", unix.Rmdir(tm.path("file")), syscall.ENOTDIR)
	_, err = os.Create(tm.path(strings.Repeat("n", 256)))
	wantErrno(t, "256-byte name", err, syscall.ENAMETOOLONG)
}

func TestTimes(t *testing.T) {
	tm := mount(t)
	p := tm.path("t")
	writeFile(t, p, []byte("x"), 0o644)
	atime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	mtime := time.Date(2002, 3, 4, 5, 6, 7, 891, time.UTC)
	if err := os.Chtimes(p, atime, mtime); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if got := time.Unix(sys.Atim.Unix()); !got.Equal(atime) {
		t.Errorf("atime %v, want %v", got, atime)
	}
	if !st.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v", st.ModTime(), mtime)
	}

	// A write moves mtime, though the data stays in the buffer.
	start := time.Now().Add(-time.Second)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("y")
	if st, err := os.Stat(p); err != nil || st.ModTime().Before(start) {
		t.Errorf("mtime after write: %v, %v; want after %v", st.ModTime(), err, start)
	}
	beforeZ := time.Now()
	f.WriteString("z") // within the second of "y": stamped at close
	last := time.Now()
	f.Close()
	bst, err := os.Stat(filepath.Join(tm.backing, "t"))
	if err != nil {
		t.Fatal(err)
	}
	if bst.ModTime().Before(beforeZ) || bst.ModTime().After(last) {
		t.Errorf("backing mtime %v after close, want the last write's, within [%v, %v]", bst.ModTime(), beforeZ, last)
	}
}

func TestStatfs(t *testing.T) {
	tm := mount(t)
	var got, want unix.Statfs_t
	if err := unix.Statfs(tm.dir, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(tm.backing, &want); err != nil {
		t.Fatal(err)
	}
	if got.Blocks != want.Blocks || got.Bsize != want.Bsize {
		t.Errorf("statfs blocks %d bsize %d, want %d and %d", got.Blocks, got.Bsize, want.Blocks, want.Bsize)
	}
}

func TestXattr(t *testing.T) {
	tm := mount(t)
	p := tm.path("x")
	writeFile(t, p, nil, 0o644)
	if err := unix.Setxattr(p, "user.bb", []byte("v"), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("backing file system has no user xattrs")
		}
		t.Fatal(err)
	}
	b := make([]byte, 10)
	n, err := unix.Getxattr(p, "user.bb", b)
	if err != nil || string(b[:n]) != "v" {
		t.Errorf("getxattr = %q, %v", b[:n], err)
	}
}

// TestPermissions runs checks as uid/gid 65534 in a child process.
func TestPermissions(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("secret"), []byte("secret"), 0o600)
	writeFile(t, tm.path("public"), []byte("public"), 0o644)
	for _, d := range []struct {
		name string
		perm os.FileMode
	}{{"shared", 0o777}, {"closed", 0o755}, {"sticky", 0o777 | os.ModeSticky}} {
		if err := os.Mkdir(tm.path(d.name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tm.path(d.name), d.perm); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, tm.path("sticky/rootfile"), nil, 0o666)
	if err := os.Chmod(tm.path("sticky/rootfile"), 0o666); err != nil {
		t.Fatal(err)
	}

	// The test binary may sit in a directory only root can reach.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tm.base, "helper.test")
	src, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, src, 0o755)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"=perm", "BBFUSE_TEST_DIR="+tm.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as 65534: %v\n%s", err, out)
	}
	t.Logf("helper:\n%s", out)

	st, err := os.Stat(filepath.Join(tm.backing, "shared", "mine"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 || st.Mode().Perm() != 0o640 {
		t.Errorf("backing file created by 65534: uid %d gid %d mode %v, want 65534 65534 -rw-r-----", sys.Uid, sys.Gid, st.Mode())
	}
}

// runHelper runs a helper mode in a child process and returns its exit
// code; it prints each failed check.
func runHelper(mode, dir string) int {
	switch mode {
	case "mmap":
		return mmapHelper(dir)
	case "race":
		return raceHelper(dir)
	}
	if mode != "perm" {
		fmt.Printf("unknown helper mode %q\n", mode)
		return 2
	}
	failed := 0
	check := func(what string, err error, want syscall.Errno) {
		switch {
		case want == 0 && err != nil:
			fmt.Printf("FAIL %s: %v\n", what, err)
			failed++
		case want != 0 && !errors.Is(err, want):
			fmt.Printf("FAIL %s: got %v, want %v\n", what, err, want)
			failed++
		default:
			fmt.Printf("ok   %s\n", what)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }

	_, err := os.ReadFile(p("secret"))
	check("read 0600 root file", err, syscall.EACCES)
	b, err := os.ReadFile(p("public"))
	if err == nil && string(b) != "public" {
		err = fmt.Errorf("read %q", b)
	}
	check("read 0644 root file", err, 0)
	_, err = os.OpenFile(p("public"), os.O_WRONLY, 0)
	check("open 0644 root file for write", err, syscall.EACCES)
	check("truncate 0644 root file", os.Truncate(p("public"), 0), syscall.EACCES)
	check("chmod root file", os.Chmod(p("public"), 0o666), syscall.EPERM)
	check("chown root file", os.Chown(p("public"), 65534, 65534), syscall.EPERM)
	check("utimes root file", os.Chtimes(p("public"), time.Unix(1, 0), time.Unix(1, 0)), syscall.EPERM)
	check("unlink in 0755 root dir", os.Remove(p("public")), syscall.EACCES)
	_, err = os.Create(p("closed/new"))
	check("create in 0755 root dir", err, syscall.EACCES)
	check("unlink root file in sticky dir", os.Remove(p("sticky/rootfile")), syscall.EPERM)

	syscall.Umask(0o027)
	f, err := os.OpenFile(p("shared/mine"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o666)
	if err == nil {
		if _, err = f.WriteString("mine"); err == nil {
			err = f.Close()
		}
	}
	check("create in 0777 dir", err, 0)
	st, err := os.Stat(p("shared/mine"))
	if err == nil {
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 || st.Mode().Perm() != 0o640 {
			err = fmt.Errorf("uid %d gid %d mode %v, want 65534 65534 -rw-r-----", sys.Uid, sys.Gid, st.Mode())
		}
	}
	check("new file owned by creator, umask applied once", err, 0)
	check("chmod own file", os.Chmod(p("shared/mine"), 0o640), 0)
	check("mkdir in 0777 dir", os.Mkdir(p("shared/mydir"), 0o755), 0)
	check("symlink in 0777 dir", os.Symlink("mine", p("shared/mylink")), 0)
	for _, name := range []string{"shared/mydir", "shared/mylink"} {
		st, err := os.Lstat(p(name))
		if err == nil {
			if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 {
				err = fmt.Errorf("uid %d gid %d, want 65534", sys.Uid, sys.Gid)
			}
		}
		check(name+" owned by creator", err, 0)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
