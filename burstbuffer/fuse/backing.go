package fuse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"engine/burstbuffer"
	"engine/namespace"
)

// Every operation on the backing directory goes through the namespace
// root: a node is found by its path from the mount root, resolved beneath
// the backing root with no symlink followed, and checked to be the inode
// the kernel knows the node as (so permissions the kernel checked on one
// file are never used on another); the operation then acts on that
// descriptor, or on its parent's descriptor and a single name.

// rel returns the node's path relative to the backing root ("" for the
// root). A node no longer in the tree (unlinked, replaced by a rename, an
// O_TMPFILE file) has none: ENOENT, and the operations that can use an
// open handle instead do.
func (n *node) rel() (string, syscall.Errno) {
	var names []string
	root := n.Root()
	for p := n.EmbeddedInode(); p != root; {
		name, parent := p.Parent()
		if parent == nil {
			return "", syscall.ENOENT
		}
		names = append(names, name)
		p = parent
	}
	slices.Reverse(names)
	return strings.Join(names, "/"), 0
}

// same reports whether x is the inode n stands for.
func (n *node) same(x *unix.Statx_t) bool {
	if n.IsRoot() {
		return true
	}
	want, got := n.StableAttr(), n.s.stableAttr(x)
	return want.Ino == got.Ino && want.Gen == got.Gen
}

// open opens the node itself O_PATH|O_NOFOLLOW and stats it. ESTALE if
// its name now leads to another inode.
func (n *node) open() (*os.File, unix.Statx_t, syscall.Errno) {
	var x unix.Statx_t
	rel, errno := n.rel()
	if errno != 0 {
		return nil, x, errno
	}
	f, err := n.s.ns.Open(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, x, toErrno(err)
	}
	if err := statxFd(int(f.Fd()), &x); err != nil {
		f.Close()
		return nil, x, toErrno(err)
	}
	if !n.same(&x) {
		f.Close()
		return nil, x, syscall.ESTALE
	}
	return f, x, 0
}

// dir opens the directory node n for operations on its children; the
// caller closes it. ESTALE if its name now leads to another directory.
func (n *node) dir() (*namespace.Dir, syscall.Errno) {
	rel, errno := n.rel()
	if errno != 0 {
		return nil, errno
	}
	d, err := n.s.ns.OpenDir(rel)
	if err != nil {
		return nil, toErrno(err)
	}
	x, err := d.Stat("")
	if err != nil {
		d.Close()
		return nil, toErrno(err)
	}
	if !n.same(&x) {
		d.Close()
		return nil, syscall.ESTALE
	}
	return d, 0
}

// reopen opens the file open as fd (O_PATH or not) anew with flags,
// through its /proc/self/fd link, which leads to that inode itself.
func reopen(fd int, flags int) (*os.File, error) {
	p := procFd(fd)
	nfd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "fuse: reopen", Path: p, Err: err}
	}
	return os.NewFile(uintptr(nfd), p), nil
}

// accessModes returns the access modes to try for a backing file opened
// for a caller with flags: O_RDWR when it can, whatever the caller asked
// (Data reads ranges it does not hold from the backing file and truncates
// through it), then the caller's own when the backing file refuses
// writing (a read-only file system, a running executable).
func accessModes(flags uint32) []int {
	want := int(flags) & unix.O_ACCMODE
	if want == unix.O_RDWR {
		return []int{unix.O_RDWR}
	}
	return []int{unix.O_RDWR, want}
}

func retryAccess(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EROFS) || errors.Is(err, unix.ETXTBSY)
}

// openWith opens a backing file for a handle opened with the caller's
// flags by calling open with each access mode of accessModes in turn. The
// caller's O_APPEND, O_TRUNC, O_DIRECT and O_SYNC are the handle's
// business, never the backing file's. writable reports whether f is open
// for writing.
func openWith(flags uint32, open func(acc int) (*os.File, error)) (f *os.File, writable bool, err error) {
	modes := accessModes(flags)
	for i, acc := range modes {
		f, err = open(acc)
		if err == nil {
			return f, acc != unix.O_RDONLY, nil
		}
		if !retryAccess(err) || i == len(modes)-1 {
			break
		}
	}
	return nil, false, err
}

const procSelfFd = "/proc/self/fd/"

func procFd(fd int) string { return procSelfFd + strconv.Itoa(fd) }

func statxFd(fd int, x *unix.Statx_t) error {
	return unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_BASIC_STATS|unix.STATX_BTIME, x)
}

// futimens sets the times of the open file fd (utimensat with a NULL
// path; x/sys/unix has no wrapper that keeps nanoseconds and UTIME_OMIT).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// toErrno maps an error to the errno the caller of the system call sees:
// the errno it wraps, ESTALE for a backing file that is gone, EINTR for an
// interrupted request, EIO for anything else.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, burstbuffer.ErrStale):
		return syscall.ESTALE
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	}
	return syscall.EIO
}

// dataErr logs a failed Data call and returns its errno.
func (s *Server) dataErr(op string, ref burstbuffer.FileRef, err error) syscall.Errno {
	errno := toErrno(err)
	if errno != syscall.EINTR {
		s.log.Warn("burst buffer "+op+" failed", "file", refID(ref), "err", err)
	}
	return errno
}

func refID(ref burstbuffer.FileRef) string { return fmt.Sprintf("%016x", ref.ID) }
