package namespace

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// setup makes base/root (the Root) and base/outside with a file victim
// (mode 0600) that nothing may reach through the root.
func setup(t *testing.T) (r *Root, root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("victim"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, root, outside
}

func checkVictim(t *testing.T, outside string) {
	t.Helper()
	st, err := os.Lstat(filepath.Join(outside, "victim"))
	if err != nil {
		t.Fatalf("victim outside the root: %v", err)
	}
	if st.Mode() != 0o600 {
		t.Fatalf("victim outside the root: mode %v, want -rw-------", st.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "victim" {
		t.Fatalf("victim outside the root: content %q", b)
	}
}

func wantErr(t *testing.T, what string, err error, want ...unix.Errno) {
	t.Helper()
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	t.Errorf("%s: got %v, want one of %v", what, err, want)
}

// A symlink in any component, planted by a user, is never followed:
// ELOOP, and the file it leads to is untouched.
func TestSymlinkComponentRefused(t *testing.T) {
	r, root, outside := setup(t)
	if err := os.Symlink(outside, filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Open("d/victim", unix.O_RDONLY, 0)
	wantErr(t, "open through symlinked dir", err, unix.ELOOP)
	_, err = r.Open("l", unix.O_RDONLY, 0)
	wantErr(t, "open trailing symlink", err, unix.ELOOP)
	wantErr(t, "chmod through symlinked dir", r.Chmod("d/victim", 0o777), unix.ELOOP)
	wantErr(t, "chmod trailing symlink", r.Chmod("l", 0o777), unix.EOPNOTSUPP)
	wantErr(t, "chown through symlinked dir", r.Chown("d/victim", 65534, 65534), unix.ELOOP)
	wantErr(t, "utimes through symlinked dir", r.Utimes("d/victim", &[2]unix.Timespec{{Sec: 1}, {Sec: 1}}), unix.ELOOP)
	wantErr(t, "truncate through symlinked dir", r.Truncate("d/victim", 0), unix.ELOOP)
	wantErr(t, "truncate trailing symlink", r.Truncate("l", 0), unix.ELOOP)
	wantErr(t, "unlink through symlinked dir", r.Unlink("d/victim"), unix.ELOOP)
	wantErr(t, "rename through symlinked dir", r.Rename("d/victim", &r.Dir, "stolen", 0), unix.ELOOP)
	wantErr(t, "link through symlinked dir", r.Link(&r.Dir, "d/victim", "stolen"), unix.ELOOP)
	wantErr(t, "mkdir through symlinked dir", r.Mkdir("d/new", 0o755), unix.ELOOP)
	_, err = r.Stat("d/victim")
	wantErr(t, "stat through symlinked dir", err, unix.ELOOP)
	_, err = r.OpenDir("d")
	wantErr(t, "open symlinked dir", err, unix.ELOOP)

	// The trailing symlink is acted on as itself where Linux can.
	if err := r.Chown("l", 65534, 65534); err != nil {
		t.Errorf("chown of the symlink itself: %v", err)
	}
	lf, err := r.Open("l", unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := UtimesFile(lf, &[2]unix.Timespec{{Sec: 3}, {Sec: 3}}); err != nil {
		t.Errorf("utimes of the symlink itself: %v", err)
	}
	if x, err := StatFile(lf); err != nil || x.Mtime.Sec != 3 || x.Uid != 65534 || x.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("symlink itself: mtime %d uid %d mode %o %v", x.Mtime.Sec, x.Uid, x.Mode, err)
	}
	lf.Close()
	if target, err := r.Readlink("l"); err != nil || target != filepath.Join(outside, "victim") {
		t.Errorf("readlink: %q %v", target, err)
	}
	if err := r.Unlink("l"); err != nil {
		t.Errorf("unlink the symlink itself: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(outside, "victim"), &st); err != nil || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("victim's owner changed through the symlink: %v uid %d", err, st.Uid)
	}
	checkVictim(t, outside)
}

// ".." and absolute paths cannot leave the root.
func TestDotDotRefused(t *testing.T) {
	r, root, outside := setup(t)
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../outside/victim", "a/../../outside/victim", filepath.Join(outside, "victim")} {
		_, err := r.Open(p, unix.O_RDONLY, 0)
		wantErr(t, "open "+p, err, unix.EXDEV)
		wantErr(t, "chmod "+p, r.Chmod(p, 0o777), unix.EXDEV)
		wantErr(t, "unlink "+p, r.Unlink(p), unix.EXDEV)
		wantErr(t, "chown "+p, r.Chown(p, 65534, -1), unix.EXDEV)
	}
	for _, p := range []string{"..", "a/..", ".", ""} {
		wantErr(t, "unlink "+p, r.Unlink(p), unix.EXDEV, unix.EINVAL)
		wantErr(t, "rmdir "+p, r.Rmdir(p), unix.EXDEV, unix.EINVAL)
		_, err := r.Stat(p + "/..")
		wantErr(t, "stat "+p+"/..", err, unix.EXDEV, unix.EINVAL)
	}
	// ".." that stays beneath is fine.
	if _, err := r.Stat("a/../a"); err != nil {
		t.Errorf("stat a/../a: %v", err)
	}
	checkVictim(t, outside)
}

// A directory swapped for a symlink to the victim's directory while
// operations run on a path through it: the victim is never touched.
func TestSwappedSymlinkRace(t *testing.T) {
	r, root, outside := setup(t)
	d, real, link := filepath.Join(root, "d"), filepath.Join(root, "real"), filepath.Join(root, "link")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Swap d between the real directory and the symlink.
		for !stop.Load() {
			os.WriteFile(filepath.Join(real, "victim"), nil, 0o644)
			unix.Renameat2(unix.AT_FDCWD, real, unix.AT_FDCWD, d, 0)
			unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, real, 0)
			unix.Renameat2(unix.AT_FDCWD, link, unix.AT_FDCWD, d, 0)
			unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, link, 0)
		}
	}()
	var done int
	for i := 0; i < 20000; i++ {
		if r.Chmod("d/victim", 0o777) == nil {
			done++
		}
		if r.Unlink("d/victim") == nil {
			done++
		}
		r.Chown("d/victim", 65534, 65534)
		r.Truncate("d/victim", 0)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d operations went through the real directory", done)
	checkVictim(t, outside)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(outside, "victim"), &st); err != nil || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("victim's owner changed: %v uid %d", err, st.Uid)
	}
}

