package shuffle

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"engine/internal/mem"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileWriter writes a new file from a goroutine of its own, so that the
// producer fills one buffer while the previous one is being written.
//
// With direct set it writes with O_DIRECT from page-aligned buffers, past the
// page cache: the CPU does not copy the bytes and the kernel does not have to
// find page-cache pages for them, which is what a sort's final output wants.
// Full buffers are a multiple of directUnit; the last, short one is padded to
// the next block and the file truncated to its true size. File systems that
// refuse O_DIRECT get buffered writes. Buffered files ask the kernel to start
// writeback every bytesPerSync bytes so that a final fsync does not have to
// flush the whole file at once.
//
// The producer calls buffer to get an empty buffer, fills it and calls submit;
// commit (or abort) ends the goroutine.
type fileWriter struct {
	path         string
	f            *os.File
	direct       bool
	bytesPerSync int64
	pool         *mem.Pool

	free chan []byte
	full chan []byte
	done chan struct{} // closed when the goroutine has exited
	size int64         // bytes written; owned by the goroutine until done

	mu  sync.Mutex
	err error // first write error, with path and offset
}

// directUnit is the least common multiple of the record size and the 4 KiB
// block size: buffers of a multiple of it hold whole records and are whole
// blocks.
const directUnit = 102400

// writerOptions configures createFile.
type writerOptions struct {
	bufSize      int // per buffer; rounded to a multiple of directUnit when direct
	nbuf         int
	direct       bool
	bytesPerSync int64
}

var (
	poolsMu sync.Mutex
	pools   = map[int]*mem.Pool{}
)

// bufferPool returns the process-wide pool of write buffers of one size.
func bufferPool(size int) *mem.Pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	p := pools[size]
	if p == nil {
		p = &mem.Pool{Size: size, Max: 8}
		pools[size] = p
	}
	return p
}

// ReleaseBuffers frees the idle write buffers kept for reuse.
func ReleaseBuffers() {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	for _, p := range pools {
		p.Drain()
	}
}

// createFile creates path exclusively and starts its writer.
func createFile(path string, o writerOptions) (*fileWriter, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	direct := o.direct
	if direct {
		o.bufSize = max(o.bufSize/directUnit, 1) * directUnit
	}
	f, err := openFile(path, flags, direct)
	if err != nil && direct && errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = openFile(path, flags, false)
	}
	if err != nil {
		return nil, err
	}
	w := &fileWriter{
		path:         path,
		f:            f,
		direct:       direct,
		bytesPerSync: o.bytesPerSync,
		pool:         bufferPool(o.bufSize),
		free:         make(chan []byte, o.nbuf),
		full:         make(chan []byte, o.nbuf),
		done:         make(chan struct{}),
	}
	for range o.nbuf {
		w.free <- w.pool.Get()[:0]
	}
	go w.run()
	return w, nil
}

func openFile(path string, flags int, direct bool) (*os.File, error) {
	if direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil && direct {
		os.Remove(path) // some file systems create the file, then refuse O_DIRECT
	}
	return f, err
}

func (w *fileWriter) run() {
	defer close(w.done)
	var off, synced int64
	failed := false
	for b := range w.full {
		if !failed {
			if err := w.write(b, off); err != nil {
				w.setErr(fmt.Errorf("write %s at byte %d: %w", w.path, off, unwrapPath(err)))
				failed = true
			}
			off += int64(len(b))
			if !w.direct && w.bytesPerSync > 0 && off-synced >= w.bytesPerSync {
				// Start writeback of what is written so far; do not wait.
				_ = unix.SyncFileRange(int(w.f.Fd()), synced, off-synced, unix.SYNC_FILE_RANGE_WRITE)
				synced = off
			}
		}
		w.free <- b[:0]
	}
	w.size = off
}

