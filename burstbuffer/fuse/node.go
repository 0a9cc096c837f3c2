package fuse

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"engine/burstbuffer"
	"engine/namespace"
)

// node is one inode of the mount. Every namespace operation acts on the
// backing directory through the namespace root (see backing.go); the
// operations that touch file data or report sizes go through Data. Every
// node the mount creates is a *node.
type node struct {
	fs.Inode
	s *Server

	// rw orders writes against appends and truncation: plain writes hold
	// it shared, O_APPEND writes and truncations exclusively, so an
	// append lands past every write acknowledged before it.
	rw sync.RWMutex

	mu struct {
		sync.Mutex
		handles []*handle // open handles, oldest first
		// pending is the time of the newest write whose mtime is not
		// yet set on the backing file; stamped is when it was last set.
		pending, stamped time.Time
		// truncated records a truncation since the last fsync, which
		// then also syncs the backing file's size.
		truncated bool
		// nameDirs are the directories in which this mount gave the node
		// a name (create, mkdir, mknod, symlink, link, rename) that is not
		// yet durable on the backing file system: the next fsync of the
		// node makes it so (see syncName).
		nameDirs []*node
	}
}

var (
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

func (s *Server) newNode() *node { return &node{s: s} }

// stableAttr identifies a backing inode (as go-fuse's loopback does, so
// inode numbers stay as they were), so hard links and repeated lookups
// find the same node.
func (s *Server) stableAttr(x *unix.Statx_t) fs.StableAttr {
	dev := unix.Mkdev(x.Dev_major, x.Dev_minor)
	swapped := dev<<32 | dev>>32
	rootSwapped := s.rootDev<<32 | s.rootDev>>32
	gen := uint64(1)
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return fs.StableAttr{
		Mode: uint32(x.Mode) & syscall.S_IFMT,
		Gen:  gen,
		Ino:  (swapped ^ rootSwapped) ^ x.Ino,
	}
}

// timeouts returns how long the kernel may cache a name and the
// attributes of a file of the given mode. Never for regular files: their
// size changes through Data, here and on other nodes, and their name may
// be renamed over by another node.
func (s *Server) timeouts(mode uint16) (entry, attr time.Duration) {
	if mode&syscall.S_IFMT == syscall.S_IFREG {
		return 0, 0
	}
	return s.opts.EntryTimeout, s.opts.AttrTimeout
}

// fillAttr sets a from x, with the logical size (Data.Size) if ref is a
// regular file's.
func (s *Server) fillAttr(a *gofuse.Attr, x *unix.Statx_t, ref *burstbuffer.FileRef) {
	a.Ino = s.stableAttr(x).Ino
	a.Size = x.Size
	a.Blocks = x.Blocks
	a.Atime, a.Atimensec = uint64(x.Atime.Sec), x.Atime.Nsec
	a.Mtime, a.Mtimensec = uint64(x.Mtime.Sec), x.Mtime.Nsec
	a.Ctime, a.Ctimensec = uint64(x.Ctime.Sec), x.Ctime.Nsec
	a.Mode = uint32(x.Mode)
	a.Nlink = x.Nlink
	a.Uid, a.Gid = x.Uid, x.Gid
	a.Rdev = uint32(unix.Mkdev(x.Rdev_major, x.Rdev_minor))
	a.Blksize = x.Blksize
	if ref != nil {
		a.Size, a.Blocks = s.logicalSize(*ref, x)
	}
}

// logicalSize returns the size and 512-byte block count of a regular
// file: Data.Size, with the buffered bytes past the backing file's end
// counted as allocated. A file that looks sparse (blocks*512 < size) makes
// cp and tar look for holes, which the buffered bytes are not.
func (s *Server) logicalSize(ref burstbuffer.FileRef, x *unix.Statx_t) (size, blocks uint64) {
	backing := int64(x.Size)
	logical := s.data.Size(ref, backing)
	blocks = x.Blocks
	if logical > backing {
		blocks += uint64((logical - backing + 511) / 512)
	}
	return uint64(logical), blocks
}

// statFile stats the backing file open (maybe O_PATH) as f and returns
// its FileRef if it is a regular file.
func (s *Server) statFile(f *os.File) (unix.Statx_t, *burstbuffer.FileRef, syscall.Errno) {
	var x unix.Statx_t
	if err := statxFd(int(f.Fd()), &x); err != nil {
		return x, nil, toErrno(err)
	}
	if x.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return x, nil, 0
	}
	ref, err := burstbuffer.RefOf(f)
	if err != nil {
		s.log.Warn("file handle of backing file", "path", f.Name(), "err", err)
		return x, nil, toErrno(err)
	}
	return x, &ref, 0
}

