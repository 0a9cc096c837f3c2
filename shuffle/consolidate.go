package shuffle

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// MaxMergeInputs bounds the outputs one MergeOutputs call merges.
const MaxMergeInputs = 1024

// MergeInput is one output (normally a map's) that a merge reads: its id,
// for errors, and its files on this node.
type MergeInput struct {
	ID        OutputID
	DataPath  string
	IndexPath string
}

// MergeTask consolidates outputs on one node: for every partition, the
// segments of all its inputs are merged, in key order, into one segment of
// a new output with the same data and index format.
type MergeTask struct {
	// Inputs are the outputs to merge, 1..MaxMergeInputs of them, each with
	// an index of Partitions segments. Ties between equal keys keep the
	// order of Inputs.
	Inputs     []MergeInput
	Partitions int
	// DataPath and IndexPath are the merged output's files. They must not
	// exist. The index is written last (renamed into place), so its presence
	// means the output is complete; on error neither file is left. The data
	// file is not fsynced (shuffle outputs are scratch, as Mapper.Map's).
	DataPath, IndexPath string
	// BlockSize is the read-ahead block per input in bytes; each input holds
	// two. Default 1 MiB.
	BlockSize int
	// WriteBuffer is the size of each of the output's two buffers in bytes.
	// Default 4 MiB.
	WriteBuffer int
	// Progress, if set, is called with the bytes of output written.
	Progress func(bytes int64)
}

func (t *MergeTask) ensureDefaults() {
	if t.BlockSize <= 0 {
		t.BlockSize = 1 << 20
	}
	t.BlockSize -= t.BlockSize % RecordSize
	if t.BlockSize < RecordSize {
		t.BlockSize = RecordSize
	}
	if t.WriteBuffer <= 0 {
		t.WriteBuffer = 4 << 20
	}
}

// CorruptInputError reports a merge input that is damaged or missing: its
// index cannot be read or does not fit, a segment's bytes fail its CRC32C,
// or its data file is shorter than its index says. Err wraps
// ErrCorruptSegment for a damaged input, ErrMapOutputNotFound for a missing
// one, and otherwise the I/O error. The task that wrote Input must be re-run
// (the other inputs are fine).
type CorruptInputError struct {
	Input     OutputID
	Partition int // the segment that failed; -1 for the whole output (index, size)
	Err       error
}

func (e *CorruptInputError) Error() string {
	if e.Partition < 0 {
		return fmt.Sprintf("input %s: %v", e.Input, e.Err)
	}
	return fmt.Sprintf("input %s partition %d: %v", e.Input, e.Partition, e.Err)
}

func (e *CorruptInputError) Unwrap() error { return e.Err }

// MergeOutputs runs a merge task and returns the merged output's index.
//
// Every input's data file is read once, from start to end, by a goroutine
// of its own that checks each segment's CRC32C against the input's index as
// it goes: partitions are in order in every file, and the merge takes them
// in that order, so memory stays at two blocks per input whatever the
// partition count. A bad input fails the merge with an error that wraps a
// *CorruptInputError naming it.
func MergeOutputs(ctx context.Context, t MergeTask) (_ *Index, err error) {
	t.ensureDefaults()
	if err := t.validate(); err != nil {
		return nil, err
	}
	readers := make([]*outputReader, 0, len(t.Inputs))
	defer func() {
		for _, r := range readers {
			r.close()
		}
	}()
	for _, in := range t.Inputs {
		r, err := openOutput(in, t.Partitions, t.BlockSize)
		if err != nil {
			return nil, fmt.Errorf("shuffle: merge into %s: %w", t.DataPath, err)
		}
		readers = append(readers, r)
	}
	fw, err := createFile(t.DataPath, writerOptions{bufSize: t.WriteBuffer, nbuf: 2})
	if err != nil {
		return nil, fmt.Errorf("shuffle: merge: %w", err)
	}
	sw, err := newSegmentWriter(ctx, fw)
	if err != nil {
		fw.abort()
		return nil, fmt.Errorf("shuffle: merge into %s: %w", t.DataPath, err)
	}
	sw.progress = t.Progress
	var tree loserTree
	views := make([]partView, len(readers))
	srcs := make([]blockSource, 0, len(readers))
	for p := range t.Partitions {
		if err := ctx.Err(); err != nil {
			fw.abort()
			return nil, fmt.Errorf("shuffle: merge into %s: %w", t.DataPath, err)
		}
		srcs = srcs[:0]
		for i, r := range readers {
			if r.segs[p].Length > 0 {
				views[i] = partView{r: r, p: p}
				srcs = append(srcs, &views[i])
			}
		}
		if _, err := tree.merge(srcs, sw, nil); err != nil {
			fw.abort()
			return nil, fmt.Errorf("shuffle: merge into %s: partition %d: %w", t.DataPath, p, err)
		}
	}
	sw.finish()
	if err := fw.commit(false); err != nil {
		return nil, fmt.Errorf("shuffle: merge: %w", err)
	}
	idx := &Index{Segments: sw.segs}
	if err := writeIndex(t.IndexPath, idx); err != nil {
		os.Remove(t.DataPath)
		return nil, fmt.Errorf("shuffle: merge: write index: %w", err)
	}
	return idx, nil
}

