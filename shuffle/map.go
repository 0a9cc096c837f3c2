package shuffle

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unsafe"

	"engine/internal/mem"
)

// MapperConfig sizes a Mapper. Zero fields take defaults.
type MapperConfig struct {
	// SortBuffer is the bytes of records sorted in memory at once (rounded
	// down to whole records). A split larger than this is sorted in runs
	// that are spilled to disk and merged. Default 64 MiB.
	SortBuffer int
	// WriteBuffer is the size of each of the two output buffers, in bytes.
	// Default 4 MiB.
	WriteBuffer int
	// BlockSize is the read-ahead block per spilled run when merging, in
	// bytes. Default 1 MiB.
	BlockSize int
}

func (c *MapperConfig) ensureDefaults() {
	if c.SortBuffer <= 0 {
		c.SortBuffer = 64 << 20
	}
	c.SortBuffer -= c.SortBuffer % RecordSize
	if c.SortBuffer < RecordSize {
		c.SortBuffer = RecordSize
	}
	if c.WriteBuffer <= 0 {
		c.WriteBuffer = 4 << 20
	}
	if c.BlockSize <= 0 {
		c.BlockSize = 1 << 20
	}
}

// MapperMemory returns the bytes a Mapper with this config holds while it
// runs: the sort buffer, its entries, the radix counts and the write buffers
// (read-ahead for spill merges is extra: 2×BlockSize per spilled run).
func MapperMemory(c MapperConfig) int64 {
	c.ensureDefaults()
	recs := int64(c.SortBuffer / RecordSize)
	return int64(c.SortBuffer) + recs*16 + (radixBuckets+1)*8 + 2*int64(c.WriteBuffer)
}

// Mapper runs map tasks with one sort buffer that it reuses from task to
// task. A Mapper is not safe for concurrent use: run one per worker.
type Mapper struct {
	cfg    MapperConfig
	buf    []byte
	ents   []entry
	counts []int
	peek   [RecordSize]byte
}

// NewMapper allocates a Mapper's buffers; Close frees them.
func NewMapper(cfg MapperConfig) *Mapper {
	cfg.ensureDefaults()
	n := cfg.SortBuffer / RecordSize
	ents := mem.Alloc(n * int(unsafe.Sizeof(entry{})))
	return &Mapper{
		cfg:    cfg,
		buf:    mem.Alloc(cfg.SortBuffer),
		ents:   unsafe.Slice((*entry)(unsafe.Pointer(unsafe.SliceData(ents))), n),
		counts: make([]int, radixBuckets+1),
	}
}

// Close frees the Mapper's buffers. The Mapper must not be used after.
func (m *Mapper) Close() {
	mem.Free(m.buf)
	if len(m.ents) > 0 {
		mem.Free(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(m.ents))), len(m.ents)*int(unsafe.Sizeof(entry{}))))
	}
	m.buf, m.ents = nil, nil
}

// MapTask is one map task: a split of input records to partition and sort.
type MapTask struct {
	ID int // the map task's index, 0..MaxOutputIndex
	// Attempt is the attempt of the task, 1..MaxAttempt; with ID it names
	// the output (MapOutputID), so attempts never write the same files.
	Attempt int
	// Input yields the split's records; it must end on a record boundary.
	Input       io.Reader
	Partitioner *Partitioner
	// Dir receives the output's data and index files (OutputDataName,
	// OutputIndexName) and, while the task runs, its spilled runs.
	Dir string
	// Progress, if set, is called with the bytes of input consumed.
	Progress func(bytes int64)
}

// MapOutput describes a finished map task's output.
type MapOutput struct {
	ID        OutputID // MapOutputID(task ID, attempt)
	DataPath  string
	IndexPath string
	Index     *Index
	Records   int64
	Spills    int // sorted runs spilled to disk; 0 when the split fit in memory
}

