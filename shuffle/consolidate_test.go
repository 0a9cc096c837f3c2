package shuffle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mapSplits maps data in `maps` splits (of uneven sizes, some possibly
// empty) into parts partitions in dir, and returns the outputs and the
// partitioner.
func mapSplits(t testing.TB, rng *rand.Rand, dir string, data []byte, maps, parts int) ([]*MapOutput, *Partitioner) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var samples [][]byte
	n := len(data) / RecordSize
	for range 50 {
		if n > 0 {
			samples = append(samples, data[rng.IntN(n)*RecordSize:])
		}
	}
	p, err := NewPartitioner(samples, parts)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMapper(MapperConfig{SortBuffer: (1 + rng.IntN(400)) * RecordSize, WriteBuffer: 1000, BlockSize: 700})
	defer m.Close()
	cuts := []int{0, n}
	for range maps - 1 {
		cuts = append(cuts, rng.IntN(n+1))
	}
	slices.Sort(cuts)
	var outs []*MapOutput
	for i := range maps {
		lo, hi := cuts[i], cuts[i+1]
		out, err := m.Map(context.Background(), MapTask{ID: i, Attempt: 1 + i%3, Input: bytes.NewReader(data[lo*RecordSize : hi*RecordSize]), Partitioner: p, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	return outs, p
}

func mergeInputs(outs []*MapOutput) []MergeInput {
	var ins []MergeInput
	for _, o := range outs {
		ins = append(ins, MergeInput{ID: o.ID, DataPath: o.DataPath, IndexPath: o.IndexPath})
	}
	return ins
}

// mergeTask is a merge of ins into merge output id in dir.
func mergeTask(dir string, id OutputID, ins []MergeInput, parts int) MergeTask {
	return MergeTask{
		Inputs:     ins,
		Partitions: parts,
		DataPath:   filepath.Join(dir, OutputDataName(id)),
		IndexPath:  filepath.Join(dir, OutputIndexName(id)),
	}
}

// checkOutput checks that an output's files hold idx, with every segment's
// CRC32C right, and returns the data.
func checkOutput(t *testing.T, dataPath, indexPath string, idx *Index) []byte {
	t.Helper()
	onDisk, err := ReadIndex(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(onDisk.Segments, idx.Segments) {
		t.Fatalf("index file %v, returned %v", onDisk.Segments, idx.Segments)
	}
	data, err := os.ReadFile(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != idx.DataBytes() {
		t.Fatalf("data file of %d bytes, index says %d", len(data), idx.DataBytes())
	}
	for p, s := range idx.Segments {
		if got := crc32.Checksum(data[s.Offset:s.Offset+s.Length], castagnoli); got != s.CRC {
			t.Fatalf("partition %d: CRC32C %08x, index says %08x", p, got, s.CRC)
		}
	}
	return data
}

// Merging map outputs gives, per partition, the stable merge of the inputs'
// segments (so all partitions in order are the stable sort of the input),
// whatever the block size, with empty segments and empty inputs.
func TestMergeOutputs(t *testing.T) {
	for trial := range 12 {
		seed := uint64(trial)*6151 + 3
		rng := rand.New(rand.NewPCG(seed, 7))
		records := rng.IntN(3000)
		if trial == 0 {
			records = 0
		}
		maps, parts := 1+rng.IntN(9), 1+rng.IntN(20)
		block := []int{1, 3, 64, 10000}[rng.IntN(4)] * RecordSize
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			dir := t.TempDir()
			data := randomRecords(rng, records, rng.IntN(3) == 0)
			outs, part := mapSplits(t, rng, dir, data, maps, parts)
			task := mergeTask(dir, MergeOutputID(4, 2), mergeInputs(outs), parts)
			task.BlockSize, task.WriteBuffer = block, 1000+rng.IntN(3000)
			var progress int64
			task.Progress = func(n int64) { progress += n }
			idx, err := MergeOutputs(context.Background(), task)
			if err != nil {
				t.Fatalf("%d records, %d maps, %d partitions, block %d: %v", records, maps, parts, block, err)
			}
			got := checkOutput(t, task.DataPath, task.IndexPath, idx)
			if want := reference(data); !bytes.Equal(got, want) {
				t.Fatalf("%d records, %d maps, %d partitions, block %d: merged output is not the stable sort of the input", records, maps, parts, block)
			}
			if progress != int64(len(data)) {
				t.Errorf("progress reported %d bytes, want %d", progress, len(data))
			}
			empty := 0
			for p, s := range idx.Segments {
				var want int64
				for _, o := range outs {
					want += o.Index.Segments[p].Length
				}
				if s.Length != want {
					t.Fatalf("partition %d: %d bytes, the inputs have %d", p, s.Length, want)
				}
				if s.Length == 0 {
					empty++
				}
				for i := s.Offset; i < s.Offset+s.Length; i += RecordSize {
					if q := part.Partition(got[i:]); q != p {
						t.Fatalf("partition %d holds a key of partition %d", p, q)
					}
				}
			}
			t.Logf("%d records, %d maps, %d partitions (%d empty), block %d", records, maps, parts, empty, block)
		})
	}
}

// writeOutput writes an output whose partition p holds parts[p] (sorted
// records), as id in dir.
func writeOutput(t testing.TB, dir string, id OutputID, parts [][]byte) MergeInput {
	t.Helper()
	in := MergeInput{ID: id, DataPath: filepath.Join(dir, OutputDataName(id)), IndexPath: filepath.Join(dir, OutputIndexName(id))}
	var data []byte
	var idx Index
	for _, b := range parts {
		idx.Segments = append(idx.Segments, SegmentInfo{Offset: int64(len(data)), Length: int64(len(b)), CRC: crc32.Checksum(b, castagnoli)})
		data = append(data, b...)
	}
	if err := os.WriteFile(in.DataPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeIndex(in.IndexPath, &idx); err != nil {
		t.Fatal(err)
	}
	return in
}

// A merge of MaxMergeInputs inputs works, with small blocks.
func TestMergeOutputsMaxFanIn(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(99, 1))
	const parts = 3
	splits := []Key{{0x40}, {0x80}}
	var ins []MergeInput
	var all []byte
	for i := range MaxMergeInputs {
		recs := randomRecords(rng, rng.IntN(6), false)
		for j := 0; j < len(recs); j += RecordSize {
			copy(recs[j+KeySize:], fmt.Sprintf("%05d%03d", i, j/RecordSize)) // unique across inputs
		}
		all = append(all, recs...)
		sorted := reference(recs)
		var ps [][]byte
		pos := 0
		for p := range parts {
			end := len(sorted)
			if p < len(splits) {
				end = pos
				for end < len(sorted) && CompareKeys(sorted[end:], splits[p][:]) < 0 {
					end += RecordSize
				}
			}
			ps = append(ps, sorted[pos:end])
			pos = end
		}
		ins = append(ins, writeOutput(t, dir, MapOutputID(i, 1), ps))
	}
	task := mergeTask(dir, MergeOutputID(0, 1), ins, parts)
	task.BlockSize = RecordSize
	idx, err := MergeOutputs(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	got := checkOutput(t, task.DataPath, task.IndexPath, idx)
	if !bytes.Equal(got, reference(all)) {
		t.Fatalf("merge of %d inputs is not the stable sort of their records", len(ins))
	}
}

// A damaged or missing input fails the merge with a *CorruptInputError that
// names it, and leaves no output behind.
func TestMergeOutputsCorruptInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 55))
	for _, c := range []struct {
		name     string
		damage   func(t *testing.T, o *MapOutput) int // returns the failed partition
		wantErr  error
		contains string
	}{
		{"flipped byte", func(t *testing.T, o *MapOutput) int {
			// A byte in the middle of the largest segment.
			p := 0
			for i, s := range o.Index.Segments {
				if s.Length > o.Index.Segments[p].Length {
					p = i
				}
			}
			s := o.Index.Segments[p]
			flipByte(t, o.DataPath, s.Offset+s.Length/2)
			return p
		}, ErrCorruptSegment, "CRC32C"},
		{"flipped last byte", func(t *testing.T, o *MapOutput) int {
			flipByte(t, o.DataPath, o.Index.DataBytes()-1)
			return len(o.Index.Segments) - 1
		}, ErrCorruptSegment, "CRC32C"},
		{"short data file", func(t *testing.T, o *MapOutput) int {
			os.Truncate(o.DataPath, o.Index.DataBytes()-RecordSize)
			return -1
		}, ErrCorruptSegment, fmt.Sprintf("is %d bytes", 0)},
		{"damaged index", func(t *testing.T, o *MapOutput) int {
			flipByte(t, o.IndexPath, 20)
			return -1
		}, ErrCorruptIndex, "checksum"},
		{"short index", func(t *testing.T, o *MapOutput) int {
			fi, _ := os.Stat(o.IndexPath)
			os.Truncate(o.IndexPath, fi.Size()-24)
			return -1
		}, ErrCorruptSegment, "bytes for"},
		{"missing data file", func(t *testing.T, o *MapOutput) int {
			os.Remove(o.DataPath)
			return -1
		}, ErrMapOutputNotFound, "no such file"},
		{"missing index", func(t *testing.T, o *MapOutput) int {
			os.Remove(o.IndexPath)
			return -1
		}, ErrMapOutputNotFound, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			data := randomRecords(rng, 3000, false)
			outs, _ := mapSplits(t, rng, dir, data, 7, 5)
			victim := outs[4]
			if victim.Records == 0 {
				t.Fatal("the victim map output is empty")
			}
			if c.name == "short data file" {
				c.contains = fmt.Sprintf("is %d bytes, its index says %d", victim.Index.DataBytes()-RecordSize, victim.Index.DataBytes())
			}
			wantPart := c.damage(t, victim)
			before := dirNames(t, dir)
			task := mergeTask(dir, MergeOutputID(0, 1), mergeInputs(outs), 5)
			task.BlockSize, task.WriteBuffer = 7*RecordSize, 1000
			_, err := MergeOutputs(context.Background(), task)
			var ce *CorruptInputError
			if !errors.As(err, &ce) || ce.Input != victim.ID || ce.Partition != wantPart || !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("err = %v, want a *CorruptInputError for %s partition %d wrapping %v with %q", err, victim.ID, wantPart, c.wantErr, c.contains)
			}
			if !strings.Contains(err.Error(), victim.ID.String()) {
				t.Errorf("err = %v does not name %s", err, victim.ID)
			}
			if after := dirNames(t, dir); !slices.Equal(after, before) {
				t.Errorf("files after a failed merge: %v, before: %v", after, before)
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A cancelled merge (before it starts, or midway) leaves nothing behind.
func TestMergeOutputsCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 88))
	dir := t.TempDir()
	outs, _ := mapSplits(t, rng, dir, randomRecords(rng, 5000, false), 4, 6)
	before := dirNames(t, dir)
	for _, midway := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		task := mergeTask(dir, MergeOutputID(0, 1), mergeInputs(outs), 6)
		task.WriteBuffer = 1000
		var written int64
		if midway {
			task.Progress = func(n int64) {
				written += n
				cancel()
			}
		} else {
			cancel()
		}
		_, err := MergeOutputs(ctx, task)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("midway %v: err = %v, want context.Canceled", midway, err)
		}
		if midway && written == 0 {
			t.Fatal("the merge was cancelled before it wrote anything")
		}
		if after := dirNames(t, dir); !slices.Equal(after, before) {
			t.Errorf("midway %v: files after a cancelled merge: %v, before: %v", midway, after, before)
		}
	}
}

