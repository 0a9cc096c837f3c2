package s3

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"engine/namespace"
)

// Every path a key names is opened beneath its bucket's directory through
// package namespace (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): the
// namespace is a file system that users of the mount change too, and a
// symlink or a ".." planted there must not lead a request outside the
// bucket. The bucket's directory itself is opened beneath its parent (the
// S3 root), so a bucket name that is a symlink is refused too.

// bucketDir opens dir (a bucket's directory, or the S3 root) without
// following a symlink in its last component.
func bucketDir(dir string) (*namespace.Dir, error) {
	parent, base := filepath.Split(filepath.Clean(dir))
	if base == "" || base == "." || base == ".." { // "/", or a relative oddity
		root, err := namespace.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		return &root.Dir, nil
	}
	root, err := namespace.OpenRoot(parent)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := root.OpenDir(base)
	if err != nil {
		return nil, symlinkErr(dir, "", err)
	}
	return d, nil
}

// symlinkErr turns a namespace error for a path that crosses a symlink or
// leaves its directory into errSymlink, naming dir/rel.
func symlinkErr(dir, rel string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return &os.PathError{Op: "open", Path: filepath.Join(dir, rel), Err: errSymlink}
	}
	return err
}

// openBeneath opens rel (a relative, slash-separated path) under dir.
func openBeneath(dir, rel string, flags int, mode uint32) (*os.File, error) {
	d, err := bucketDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := d.Open(rel, flags, mode)
	if err != nil {
		return nil, symlinkErr(dir, rel, err)
	}
	return f, nil
}

// openAt opens rel beneath the directory open as d, whose path is dir.
func openAt(d int, dir, rel string, flags int, mode uint32) (*os.File, error) {
	nd, err := namespace.FromFd(d, dir)
	if err != nil {
		return nil, err
	}
	defer nd.Close()
	f, err := nd.Open(rel, flags, mode)
	if err != nil {
		return nil, symlinkErr(dir, rel, err)
	}
	return f, nil
}

// errSymlink: a path crosses a symlink (or tries to leave its bucket).
var errSymlink = errors.New("the path crosses a symbolic link")

// mkdirBeneath makes the directories of rel under dir (as MkdirAll) and
// returns the last one, open for reading (so it can be fsynced). A
// component that exists as a file is ENOTDIR; a symlink is errSymlink.
func mkdirBeneath(dir, rel string) (*os.File, error) {
	cur, err := bucketDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() { cur.Close() }()
	if rel != "" && rel != "." {
		for _, comp := range strings.Split(rel, "/") {
			next, err := cur.OpenDir(comp)
			if err != nil && errors.Is(err, syscall.ENOENT) {
				merr := cur.Mkdir(comp, 0o755)
				if merr == nil {
					// The new directory's name must be as durable as
					// the object that will be renamed into it.
					merr = cur.Sync()
				}
				if merr != nil && !errors.Is(merr, unix.EEXIST) {
					return nil, merr
				}
				next, err = cur.OpenDir(comp)
			}
			if err != nil {
				return nil, symlinkErr(dir, rel, err)
			}
			cur.Close()
			cur = next
		}
	}
	f, err := cur.Open(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, symlinkErr(dir, rel, err)
	}
	return f, nil
}

// syncAt fsyncs the directory open (O_PATH) as fd.
func syncAt(fd int, name string) error {
	d, err := namespace.FromFd(fd, name)
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
