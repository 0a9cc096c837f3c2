package shuffle

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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
			out, err := m.Map(context.Background(), MapTask{ID: i, Input: bytes.NewReader(data[i*n/4*RecordSize : (i+1)*n/4*RecordSize]), Partitioner: p, Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			outs = append(outs, out)
		}
		for r := 0; r < 4; r++ {
			var ins []ReduceInput
			for _, o := range outs {
				ins = append(ins, ReduceInput{Map: o.Map, Path: o.DataPath, Segment: o.Index.Segments[r]})
			}
			if _, err := Reduce(context.Background(), ReduceTask{Partition: r, Inputs: ins, Output: filepath.Join(dir, fmt.Sprint(r))}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
