package sortjob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"engine/gensort"
	"engine/shuffle"
)

// The task-level steps of a sort; package jobs runs them where the
// coordinator assigns them.

// MapperConfig returns the map-side buffers the plan sizes.
func (p *Plan) MapperConfig() shuffle.MapperConfig {
	return shuffle.MapperConfig{SortBuffer: p.SortBuffer, WriteBuffer: p.WriteBuffer, BlockSize: p.BlockSize}
}

// MapResult is a finished map task.
type MapResult struct {
	Output  *shuffle.MapOutput
	Records int64       // records read
	Sum     gensort.Sum // their checksum: the input side of the valsort check
	GenTime time.Duration
}

// RunMap runs attempt a of map task i of p with m: it generates or reads the
// split, sorts and partitions it, and writes the map output, named by task
// and attempt, into dir. An output left by an earlier run of the same
// attempt is replaced.
func RunMap(ctx context.Context, m *shuffle.Mapper, p *Plan, i, a int, part *shuffle.Partitioner, dir string, progress func(int64)) (*MapResult, error) {
	split := p.Split(i)
	id := shuffle.MapOutputID(i, a)
	for _, name := range []string{shuffle.OutputDataName(id), shuffle.OutputIndexName(id)} {
		os.Remove(filepath.Join(dir, name))
		os.Remove(filepath.Join(dir, name+".tmp"))
	}
	var src io.Reader
	var gen *genReader
	if split.Path == "" {
		gen = &genReader{g: gensort.NewGenerator(uint64(split.Start), gensort.Options{ASCII: p.Spec.ASCII, Skew: p.Spec.Skew}), left: split.Records}
		src = gen
	} else {
		// Not through a symbolic link put in the input's place since the
		// plan was checked (the daemon reads as root).
		f, err := os.OpenFile(split.Path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, fmt.Errorf("sort: map %d: %w", split.ID, unwrap(err))
		}
		defer f.Close()
		_ = unix.Fadvise(int(f.Fd()), split.Offset, split.Bytes(), unix.FADV_SEQUENTIAL)
		src = io.NewSectionReader(f, split.Offset, split.Bytes())
	}
	sr := &sumReader{r: src}
	out, err := m.Map(ctx, shuffle.MapTask{ID: split.ID, Attempt: a, Input: sr, Partitioner: part, Dir: dir, Progress: progress})
	if err != nil {
		if split.Path != "" {
			return nil, fmt.Errorf("%w (input %s bytes %d-%d)", err, split.Path, split.Offset, split.Offset+split.Bytes())
		}
		return nil, err
	}
	if out.Records != split.Records {
		return nil, fmt.Errorf("sort: map %d read %d records, the plan says %d: did input %s change while sorting?", split.ID, out.Records, split.Records, split.Path)
	}
	res := &MapResult{Output: out, Records: sr.records, Sum: sr.sum}
	if gen != nil {
		res.GenTime = gen.took
	}
	return res, nil
}

// RunReduce merges partition part's segments into dir/PartName: written
// under a temporary name, fsynced, then renamed, so the name only ever holds
// a complete partition. It returns the records written. fetcher fetches
// the remote inputs (nil: shuffle.DefaultFetcher).
func RunReduce(ctx context.Context, p *Plan, part int, inputs []shuffle.ReduceInput, dir string, fetcher *shuffle.Fetcher, progress func(int64)) (int64, error) {
	final := filepath.Join(dir, PartName(part, p.Partitions))
	var rnd [4]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+PartName(part, p.Partitions)+".tmp-"+hex.EncodeToString(rnd[:]))
	n, err := shuffle.Reduce(ctx, shuffle.ReduceTask{
		Partition: part, Inputs: inputs, Output: tmp,
		BlockSize: p.BlockFor(len(inputs)), WriteBuffer: p.ReduceWriteBuffer, MaxFanIn: MaxFanIn, Direct: true, Progress: progress, Fetcher: fetcher,
	})
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("sort: reduce %d: %w", part, unwrap(err))
	}
	return n, nil
}

// ValidatePart reads dir/PartName back from disk, computes its valsort
// summary and writes it to dir/SummaryName, fsynced. buf is the read buffer.
func ValidatePart(ctx context.Context, p *Plan, part int, dir string, buf []byte, progress func(int64)) (gensort.Summary, error) {
	s, err := validateFile(ctx, filepath.Join(dir, PartName(part, p.Partitions)), buf, progress)
	if err != nil {
		return s, err
	}
	b, _ := s.MarshalBinary()
	// Fsynced: CommitOutput renames it into the output directory, fsyncs
	// that, and only then writes _SUCCESS, which vouches for it.
	if err := writeFileSync(filepath.Join(dir, SummaryName(part, p.Partitions)), b); err != nil {
		return s, fmt.Errorf("sort: %w", unwrap(err))
	}
	return s, nil
}

func validateFile(ctx context.Context, path string, buf []byte, progress func(int64)) (gensort.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return gensort.Summary{}, fmt.Errorf("sort: validate: %w", unwrap(err))
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	v := gensort.NewValidator()
	for {
		if err := ctx.Err(); err != nil {
			return gensort.Summary{}, err
		}
		n, err := io.ReadFull(f, buf)
		v.Write(buf[:n])
		if progress != nil {
			progress(int64(n))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return gensort.Summary{}, fmt.Errorf("sort: validate %s: %w", path, err)
		}
	}
	s, err := v.Summary()
	if err != nil {
		return s, fmt.Errorf("sort: validate %s: %w", path, err)
	}
	return s, nil
}