func (t *MergeTask) validate() error {
	if n := len(t.Inputs); n == 0 || n > MaxMergeInputs {
		return fmt.Errorf("shuffle: merge of %d inputs: want 1 to %d", n, MaxMergeInputs)
	}
	if t.Partitions < 1 || t.Partitions > maxPartitions {
		return fmt.Errorf("shuffle: merge of %d partitions: want 1 to %d", t.Partitions, maxPartitions)
	}
	if t.DataPath == "" || t.IndexPath == "" || t.DataPath == t.IndexPath {
		return fmt.Errorf("shuffle: merge: data path %q and index path %q must be two different files", t.DataPath, t.IndexPath)
	}
	seen := make(map[OutputID]int, len(t.Inputs))
	for i, in := range t.Inputs {
		if err := in.ID.Validate(); err != nil {
			return fmt.Errorf("shuffle: merge input %d: %w", i, err)
		}
		if j, ok := seen[in.ID]; ok {
			return fmt.Errorf("shuffle: merge inputs %d and %d are both %s", j, i, in.ID)
		}
		seen[in.ID] = i
		if in.DataPath == "" || in.IndexPath == "" {
			return fmt.Errorf("shuffle: merge input %s: no data or index path", in.ID)
		}
	}
	for _, p := range []string{t.DataPath, t.IndexPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("shuffle: merge output %s exists (or cannot be checked: %v); a merge writes new files only", p, err)
		}
	}
	return nil
}

// outputReader reads one merge input's data file from start to end in
// chunks of up to blockSize bytes, on a goroutine of its own, checking each
// segment's CRC32C against the index as it goes. It holds two chunk buffers:
// one the merge takes its pieces from, one being read. A failed check is
// handed over with the chunk in which it happened, and the merge gets the
// error when it reaches the failed partition (piece).
type outputReader struct {
	id   OutputID
	path string
	segs []SegmentInfo

	chunks chan chunk
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}

	// The merge's side.
	cur  chunk
	pos  int   // bytes of cur.b handed out
	next int64 // file offset of the next byte to hand out; the merge
	// takes every segment whole, so this is where partition p starts
}

// chunk is a run of the data file: b holds its bytes from offset off. With
// err set, the reader stopped: the check of partition bad failed (bytes of
// b at and past that segment must not be used).
type chunk struct {
	b   []byte
	off int64
	bad int
	err error
}

