package namespace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resolve is how every path is resolved: beneath the directory it is
// relative to, crossing no symlink and no /proc magic link.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// maxPath is the longest path one system call takes (PATH_MAX less its
// terminating NUL); longer paths are resolved in pieces.
const maxPath = unix.PathMax - 1

// ErrNotBeneath reports an open file that does not lie beneath the root.
var ErrNotBeneath = errors.New("namespace: file is not beneath the root")

// Dir is an open directory beneath a Root: an O_PATH descriptor that every
// operation resolves its path relative to. A Dir stays the same directory
// when it is renamed or its path is changed under it. Close releases it.
type Dir struct {
	fd   int
	base string // the root's path, for errors
	rel  string // this directory relative to the root; "" for the root
}

// Root is the directory everything happens beneath: a Dir that also
// identifies its file system (mount id, device) and its real path.
type Root struct {
	Dir
	dev   uint64
	mntID uint64
}

// OpenRoot opens the directory path as a Root. path is the operator's
// configuration and may itself go through symlinks; nothing beneath it may.
func OpenRoot(path string) (*Root, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &os.PathError{Op: "namespace: open root", Path: path, Err: err}
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "namespace: open root", Path: abs, Err: err}
	}
	var x unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &x); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "namespace: open root", Path: abs, Err: err}
	}
	real, err := os.Readlink(procFd(fd))
	if err != nil || !filepath.IsAbs(real) {
		real = abs
	}
	return &Root{
		Dir:   Dir{fd: fd, base: real},
		dev:   unix.Mkdev(x.Dev_major, x.Dev_minor),
		mntID: x.Mnt_id,
	}, nil
}

// FromFd returns a Dir for the open directory descriptor fd (a directory
// the caller got from this package, or otherwise trusts): a duplicate of
// fd, which Close releases. name is its path, for errors.
func FromFd(fd int, name string) (*Dir, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "namespace: dup", Path: name, Err: err}
	}
	return &Dir{fd: nfd, base: name}, nil
}

// Path returns the root's real path (free of symlinks).
func (r *Root) Path() string { return r.base }

// Dev returns the device number of the root's file system.
func (r *Root) Dev() uint64 { return r.dev }

// Fd returns the directory's O_PATH descriptor, valid until Close.
func (d *Dir) Fd() int { return d.fd }

// Rel returns the directory's path relative to the root ("" for the root).
func (d *Dir) Rel() string { return d.rel }

// Name returns the directory's full path, for messages.
func (d *Dir) Name() string { return d.full("") }

// Close releases the directory.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

func (d *Dir) full(rel string) string {
	return filepath.Join(d.base, d.rel, rel)
}

func (d *Dir) fail(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: "namespace: " + op, Path: d.full(rel), Err: err}
}

// openat2 opens one piece of a path (at most maxPath bytes) beneath dirfd.
func openat2(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if flags&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		mode = 0 // openat2 refuses a mode it would not use
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, rel, &how)
		// EAGAIN: a rename raced with a ".." in the path; try again, a
		// few times.
		if (err == unix.EINTR || err == unix.EAGAIN) && i < 64 {
			continue
		}
		return fd, err
	}
}

// walk opens rel beneath dirfd. A path longer than maxPath is resolved in
// pieces split at slashes, each a directory opened beneath the last.
func walk(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	if filepath.IsAbs(rel) {
		return -1, unix.EXDEV
	}
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for len(rel) > maxPath {
		i := strings.LastIndexByte(rel[:maxPath+1], '/')
		if i <= 0 {
			return -1, unix.ENAMETOOLONG
		}
		next, err := openat2(cur, rel[:i], unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return -1, err
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = next
		rel = strings.TrimLeft(rel[i+1:], "/")
		if rel == "" {
			rel = "."
		}
	}
	return openat2(cur, rel, flags, mode)
}

// split splits rel into its parent directory and last component, which
// must be a name: not empty, ".", or "..".
func split(rel string) (parent, name string, err error) {
	rel = strings.TrimRight(rel, "/")
	if filepath.IsAbs(rel) {
		return "", "", unix.EXDEV
	}
	parent, name = "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		parent, name = rel[:i], rel[i+1:]
	}
	switch name {
	case "", ".":
		return "", "", unix.EINVAL
	case "..":
		return "", "", unix.EXDEV
	}
	if len(name) > 255 {
		return "", "", unix.ENAMETOOLONG
	}
	return parent, name, nil
}

