package fuse

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Extended attributes go through an open handle when the node has one (so
// they work on an unlinked open file; the kernel asks for
// security.capability on every write), else through the node's own
// descriptor: the /proc/self/fd link of an O_PATH descriptor leads to that
// inode itself. Symlinks have no extended attributes here.

var (
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
)

// withFd calls withFd with an open handle's descriptor if the node has
// one, else withPath with the /proc/self/fd path of its own O_PATH
// descriptor. onSymlink is the answer for a symlink.
func (n *node) withFd(withFd func(fd int) error, withPath func(p string) error, onSymlink syscall.Errno) syscall.Errno {
	if h := n.anyHandle(); h != nil {
		defer h.done()
		return toErrno(withFd(h.fd))
	}
	f, x, errno := n.open()
	if errno != 0 {
		return errno
	}
	defer f.Close()
	if x.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		return onSymlink
	}
	return toErrno(withPath(procFd(int(f.Fd()))))
}

// Getxattr implements fs.NodeGetxattrer.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var sz int
	errno := n.withFd(
		func(fd int) (err error) { sz, err = unix.Fgetxattr(fd, attr, dest); return },
		func(p string) (err error) { sz, err = unix.Getxattr(p, attr, dest); return },
		syscall.ENODATA)
	return uint32(sz), errno
}

// Listxattr implements fs.NodeListxattrer.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var sz int
	errno := n.withFd(
		func(fd int) (err error) { sz, err = unix.Flistxattr(fd, dest); return },
		func(p string) (err error) { sz, err = unix.Listxattr(p, dest); return },
		0)
	return uint32(sz), errno
}

// Setxattr implements fs.NodeSetxattrer.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.withFd(
		func(fd int) error { return unix.Fsetxattr(fd, attr, data, int(flags)) },
		func(p string) error { return unix.Setxattr(p, attr, data, int(flags)) },
		syscall.EPERM)
}

// Removexattr implements fs.NodeRemovexattrer.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.withFd(
		func(fd int) error { return unix.Fremovexattr(fd, attr) },
		func(p string) error { return unix.Removexattr(p, attr) },
		syscall.ENODATA)
}