// openOutput reads and checks in's index and starts reading its data file.
func openOutput(in MergeInput, partitions, blockSize int) (*outputReader, error) {
	corrupt := func(format string, args ...any) error {
		return &CorruptInputError{Input: in.ID, Partition: -1, Err: fmt.Errorf("%w: "+format, append([]any{ErrCorruptSegment}, args...)...)}
	}
	idx, err := ReadIndex(in.IndexPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &CorruptInputError{Input: in.ID, Partition: -1, Err: fmt.Errorf("%w: %v", ErrMapOutputNotFound, err)}
	case errors.Is(err, ErrCorruptIndex):
		return nil, corrupt("%w", err)
	case err != nil:
		return nil, &CorruptInputError{Input: in.ID, Partition: -1, Err: err}
	}
	if len(idx.Segments) != partitions {
		return nil, corrupt("index %s has %d partitions, the merge has %d", in.IndexPath, len(idx.Segments), partitions)
	}
	for p, s := range idx.Segments {
		if s.Length == 0 && s.CRC != 0 {
			return nil, corrupt("index %s: partition %d is empty with CRC32C %08x", in.IndexPath, p, s.CRC)
		}
	}
	f, err := os.Open(in.DataPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %v", ErrMapOutputNotFound, err)
		}
		return nil, &CorruptInputError{Input: in.ID, Partition: -1, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &CorruptInputError{Input: in.ID, Partition: -1, Err: err}
	}
	size := idx.DataBytes()
	if fi.Size() != size {
		f.Close()
		return nil, corrupt("data file %s is %d bytes, its index says %d", in.DataPath, fi.Size(), size)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, size, unix.FADV_SEQUENTIAL)
	r := &outputReader{
		id:     in.ID,
		path:   in.DataPath,
		segs:   idx.Segments,
		chunks: make(chan chunk, 1),
		free:   make(chan []byte, 2),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	n := min(int64(blockSize), max(size, RecordSize))
	nbuf := 2
	if size <= int64(blockSize) {
		nbuf = 1
	}
	for range nbuf {
		r.free <- make([]byte, n)
	}
	go r.run(f, size)
	return r, nil
}

// segEnd is the end of partition p's segment in the data file.
func (r *outputReader) segEnd(p int) int64 { return r.segs[p].Offset + r.segs[p].Length }

// partOf returns the partition whose segment holds byte off of the data
// file.
func (r *outputReader) partOf(off int64) int {
	p := 0
	for p < len(r.segs)-1 && r.segEnd(p) <= off {
		p++
	}
	return p
}

func (r *outputReader) run(f *os.File, size int64) {
	defer close(r.done)
	defer close(r.chunks)
	defer f.Close()
	var off int64
	var crc uint32
	p := 0 // the partition being checksummed
	for off < size {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n := int(min(int64(len(buf)), size-off))
		got, err := f.ReadAt(buf[:n], off)
		c := chunk{b: buf[:got], off: off, bad: -1}
		for pos := off; pos < off+int64(got); {
			for r.segEnd(p) <= pos {
				p++ // empty segments, checked at open
			}
			k := min(r.segEnd(p), off+int64(got)) - pos
			crc = crc32.Update(crc, castagnoli, buf[pos-off:pos-off+k])
			pos += k
			if pos == r.segEnd(p) {
				if s := r.segs[p]; crc != s.CRC {
					c.bad = p
					c.err = fmt.Errorf("%w: %s bytes %d-%d have CRC32C %08x, the index says %08x", ErrCorruptSegment, r.path, s.Offset, pos, crc, s.CRC)
					break
				}
				crc = 0
			}
		}
		if c.err == nil && got < n {
			c.bad = r.partOf(off + int64(got))
			if err == nil || err == io.EOF {
				c.err = fmt.Errorf("%w: %s ends at byte %d, its index says %d", ErrCorruptSegment, r.path, off+int64(got), size)
			} else {
				c.err = fmt.Errorf("read %s at byte %d: %w", r.path, off+int64(got), unwrapPath(err))
			}
		}
		select {
		case r.chunks <- c:
		case <-r.stop:
			return
		}
		if c.err != nil {
			return
		}
		off += int64(got)
	}
}

// piece returns the next bytes of partition p's segment, whole records,
// valid until the next call, or io.EOF after the segment's last ones.
// Partitions must be asked for in order.
func (r *outputReader) piece(p int) ([]byte, error) {
	end := r.segEnd(p)
	if r.next >= end {
		return nil, io.EOF
	}
	if r.pos == len(r.cur.b) {
		if r.cur.err != nil {
			return nil, r.fail()
		}
		if r.cur.b != nil {
			r.free <- r.cur.b[:cap(r.cur.b)]
			r.cur = chunk{}
		}
		c, ok := <-r.chunks
		if !ok {
			// The reader read the whole file, which the index covers.
			return nil, &CorruptInputError{Input: r.id, Partition: p, Err: fmt.Errorf("%w: %s ended before partition %d", ErrCorruptSegment, r.path, p)}
		}
		r.cur, r.pos = c, 0
		if len(c.b) == 0 && c.err != nil {
			return nil, r.fail()
		}
	}
	if r.cur.err != nil && p >= r.cur.bad {
		return nil, r.fail()
	}
	n := int(min(int64(len(r.cur.b)-r.pos), end-r.next))
	b := r.cur.b[r.pos : r.pos+n]
	r.pos += n
	r.next += int64(n)
	return b, nil
}

func (r *outputReader) fail() error {
	return &CorruptInputError{Input: r.id, Partition: r.cur.bad, Err: r.cur.err}
}

func (r *outputReader) close() {
	close(r.stop)
	<-r.done
}

// partView is one partition's segment of an outputReader, as a merge
// source. Closing it leaves the reader open for the next partition.
type partView struct {
	r *outputReader
	p int
}

func (v *partView) next() ([]byte, error) { return v.r.piece(v.p) }
func (v *partView) close()                {}
