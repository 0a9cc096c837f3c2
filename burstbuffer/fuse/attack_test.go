package fuse

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperBinary copies the test binary where an unprivileged user can run
// it (it may sit in a directory only root can reach).
func helperBinary(t *testing.T, tm *testMount) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tm.base, "helper.test")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	src, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, src, 0o755)
	return bin
}

// raceSeconds is how long TestSymlinkSwapRace attacks (BBFUSE_RACE_SECONDS
// overrides it).
func raceSeconds() int {
	if s := os.Getenv("BBFUSE_RACE_SECONDS"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
			return n
		}
	}
	return 10
}

// TestSymlinkSwapRace is the attack of issue 13: an unprivileged user
// (uid 65534) chmods and unlinks files in a directory of its own through
// the mount while swapping that directory for a symlink to a root-owned
// directory, so that a server acting on backing path strings as root
// follows the symlink. The root-owned 0600 file and its neighbour must come
// out unchanged.
func TestSymlinkSwapRace(t *testing.T) {
	tm := mount(t)
	start := time.Now().Add(-time.Minute)
	if err := os.Mkdir(tm.path("vdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tm.path("vdir/secret"), []byte("secret"), 0o600)
	writeFile(t, tm.path("vdir/keep"), []byte("keep"), 0o600)
	if err := os.Mkdir(tm.path("att"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tm.path("att"), 65534, 65534); err != nil {
		t.Fatal(err)
	}

	secs := raceSeconds()
	cmd := exec.Command(helperBinary(t, tm))
	cmd.Env = append(os.Environ(), helperEnv+"=race", "BBFUSE_TEST_DIR="+tm.dir, fmt.Sprintf("BBFUSE_RACE_SECONDS=%d", secs))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("attacker (uid 65534, %d s):\n%s", secs, out)
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}

	ents, err := os.ReadDir(filepath.Join(tm.backing, "vdir"))
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
	for _, c := range []struct{ name, content string }{{"secret", "secret"}, {"keep", "keep"}} {
		st, err := os.Lstat(filepath.Join(tm.backing, "vdir", c.name))
		if err != nil {
			t.Errorf("root-owned vdir/%s: %v", c.name, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != 0o600 || sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("root-owned vdir/%s: mode %v uid %d gid %d, want -rw------- 0 0", c.name, st.Mode(), sys.Uid, sys.Gid)
		}
		if st.ModTime().Before(start) {
			t.Errorf("root-owned vdir/%s: mtime set back to %v", c.name, st.ModTime())
		}
		if sz, err := unix.Lgetxattr(filepath.Join(tm.backing, "vdir", c.name), "user.x", nil); err == nil {
			t.Errorf("root-owned vdir/%s: got an xattr user.x (%d bytes)", c.name, sz)
		}
		if b, _ := os.ReadFile(tm.path("vdir/" + c.name)); string(b) != c.content {
			t.Errorf("root-owned vdir/%s reads %q, want %q", c.name, b, c.content)
		}
	}
}

// raceHelper is the attacker of TestSymlinkSwapRace, run as 65534: it
// stops by itself after BBFUSE_RACE_SECONDS.
func raceHelper(dir string) int {
	p := func(name string) string { return filepath.Join(dir, name) }
	d, lnk := p("att/d"), p("att/lnk")
	if err := os.Mkdir(d, 0o755); err != nil {
		fmt.Println("mkdir:", err)
		return 1
	}
	if err := os.Symlink("../vdir", lnk); err != nil {
		fmt.Println("symlink:", err)
		return 1
	}
	deadline := time.Now().Add(time.Duration(raceSeconds()) * time.Second)
	var stop atomic.Bool
	var chmods, unlinks, swaps atomic.Int64
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
	// The swapper: d is the attacker's own directory, then a symlink to
	// the victim's, and back, each an atomic exchange of the two names.
	run(func() {
		for _, n := range []string{"secret", "keep"} {
			if _, err := os.Lstat(filepath.Join(d, n)); err != nil {
				os.WriteFile(filepath.Join(d, n), nil, 0o600)
			}
		}
		for range 100 {
			if unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, lnk, unix.RENAME_EXCHANGE) == nil {
				swaps.Add(1)
			}
		}
	})
	own := func(name string) string { return filepath.Join(d, name) }
	var others atomic.Int64
	try := func(err error) {
		if err == nil {
			others.Add(1)
		}
	}
	for range 2 {
		run(func() {
			if os.Chmod(own("secret"), 0o777) == nil {
				chmods.Add(1)
			}
		})
		run(func() {
			if os.Remove(own("keep")) == nil {
				unlinks.Add(1)
			}
		})
	}
	// The other ways a path-acting server would hand over the victim.
	run(func() {
		try(os.Chown(own("secret"), 65534, 65534))
		try(os.Truncate(own("secret"), 0))
		try(os.Chtimes(own("secret"), time.Unix(1, 0), time.Unix(1, 0)))
		try(os.Rename(own("keep"), p("att/stolen")))
		try(os.Mkdir(own("planted"), 0o777))
		try(os.Symlink("x", own("plantedlink")))
		try(unix.Setxattr(own("secret"), "user.x", []byte("1"), 0))
	})
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		st, err := os.Stat(p("vdir/secret"))
		if err == nil && st.Mode().Perm() != 0o600 {
			fmt.Printf("vdir/secret became %v\n", st.Mode())
			break
		}
		if _, err := os.Lstat(p("vdir/keep")); errors.Is(err, os.ErrNotExist) {
			fmt.Println("vdir/keep is gone")
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	fmt.Printf("%d swaps, %d chmods, %d unlinks and %d other operations on the attacker's own files went through\n", swaps.Load(), chmods.Load(), unlinks.Load(), others.Load())
	return 0
}

// TestLongPathFromMountRoot: a path of 4,095 bytes from the mount root
// (the most the kernel takes) works for every operation, however long the
// backing directory's own path is.
func TestLongPathFromMountRoot(t *testing.T) {
	tm := mount(t)
	mnt, err := unix.Open(tm.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mnt)
	var b strings.Builder
	for i := 0; 4095-b.Len() > 256; i++ {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 255))
		if err := unix.Mkdirat(mnt, b.String(), 0o755); err != nil {
			t.Fatalf("mkdir at %d bytes: %v", b.Len(), err)
		}
		b.WriteByte('/')
	}
	dir := strings.TrimSuffix(b.String(), "/")
	b.WriteString(strings.Repeat("f", 4095-b.Len()))
	rel := b.String()
	if len(rel) != 4095 {
		t.Fatalf("path of %d bytes", len(rel))
	}
	fd, err := unix.Openat(mnt, rel, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatalf("create %d-byte path: %v", len(rel), err)
	}
	if _, err := unix.Write(fd, []byte("deep")); err != nil {
		t.Error("write:", err)
	}
	if err := unix.Close(fd); err != nil {
		t.Error("close:", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s of a 4095-byte path: %v", what, err)
		}
	}
	var st unix.Stat_t
	check("stat", unix.Fstatat(mnt, rel, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Size != 4 {
		t.Errorf("size %d, want 4", st.Size)
	}
	check("chmod", unix.Fchmodat(mnt, rel, 0o600, 0))
	check("chown", unix.Fchownat(mnt, rel, 65534, 65534, unix.AT_SYMLINK_NOFOLLOW))
	check("utimes", unix.UtimesNanoAt(mnt, rel, []unix.Timespec{{Sec: 1}, {Sec: 2}}, 0))
	if err := unix.Fstatat(mnt, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mtim.Sec != 2 || st.Atim.Sec != 1 {
		t.Errorf("after utimes: atime %d mtime %d %v", st.Atim.Sec, st.Mtim.Sec, err)
	}
	fd, err = unix.Openat(mnt, rel, unix.O_RDWR|unix.O_CLOEXEC, 0)
	check("open", err)
	if err == nil {
		unix.Close(fd)
	}
	// truncate(2) and setxattr(2) take a path: a short one through the
	// deepest directory's descriptor.
	dfd, err := unix.Openat(mnt, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dfd, rel[len(dir)+1:])
	check("truncate", unix.Truncate(short, 2))
	check("setxattr", unix.Lsetxattr(short, "user.x", []byte("1"), 0))
	if err := unix.Fstatat(mnt, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Size != 2 || st.Mode&0o7777 != 0o600 || st.Uid != 65534 {
		t.Errorf("after truncate, chmod, chown: size %d mode %o uid %d %v", st.Size, st.Mode, st.Uid, err)
	}
	check("link", unix.Linkat(mnt, rel, mnt, dir+"/g", 0))
	check("symlink", unix.Symlinkat("g", mnt, dir+"/s"))
	buf := make([]byte, 16)
	n, err := unix.Readlinkat(mnt, dir+"/s", buf)
	check("readlink", err)
	if string(buf[:n]) != "g" {
		t.Errorf("readlink %q", buf[:n])
	}
	check("mknod", unix.Mknodat(mnt, dir+"/p", unix.S_IFIFO|0o600, 0))
	check("rename", unix.Renameat(mnt, rel, mnt, dir+"/h"))
	check("unlink", unix.Unlinkat(mnt, dir+"/h", 0))
	for _, n := range []string{"g", "s", "p"} {
		check("unlink "+n, unix.Unlinkat(mnt, dir+"/"+n, 0))
	}
	check("mkdir", unix.Mkdirat(mnt, dir+"/m", 0o755))
	check("rmdir", unix.Unlinkat(mnt, dir+"/m", unix.AT_REMOVEDIR))
}

// A symlink's own owner and times are set on the symlink, not its target;
// directories list.
func TestSymlinkOwnAttributes(t *testing.T) {
	tm := mount(t)
	writeFile(t, tm.path("target"), []byte("t"), 0o644)
	if err := os.Symlink("target", tm.path("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(tm.path("link"), 65534, 65534); err != nil {
		t.Errorf("lchown: %v", err)
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, tm.path("link"), []unix.Timespec{{Sec: 7}, {Sec: 7}}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Errorf("lutimes: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(tm.backing, "link"), &st); err != nil || st.Uid != 65534 || st.Mtim.Sec != 7 {
		t.Errorf("backing symlink: uid %d mtime %d %v", st.Uid, st.Mtim.Sec, err)
	}
	if err := unix.Stat(filepath.Join(tm.backing, "target"), &st); err != nil || st.Uid != 0 || st.Mtim.Sec == 7 {
		t.Errorf("backing target changed: uid %d mtime %d %v", st.Uid, st.Mtim.Sec, err)
	}
	if got, err := os.Readlink(tm.path("link")); err != nil || got != "target" {
		t.Errorf("readlink %q %v", got, err)
	}
	ents, err := os.ReadDir(tm.dir)
	if err != nil || len(ents) != 2 || ents[0].Name() != "link" || ents[1].Name() != "target" {
		t.Errorf("readdir: %v %v", ents, err)
	}
}
