package burstbuffer

import (
	"context"
	"os"
)

// Data is the burst buffer as the mount and the S3 endpoint see it: file
// data lives in the buffer until drained, the names, modes, owners, links
// and times live in the backing directory. *Service implements it.
//
// Every call names the file by its FileRef (burstbuffer.RefOf of an open
// backing file). backing is that open backing file (the mount's own
// descriptor): reads of ranges the buffer does not hold come from it.
type Data interface {
	// WriteAt buffers p at off. It may block while the flash tier is full
	// (backpressure); it fails only for a reason the caller must see
	// (ENOSPC of the backing file system, an I/O error). A buffered write
	// is visible to ReadAt and Size on this node at once, and durable
	// after Sync returns.
	WriteAt(ctx context.Context, ref FileRef, p []byte, off int64) error
	// ReadAt reads the newest bytes at off: buffered extents over the
	// backing file. It returns n < len(p) only at the file's logical end
	// (with io.EOF or nil).
	ReadAt(ctx context.Context, ref FileRef, backing *os.File, p []byte, off int64) (int, error)
	// Size is the logical size: the larger of the backing file's size and
	// the end of the buffered extents.
	Size(ref FileRef, backingSize int64) int64
	// Sync returns once every write to ref this node acknowledged is
	// durable on k+m shards.
	Sync(ctx context.Context, ref FileRef) error
	// Truncate sets the logical size: buffered bytes at or past size are
	// dropped and the backing file is truncated (backing is open for
	// writing).
	Truncate(ctx context.Context, ref FileRef, backing *os.File, size int64) error
}

var _ Data = (*Service)(nil)