// stat stats the node through h if it has one, else through its name.
func (n *node) stat(h *handle) (unix.Statx_t, *burstbuffer.FileRef, syscall.Errno) {
	if h == nil {
		f, _, errno := n.open()
		if errno != 0 {
			return unix.Statx_t{}, nil, errno
		}
		defer f.Close()
		return n.s.statFile(f)
	}
	var x unix.Statx_t
	if err := statxFd(h.fd, &x); err != nil {
		return x, nil, toErrno(err)
	}
	return x, &h.ref, 0
}

// addChild returns the node for the backing file x just looked up or
// created under n, and fills out for the kernel.
func (n *node) addChild(ctx context.Context, child *node, x *unix.Statx_t, ref *burstbuffer.FileRef, out *gofuse.EntryOut) *fs.Inode {
	n.s.fillAttr(&out.Attr, x, ref)
	entry, attr := n.s.timeouts(x.Mode)
	out.SetEntryTimeout(entry)
	out.SetAttrTimeout(attr)
	return n.NewInode(ctx, child, n.s.stableAttr(x))
}

// Statfs implements fs.NodeStatfser.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	var st unix.Statfs_t
	if err := unix.Fstatfs(n.s.ns.Fd(), &st); err != nil {
		return toErrno(err)
	}
	out.FromStatfsT((*syscall.Statfs_t)(unsafe.Pointer(&st)))
	return 0
}

// Lookup implements fs.NodeLookuper.
func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer d.Close()
	f, err := d.Open(name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, toErrno(err)
	}
	defer f.Close()
	x, ref, errno := n.s.statFile(f)
	if errno != 0 {
		return nil, errno
	}
	return n.addChild(ctx, n.s.newNode(), &x, ref, out), 0
}

// owner returns the uid and gid a file created by the caller in ctx in
// the directory d (node n) gets, as the kernel would give them: the
// caller's uid, and the caller's gid unless the directory is setgid (then
// gid is -1: the backing file system already gave the file the
// directory's gid). ok is false when the server cannot give files away
// (not root) or there is no caller.
func (n *node) owner(ctx context.Context, d *namespace.Dir) (uid, gid int, parentSetgid, ok bool) {
	caller, found := gofuse.FromContext(ctx)
	if os.Geteuid() != 0 || !found {
		return 0, 0, false, false
	}
	uid, gid = int(caller.Uid), int(caller.Gid)
	if x, err := d.Stat(""); err == nil && x.Mode&unix.S_ISGID != 0 {
		gid, parentSetgid = -1, true
	}
	return uid, gid, parentSetgid, true
}

// adopt gives the file just created as name in d to the caller, sets the
// mode the caller asked for (the kernel already applied the caller's
// umask, and the server's own umask must not apply on top), and makes its
// node. It acts on the new file's own descriptor, checked to be of the
// type just created; on failure it removes the name.
func (n *node) adopt(ctx context.Context, d *namespace.Dir, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	undo := d.Unlink
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		undo = d.Rmdir
	}
	ch, errno := n.adoptLocked(ctx, d, name, mode, out)
	if errno != 0 {
		undo(name)
	}
	return ch, errno
}