// at resolves rel to its parent's descriptor and its last name; release
// closes the parent if at opened it.
func (d *Dir) at(rel string) (pfd int, name string, release func(), err error) {
	parent, name, err := split(rel)
	if err != nil {
		return -1, "", nil, err
	}
	if parent == "" {
		return d.fd, name, func() {}, nil
	}
	pfd, err = walk(d.fd, parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", nil, err
	}
	return pfd, name, func() { unix.Close(pfd) }, nil
}

// Open opens rel beneath d with open(2) flags (and mode, with O_CREAT or
// O_TMPFILE). A symlink anywhere in rel, the last component included, is
// ELOOP, unless flags has O_PATH|O_NOFOLLOW: then the symlink itself is
// opened. "" and "." open d itself.
func (d *Dir) Open(rel string, flags int, mode uint32) (*os.File, error) {
	fd, err := walk(d.fd, rel, flags, mode)
	if err != nil {
		return nil, d.fail("open", rel, err)
	}
	return os.NewFile(uintptr(fd), d.full(rel)), nil
}

// Create creates and opens the new file rel (O_CREAT|O_EXCL added to
// flags); it is EEXIST if rel exists, a symlink included.
func (d *Dir) Create(rel string, flags int, mode uint32) (*os.File, error) {
	if _, _, err := split(rel); err != nil {
		return nil, d.fail("create", rel, err)
	}
	fd, err := walk(d.fd, rel, flags|unix.O_CREAT|unix.O_EXCL, mode)
	if err != nil {
		return nil, d.fail("create", rel, err)
	}
	return os.NewFile(uintptr(fd), d.full(rel)), nil
}

// OpenDir opens the directory rel beneath d ("" or "." for d itself).
func (d *Dir) OpenDir(rel string) (*Dir, error) {
	fd, err := walk(d.fd, rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, d.fail("open", rel, err)
	}
	r := filepath.Join(d.rel, rel)
	if r == "." {
		r = ""
	}
	return &Dir{fd: fd, base: d.base, rel: r}, nil
}

// Stat returns the status of rel without following it if it is a
// symlink. "" or "." is d itself.
func (d *Dir) Stat(rel string) (unix.Statx_t, error) {
	var x unix.Statx_t
	if rel == "" || rel == "." {
		return x, d.fail("stat", rel, statx(d.fd, "", unix.AT_EMPTY_PATH, &x))
	}
	err := d.do("stat", rel, func(pfd int, name string) error {
		return statx(pfd, name, unix.AT_SYMLINK_NOFOLLOW, &x)
	})
	return x, err
}

func statx(fd int, name string, flags int, x *unix.Statx_t) error {
	return unix.Statx(fd, name, flags|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_BASIC_STATS|unix.STATX_BTIME|unix.STATX_MNT_ID, x)
}

// do runs f on rel's parent descriptor and last name.
func (d *Dir) do(op, rel string, f func(pfd int, name string) error) error {
	pfd, name, release, err := d.at(rel)
	if err != nil {
		return d.fail(op, rel, err)
	}
	defer release()
	if err := f(pfd, name); err != nil {
		return d.fail(op, rel, err)
	}
	return nil
}

// Mkdir makes the directory rel with mode (less the process umask).
func (d *Dir) Mkdir(rel string, mode uint32) error {
	return d.do("mkdir", rel, func(pfd int, name string) error { return unix.Mkdirat(pfd, name, mode) })
}