// Bad tasks are refused with what is wrong, and an existing output is not
// touched.
func TestMergeOutputsRefusesBadTasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 22))
	dir := t.TempDir()
	outs, _ := mapSplits(t, rng, dir, randomRecords(rng, 100, false), 2, 3)
	ins := mergeInputs(outs)
	good := mergeTask(dir, MergeOutputID(0, 1), ins, 3)
	many := make([]MergeInput, MaxMergeInputs+1)
	for i := range many {
		many[i] = MergeInput{ID: MapOutputID(i, 1), DataPath: "d", IndexPath: "i"}
	}
	for _, c := range []struct {
		change func(*MergeTask)
		msg    string
	}{
		{func(t *MergeTask) { t.Inputs = nil }, "merge of 0 inputs"},
		{func(t *MergeTask) { t.Inputs = many }, "merge of 1025 inputs: want 1 to 1024"},
		{func(t *MergeTask) { t.Partitions = 0 }, "merge of 0 partitions"},
		{func(t *MergeTask) { t.Inputs = []MergeInput{ins[0], ins[0]} }, "inputs 0 and 1 are both map 0 attempt 1"},
		{func(t *MergeTask) { t.Inputs = []MergeInput{{ID: MapOutputID(0, 0), DataPath: "d", IndexPath: "i"}} }, "attempt 0 out of range"},
		{func(t *MergeTask) { t.IndexPath = t.DataPath }, "two different files"},
		{func(t *MergeTask) { t.DataPath = ins[0].DataPath }, "exists"},
		{func(t *MergeTask) { t.Partitions = 4 }, "has 3 partitions, the merge has 4"},
	} {
		task := good
		c.change(&task)
		before := dirNames(t, dir)
		if _, err := MergeOutputs(context.Background(), task); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("err = %v, want one with %q", err, c.msg)
		}
		if after := dirNames(t, dir); !slices.Equal(after, before) {
			t.Errorf("files after a refused merge: %v, before: %v", after, before)
		}
	}
	if _, err := ReadIndex(ins[0].IndexPath); err != nil {
		t.Fatalf("an input was damaged: %v", err)
	}
}

