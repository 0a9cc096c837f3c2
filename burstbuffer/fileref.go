package burstbuffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"engine/namespace"
)

// FileRef names a backing file independently of its path: the kernel's file
// handle (name_to_handle_at), which survives renames and hard links and
// stops opening once the inode is freed (ESTALE), and an id derived from it
// that keys the buffered extents. A new file that reuses a freed inode
// number gets a new generation, so a new handle and id: it never sees the
// old file's buffered bytes.
type FileRef struct {
	ID     uint64
	Type   int32  // handle type
	Handle []byte // opaque handle bytes
}

// ErrStale reports a backing file that no longer exists (its inode was
// freed).
var ErrStale = errors.New("burstbuffer: backing file no longer exists")

// RefOf returns the FileRef of the open file f.
func RefOf(f *os.File) (FileRef, error) {
	h, _, err := unix.NameToHandleAt(int(f.Fd()), "", unix.AT_EMPTY_PATH)
	if err != nil {
		return FileRef{}, fmt.Errorf("burstbuffer: file handle of %s: %w (the backing file system must support name_to_handle_at, as ext4, xfs, tmpfs and NFS do)", f.Name(), err)
	}
	return MakeRef(h.Type(), h.Bytes()), nil
}

// MakeRef builds a FileRef from a handle type and bytes.
func MakeRef(typ int32, handle []byte) FileRef {
	hs := fnv.New64a()
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], uint32(typ))
	hs.Write(t[:])
	hs.Write(handle)
	id := hs.Sum64()
	if id == 0 {
		id = 1
	}
	return FileRef{ID: id, Type: typ, Handle: append([]byte(nil), handle...)}
}

// openRef opens the backing file ref names with flags, relative to the
// backing root (open_by_handle_at needs CAP_DAC_READ_SEARCH: root). A
// handle decodes to any inode of the root's file system, and handles
// arrive from peers, so the inode must be a regular file beneath the root
// (namespace.Contains) before it is opened for anything: a handle of
// another file is refused with an error wrapping namespace.ErrNotBeneath.
func openRef(root *os.File, ref FileRef, flags int) (*os.File, error) {
	if len(ref.Handle) == 0 || len(ref.Handle) > maxHandleSize {
		return nil, fmt.Errorf("burstbuffer: backing file %016x: handle of %d bytes (want 1 to %d)", ref.ID, len(ref.Handle), maxHandleSize)
	}
	fd, err := unix.OpenByHandleAt(int(root.Fd()), unix.NewFileHandle(ref.Type, ref.Handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%w (file %016x)", ErrStale, ref.ID)
		}
		return nil, fmt.Errorf("burstbuffer: open backing file %016x by handle: %w", ref.ID, err)
	}
	name := fmt.Sprintf("backing:%016x", ref.ID)
	pf := os.NewFile(uintptr(fd), name)
	defer pf.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("burstbuffer: backing file %016x: %w", ref.ID, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("burstbuffer: backing file %016x: %w: not a regular file (mode %o)", ref.ID, namespace.ErrNotBeneath, st.Mode)
	}
	if err := namespace.Contains(root, pf); err != nil {
		return nil, fmt.Errorf("burstbuffer: backing file %016x: %w", ref.ID, err)
	}
	// Reopen the inode itself through its descriptor's /proc link.
	nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: open backing file %016x: %w", ref.ID, err)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// maxHandleSize is the kernel's MAX_HANDLE_SZ, the largest file handle.
const maxHandleSize = 128
