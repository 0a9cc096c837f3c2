package sortjob

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// FuzzMakePlan plans generated input for any numbers a request can carry:
// MakePlan never panics, and it either refuses the spec with an error of
// this package or makes a plan that passes the Validate every node applies
// and whose invariants hold.
func FuzzMakePlan(f *testing.F) {
	f.Add(int64(1e7), 0, int64(0), int64(0), 0, 1, 2)                   // the default 1 GB
	f.Add(int64(1e12), 0, int64(0), int64(4<<30), 0, 200, 2)            // 100 TB on 200 nodes
	f.Add(int64(1e8), 1000, int64(0), int64(4<<30), 2000, 3, 2)         // the many-tasks run
	f.Add(int64(1e14), 1_000_000, int64(20e9), int64(4<<30), 0, 200, 2) // 10 PB
	f.Add(int64(math.MaxInt64), math.MaxInt, int64(math.MaxInt64), int64(math.MaxInt64), math.MaxInt, math.MaxInt, math.MaxInt)
	f.Add(int64(math.MinInt64), math.MinInt, int64(math.MinInt64), int64(math.MinInt64), math.MinInt, math.MinInt, math.MinInt)
	f.Add(int64(1), 1, int64(1), int64(16<<20), 1, 10_000, 4096)
	f.Fuzz(func(t *testing.T, records int64, partitions int, mapSplit, memory int64, maps, nodes, cores int) {
		spec := Spec{Records: records, Partitions: partitions, MapSplit: mapSplit, Memory: memory, Maps: maps}
		p, err := MakePlan(spec, Cluster{Nodes: nodes, CoresPerNode: cores})
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "sortjob: ") && !strings.HasPrefix(msg, "sort: ") {
				t.Fatalf("error without the package name: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%+v on %d nodes × %d cores: the plan does not validate: %v", spec, nodes, cores, err)
		}
		checkPlan(t, spec, p)
		// The plan is replicated as JSON: what a node decodes validates too.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Plan
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("decoded plan: %v", err)
		}
		p.WriteText(io.Discard, Rate{BytesPerSecondPerCore: 1e8})
	})
}

