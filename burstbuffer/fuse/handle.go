package fuse

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"engine/burstbuffer"
)

// handle is an open file of the mount: the backing file open by the
// server, its FileRef, and the flags the caller opened it with. Reads and
// writes go through Data; the backing file serves the ranges Data does
// not hold and is what Data.Truncate cuts.
type handle struct {
	n        *node
	f        *os.File
	fd       int // f's descriptor, valid until Release closes f
	ref      burstbuffer.FileRef
	flags    uint32 // open(2) flags of the caller
	writable bool   // f is open for writing
	// staled: the file's S3 metadata was dropped at this handle's first
	// write (see objectMetaXattr).
	staled atomic.Bool

	// users counts the requests that reached h through its node rather
	// than from the kernel (anyHandle); Release waits for them before
	// closing f.
	users sync.WaitGroup
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileFlusher  = (*handle)(nil)
	_ fs.FileFsyncer  = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

// newHandle registers f, opened with the caller's flags, as a handle of n.
// It closes f on failure.
func (n *node) newHandle(f *os.File, flags uint32, writable bool) (*handle, syscall.Errno) {
	ref, err := burstbuffer.RefOf(f)
	if err != nil {
		f.Close()
		n.s.log.Warn("file handle of backing file", "err", err)
		return nil, toErrno(err)
	}
	h := &handle{n: n, f: f, fd: int(f.Fd()), ref: ref, flags: flags, writable: writable}
	n.mu.Lock()
	n.mu.handles = append(n.mu.handles, h)
	n.mu.Unlock()
	return h, 0
}

// anyHandle returns the node's oldest open handle, held until its done is
// called, or nil.
func (n *node) anyHandle() *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.mu.handles) == 0 {
		return nil
	}
	h := n.mu.handles[0]
	h.users.Add(1)
	return h
}

func (h *handle) done() { h.users.Done() }

// Read implements fs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	n, err := h.n.s.data.ReadAt(ctx, h.ref, h.f, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.s.dataErr("read", h.ref, err)
	}
	return gofuse.ReadResultData(dest[:n]), 0
}

// Write implements fs.FileWriter. With O_APPEND the kernel's offset is
// ignored: the data goes at the logical end, decided under the node's
// lock so appenders on this mount never overlap.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n := h.n
	if h.flags&unix.O_APPEND != 0 {
		n.rw.Lock()
		var st unix.Stat_t
		if err := unix.Fstat(h.fd, &st); err != nil {
			n.rw.Unlock()
			return 0, toErrno(err)
		}
		off = n.s.data.Size(h.ref, st.Size)
	} else {
		n.rw.RLock()
	}
	err := n.s.data.WriteAt(ctx, h.ref, data, off)
	if h.flags&unix.O_APPEND != 0 {
		n.rw.Unlock()
	} else {
		n.rw.RUnlock()
	}
	if err != nil {
		return 0, n.s.dataErr("write", h.ref, err)
	}
	if !h.staled.Swap(true) {
		dropObjectMeta(h.fd)
	}
	n.wrote(h)
	return uint32(len(data)), 0
}

// objectMetaXattr is where the S3 endpoint (package s3) keeps an object's
// metadata, its ETag among it, on the backing file. It describes the
// bytes S3 wrote; a write or truncation through the mount makes it wrong,
// so the mount drops it (once per open file), and S3 computes the ETag
// afresh.
const objectMetaXattr = "user.engine.s3"

func dropObjectMeta(fd int) {
	unix.Fremovexattr(fd, objectMetaXattr) // ENODATA for files S3 never wrote
}

// Flush implements fs.FileFlusher: close(2) of a descriptor open for
// writing returns once the file's writes are durable (close-to-open).
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if h.flags&unix.O_ACCMODE == unix.O_RDONLY {
		return 0
	}
	// Not cut short by FUSE_INTERRUPT: the kernel sends one whenever the
	// closing thread gets any signal (Go's runtime signals its threads all
	// the time), and a close that fails with EINTR leaves the caller not
	// knowing whether its data is durable.
	if err := h.n.s.data.Sync(context.WithoutCancel(ctx), h.ref); err != nil {
		return h.n.s.dataErr("sync", h.ref, err)
	}
	h.n.stampPending(h)
	return 0
}

// Fsync implements fs.FileFsyncer. After a truncation it also syncs the
// backing file, which holds the new size. The first fsync of a file this
// mount created (or linked or renamed) also makes its name durable on the
// backing file system: the backing file itself and its parent directory,
// and the parents this mount created, are fsynced once (see syncName).
// Without it, a power cut could lose the name while the buffered data
// survives, and the drain would then drop that data as a deleted file's.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	n := h.n
	if err := n.s.data.Sync(context.WithoutCancel(ctx), h.ref); err != nil { // as in Flush
		return n.s.dataErr("sync", h.ref, err)
	}
	n.stampPending(h)
	n.mu.Lock()
	truncated := n.mu.truncated
	n.mu.truncated = false
	named := len(n.mu.nameDirs) > 0
	n.mu.Unlock()
	if named {
		// The new inode first, then the names that lead to it.
		if err := unix.Fsync(h.fd); err != nil {
			return toErrno(err)
		}
		if errno := n.syncName(); errno != 0 {
			return errno
		}
	}
	if truncated {
		if err := unix.Fsync(h.fd); err != nil {
			n.mu.Lock()
			n.mu.truncated = true
			n.mu.Unlock()
			return toErrno(err)
		}
	}
	return 0
}

// Release implements fs.FileReleaser: the last close of the handle.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	n := h.n
	n.mu.Lock()
	if i := slices.Index(n.mu.handles, h); i >= 0 {
		n.mu.handles = slices.Delete(n.mu.handles, i, i+1)
	}
	n.mu.Unlock()
	h.users.Wait()
	return toErrno(h.f.Close())
}

// wrote records a write through h. The backing file's mtime is set at
// once if it was last set a second or more ago, else at the next flush or
// fsync: one utimensat a second per file at most, and an mtime that is
// never more than a second behind the last write.
func (n *node) wrote(h *handle) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.mu.stamped) < time.Second {
		n.mu.pending = now
		return
	}
	n.mu.pending, n.mu.stamped = time.Time{}, now
	n.setMtimeLocked(h, now)
}

// stampPending sets the backing file's mtime to the time of the last
// write, if that is not set yet.
func (n *node) stampPending(h *handle) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.pending.IsZero() {
		return
	}
	t := n.mu.pending
	n.mu.pending, n.mu.stamped = time.Time{}, time.Now()
	n.setMtimeLocked(h, t)
}

// setMtimeLocked sets the backing mtime (and so ctime) under n.mu, so
// stamps land in the order of the writes they record.
func (n *node) setMtimeLocked(h *handle, t time.Time) {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(t.UnixNano())}
	if err := futimens(h.fd, &ts); err != nil {
		n.s.log.Warn("set mtime of backing file", "file", refID(h.ref), "err", err)
	}
}