// Mknod makes the special file (or regular file) rel; mode carries the
// file type.
func (d *Dir) Mknod(rel string, mode uint32, dev int) error {
	return d.do("mknod", rel, func(pfd int, name string) error { return unix.Mknodat(pfd, name, mode, dev) })
}

// Symlink makes the symlink rel pointing to target (which is not
// resolved).
func (d *Dir) Symlink(target, rel string) error {
	return d.do("symlink", rel, func(pfd int, name string) error { return unix.Symlinkat(target, pfd, name) })
}

// Unlink removes the name rel (a symlink is removed, not followed).
func (d *Dir) Unlink(rel string) error {
	return d.do("unlink", rel, func(pfd int, name string) error { return unix.Unlinkat(pfd, name, 0) })
}

// Rmdir removes the empty directory rel.
func (d *Dir) Rmdir(rel string) error {
	return d.do("rmdir", rel, func(pfd int, name string) error { return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR) })
}

// Rename renames rel beneath d to newRel beneath to (renameat2 with
// flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT).
func (d *Dir) Rename(rel string, to *Dir, newRel string, flags uint) error {
	return d.do("rename", rel, func(pfd int, name string) error {
		return to.do("rename", newRel, func(npfd int, newName string) error {
			return unix.Renameat2(pfd, name, npfd, newName, flags)
		})
	})
}

// Link makes the hard link rel to fromRel beneath from (which is not
// followed if it is a symlink).
func (d *Dir) Link(from *Dir, fromRel, rel string) error {
	return from.do("link", fromRel, func(opfd int, oldName string) error {
		return d.do("link", rel, func(pfd int, name string) error {
			return unix.Linkat(opfd, oldName, pfd, name, 0)
		})
	})
}

// LinkFile gives the open file f (which may be O_PATH; an O_TMPFILE file,
// or one whose names are all gone) the name rel. linkat with AT_EMPTY_PATH
// needs CAP_DAC_READ_SEARCH; without it, the /proc/self/fd link of f is
// followed instead, which leads to the same inode.
func (d *Dir) LinkFile(f *os.File, rel string) error {
	return d.do("link", rel, func(pfd int, name string) error {
		err := unix.Linkat(int(f.Fd()), "", pfd, name, unix.AT_EMPTY_PATH)
		if err == unix.ENOENT || err == unix.EPERM {
			err = unix.Linkat(unix.AT_FDCWD, procFd(int(f.Fd())), pfd, name, unix.AT_SYMLINK_FOLLOW)
		}
		return err
	})
}

// Readlink returns the target of the symlink rel.
func (d *Dir) Readlink(rel string) (string, error) {
	var target string
	err := d.do("readlink", rel, func(pfd int, name string) error {
		for size := 256; ; size *= 2 {
			buf := make([]byte, size)
			n, err := unix.Readlinkat(pfd, name, buf)
			if err != nil {
				return err
			}
			if n < size {
				target = string(buf[:n])
				return nil
			}
		}
	})
	return target, err
}

// Chmod sets the permission bits of rel (not following it: a symlink is
// EOPNOTSUPP, as Linux keeps no modes for symlinks). "" is d itself.
func (d *Dir) Chmod(rel string, mode uint32) error {
	f, err := d.Open(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return d.fail("chmod", rel, errors.Unwrap(err))
	}
	defer f.Close()
	if err := chmodFd(int(f.Fd()), mode); err != nil {
		return d.fail("chmod", rel, err)
	}
	return nil
}