// longRel returns a relative path of exactly n bytes: directories of 255
// bytes, then a file name.
func longRel(n int) (dirs []string, rel string) {
	var b strings.Builder
	for i := 0; n-b.Len() > 256; i++ {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 255))
		dirs = append(dirs, b.String())
		b.WriteByte('/')
	}
	b.WriteString(strings.Repeat("f", n-b.Len()))
	return dirs, b.String()
}

// Any path the kernel takes works, and longer ones too (in pieces).
func TestLongPaths(t *testing.T) {
	for _, n := range []int{4095, 9000} {
		r, _, _ := setup(t)
		dirs, rel := longRel(n)
		if len(rel) != n {
			t.Fatalf("path of %d bytes, want %d", len(rel), n)
		}
		for _, d := range dirs {
			if err := r.Mkdir(d, 0o755); err != nil {
				t.Fatalf("%d bytes: mkdir: %v", n, err)
			}
		}
		f, err := r.Create(rel, unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("%d bytes: create: %v", n, err)
		}
		f.WriteString("deep")
		f.Close()
		if err := r.Chmod(rel, 0o600); err != nil {
			t.Errorf("%d bytes: chmod: %v", n, err)
		}
		x, err := r.Stat(rel)
		if err != nil || x.Mode&0o7777 != 0o600 || x.Size != 4 {
			t.Errorf("%d bytes: stat: mode %o size %d %v", n, x.Mode, x.Size, err)
		}
		if err := r.Rename(rel, &r.Dir, dirs[0]+"/moved", 0); err != nil {
			t.Errorf("%d bytes: rename: %v", n, err)
		}
		if err := r.Unlink(dirs[0] + "/moved"); err != nil {
			t.Errorf("%d bytes: unlink: %v", n, err)
		}
	}
}