func (n *node) adoptLocked(ctx context.Context, d *namespace.Dir, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f, err := d.Open(name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, toErrno(err)
	}
	defer f.Close()
	var x unix.Statx_t
	if err := statxFd(int(f.Fd()), &x); err != nil {
		return nil, toErrno(err)
	}
	if uint32(x.Mode)&syscall.S_IFMT != mode&syscall.S_IFMT {
		// Replaced since it was made: not ours to give away.
		return nil, syscall.EAGAIN
	}
	uid, gid, setgid, ok := n.owner(ctx, d)
	if ok {
		if err := namespace.ChownFile(f, uid, gid); err != nil {
			return nil, toErrno(err)
		}
	}
	if mode&syscall.S_IFMT != syscall.S_IFLNK {
		perm := mode & 07777
		if setgid && mode&syscall.S_IFMT == syscall.S_IFDIR {
			perm |= unix.S_ISGID // inherited, as mkdir(2) does
		}
		if err := namespace.ChmodFile(f, perm); err != nil {
			return nil, toErrno(err)
		}
	}
	x2, ref, errno := n.s.statFile(f)
	if errno != 0 {
		return nil, errno
	}
	ch := n.addChild(ctx, n.s.newNode(), &x2, ref, out)
	namedIn(ch, n)
	return ch, 0
}

// adoptFile gives the file just created and open as f to the caller.
func (n *node) adoptFile(ctx context.Context, d *namespace.Dir, f *os.File, mode uint32) syscall.Errno {
	if uid, gid, _, ok := n.owner(ctx, d); ok {
		if err := f.Chown(uid, gid); err != nil {
			return toErrno(err)
		}
	}
	return toErrno(unix.Fchmod(int(f.Fd()), mode&07777))
}

// Mkdir implements fs.NodeMkdirer.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer d.Close()
	if err := d.Mkdir(name, mode&07777); err != nil {
		return nil, toErrno(err)
	}
	return n.adopt(ctx, d, name, syscall.S_IFDIR|mode, out)
}

// Mknod implements fs.NodeMknoder.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer d.Close()
	if err := d.Mknod(name, mode, int(rdev)); err != nil {
		return nil, toErrno(err)
	}
	if mode&syscall.S_IFMT == 0 {
		mode |= syscall.S_IFREG
	}
	return n.adopt(ctx, d, name, mode, out)
}

// Symlink implements fs.NodeSymlinker.
func (n *node) Symlink(ctx context.Context, target, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer d.Close()
	if err := d.Symlink(target, name); err != nil {
		return nil, toErrno(err)
	}
	return n.adopt(ctx, d, name, syscall.S_IFLNK, out)
}

// Link implements fs.NodeLinker, through the target's own descriptor; a
// target that is no longer in the tree (an O_TMPFILE file, or one
// unlinked while open) is linked through an open handle.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.s != n.s {
		return nil, syscall.EXDEV
	}
	d, errno := n.dir()
	if errno != 0 {
		return nil, errno
	}
	defer d.Close()
	tf, _, errno := t.open()
	if errno == syscall.ENOENT {
		if h := t.anyHandle(); h != nil {
			defer h.done()
			tf, errno = h.f, 0
		}
	} else if errno == 0 {
		defer tf.Close()
	}
	if errno != 0 {
		return nil, errno
	}
	if err := d.LinkFile(tf, name); err != nil {
		return nil, toErrno(err)
	}
	f, err := d.Open(name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		d.Unlink(name)
		return nil, toErrno(err)
	}
	defer f.Close()
	x, ref, errno := n.s.statFile(f)
	if errno != 0 {
		d.Unlink(name)
		return nil, errno
	}
	ch := n.addChild(ctx, n.s.newNode(), &x, ref, out)
	namedIn(ch, n)
	return ch, 0
}

// Unlink implements fs.NodeUnlinker.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	d, errno := n.dir()
	if errno != 0 {
		return errno
	}
	defer d.Close()
	return toErrno(d.Unlink(name))
}

// Rmdir implements fs.NodeRmdirer.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	d, errno := n.dir()
	if errno != 0 {
		return errno
	}
	defer d.Close()
	return toErrno(d.Rmdir(name))
}

// Rename implements fs.NodeRenamer (renameat2, with its flags).
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.s != n.s {
		return syscall.EXDEV
	}
	d, errno := n.dir()
	if errno != 0 {
		return errno
	}
	defer d.Close()
	nd, errno := np.dir()
	if errno != 0 {
		return errno
	}
	defer nd.Close()
	if err := d.Rename(name, nd, newName, uint(flags)); err != nil {
		return toErrno(err)
	}
	// The node keeps its identity under its new name (go-fuse moves it
	// after this returns); with RENAME_EXCHANGE the other one moves too.
	if ch := n.GetChild(name); ch != nil {
		namedIn(ch, np)
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		if ch := np.GetChild(newName); ch != nil {
			namedIn(ch, n)
		}
	}
	return 0
}