// Chown sets the owner and group of rel (-1 leaves one as it is), not
// following it.
func (d *Dir) Chown(rel string, uid, gid int) error {
	if rel == "" || rel == "." {
		return d.fail("chown", rel, unix.Fchownat(d.fd, "", uid, gid, unix.AT_EMPTY_PATH))
	}
	return d.do("chown", rel, func(pfd int, name string) error {
		return unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Utimes sets the access and modification times of rel, not following
// it; a Timespec with Nsec UTIME_OMIT leaves that time as it is.
func (d *Dir) Utimes(rel string, ts *[2]unix.Timespec) error {
	if rel == "" || rel == "." {
		if err := utimesFd(d.fd, ts); err != nil {
			return d.fail("utimes", rel, err)
		}
		return nil
	}
	return d.do("utimes", rel, func(pfd int, name string) error {
		return unix.UtimesNanoAt(pfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Truncate sets the size of the regular file rel. Anything else is
// refused (EINVAL, EISDIR) without being opened: opening a device as root
// can do things.
func (d *Dir) Truncate(rel string, size int64) error {
	pf, err := d.Open(rel, unix.O_PATH, 0)
	if err != nil {
		return d.fail("truncate", rel, errors.Unwrap(err))
	}
	defer pf.Close()
	x, err := StatFile(pf)
	if err != nil {
		return err
	}
	switch x.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return d.fail("truncate", rel, unix.EISDIR)
	default:
		return d.fail("truncate", rel, unix.EINVAL)
	}
	fd, err := unix.Open(procFd(int(pf.Fd())), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return d.fail("truncate", rel, err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, size); err != nil {
		return d.fail("truncate", rel, err)
	}
	return nil
}

// Sync flushes the directory d itself (its names) to stable storage.
func (d *Dir) Sync() error {
	f, err := d.Open(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return d.fail("fsync", "", err)
	}
	return nil
}

// Publish makes rel a new regular file with permission bits perm and the
// content write puts in it: it writes a temporary file beside rel,
// fsyncs it, renames it over rel and fsyncs the directory. Readers see the
// old rel or all of the new one. The temporary file is removed on failure.
func (d *Dir) Publish(rel string, perm uint32, write func(f *os.File) error) error {
	parent, name, err := split(rel)
	if err != nil {
		return d.fail("publish", rel, err)
	}
	dir := d
	if parent != "" {
		if dir, err = d.OpenDir(parent); err != nil {
			return err
		}
		defer dir.Close()
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
	if len(tmp) > 255 {
		tmp = ".publish.tmp-" + hex.EncodeToString(rnd[:])
	}
	f, err := dir.Create(tmp, unix.O_WRONLY, perm)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			unix.Unlinkat(dir.fd, tmp, 0)
		}
	}()
	if err := chmodFd(int(f.Fd()), perm); err != nil { // not the umask's
		return dir.fail("publish", tmp, err)
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return dir.fail("publish", tmp, err)
	}
	if err := f.Close(); err != nil {
		return dir.fail("publish", tmp, err)
	}
	if err := unix.Renameat(dir.fd, tmp, dir.fd, name); err != nil {
		return dir.fail("publish", name, err)
	}
	ok = true
	return dir.Sync()
}

// ChmodFile sets the permission bits of the open file f, which may be an
// O_PATH descriptor (of anything but a symlink).
func ChmodFile(f *os.File, mode uint32) error {
	if err := chmodFd(int(f.Fd()), mode); err != nil {
		return &os.PathError{Op: "namespace: chmod", Path: f.Name(), Err: err}
	}
	return nil
}

// ChownFile sets the owner and group of the open file f (-1 leaves one
// as it is); f may be an O_PATH descriptor, of a symlink too.
func ChownFile(f *os.File, uid, gid int) error {
	if err := unix.Fchownat(int(f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "namespace: chown", Path: f.Name(), Err: err}
	}
	return nil
}

// UtimesFile sets the times of the open file f (see Dir.Utimes); f may be
// an O_PATH descriptor.
func UtimesFile(f *os.File, ts *[2]unix.Timespec) error {
	if err := utimesFd(int(f.Fd()), ts); err != nil {
		return &os.PathError{Op: "namespace: utimes", Path: f.Name(), Err: err}
	}
	return nil
}

// StatFile returns the status of the open file f (which may be O_PATH).
func StatFile(f *os.File) (unix.Statx_t, error) {
	var x unix.Statx_t
	if err := statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, &x); err != nil {
		return x, &os.PathError{Op: "namespace: stat", Path: f.Name(), Err: err}
	}
	return x, nil
}

// chmodFd sets the mode of fd, which may be O_PATH. fchmodat2 with
// AT_EMPTY_PATH (Linux 6.6) does it directly; before it, chmod of the
// /proc/self/fd link reaches the open inode itself. A symlink is refused:
// the /proc link of an O_PATH symlink would be followed.
func chmodFd(fd int, mode uint32) error {
	var x unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_TYPE, &x); err != nil {
		return err
	}
	if x.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	err := fchmodat2(fd, "", mode, unix.AT_EMPTY_PATH)
	if err != unix.ENOSYS && err != unix.EINVAL {
		return err
	}
	for {
		err = unix.Chmod(procFd(fd), mode)
		if err != unix.EINTR {
			return err
		}
	}
}

func fchmodat2(fd int, path string, mode uint32, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	for {
		_, _, e := unix.Syscall6(sysFchmodat2, uintptr(fd), uintptr(unsafe.Pointer(p)), uintptr(mode), uintptr(flags), 0, 0)
		if e != unix.EINTR {
			if e != 0 {
				return e
			}
			return nil
		}
	}
}

// sysFchmodat2 is fchmodat2's number, the same on every architecture
// (added after the syscall tables were unified).
const sysFchmodat2 = 452

// utimesFd sets the times of fd, which may be O_PATH, of a symlink too:
// utimensat with an empty path and AT_EMPTY_PATH acts on the descriptor's
// own inode. Kernels without AT_EMPTY_PATH for utimensat fall back to a
// NULL path (not O_PATH) and then to the /proc/self/fd link (not a
// symlink).
func utimesFd(fd int, ts *[2]unix.Timespec) error {
	err := unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EINVAL && err != unix.ENOENT {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e == 0 {
		return nil
	}
	if e != unix.EBADF {
		return e
	}
	var x unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_TYPE, &x); err != nil {
		return err
	}
	if x.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFd(fd), ts[:], 0)
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// Contains reports (nil) whether the open file f, however it was opened
// (open_by_handle_at, say), lies beneath the directory root: the kernel's
// name for it must be a path beneath root's, and that path, resolved
// beneath root without symlinks, must lead to the same inode. A file whose
// names are all gone (still open somewhere) is judged by the last name the
// kernel knew. A file the kernel knows no name for (one opened by handle
// whose name is not in the dentry cache, so "disconnected") is refused:
// nothing shows where it is. The error wraps ErrNotBeneath.
func Contains(root, f *os.File) error {
	var fx, lx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &fx); err != nil {
		return &os.PathError{Op: "namespace: stat", Path: f.Name(), Err: err}
	}
	rootPath, err := os.Readlink(procFd(int(root.Fd())))
	if err != nil {
		return &os.PathError{Op: "namespace: locate", Path: root.Name(), Err: err}
	}
	p, err := os.Readlink(procFd(int(f.Fd())))
	if err != nil {
		return &os.PathError{Op: "namespace: locate", Path: f.Name(), Err: err}
	}
	deleted := false
	if fx.Nlink == 0 {
		p, deleted = strings.CutSuffix(p, " (deleted)")
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(rootPath, "/")+"/")
	if !ok || rel == "" || (fx.Nlink == 0 && !deleted) {
		return fmt.Errorf("%w: %s is at %q, not beneath %s", ErrNotBeneath, f.Name(), p, rootPath)
	}
	if deleted {
		return nil
	}
	fd, err := walk(int(root.Fd()), rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%w: %s at %s: %w", ErrNotBeneath, f.Name(), p, err)
	}
	defer unix.Close(fd)
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &lx); err != nil {
		return &os.PathError{Op: "namespace: stat", Path: p, Err: err}
	}
	if lx.Ino != fx.Ino || lx.Dev_major != fx.Dev_major || lx.Dev_minor != fx.Dev_minor {
		return fmt.Errorf("%w: %s: %s names another file now", ErrNotBeneath, f.Name(), p)
	}
	return nil
}
