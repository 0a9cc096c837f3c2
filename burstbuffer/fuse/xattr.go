package fuse

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// The loopback's xattr methods go by path; these use an open handle when
// the node has one, so they work on an unlinked open file (the kernel asks
// for security.capability on every write).

var (
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
)

// withFdOrPath calls withFd with an open handle's descriptor if the node
// has one, else withPath with its backing path.
func (n *node) withFdOrPath(withFd func(fd int) error, withPath func(p string) error) syscall.Errno {
	if h := n.anyHandle(); h != nil {
		defer h.done()
		return toErrno(withFd(h.fd))
	}
	p, errno := n.backingPath()
	if errno != 0 {
		return errno
	}
	return toErrno(withPath(p))
}

// Getxattr implements fs.NodeGetxattrer.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var sz int
	errno := n.withFdOrPath(
		func(fd int) (err error) { sz, err = unix.Fgetxattr(fd, attr, dest); return },
		func(p string) (err error) { sz, err = unix.Lgetxattr(p, attr, dest); return })
	return uint32(sz), errno
}

// Listxattr implements fs.NodeListxattrer.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var sz int
	errno := n.withFdOrPath(
		func(fd int) (err error) { sz, err = unix.Flistxattr(fd, dest); return },
		func(p string) (err error) { sz, err = unix.Llistxattr(p, dest); return })
	return uint32(sz), errno
}

// Setxattr implements fs.NodeSetxattrer.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.withFdOrPath(
		func(fd int) error { return unix.Fsetxattr(fd, attr, data, int(flags)) },
		func(p string) error { return unix.Lsetxattr(p, attr, data, int(flags)) })
}

// Removexattr implements fs.NodeRemovexattrer.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.withFdOrPath(
		func(fd int) error { return unix.Fremovexattr(fd, attr) },
		func(p string) error { return unix.Lremovexattr(p, attr) })
}