// Readlink implements fs.NodeReadlinker.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	f, _, errno := n.open()
	if errno != 0 {
		return nil, errno
	}
	defer f.Close()
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		sz, err := unix.Readlinkat(int(f.Fd()), "", buf)
		if err != nil {
			return nil, toErrno(err)
		}
		if sz < size {
			return buf[:sz], 0
		}
	}
}

// OpendirHandle implements fs.NodeOpendirHandler.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f, x, errno := n.open()
	if errno != 0 {
		return nil, 0, errno
	}
	defer f.Close()
	if x.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, 0, syscall.ENOTDIR
	}
	d, err := reopen(int(f.Fd()), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	fd, err := unix.Dup(int(d.Fd()))
	d.Close()
	if err != nil {
		return nil, 0, toErrno(err)
	}
	ds, errno := fs.NewLoopbackDirStreamFd(fd)
	if errno != 0 {
		unix.Close(fd)
		return nil, 0, errno
	}
	return ds, 0, 0
}

// Create implements fs.NodeCreater.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer d.Close()
	f, writable, err := openWith(flags, func(acc int) (*os.File, error) { return d.Create(name, acc, mode&07777) })
	created := err == nil
	if errors.Is(err, unix.EEXIST) && flags&unix.O_EXCL == 0 {
		// Created elsewhere since the kernel looked the name up: open
		// it as open(2) would, checking the caller's access here as
		// the kernel did not.
		f, writable, err = openWith(flags, func(acc int) (*os.File, error) { return d.Open(name, acc|unix.O_NOFOLLOW, 0) })
		if err == nil {
			if errno := mayOpen(ctx, f, flags); errno != 0 {
				f.Close()
				return nil, nil, 0, errno
			}
		}
	}
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	if created {
		if errno := n.adoptFile(ctx, d, f, mode); errno != 0 {
			f.Close()
			d.Unlink(name)
			return nil, nil, 0, errno
		}
	}
	ch, fh, fl, errno := n.openedChild(ctx, f, flags, writable, !created, out)
	if errno == 0 && created {
		namedIn(ch, n)
	}
	return ch, fh, fl, errno
}

// openedChild makes the node and handle for a file Create or Tmpfile
// opened as f. The bridge registers the node exclusively (it replaces any
// node of the same identity), so the handle belongs to the node returned.
func (n *node) openedChild(ctx context.Context, f *os.File, flags uint32, writable, truncate bool, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	var x unix.Statx_t
	if err := statxFd(int(f.Fd()), &x); err != nil {
		f.Close()
		return nil, nil, 0, toErrno(err)
	}
	child := n.s.newNode()
	h, errno := child.newHandle(f, flags, writable)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if truncate && flags&unix.O_TRUNC != 0 {
		if errno := child.truncate(ctx, h, 0); errno != 0 {
			h.Release(ctx)
			return nil, nil, 0, errno
		}
		if err := statxFd(h.fd, &x); err != nil {
			h.Release(ctx)
			return nil, nil, 0, toErrno(err)
		}
	}
	return n.addChild(ctx, child, &x, &h.ref, out), h, 0, 0
}

// Tmpfile implements fs.NodeTmpfiler (open(2) with O_TMPFILE).
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	d, errno := n.dir()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer d.Close()
	extra := unix.O_TMPFILE | int(flags&unix.O_EXCL)
	f, writable, err := openWith(flags, func(acc int) (*os.File, error) { return d.Open(".", acc|extra, mode&07777) })
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	if errno := n.adoptFile(ctx, d, f, mode); errno != 0 {
		f.Close()
		return nil, nil, 0, errno
	}
	return n.openedChild(ctx, f, flags, writable, false, out)
}

