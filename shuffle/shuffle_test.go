package shuffle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// randomRecords makes n records. With dupKeys, keys come from a small set so
// that many are equal (and ties must keep input order).
func randomRecords(rng *rand.Rand, n int, dupKeys bool) []byte {
	b := make([]byte, n*RecordSize)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for i := 0; i < n; i++ {
		rec := b[i*RecordSize:]
		if dupKeys {
			copy(rec[:KeySize], fmt.Sprintf("k%09d", rng.IntN(7)))
		}
		// Tag every record with its input position so order among equal
		// keys is checked too.
		copy(rec[KeySize:], fmt.Sprintf("%08d", i))
	}
	return b
}

// reference sorts records stably by key, the order a correct shuffle gives.
func reference(data []byte) []byte {
	n := len(data) / RecordSize
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = data[i*RecordSize : (i+1)*RecordSize]
	}
	slices.SortStableFunc(recs, CompareKeys)
	return bytes.Join(recs, nil)
}

type shuffleConfig struct {
	records, maps, parts, sortBuf, fanIn, block int
	dup, direct                                 bool
	// input, if set, makes the reduce input of map output o for partition
	// part (to fetch some inputs from a shuffle service).
	input   func(o *MapOutput, part int) ReduceInput
	fetcher *Fetcher
}