// Map runs one map task. On success the data and index files exist (the
// index is renamed into place last, so its presence means the output is
// complete); on error neither they nor any spill file is left behind.
func (m *Mapper) Map(ctx context.Context, t MapTask) (out *MapOutput, err error) {
	id := MapOutputID(t.ID, t.Attempt)
	if err := id.Validate(); err != nil {
		return nil, err
	}
	out = &MapOutput{
		ID:        id,
		DataPath:  filepath.Join(t.Dir, OutputDataName(id)),
		IndexPath: filepath.Join(t.Dir, OutputIndexName(id)),
	}
	var runs []string
	var runSegs []SegmentInfo
	defer func() {
		for _, r := range runs {
			os.Remove(r)
		}
	}()
	var splits []Key
	if t.Partitioner != nil {
		splits = t.Partitioner.Splits
	}
	carry := 0 // bytes read ahead into m.buf's start by the end-of-input probe
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, rerr := io.ReadFull(t.Input, m.buf[carry:])
		n += carry
		carry = 0
		eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !eof {
			return nil, fmt.Errorf("shuffle: map %d: read input after record %d: %w", t.ID, out.Records, rerr)
		}
		if !eof {
			// The buffer is full: probe for more input so that a split
			// of exactly one buffer is sorted in memory, not spilled.
			k, perr := io.ReadFull(t.Input, m.peek[:])
			switch {
			case k == 0 && perr == io.EOF:
				eof = true
			case perr != nil && perr != io.EOF && perr != io.ErrUnexpectedEOF:
				return nil, fmt.Errorf("shuffle: map %d: read input after record %d: %w", t.ID, out.Records+int64(n/RecordSize), perr)
			default:
				carry = k
			}
		}
		if n%RecordSize != 0 {
			return nil, fmt.Errorf("shuffle: map %d: input ends with a partial record: %d bytes after record %d (byte offset %d in the split)",
				t.ID, n%RecordSize, out.Records+int64(n/RecordSize), out.Records*RecordSize+int64(n-n%RecordSize))
		}
		out.Records += int64(n / RecordSize)
		if t.Progress != nil && n > 0 {
			t.Progress(int64(n))
		}
		if eof && len(runs) == 0 {
			// The whole split fits in memory: sort it and write the output.
			ents := sortRecords(m.buf[:n], m.ents, m.counts)
			idx, err := m.writeSorted(ctx, out.DataPath, m.buf[:n], ents, splits)
			if err != nil {
				return nil, fmt.Errorf("shuffle: map %d: %w", t.ID, err)
			}
			out.Index = idx
			break
		}
		if n > 0 {
			ents := sortRecords(m.buf[:n], m.ents, m.counts)
			run := filepath.Join(t.Dir, fmt.Sprintf("%s.spill-%d", id.baseName(), len(runs)))
			runs = append(runs, run)
			idx, err := m.writeSorted(ctx, run, m.buf[:n], ents, nil)
			if err != nil {
				return nil, fmt.Errorf("shuffle: map %d: spill %d: %w", t.ID, len(runs)-1, err)
			}
			runSegs = append(runSegs, idx.Segments[0])
		}
		copy(m.buf, m.peek[:carry])
		if eof {
			idx, err := m.mergeRuns(ctx, t.ID, out.DataPath, runs, runSegs, splits)
			if err != nil {
				return nil, fmt.Errorf("shuffle: map %d: merge %d spilled runs: %w", t.ID, len(runs), err)
			}
			out.Index, out.Spills = idx, len(runs)
			break
		}
	}
	if err := writeIndex(out.IndexPath, out.Index); err != nil {
		os.Remove(out.DataPath)
		return nil, fmt.Errorf("shuffle: map %d: %w", t.ID, err)
	}
	return out, nil
}

// writeSorted writes data's records in the order of ents to a new file at
// path (via path.tmp and a rename), cut into one segment per partition.
func (m *Mapper) writeSorted(ctx context.Context, path string, data []byte, ents []entry, splits []Key) (*Index, error) {
	tmp := path + ".tmp"
	fw, err := createFile(tmp, writerOptions{bufSize: m.cfg.WriteBuffer, nbuf: 2})
	if err != nil {
		return nil, err
	}
	sw, err := newSegmentWriter(ctx, fw)
	if err != nil {
		fw.abort()
		return nil, err
	}
	pos := 0
	for p := 0; p <= len(splits); p++ {
		end := len(ents)
		if p < len(splits) {
			end = pos + lowerBound(ents[pos:], &splits[p])
		}
		for _, e := range ents[pos:end] {
			if err := sw.flushIfFull(); err != nil {
				fw.abort()
				return nil, err
			}
			i := e.index() * RecordSize
			sw.buf = append(sw.buf, data[i:i+RecordSize]...)
		}
		sw.endSegment()
		pos = end
	}
	sw.finish()
	if err := fw.commit(false); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &Index{Segments: sw.segs}, nil
}

// mergeRuns merges spilled runs into the map's data file.
func (m *Mapper) mergeRuns(ctx context.Context, id int, path string, runs []string, segs []SegmentInfo, splits []Key) (*Index, error) {
	srcs := make([]blockSource, 0, len(runs))
	for i, r := range runs {
		s, err := openSegment(r, segs[i], m.cfg.BlockSize, fmt.Sprintf("spill %d", i))
		if err != nil {
			for _, s := range srcs {
				s.close()
			}
			return nil, err
		}
		srcs = append(srcs, s)
	}
	tmp := path + ".tmp"
	fw, err := createFile(tmp, writerOptions{bufSize: m.cfg.WriteBuffer, nbuf: 2})
	if err != nil {
		for _, s := range srcs {
			s.close()
		}
		return nil, err
	}
	sw, err := newSegmentWriter(ctx, fw)
	if err == nil {
		_, err = merge(srcs, sw, splits)
	} else {
		for _, s := range srcs {
			s.close()
		}
	}
	if err != nil {
		fw.abort()
		return nil, err
	}
	sw.finish()
	if err := fw.commit(false); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &Index{Segments: sw.segs}, nil
}