// Open implements fs.NodeOpener. A node no longer in the tree (reopened
// through /proc/PID/fd) is opened through one of its open handles.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	pf, x, errno := n.open()
	var fd int
	switch {
	case errno == 0:
		defer pf.Close()
		if x.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, 0, syscall.EINVAL // the kernel opens only regular files here
		}
		fd = int(pf.Fd())
	case errno == syscall.ENOENT:
		h := n.anyHandle()
		if h == nil {
			return nil, 0, errno
		}
		defer h.done()
		fd = h.fd
	default:
		return nil, 0, errno
	}
	f, writable, err := openWith(flags, func(acc int) (*os.File, error) { return reopen(fd, acc) })
	if err != nil {
		return nil, 0, toErrno(err)
	}
	h, errno := n.newHandle(f, flags, writable)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&unix.O_TRUNC != 0 {
		if errno := n.truncate(ctx, h, 0); errno != 0 {
			h.Release(ctx)
			return nil, 0, errno
		}
	}
	return h, 0, 0
}

// handleFor returns f as a *handle, or when f is nil (the kernel sends no
// handle for stat and chmod of an open file) one of the node's open
// handles, held until done is called. It returns nil if the node has none.
func (n *node) handleFor(f fs.FileHandle) (h *handle, done func()) {
	if h, ok := f.(*handle); ok {
		return h, func() {}
	}
	if h := n.anyHandle(); h != nil {
		return h, h.done
	}
	return nil, func() {}
}

// Getattr implements fs.NodeGetattrer.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	h, done := n.handleFor(f)
	defer done()
	return n.getattr(h, out)
}

func (n *node) getattr(h *handle, out *gofuse.AttrOut) syscall.Errno {
	x, ref, errno := n.stat(h)
	if errno != 0 {
		return errno
	}
	n.s.fillAttr(&out.Attr, &x, ref)
	_, attr := n.s.timeouts(x.Mode)
	out.SetTimeout(attr)
	return 0
}

// Statx implements fs.NodeStatxer.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *gofuse.StatxOut) syscall.Errno {
	h, done := n.handleFor(f)
	defer done()
	x, ref, errno := n.stat(h)
	if errno != 0 {
		return errno
	}
	out.Statx.FromStatx(&x)
	out.Ino = n.s.stableAttr(&x).Ino
	if ref != nil {
		out.Size, out.Blocks = n.s.logicalSize(*ref, &x)
	}
	_, attr := n.s.timeouts(x.Mode)
	out.SetTimeout(attr)
	return 0
}

// Setattr implements fs.NodeSetattrer: chmod, chown, truncate and utimes,
// through an open handle when there is one (so they work on an unlinked
// open file), else through the node's own O_PATH descriptor.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	h, done := n.handleFor(f)
	defer done()
	var pf *os.File // the node's own descriptor, when there is no handle
	if h == nil {
		var errno syscall.Errno
		if pf, _, errno = n.open(); errno != 0 {
			return errno
		}
		defer pf.Close()
	}

	if mode, ok := in.GetMode(); ok {
		var err error
		if h != nil {
			err = unix.Fchmod(h.fd, mode&07777)
		} else {
			err = namespace.ChmodFile(pf, mode&07777)
		}
		if err != nil {
			return toErrno(err)
		}
	}

	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		var err error
		if h != nil {
			err = unix.Fchown(h.fd, u, g)
		} else {
			err = namespace.ChownFile(pf, u, g)
		}
		if err != nil {
			return toErrno(err)
		}
	}

	// Truncate before setting times, so an explicit mtime is not
	// clobbered by the truncation.
	if size, ok := in.GetSize(); ok {
		if size > math.MaxInt64 {
			return syscall.EFBIG
		}
		if errno := n.truncateVia(ctx, h, pf, int64(size)); errno != 0 {
			return errno
		}
	}

	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if errno := n.setTimes(h, pf, &ts, mok); errno != 0 {
			return errno
		}
	}
	return n.getattr(h, out)
}

// setTimes sets the backing file's times, through h or else pf. An
// explicit mtime replaces any not yet stamped by writes, and the next
// write stamps again at once.
func (n *node) setTimes(h *handle, pf *os.File, ts *[2]unix.Timespec, mtime bool) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if h != nil {
		err = futimens(h.fd, ts)
	} else {
		err = namespace.UtimesFile(pf, ts)
	}
	if err == nil && mtime {
		n.mu.pending, n.mu.stamped = time.Time{}, time.Time{}
	}
	return toErrno(err)
}

// truncate sets the file's logical size through Data.Truncate, with a
// backing file open for writing: h's, or one opened for the purpose.
func (n *node) truncate(ctx context.Context, h *handle, size int64) syscall.Errno {
	return n.truncateVia(ctx, h, nil, size)
}

