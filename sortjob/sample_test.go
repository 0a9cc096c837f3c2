package sortjob

import (
	"math/rand/v2"
	"testing"

	"engine/gensort"
	"engine/shuffle"
)

// The sampled partitioner at scale: a 100 GB plan of gensort -s records
// (skewed keys) in 2,000 partitions. Two million records drawn from the
// whole input, independently of the sample, land within 1.5x of the mean
// in every partition, while partitions of equal key ranges would differ
// many times over.
func TestSampleBalancesSkewAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 2 million skewed records")
	}
	const parts = 2000
	p, err := MakePlan(Spec{Records: 1e9, Skew: true, Partitions: parts, Memory: 4 << 30}, Cluster{Nodes: 20, CoresPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	part, err := Sample(p)
	if err != nil {
		t.Fatal(err)
	}
	// Draw the test records in clusters of 100 at random positions.
	rng := rand.New(rand.NewPCG(7, 11))
	g := gensort.NewGenerator(0, gensort.Options{Skew: true})
	buf := make([]byte, 100*RecordSize)
	sampled := make([]int, parts)
	ranged := make([]int, parts)
	const draws = 20_000
	for range draws {
		g.Seek(rng.Uint64N(uint64(p.Records) - 100))
		g.Fill(buf)
		for i := 0; i < len(buf); i += RecordSize {
			key := buf[i : i+gensort.KeySize]
			sampled[part.Partition(key)]++
			// Equal key ranges: the first two key bytes.
			ranged[(int(key[0])<<8|int(key[1]))*parts>>16]++
		}
	}
	mean := float64(draws*100) / parts
	spread := func(counts []int) (lo, hi float64) {
		lo, hi = float64(counts[0]), float64(counts[0])
		for _, c := range counts {
			lo, hi = min(lo, float64(c)), max(hi, float64(c))
		}
		return lo / mean, hi / mean
	}
	lo, hi := spread(sampled)
	rlo, rhi := spread(ranged)
	t.Logf("%d samples for %d partitions: partitions of %.2f-%.2fx the mean record count; equal key ranges would give %.2f-%.2fx", min(p.Records, SamplesPerPartition*parts, MaxSamples), parts, lo, hi, rlo, rhi)
	if hi > 1.5 || lo < 0.5 {
		t.Errorf("sampled partitions hold %.2f-%.2fx the mean: want within 0.5-1.5x", lo, hi)
	}
	if rhi < 3 {
		t.Errorf("equal key ranges hold at most %.2fx the mean: the input is not skewed, so this test shows nothing", rhi)
	}
	// The partitioner is what a job replicates: it round-trips.
	b, _ := part.MarshalBinary()
	var back shuffle.Partitioner
	if err := back.UnmarshalBinary(b); err != nil || back.Partitions() != parts {
		t.Fatalf("partitioner round trip: %v, %d partitions", err, back.Partitions())
	}
}
