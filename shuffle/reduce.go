package shuffle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// ReduceInput is one output's segment for a reduce partition: a local file,
// or an output (of a map or of a merge) that a shuffle service (Server) at
// Addr serves.
type ReduceInput struct {
	// Output names the output: on the wire for a remote input, in errors
	// for a local one.
	Output OutputID
	// Addr is the host:port of the shuffle service that holds the output;
	// empty means the output is the local file at Path.
	Addr string
	// Job is the id of the output's job, for a remote input.
	Job  string
	Path string // the output's data file, for a local input
	// Segment is the partition's segment in the output. For a local
	// input it is read as given, and a zero Length means an empty segment.
	// For a remote input the server's index is authoritative: a non-zero
	// Length and its CRC must match it, and a zero Length means unknown:
	// Reduce then asks the server for it (Fetcher.Segments, one round trip
	// for all such inputs on one server) and skips the input if it is empty.
	Segment SegmentInfo
}

// ReduceTask merges one partition's segments from every output (of the maps,
// or of the merges of map outputs) into one output file.
type ReduceTask struct {
	Partition int
	Inputs    []ReduceInput
	// Output is created (it must not exist), written, fsynced and closed; on
	// error it is removed.
	Output string
	// BlockSize is the read-ahead block per input in bytes; each input holds
	// two. Default 1 MiB.
	BlockSize int
	// WriteBuffer is the size of each of the output's buffers. Default 8 MiB.
	WriteBuffer int
	// MaxFanIn bounds the inputs merged at once; more are first merged in
	// groups into temporary runs beside Output. Default 512.
	MaxFanIn int
	// Direct writes the output with O_DIRECT, past the page cache (where
	// the file system supports it).
	Direct bool
	// Progress, if set, is called with bytes written as they are written.
	Progress func(bytes int64)
	// Fetcher fetches the remote inputs; nil means DefaultFetcher.
	Fetcher *Fetcher
}

func (t *ReduceTask) ensureDefaults() {
	if t.BlockSize <= 0 {
		t.BlockSize = 1 << 20
	}
	if t.WriteBuffer <= 0 {
		t.WriteBuffer = 8 << 20
	}
	if t.MaxFanIn < 2 {
		t.MaxFanIn = 512
	}
}

// ReduceMemory returns the bytes a reduce task holds for a fan-in of n.
func ReduceMemory(n, blockSize, writeBuffer int) int64 {
	t := ReduceTask{BlockSize: blockSize, WriteBuffer: writeBuffer}
	t.ensureDefaults()
	n = min(n, 512)
	return int64(n)*2*int64(t.BlockSize) + 3*int64(t.WriteBuffer)
}

// Reduce runs one reduce task and returns the records written. A remote
// input that cannot be fetched fails the task with an error that wraps a
// *FetchError naming the output.
func Reduce(ctx context.Context, t ReduceTask) (int64, error) {
	t.ensureDefaults()
	all, err := lookupSegments(ctx, t)
	if err != nil {
		return 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
	}
	inputs := make([]ReduceInput, 0, len(all))
	for _, in := range all {
		if in.Segment.Length > 0 {
			inputs = append(inputs, in)
		}
	}
	// Merge in passes while there are more inputs than the fan-in allows.
	var temps []string
	defer func() {
		for _, p := range temps {
			os.Remove(p)
		}
	}()
	for pass := 0; len(inputs) > t.MaxFanIn; pass++ {
		var next []ReduceInput
		for g := 0; g < len(inputs); g += t.MaxFanIn {
			group := inputs[g:min(g+t.MaxFanIn, len(inputs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			path := filepath.Join(filepath.Dir(t.Output), fmt.Sprintf(".%s.pass%d-%d", filepath.Base(t.Output), pass, g/t.MaxFanIn))
			temps = append(temps, path)
			seg, _, err := mergeToFile(ctx, t, group, path, false, nil)
			if err != nil {
				return 0, err
			}
			next = append(next, ReduceInput{Path: path, Segment: seg}) // Output zero: a pass run
		}
		inputs = next
	}
	_, n, err := mergeToFile(ctx, t, inputs, t.Output, true, t.Progress)
	return n, err
}

// mergeToFile merges inputs into a new file at path as one segment.
func mergeToFile(ctx context.Context, t ReduceTask, inputs []ReduceInput, path string, sync bool, progress func(int64)) (SegmentInfo, int64, error) {
	srcs := make([]blockSource, 0, len(inputs))
	closeAll := func() {
		for _, s := range srcs {
			s.close()
		}
	}
	for _, in := range inputs {
		if in.Addr != "" {
			srcs = append(srcs, openRemoteSegment(ctx, t.Fetcher, in, t.Partition, t.BlockSize))
			continue
		}
		name := fmt.Sprintf("%s segment", in.Output)
		if in.Output == (OutputID{}) {
			name = "merge pass run"
		}
		s, err := openSegment(in.Path, in.Segment, t.BlockSize, name)
		if err != nil {
			closeAll()
			return SegmentInfo{}, 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
		}
		srcs = append(srcs, s)
	}
	fw, err := createFile(path, writerOptions{bufSize: t.WriteBuffer, nbuf: 3, direct: t.Direct && sync, bytesPerSync: 32 << 20})
	if err != nil {
		closeAll()
		return SegmentInfo{}, 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
	}
	sw, err := newSegmentWriter(ctx, fw)
	if err != nil {
		closeAll()
		fw.abort()
		return SegmentInfo{}, 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
	}
	sw.progress = progress
	n, err := merge(srcs, sw, nil)
	if err != nil {
		fw.abort()
		return SegmentInfo{}, 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
	}
	sw.finish()
	if err := fw.commit(sync); err != nil {
		return SegmentInfo{}, 0, fmt.Errorf("shuffle: reduce %d: %w", t.Partition, err)
	}
	return sw.segs[0], n, nil
}

// lookupSegments returns t's inputs with the segments of the remote ones
// whose segment is unknown filled in from their servers: one
// Fetcher.Segments call per server and job, all at once.
func lookupSegments(ctx context.Context, t ReduceTask) ([]ReduceInput, error) {
	type server struct{ addr, job string }
	groups := map[server][]int{}
	for i, in := range t.Inputs {
		if in.Addr != "" && in.Segment.Length == 0 {
			k := server{in.Addr, in.Job}
			groups[k] = append(groups[k], i)
		}
	}
	if len(groups) == 0 {
		return t.Inputs, nil
	}
	f := t.Fetcher
	if f == nil {
		f = DefaultFetcher
	}
	inputs := slices.Clone(t.Inputs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for k, idx := range groups {
		wg.Go(func() {
			ids := make([]OutputID, len(idx))
			for j, i := range idx {
				ids[j] = inputs[i].Output
			}
			segs, err := f.Segments(ctx, k.addr, k.job, t.Partition, ids)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					cancel()
				}
				return
			}
			for j, i := range idx {
				inputs[i].Segment = segs[j]
			}
		})
	}
	wg.Wait()
	return inputs, first
}