// write writes b at off. In direct mode only the last buffer may be short:
// it is padded with zeros to a whole block and the file truncated later.
func (w *fileWriter) write(b []byte, off int64) error {
	if !w.direct || len(b)%mem.Align == 0 {
		_, err := w.f.Write(b)
		return err
	}
	padded := (len(b) + mem.Align - 1) &^ (mem.Align - 1)
	if padded > cap(b) {
		return fmt.Errorf("direct write of %d bytes needs %d of buffer, have %d", len(b), padded, cap(b))
	}
	p := b[:padded]
	clear(p[len(b):])
	if _, err := w.f.Write(p); err != nil {
		return err
	}
	return w.f.Truncate(off + int64(len(b)))
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (w *fileWriter) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// Err returns the first write error, if any.
func (w *fileWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// buffer returns an empty buffer to fill, or the first write error.
func (w *fileWriter) buffer() ([]byte, error) {
	b := <-w.free
	if err := w.Err(); err != nil {
		w.free <- b
		return nil, err
	}
	return b, nil
}

// submit queues a filled buffer for writing.
func (w *fileWriter) submit(b []byte) { w.full <- b }

// release returns the buffers to the pool once the goroutine has exited.
func (w *fileWriter) release() {
	for {
		select {
		case b := <-w.free:
			w.pool.Put(b)
		default:
			return
		}
	}
}

// commit waits for every submitted buffer to be written, fsyncs the file if
// sync is set, and closes it. On error the file is removed.
func (w *fileWriter) commit(sync bool) error {
	close(w.full)
	<-w.done
	w.release()
	err := w.Err()
	if err == nil && sync {
		if serr := w.f.Sync(); serr != nil {
			err = fmt.Errorf("fsync %s: %w", w.path, unwrapPath(serr))
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", w.path, unwrapPath(cerr))
	}
	if err != nil {
		os.Remove(w.path)
	}
	return err
}

// abort stops the writer and removes the file.
func (w *fileWriter) abort() {
	close(w.full)
	<-w.done
	w.release()
	w.f.Close()
	os.Remove(w.path)
}

// segmentWriter appends records to a fileWriter and cuts the stream into
// segments, recording each one's offset, length and CRC32C.
type segmentWriter struct {
	ctx     context.Context // checked at every flush
	w       *fileWriter
	buf     []byte
	crcFrom int    // start of the bytes in buf not yet in crc
	crc     uint32 // CRC32C of the current segment so far
	off     int64  // bytes appended before buf
	segOff  int64  // start of the current segment
	segs    []SegmentInfo
	// progress, if set, is called with the bytes of each submitted buffer.
	progress func(int64)
}

func newSegmentWriter(ctx context.Context, w *fileWriter) (*segmentWriter, error) {
	b, err := w.buffer()
	if err != nil {
		return nil, err
	}
	return &segmentWriter{ctx: ctx, w: w, buf: b}, nil
}

// flushIfFull makes room for at least one more record.
func (s *segmentWriter) flushIfFull() error {
	if cap(s.buf)-len(s.buf) >= RecordSize {
		return nil
	}
	return s.flush()
}

func (s *segmentWriter) flush() error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.crcFrom:])
	s.submit()
	b, err := s.w.buffer()
	if err != nil {
		s.buf = nil
		return err
	}
	s.buf, s.crcFrom = b, 0
	return nil
}

func (s *segmentWriter) submit() {
	s.off += int64(len(s.buf))
	if s.progress != nil {
		s.progress(int64(len(s.buf)))
	}
	s.w.submit(s.buf)
}

// endSegment closes the current segment.
func (s *segmentWriter) endSegment() {
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.crcFrom:])
	s.crcFrom = len(s.buf)
	end := s.off + int64(len(s.buf))
	s.segs = append(s.segs, SegmentInfo{Offset: s.segOff, Length: end - s.segOff, CRC: s.crc})
	s.segOff, s.crc = end, 0
}

// finish submits what is buffered.
func (s *segmentWriter) finish() {
	if s.buf == nil {
		return
	}
	if len(s.buf) > 0 {
		s.submit()
	} else {
		s.w.free <- s.buf
	}
	s.buf = nil
}