// A reduce reading merged outputs, from local files or through the shuffle
// service, gives the same partition as one reading the map outputs.
func TestReduceMergedOutputs(t *testing.T) {
	root := t.TempDir()
	const job = "job-merged"
	dir := filepath.Join(root, job)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	rng := rand.New(rand.NewPCG(12, 34))
	data := randomRecords(rng, 4000, true)
	const parts = 6
	outs, _ := mapSplits(t, rng, dir, data, 7, parts)
	// Maps 0-3 into merge 0, maps 4-6 into merge 1.
	var merged []*MapOutput
	for g, group := range [][]*MapOutput{outs[:4], outs[4:]} {
		id := MergeOutputID(g, 1)
		task := mergeTask(dir, id, mergeInputs(group), parts)
		task.BlockSize = 13 * RecordSize
		idx, err := MergeOutputs(context.Background(), task)
		if err != nil {
			t.Fatal(err)
		}
		merged = append(merged, &MapOutput{ID: id, DataPath: task.DataPath, IndexPath: task.IndexPath, Index: idx})
	}
	reduce := func(name string, part int, ins []ReduceInput) []byte {
		t.Helper()
		out := filepath.Join(root, fmt.Sprintf("%s-%d", name, part))
		if _, err := Reduce(context.Background(), ReduceTask{Partition: part, Inputs: ins, Output: out, BlockSize: 11 * RecordSize, Fetcher: f}); err != nil {
			t.Fatalf("%s partition %d: %v", name, part, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var all []byte
	for p := range parts {
		var direct, local, remote, remoteUnknown []ReduceInput
		for _, o := range outs {
			direct = append(direct, ReduceInput{Output: o.ID, Path: o.DataPath, Segment: o.Index.Segments[p]})
		}
		for _, o := range merged {
			seg := o.Index.Segments[p]
			local = append(local, ReduceInput{Output: o.ID, Path: o.DataPath, Segment: seg})
			remote = append(remote, ReduceInput{Output: o.ID, Addr: ts.addr, Job: job, Segment: seg})
			remoteUnknown = append(remoteUnknown, ReduceInput{Output: o.ID, Addr: ts.addr, Job: job})
		}
		want := reduce("direct", p, direct)
		for name, ins := range map[string][]ReduceInput{"local": local, "remote": remote, "remote-unknown": remoteUnknown} {
			if got := reduce(name, p, ins); !bytes.Equal(got, want) {
				t.Fatalf("partition %d: the reduce of the %s merged outputs (%d bytes) differs from the reduce of the map outputs (%d bytes)", p, name, len(got), len(want))
			}
		}
		all = append(all, want...)
	}
	if !bytes.Equal(all, reference(data)) {
		t.Fatal("the partitions are not the stable sort of the input")
	}

	// A merged segment whose bytes are damaged fails the reduce naming the
	// merge output, remote or local.
	p := 0
	for i, s := range merged[1].Index.Segments {
		if s.Length > merged[1].Index.Segments[p].Length {
			p = i
		}
	}
	seg := merged[1].Index.Segments[p]
	flipByte(t, merged[1].DataPath, seg.Offset+seg.Length/2)
	out := filepath.Join(root, "corrupt")
	_, err := Reduce(context.Background(), ReduceTask{Partition: p, Inputs: []ReduceInput{
		{Output: merged[0].ID, Addr: ts.addr, Job: job},
		{Output: merged[1].ID, Addr: ts.addr, Job: job},
	}, Output: out, Fetcher: f})
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Output != merged[1].ID || !errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("remote: err = %v, want a *FetchError for %s wrapping ErrCorruptSegment", err, merged[1].ID)
	}
	_, err = Reduce(context.Background(), ReduceTask{Partition: p, Inputs: []ReduceInput{
		{Output: merged[1].ID, Path: merged[1].DataPath, Segment: seg},
	}, Output: out})
	if !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), "merge 1 attempt 1 segment") {
		t.Fatalf("local: err = %v, want ErrCorruptSegment naming merge 1 attempt 1", err)
	}
}
