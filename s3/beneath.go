package s3

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Every path a key names is opened beneath its bucket's directory with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): the namespace is a file
// system that users of the mount change too, and a symlink or a ".."
// planted there must not lead a request outside the bucket.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens rel (a relative, slash-separated path) under dir.
func openBeneath(dir, rel string, flags int, mode uint32) (*os.File, error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(d)
	return openAt(d, dir, rel, flags, mode)
}

func openAt(d int, dir, rel string, flags int, mode uint32) (*os.File, error) {
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveBeneath}
	for {
		fd, err := unix.Openat2(d, rel, how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
				err = errSymlink
			}
			return nil, &os.PathError{Op: "open", Path: filepath.Join(dir, rel), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(dir, rel)), nil
	}
}

// errSymlink: a path crosses a symlink (or tries to leave its bucket).
var errSymlink = errors.New("the path crosses a symbolic link")

// mkdirBeneath makes the directories of rel under dir (as MkdirAll) and
// returns the last one, open for reading (so it can be fsynced). A
// component that exists as a file is ENOTDIR; a symlink is errSymlink.
func mkdirBeneath(dir, rel string) (*os.File, error) {
	if rel == "" || rel == "." {
		return openBeneath(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	cur, err := openBeneath(dir, ".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	for _, comp := range strings.Split(rel, "/") {
		next, err := openAt(int(cur.Fd()), cur.Name(), comp, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil && errors.Is(err, syscall.ENOENT) {
			merr := unix.Mkdirat(int(cur.Fd()), comp, 0o755)
			if merr == nil {
				// The new directory's name must be as durable as the
				// object that will be renamed into it.
				merr = syncAt(int(cur.Fd()), cur.Name())
			}
			if merr != nil && merr != unix.EEXIST {
				cur.Close()
				return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(cur.Name(), comp), Err: merr}
			}
			next, err = openAt(int(cur.Fd()), cur.Name(), comp, unix.O_PATH|unix.O_DIRECTORY, 0)
		}
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	defer cur.Close()
	return openAt(int(cur.Fd()), cur.Name(), ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// syncAt fsyncs the directory open (O_PATH) as fd.
func syncAt(fd int, name string) error {
	d, err := openAt(fd, name, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// splitRel splits a relative path into its parent ("" at the top) and
// base name.
func splitRel(rel string) (string, string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}
