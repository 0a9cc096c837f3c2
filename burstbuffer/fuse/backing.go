package fuse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"engine/burstbuffer"
)

// openBacking opens the backing path p. No component of p may be a
// symlink (the kernel resolves the mount's symlinks before a request
// reaches the server, so one here was put in place behind its back); a
// trailing symlink is opened as itself with O_PATH|O_NOFOLLOW.
func openBacking(p string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if flags&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		mode = 0 // openat2 refuses a mode it would not use
	}
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: unix.RESOLVE_NO_SYMLINKS}
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, p, &how)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOSYS:
			// Before Linux 5.6: refuse a trailing symlink only.
			return unix.Open(p, flags|unix.O_NOFOLLOW, mode)
		}
		return fd, err
	}
}

// openBackingFile opens the backing path p, or a /proc/self/fd link, as an
// *os.File.
func openBackingFile(p string, flags int) (*os.File, error) {
	var fd int
	var err error
	if isProcFd(p) {
		fd, err = unix.Open(p, flags|unix.O_CLOEXEC, 0)
	} else {
		fd, err = openBacking(p, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openFile opens a backing file for a handle opened with the caller's
// flags, plus extra (O_CREAT|O_EXCL, O_TMPFILE). It opens O_RDWR when it
// can, whatever the caller asked: Data reads ranges it does not hold from
// the backing file and truncates through it. It falls back to the
// caller's access mode when the backing file refuses writing (a read-only
// file system, a running executable). The caller's O_APPEND, O_TRUNC,
// O_DIRECT and O_SYNC are the handle's business, never the backing
// file's. writable reports whether f is open for writing.
func openFile(p string, flags uint32, extra int, mode uint32) (f *os.File, writable bool, err error) {
	want := int(flags) & unix.O_ACCMODE
	modes := []int{unix.O_RDWR}
	if want != unix.O_RDWR {
		modes = append(modes, want)
	}
	for i, acc := range modes {
		var fd int
		if isProcFd(p) {
			fd, err = unix.Open(p, acc|extra|unix.O_CLOEXEC, mode)
		} else {
			fd, err = openBacking(p, acc|extra, mode)
		}
		if err == nil {
			return os.NewFile(uintptr(fd), p), acc != unix.O_RDONLY, nil
		}
		retry := errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
			errors.Is(err, unix.EROFS) || errors.Is(err, unix.ETXTBSY)
		if !retry || i == len(modes)-1 {
			break
		}
	}
	return nil, false, err
}

const procSelfFd = "/proc/self/fd/"

func procFd(fd int) string { return procSelfFd + strconv.Itoa(fd) }

func isProcFd(p string) bool { return len(p) > len(procSelfFd) && p[:len(procSelfFd)] == procSelfFd }

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
