package shuffle

import (
	"bytes"
	"context"
	"engine/internal/pki"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkSortRecords(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	data := randomRecords(rng, 1_000_000, false)
	ents := make([]entry, 1_000_000)
	counts := make([]int, radixBuckets+1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sortRecords(data, ents, counts)
	}
	b.ReportMetric(float64(b.N)*1e6/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkMapReduce maps 100 MB in 4 splits into 4 partitions and reduces
// them, through real files.
func BenchmarkMapReduce(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 1_000_000
	data := randomRecords(rng, n, false)
	var samples [][]byte
	for i := 0; i < n; i += 1000 {
		samples = append(samples, data[i*RecordSize:])
	}
	p, _ := NewPartitioner(samples, 4)
	m := NewMapper(MapperConfig{SortBuffer: 32 << 20})
	defer m.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		dir := b.TempDir()
		var outs []*MapOutput
		for i := 0; i < 4; i++ {
			out, err := m.Map(context.Background(), MapTask{ID: i, Attempt: 1, Input: bytes.NewReader(data[i*n/4*RecordSize : (i+1)*n/4*RecordSize]), Partitioner: p, Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			outs = append(outs, out)
		}
		for r := 0; r < 4; r++ {
			var ins []ReduceInput
			for _, o := range outs {
				ins = append(ins, ReduceInput{Output: o.ID, Path: o.DataPath, Segment: o.Index.Segments[r]})
			}
			if _, err := Reduce(context.Background(), ReduceTask{Partition: r, Inputs: ins, Output: filepath.Join(dir, fmt.Sprint(r))}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFetch reads one 100 MB segment that is in the page cache: from
// the shuffle service over loopback (sendfile on the server; read-ahead,
// block assembly and CRC32C on the client), and for comparison from the
// local file with the reduce's local reader.
func BenchmarkFetch(b *testing.B) {
	const size = 1_000_000 * RecordSize
	root := b.TempDir()
	seg := writeRawOutput(b, filepath.Join(root, "bench"), 0, size)
	dataPath := filepath.Join(root, "bench", OutputDataName(MapOutputID(0, 1)))
	ts := startServer(b, DirLocator(root))
	f := testFetcher(b)
	run := func(b *testing.B, open func() (blockSource, error)) {
		for b.Loop() {
			src, err := open()
			if err != nil {
				b.Fatal(err)
			}
			var n int64
			for {
				blk, err := src.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(blk))
			}
			src.close()
			if n != size {
				b.Fatalf("read %d bytes, want %d", n, size)
			}
		}
		b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	}
	b.Run("remote", func(b *testing.B) {
		run(b, func() (blockSource, error) {
			return openRemoteSegment(context.Background(), f, ReduceInput{Output: MapOutputID(0, 1), Addr: ts.addr, Job: "bench", Segment: seg}, 0, 1<<20), nil
		})
	})
	// The same over mutual TLS, as between cluster nodes (the server then
	// copies through user space: no sendfile into TLS).
	id, _, _, err := pki.Bootstrap("bench", []string{"127.0.0.1"}, "")
	if err != nil {
		b.Fatal(err)
	}
	tts := startTLSServer(b, DirLocator(root), id.ServerConfig())
	tf := testFetcher(b)
	tf.TLS = id.ClientConfig()
	b.Run("remote-tls", func(b *testing.B) {
		run(b, func() (blockSource, error) {
			return openRemoteSegment(context.Background(), tf, ReduceInput{Output: MapOutputID(0, 1), Addr: tts.addr, Job: "bench", Segment: seg}, 0, 1<<20), nil
		})
	})
	b.Run("local", func(b *testing.B) {
		run(b, func() (blockSource, error) { return openSegment(dataPath, seg, 1<<20, "bench") })
	})
}

// BenchmarkMergeOutputs merges 16 map outputs of 6.25 MB each (100 MB in
// all, in the page cache) over 1,000 partitions into one output.
func BenchmarkMergeOutputs(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n, maps, parts = 1_000_000, 16, 1000
	data := randomRecords(rng, n, false)
	var samples [][]byte
	for i := 0; i < n; i += 100 {
		samples = append(samples, data[i*RecordSize:])
	}
	p, _ := NewPartitioner(samples, parts)
	m := NewMapper(MapperConfig{SortBuffer: 8 << 20})
	defer m.Close()
	dir := b.TempDir()
	var ins []MergeInput
	for i := range maps {
		out, err := m.Map(context.Background(), MapTask{ID: i, Attempt: 1, Input: bytes.NewReader(data[i*n/maps*RecordSize : (i+1)*n/maps*RecordSize]), Partitioner: p, Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		ins = append(ins, MergeInput{ID: out.ID, DataPath: out.DataPath, IndexPath: out.IndexPath})
	}
	b.SetBytes(int64(len(data)))
	attempt := 0
	for b.Loop() {
		attempt++
		task := MergeTask{Inputs: ins, Partitions: parts,
			DataPath:  filepath.Join(dir, OutputDataName(MergeOutputID(0, attempt))),
			IndexPath: filepath.Join(dir, OutputIndexName(MergeOutputID(0, attempt)))}
		if _, err := MergeOutputs(context.Background(), task); err != nil {
			b.Fatal(err)
		}
		os.Remove(task.DataPath)
		os.Remove(task.IndexPath)
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}