// runShuffle partitions data into cfg.maps splits, maps and reduces them in
// dir, and returns the concatenated reduce outputs.
func runShuffle(t *testing.T, dir string, data []byte, cfg shuffleConfig, samples [][]byte) []byte {
	t.Helper()
	ctx := context.Background()
	p, err := NewPartitioner(samples, cfg.parts)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMapper(MapperConfig{SortBuffer: cfg.sortBuf, WriteBuffer: 1000 + cfg.block, BlockSize: cfg.block})
	defer m.Close()
	n := len(data) / RecordSize
	var outs []*MapOutput
	for i := 0; i < cfg.maps; i++ {
		lo, hi := n*i/cfg.maps, n*(i+1)/cfg.maps
		out, err := m.Map(ctx, MapTask{ID: i, Attempt: 1, Input: bytes.NewReader(data[lo*RecordSize : hi*RecordSize]), Partitioner: p, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if out.Records != int64(hi-lo) {
			t.Fatalf("map %d: %d records, want %d", i, out.Records, hi-lo)
		}
		if len(out.Index.Segments) != cfg.parts {
			t.Fatalf("map %d: %d segments, want %d", i, len(out.Index.Segments), cfg.parts)
		}
		idx, err := ReadIndex(out.IndexPath)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(idx.Segments, out.Index.Segments) {
			t.Fatalf("map %d: index file %v, returned %v", i, idx.Segments, out.Index.Segments)
		}
		outs = append(outs, out)
	}
	var all []byte
	for r := 0; r < cfg.parts; r++ {
		var ins []ReduceInput
		for _, o := range outs {
			in := ReduceInput{Output: o.ID, Path: o.DataPath, Segment: o.Index.Segments[r]}
			if cfg.input != nil {
				in = cfg.input(o, r)
			}
			ins = append(ins, in)
		}
		path := filepath.Join(dir, fmt.Sprintf("part-%05d", r))
		if _, err := Reduce(ctx, ReduceTask{Partition: r, Inputs: ins, Output: path, BlockSize: cfg.block, WriteBuffer: 1000 + cfg.block, MaxFanIn: cfg.fanIn, Direct: cfg.direct, Fetcher: cfg.fetcher}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+RecordSize <= len(b); i += RecordSize {
			if got := p.Partition(b[i:]); got != r {
				t.Fatalf("partition %d holds a key of partition %d", r, got)
			}
		}
		all = append(all, b...)
	}
	return all
}

func TestShuffleMatchesReference(t *testing.T) {
	for trial := 0; trial < 40; trial++ {
		seed := uint64(trial)*7919 + 1
		rng := rand.New(rand.NewPCG(seed, 42))
		cfg := shuffleConfig{
			records: rng.IntN(3000),
			maps:    1 + rng.IntN(6),
			parts:   1 + rng.IntN(9),
			sortBuf: (1 + rng.IntN(800)) * RecordSize,
			fanIn:   2 + rng.IntN(5),
			block:   (1 + rng.IntN(50)) * RecordSize,
			dup:     rng.IntN(3) == 0,
			direct:  rng.IntN(2) == 0,
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			data := randomRecords(rng, cfg.records, cfg.dup)
			var samples [][]byte
			for i := 0; i < min(cfg.records, 100); i++ {
				j := rng.IntN(cfg.records)
				samples = append(samples, data[j*RecordSize:j*RecordSize+KeySize])
			}
			got := runShuffle(t, t.TempDir(), data, cfg, samples)
			if want := reference(data); !bytes.Equal(got, want) {
				t.Fatalf("config %+v: output differs from the stable sort of the input (%d vs %d bytes)", cfg, len(got), len(want))
			}
		})
	}
}

// The same input gives identical output whatever the spill threshold, map
// count, partition count and fan-in.
func TestShuffleConfigurationsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	data := randomRecords(rng, 4000, false)
	var samples [][]byte
	for i := 0; i < 4000; i += 37 {
		samples = append(samples, data[i*RecordSize:])
	}
	var first []byte
	for _, cfg := range []shuffleConfig{
		{maps: 1, parts: 1, sortBuf: 4000 * RecordSize, fanIn: 512, block: 1 << 20},
		{maps: 4, parts: 7, sortBuf: 97 * RecordSize, fanIn: 2, block: 300},
		{maps: 9, parts: 2, sortBuf: 1000 * RecordSize, fanIn: 3, block: 64 * RecordSize},
		{maps: 2, parts: 16, sortBuf: RecordSize, fanIn: 512, block: RecordSize},
		{maps: 3, parts: 3, sortBuf: 500 * RecordSize, fanIn: 512, block: 1 << 20, direct: true},
	} {
		got := runShuffle(t, t.TempDir(), data, cfg, samples)
		if first == nil {
			first = got
			if !bytes.Equal(got, reference(data)) {
				t.Fatal("output is not the sorted input")
			}
		} else if !bytes.Equal(got, first) {
			t.Fatalf("config %+v gives a different output", cfg)
		}
	}
}

func TestMapSpillsAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	data := randomRecords(rng, 1000, false)
	p, _ := NewPartitioner([][]byte{data[:KeySize]}, 2)
	m := NewMapper(MapperConfig{SortBuffer: 64 * RecordSize})
	out, err := m.Map(context.Background(), MapTask{ID: 3, Attempt: 1, Input: bytes.NewReader(data), Partitioner: p, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if out.Spills != 16 {
		t.Errorf("spills = %d, want 16 runs of 64 records for 1000 records", out.Spills)
	}
	names := dirNames(t, dir)
	if want := []string{OutputDataName(MapOutputID(3, 1)), OutputIndexName(MapOutputID(3, 1))}; !slices.Equal(names, want) {
		t.Errorf("files left: %v, want %v", names, want)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestMapPartialRecord(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 5*RecordSize+37)
	m := NewMapper(MapperConfig{SortBuffer: 2 * RecordSize})
	_, err := m.Map(context.Background(), MapTask{ID: 1, Attempt: 1, Input: bytes.NewReader(data), Partitioner: &Partitioner{}, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "partial record: 37 bytes after record 5") {
		t.Fatalf("err = %v, want a partial-record error naming 37 bytes after record 5", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after a failed map: %v", names)
	}
}

func TestReduceDetectsCorruptAndShortSegments(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	data := randomRecords(rng, 500, false)
	m := NewMapper(MapperConfig{})
	out, err := m.Map(context.Background(), MapTask{ID: 0, Attempt: 1, Input: bytes.NewReader(data), Partitioner: &Partitioner{}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	seg := out.Index.Segments[0]
	in := []ReduceInput{{Output: MapOutputID(0, 1), Path: out.DataPath, Segment: seg}}

	// Flip one byte: the checksum catches it and no output is left.
	f, _ := os.OpenFile(out.DataPath, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff ^ data[0]}, 12345)
	f.Close()
	outPath := filepath.Join(dir, "part-00000")
	_, err = Reduce(context.Background(), ReduceTask{Inputs: in, Output: outPath})
	if !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("corrupt byte: err = %v, want ErrCorruptSegment with CRC32C", err)
	}
	if _, serr := os.Stat(outPath); !os.IsNotExist(serr) {
		t.Fatalf("output left after a failed reduce: %v", serr)
	}

	// Truncate: the length check catches it.
	os.Truncate(out.DataPath, 20000)
	_, err = Reduce(context.Background(), ReduceTask{Inputs: in, Output: outPath})
	if !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), "ends at byte 20000") {
		t.Fatalf("short file: err = %v, want ErrCorruptSegment naming byte 20000", err)
	}
	if _, serr := os.Stat(outPath); !os.IsNotExist(serr) {
		t.Fatalf("output left after a failed reduce: %v", serr)
	}
}

func TestReduceRefusesExistingOutput(t *testing.T) {
	dir := t.TempDir()
	outPath := filepath.Join(dir, "part-00000")
	os.WriteFile(outPath, []byte("keep me"), 0o644)
	if _, err := Reduce(context.Background(), ReduceTask{Output: outPath}); err == nil {
		t.Fatal("reduce overwrote an existing output")
	}
	if b, _ := os.ReadFile(outPath); string(b) != "keep me" {
		t.Fatalf("existing output changed to %q", b)
	}
}

func TestMapCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewMapper(MapperConfig{SortBuffer: 10 * RecordSize})
	_, err := m.Map(ctx, MapTask{Attempt: 1, Input: bytes.NewReader(make([]byte, 100*RecordSize)), Partitioner: &Partitioner{}, Dir: dir})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after a cancelled map: %v", names)
	}
}

func TestPartitioner(t *testing.T) {
	var samples [][]byte
	for i := 0; i < 100; i++ {
		samples = append(samples, []byte(fmt.Sprintf("key%07d", i)))
	}
	p, err := NewPartitioner(samples, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		want int
	}{
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0},
		{"key0000024", 0},
		{"key0000025", 1},
		{"key0000074", 2},
		{"key0000075", 3},
		{"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 3},
	} {
		if got := p.Partition([]byte(c.key)); got != c.want {
			t.Errorf("Partition(%q) = %d, want %d", c.key, got, c.want)
		}
	}
	b, _ := p.MarshalBinary()
	var q Partitioner
	if err := q.UnmarshalBinary(b); err != nil || !slices.Equal(q.Splits, p.Splits) {
		t.Fatalf("round trip: %v, %v", err, q.Splits)
	}
	if _, err := NewPartitioner(nil, 0); err == nil {
		t.Error("0 partitions accepted")
	}
	if _, err := NewPartitioner([][]byte{[]byte("short")}, 2); err == nil {
		t.Error("a 5-byte sample accepted")
	}
}

func TestIndexRoundTripAndCorruption(t *testing.T) {
	x := &Index{Segments: []SegmentInfo{{0, 300, 1}, {300, 0, 0}, {300, 1000, 0xdeadbeef}}}
	b, _ := x.MarshalBinary()
	var y Index
	if err := y.UnmarshalBinary(b); err != nil || !slices.Equal(x.Segments, y.Segments) {
		t.Fatalf("round trip: %v %v", err, y.Segments)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if err := y.UnmarshalBinary(c); !errors.Is(err, ErrCorruptIndex) {
			t.Fatalf("flipped byte %d accepted: %v", i, err)
		}
	}
	if err := y.UnmarshalBinary(b[:len(b)-1]); !errors.Is(err, ErrCorruptIndex) {
		t.Fatalf("truncated index accepted: %v", err)
	}
}

func FuzzIndexUnmarshal(f *testing.F) {
	b, _ := (&Index{Segments: []SegmentInfo{{0, 100, 7}, {100, 200, 9}}}).MarshalBinary()
	f.Add(b)
	f.Add([]byte(indexMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Index
		if err := x.UnmarshalBinary(b); err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes and is contiguous.
		c, _ := x.MarshalBinary()
		if !bytes.Equal(b, c) {
			t.Fatalf("decode/encode changed the index")
		}
		var off int64
		for _, s := range x.Segments {
			if s.Offset != off || s.Length%RecordSize != 0 {
				t.Fatalf("accepted a bad segment %+v", s)
			}
			off += s.Length
		}
	})
}

// FuzzMapRecords feeds arbitrary bytes to a map task: whole records are sorted
// (checked against the reference), a partial one is an error, nothing panics.
func FuzzMapRecords(f *testing.F) {
	f.Add([]byte("0123456789"), uint16(3))
	f.Add(bytes.Repeat([]byte{7}, 250), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, sortRecs uint16) {
		dir := t.TempDir()
		m := NewMapper(MapperConfig{SortBuffer: int(sortRecs%16+1) * RecordSize, WriteBuffer: 1000})
		p := &Partitioner{}
		if len(data) >= KeySize {
			p.Splits = []Key{Key(data[:KeySize])}
		}
		out, err := m.Map(context.Background(), MapTask{Attempt: 1, Input: bytes.NewReader(data), Partitioner: p, Dir: dir})
		if len(data)%RecordSize != 0 {
			if err == nil {
				t.Fatal("partial record accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out.DataPath)
		if !bytes.Equal(got, reference(data)) {
			t.Fatal("map output is not the sorted input")
		}
	})
}