// checkPlan checks what a plan of generated input promises beyond Validate.
func checkPlan(t *testing.T, spec Spec, p *Plan) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%+v on %+v: "+format, append([]any{spec, p.Cluster}, args...)...)
	}
	switch {
	case p.Records != spec.Records || p.Bytes != spec.Records*RecordSize:
		fail("%d records, %d bytes", p.Records, p.Bytes)
	case p.MapCount < 1 || int64(p.MapCount) > p.Records:
		fail("%d maps for %d records", p.MapCount, p.Records)
	case spec.Maps > 0 && p.MapCount != spec.Maps:
		fail("%d maps, asked %d", p.MapCount, spec.Maps)
	case p.Partitions < 1 || spec.Partitions > 0 && p.Partitions != spec.Partitions:
		fail("%d partitions", p.Partitions)
	case int64(p.MapCount)+int64(p.Partitions) > MaxTasks:
		fail("%d maps + %d partitions past MaxTasks", p.MapCount, p.Partitions)
	case p.MergeGroup < 0 || p.MergeGroup == 1 || p.MergeGroup > MaxMergeFanIn:
		fail("merge group %d", p.MergeGroup)
	case p.ReducePasses < 1:
		fail("%d reduce passes", p.ReducePasses)
	case p.SortBuffer < RecordSize || p.SortBuffer%RecordSize != 0:
		fail("sort buffer of %d bytes", p.SortBuffer)
	}
	segs, most := p.SegmentsPerReduce(), p.MaxSegmentsPerReduce()
	if segs < 1 || segs > most || most > int64(p.MapCount) || p.SegmentBytes() < 0 {
		fail("%d segments per reduce (at most %d) of %d bytes for %d maps", segs, most, p.SegmentBytes(), p.MapCount)
	}
	if p.MergeGroup == 0 && (segs != int64(p.MapCount) || p.MergesPerNode() != 0) {
		fail("no merging, yet %d segments per reduce and %d merges per node for %d maps", segs, p.MergesPerNode(), p.MapCount)
	}
	if p.MergeOutputPerNode < 0 || p.MergeOutputPerNode > p.MapOutputPerNode || p.MergeGroup == 0 && p.MergeOutputPerNode != 0 {
		fail("merge output per node %d, map output per node %d, merge group %d", p.MergeOutputPerNode, p.MapOutputPerNode, p.MergeGroup)
	}
	blocks := map[string]int{"block size": p.BlockSize}
	if p.MergeGroup > 0 {
		blocks["merge block"] = p.MergeBlock
	} else if p.MergeBlock != 0 {
		fail("merge block of %d bytes without merging", p.MergeBlock)
	}
	for name, b := range blocks {
		if b < minBlock || b > maxBlock || b%RecordSize != 0 {
			fail("%s of %d bytes", name, b)
		}
	}
	// The blocks are sized for the inputs a reduce (BlockFor) and a merge
	// task open at once, and two per input fit a worker's budget
	// whenever it can hold two of the smallest.
	budget := p.mergeBudget()
	wantMerge := min(blockFor(budget, p.MergeGroup), maxMergeBlock-maxMergeBlock%RecordSize)
	if p.BlockFor(int(most)) != p.BlockSize || p.MergeGroup > 0 && wantMerge != p.MergeBlock {
		fail("block %d, merge block %d; want %d and %d", p.BlockSize, p.MergeBlock, p.BlockFor(int(most)), wantMerge)
	}
	for _, in := range []struct{ inputs, block int64 }{{min(most, MaxFanIn), int64(p.BlockSize)}, {int64(p.MergeGroup), int64(p.MergeBlock)}} {
		if in.inputs > 0 && budget/(2*in.inputs) >= minBlock+RecordSize && 2*in.inputs*in.block > budget {
			fail("%d inputs of two %d-byte blocks need more than the budget of %d", in.inputs, in.block, budget)
		}
	}
	// The generated splits cover records 0..Records-1 in order, each at
	// most ceil(Records/MapCount) records (checked at the ends and the
	// middle: a plan may have millions).
	per := ceilDiv(p.Records, int64(p.MapCount))
	if int64(p.MapCount)*per < p.Records {
		fail("%d maps of at most %d records cannot hold %d", p.MapCount, per, p.Records)
	}
	last := p.MapCount - 1
	if first := p.Split(0); first.Start != 0 || first.ID != 0 {
		fail("first split %+v", first)
	}
	if end := p.Split(last); end.Start+end.Records != p.Records || end.ID != last {
		fail("last split %+v of %d records", end, p.Records)
	}
	for _, i := range []int{0, last / 2, max(last-1, 0)} {
		s := p.Split(i)
		if s.Records < 1 || s.Records > per {
			fail("split %d of %d records, want 1 to %d", i, s.Records, per)
		}
		if i < last {
			if next := p.Split(i + 1); next.Start != s.Start+s.Records {
				fail("split %d ends at %d, split %d starts at %d", i, s.Start+s.Records, i+1, next.Start)
			}
		}
	}
}

// TestMakePlanRandom checks the invariants of FuzzMakePlan on specs drawn
// where plans are made (log-uniform sizes within the limits), so that the
// normal test run covers merging, forced maps and refusals alike.
func TestMakePlanRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	logUniform := func(lo, hi float64) int64 {
		return int64(math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo))))
	}
	orZero := func(v int64) int64 {
		if rng.IntN(3) == 0 {
			return 0
		}
		return v
	}
	var planned, merged, refused int
	for range 5000 {
		records := logUniform(1, MaxRecords)
		spec := Spec{
			Records:    records,
			Partitions: int(orZero(logUniform(1, MaxPartitions))),
			Memory:     orZero(logUniform(1<<20, 1<<40)),
		}
		switch rng.IntN(3) {
		case 0:
			spec.Maps = int(logUniform(1, float64(min(records, MaxTasks))))
		case 1:
			spec.MapSplit = logUniform(1, 1e12)
		}
		cluster := Cluster{Nodes: int(logUniform(1, MaxNodes)), CoresPerNode: int(logUniform(1, MaxCoresPerNode))}
		p, err := MakePlan(spec, cluster)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "sortjob: ") && !strings.HasPrefix(msg, "sort: ") {
				t.Fatalf("seed %d: %+v on %+v: error without the package name: %v", seed, spec, cluster, err)
			}
			refused++
			continue
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("seed %d: %+v on %+v: the plan does not validate: %v", seed, spec, cluster, err)
		}
		checkPlan(t, spec, p)
		planned++
		if p.MergeGroup > 0 {
			merged++
		}
	}
	t.Logf("%d plans (%d merging), %d refused", planned, merged, refused)
	if planned < 500 || merged < 100 || refused < 100 {
		t.Fatalf("seed %d: %d plans (%d merging), %d refused: the draw misses a case", seed, planned, merged, refused)
	}
}