func TestOperations(t *testing.T) {
	r, root, _ := setup(t)
	if err := r.Mkdir("dir", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := r.OpenDir("dir")
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if dir.Rel() != "dir" || dir.Name() != filepath.Join(root, "dir") {
		t.Errorf("dir rel %q name %q", dir.Rel(), dir.Name())
	}
	if err := dir.Mknod("fifo", unix.S_IFIFO|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if x, err := r.Stat("dir/fifo"); err != nil || x.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo: %o %v", x.Mode, err)
	}
	// Chmod and truncate of a FIFO must not open it (that would block).
	if err := r.Chmod("dir/fifo", 0o640); err != nil {
		t.Errorf("chmod fifo: %v", err)
	}
	wantErr(t, "truncate fifo", r.Truncate("dir/fifo", 0), unix.EINVAL)
	wantErr(t, "truncate dir", r.Truncate("dir", 0), unix.EISDIR)
	if err := r.Publish("dir/obj", 0o640, func(f *os.File) error { _, err := f.WriteString("v1"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := dir.Publish("obj", 0o600, func(f *os.File) error { _, err := f.WriteString("v2"); return err }); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "dir", "obj"))
	if b, _ := os.ReadFile(filepath.Join(root, "dir", "obj")); err != nil || string(b) != "v2" || st.Mode() != 0o600 {
		t.Errorf("published: %q %v %v", b, st.Mode(), err)
	}
	if err := r.Publish("dir/obj", 0o600, func(*os.File) error { return errors.New("no") }); err == nil {
		t.Error("publish with a failed write succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "dir"))
	if len(ents) != 2 {
		t.Errorf("temporary file left behind: %v", ents)
	}
	if err := r.Link(dir, "obj", "hard"); err != nil {
		t.Error(err)
	}
	if err := r.Symlink("dir/obj", "sym"); err != nil {
		t.Error(err)
	}
	if tg, err := r.Readlink("sym"); err != nil || tg != "dir/obj" {
		t.Errorf("readlink %q %v", tg, err)
	}
	if err := r.Utimes("hard", &[2]unix.Timespec{{Sec: 5}, {Sec: 7}}); err != nil {
		t.Error(err)
	}
	if x, _ := r.Stat("dir/obj"); x.Mtime.Sec != 7 || x.Atime.Sec != 5 || x.Nlink != 2 {
		t.Errorf("utimes/link: atime %d mtime %d nlink %d", x.Atime.Sec, x.Mtime.Sec, x.Nlink)
	}
	if err := r.Truncate("hard", 1); err != nil {
		t.Error(err)
	}
	if err := r.Rename("hard", dir, "renamed", unix.RENAME_NOREPLACE); err != nil {
		t.Error(err)
	}
	wantErr(t, "rename noreplace", r.Rename("dir/renamed", dir, "obj", unix.RENAME_NOREPLACE), unix.EEXIST)
	if b, _ := os.ReadFile(filepath.Join(root, "dir", "renamed")); !bytes.Equal(b, []byte("v")) {
		t.Errorf("truncated file reads %q", b)
	}
	// An O_TMPFILE file gets a name.
	tmp, err := dir.Open(".", unix.O_TMPFILE|unix.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("tmp")
	if err := r.LinkFile(tmp, "dir/fromtmp"); err != nil {
		t.Error(err)
	}
	tmp.Close()
	if err := ChownFile(tmp, 1, 1); err == nil {
		t.Error("chown of a closed file succeeded")
	}
	pf, err := r.Open("dir/fromtmp", unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if err := ChmodFile(pf, 0o644); err != nil {
		t.Error(err)
	}
	if err := ChownFile(pf, 65534, 65534); err != nil {
		t.Error(err)
	}
	if err := UtimesFile(pf, &[2]unix.Timespec{{Sec: 9}, {Sec: 9}}); err != nil {
		t.Error(err)
	}
	x, err := StatFile(pf)
	if err != nil || x.Mode&0o7777 != 0o644 || x.Uid != 65534 || x.Mtime.Sec != 9 {
		t.Errorf("O_PATH chmod/chown/utimes: mode %o uid %d mtime %d %v", x.Mode, x.Uid, x.Mtime.Sec, err)
	}
	for _, n := range []string{"dir/fifo", "dir/obj", "dir/renamed", "dir/fromtmp", "sym"} {
		if err := r.Unlink(n); err != nil {
			t.Error(err)
		}
	}
	if err := r.Rmdir("dir"); err != nil {
		t.Error(err)
	}
	err = r.Rmdir("dir")
	wantErr(t, "rmdir again", err, unix.ENOENT)
	if !strings.Contains(err.Error(), filepath.Join(root, "dir")) || !strings.HasPrefix(err.Error(), "namespace: ") {
		t.Errorf("error does not name the package and path: %v", err)
	}
}

// Contains accepts files beneath the root and refuses others on the same
// file system, however they were opened.
func TestContains(t *testing.T) {
	_, root, outside := setup(t)
	if err := os.WriteFile(filepath.Join(root, "in"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rf, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for _, c := range []struct {
		path string
		ok   bool
	}{{filepath.Join(root, "in"), true}, {filepath.Join(outside, "victim"), false}, {root, false}, {outside, false}} {
		f, err := os.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		err = Contains(rf, f)
		f.Close()
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.path, err)
		}
		if !c.ok && !errors.Is(err, ErrNotBeneath) {
			t.Errorf("%s: got %v, want ErrNotBeneath", c.path, err)
		}
	}
}
