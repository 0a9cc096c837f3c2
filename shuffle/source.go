package shuffle

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrCorruptSegment reports a map output segment that is shorter than its
// index says or whose checksum does not match: the map output must be fetched
// again or its map task re-run.
var ErrCorruptSegment = errors.New("corrupt segment")

// blockSource yields a sorted stream of records in blocks of whole records.
type blockSource interface {
	// next returns the next non-empty block, valid until the following call,
	// or io.EOF after the last one.
	next() ([]byte, error)
	close()
}

type block struct {
	b   []byte
	err error
}

// segmentReader reads one segment of a file in blocks on a goroutine of its
// own (read-ahead), checks its length and CRC32C, and hands the blocks to the
// merger. The error for a bad checksum comes in place of the last block.
type segmentReader struct {
	blockQueue
	name string
	stop chan struct{}
	done chan struct{}
}

// blockQueue hands a reader goroutine's blocks to the merge and takes each
// back (to refill) when the merge asks for the next one.
type blockQueue struct {
	blocks chan block
	free   chan []byte
	cur    []byte // the block the merge holds
}

func (q *blockQueue) next() ([]byte, error) {
	if q.cur != nil {
		q.free <- q.cur[:cap(q.cur)]
		q.cur = nil
	}
	blk, ok := <-q.blocks
	if !ok {
		return nil, io.EOF
	}
	if blk.err != nil {
		return nil, blk.err
	}
	q.cur = blk.b
	return blk.b, nil
}

// openSegment starts reading seg of the file at path. name says what the
// segment is in errors ("map 3 partition 7").
func openSegment(path string, seg SegmentInfo, blockSize int, name string) (*segmentReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	_ = unix.Fadvise(int(f.Fd()), seg.Offset, seg.Length, unix.FADV_SEQUENTIAL)
	blockSize -= blockSize % RecordSize
	if blockSize < RecordSize {
		blockSize = RecordSize
	}
	r := &segmentReader{
		blockQueue: blockQueue{blocks: make(chan block, 1), free: make(chan []byte, 2)},
		name:       name,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	nbuf := 2
	if seg.Length <= int64(blockSize) {
		nbuf = 1
	}
	for range nbuf {
		r.free <- make([]byte, min(int64(blockSize), max(seg.Length, RecordSize)))
	}
	go r.run(f, path, seg)
	return r, nil
}

func (r *segmentReader) run(f *os.File, path string, seg SegmentInfo) {
	defer close(r.done)
	defer close(r.blocks)
	defer f.Close()
	off, end := seg.Offset, seg.Offset+seg.Length
	var crc uint32
	for off < end {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n := int(min(int64(len(buf)), end-off))
		got, err := f.ReadAt(buf[:n], off)
		var blk block
		switch {
		case got < n && (err == io.EOF || err == nil):
			blk.err = fmt.Errorf("%w: %s: %s ends at byte %d, the index says the segment ends at %d", ErrCorruptSegment, r.name, path, off+int64(got), end)
		case err != nil && got < n:
			blk.err = fmt.Errorf("%s: read %s at byte %d: %w", r.name, path, off+int64(got), unwrapPath(err))
		default:
			crc = crc32.Update(crc, castagnoli, buf[:n])
			off += int64(n)
			blk.b = buf[:n]
			if off == end && crc != seg.CRC {
				blk = block{err: fmt.Errorf("%w: %s: %s bytes %d-%d have CRC32C %08x, the index says %08x", ErrCorruptSegment, r.name, path, seg.Offset, end, crc, seg.CRC)}
			}
		}
		select {
		case r.blocks <- blk:
		case <-r.stop:
			return
		}
		if blk.err != nil {
			return
		}
	}
}

func (r *segmentReader) close() {
	close(r.stop)
	<-r.done
}