// truncateVia is truncate, with the node's own O_PATH descriptor pf (or
// nil) to reopen when there is no handle.
func (n *node) truncateVia(ctx context.Context, h *handle, pf *os.File, size int64) syscall.Errno {
	var (
		ref burstbuffer.FileRef
		w   *os.File
	)

	switch {
	case h != nil && h.writable:
		ref, w = h.ref, h.f
	case h != nil:
		f, err := reopen(h.fd, unix.O_WRONLY)
		if err != nil {
			return toErrno(err)
		}
		defer f.Close()
		ref, w = h.ref, f
	default:
		if pf == nil {
			var errno syscall.Errno
			if pf, _, errno = n.open(); errno != 0 {
				return errno
			}
			defer pf.Close()
		}
		x, pref, errno := n.s.statFile(pf)
		if errno != 0 {
			return errno
		}
		if pref == nil {
			if x.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				return syscall.EISDIR
			}
			return syscall.EINVAL
		}
		f, err := reopen(int(pf.Fd()), unix.O_WRONLY)
		if err != nil {
			return toErrno(err)
		}
		defer f.Close()
		ref, w = *pref, f
	}

	n.rw.Lock()
	err := n.s.data.Truncate(ctx, ref, w, size)
	n.rw.Unlock()
	if err != nil {
		return n.s.dataErr("truncate", ref, err)
	}
	dropObjectMeta(int(w.Fd()))
	n.mu.Lock()
	n.mu.truncated = true
	n.mu.Unlock()
	return 0
}

// CopyFileRange implements fs.NodeCopyFileRanger by declining: copying
// between backing files would bypass the buffer. ENOSYS makes the kernel
// stop asking and copy through READ and WRITE.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// mayOpen checks the mode bits of f against the caller in ctx for an
// open with flags, as default_permissions would have. Only the caller's
// primary group is known.
func mayOpen(ctx context.Context, f *os.File, flags uint32) syscall.Errno {
	caller, ok := gofuse.FromContext(ctx)
	if !ok || caller.Uid == 0 {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return toErrno(err)
	}
	var want uint32
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		want = 4
	case unix.O_WRONLY:
		want = 2
	default:
		want = 6
	}
	if flags&unix.O_TRUNC != 0 {
		want |= 2
	}
	perm := st.Mode
	switch {
	case caller.Uid == st.Uid:
		perm >>= 6
	case caller.Gid == st.Gid:
		perm >>= 3
	}
	if perm&want != want {
		return syscall.EACCES
	}
	return 0
}

// namedIn records that the mount just gave the node of ch a name in the
// directory dir, not yet durable on the backing file system.
func namedIn(ch *fs.Inode, dir *node) {
	c, ok := ch.Operations().(*node)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.mu.nameDirs, dir) {
		c.mu.nameDirs = append(c.mu.nameDirs, dir)
	}
}

// syncName makes durable the names the mount gave the node (see nameDirs)
// by fsyncing, on the backing file system, each directory that holds one,
// then the names of those directories the mount made, up the tree. Each
// directory is synced once: later calls find nothing to do. A directory
// no longer in the tree (removed) holds no name to keep and is skipped.
func (n *node) syncName() syscall.Errno {
	n.mu.Lock()
	dirs := slices.Clone(n.mu.nameDirs)
	n.mu.Unlock()
	if len(dirs) == 0 {
		return 0
	}
	for _, p := range dirs {
		d, errno := p.dir()
		if errno == syscall.ENOENT || errno == syscall.ESTALE {
			continue // removed, or replaced by another: nothing of ours to sync
		}
		if errno != 0 {
			return errno
		}
		err := n.s.syncDir(d)
		d.Close()
		if err != nil {
			n.s.log.Warn("fsync of a backing directory failed", "dir", d.Name(), "err", err)
			return toErrno(err)
		}
		if errno := p.syncName(); errno != 0 {
			return errno
		}
	}
	n.mu.Lock()
	n.mu.nameDirs = slices.DeleteFunc(n.mu.nameDirs, func(p *node) bool { return slices.Contains(dirs, p) })
	n.mu.Unlock()
	return 0
}
