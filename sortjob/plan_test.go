package sortjob

import (
	"bytes"
	"strings"
	"testing"
)

// mergeFigures are the consolidation numbers of a plan.
type mergeFigures struct {
	maps, partitions, group, mergesPerNode int
	segments, maxSegments, segmentBytes    int64
	passes                                 int
}

func figures(p *Plan) mergeFigures {
	return mergeFigures{p.MapCount, p.Partitions, p.MergeGroup, p.MergesPerNode(),
		p.SegmentsPerReduce(), p.MaxSegmentsPerReduce(), p.SegmentBytes(), p.ReducePasses}
}

// The 100 TB dry run on 200 nodes: a node's 3,726 map outputs are
// merged in 4 groups of 932, so a reduce reads 800 segments of 1.25 MB (at
// most 999 with remainder merges) instead of 745,200 of 1.34 kB. With the
// default budget of any machine the segments stay at least 1 MB.
func TestPlanMerge100TB(t *testing.T) {
	c := Cluster{Nodes: 200, CoresPerNode: 2}
	p, err := MakePlan(Spec{Records: 1e12, Memory: 4 << 30}, c)
	if err != nil {
		t.Fatal(err)
	}
	want := mergeFigures{maps: 745_200, partitions: 100_000, group: 932, mergesPerNode: 4,
		segments: 800, maxSegments: 999, segmentBytes: 1_250_000, passes: 1}
	if got := figures(p); got != want {
		t.Fatalf("100 TB on 200 nodes: %+v, want %+v", got, want)
	}
	// Two read-ahead blocks per merge input and the write buffers fit the
	// budget of a worker.
	perWorker := (p.Memory - min(reserve, p.Memory/4)) / int64(c.CoresPerNode)
	if need := int64(p.MergeGroup)*2*int64(p.MergeBlock) + 3*int64(p.ReduceWriteBuffer); need > perWorker {
		t.Fatalf("a merge of %d inputs with %d-byte blocks needs %d bytes, more than the %d of a worker", p.MergeGroup, p.MergeBlock, need, perWorker)
	}
	if p.MergeBlock%RecordSize != 0 || p.MergeBlock < minBlock || p.MergeBlock > maxBlock {
		t.Fatalf("merge block of %d bytes", p.MergeBlock)
	}
	// Two merges of 932 map outputs of 134 MB run at once on a node.
	if want := int64(2 * 932 * 134_192_164); p.MergeOutputPerNode != want {
		t.Fatalf("merge output per node %d, want %d", p.MergeOutputPerNode, want)
	}
	def, err := MakePlan(Spec{Records: 1e12}, c)
	if err != nil {
		t.Fatal(err)
	}
	if def.MergeGroup == 0 || def.SegmentBytes() < 1_000_000 {
		t.Fatalf("100 TB with the default budget of %d bytes: merge group %d, segments of %d bytes per reduce; want at least 1 MB", def.Memory, def.MergeGroup, def.SegmentBytes())
	}
}

// The default 1 GB plan on one node (and the 1 GB cluster bench on three)
// has map segments of several MB: nothing is merged, the path stays as it
// was.
func TestPlanNoMergeWhenSegmentsAreLarge(t *testing.T) {
	for _, c := range []struct {
		cluster Cluster
		want    mergeFigures
	}{
		{Cluster{Nodes: 1, CoresPerNode: 2}, mergeFigures{maps: 8, partitions: 4, segments: 8, maxSegments: 8, segmentBytes: 31_250_000, passes: 1}},
		{Cluster{Nodes: 3, CoresPerNode: 2}, mergeFigures{maps: 12, partitions: 12, segments: 12, maxSegments: 12, segmentBytes: 6_944_444, passes: 1}},
	} {
		p, err := MakePlan(Spec{Records: 1e7, Memory: 4 << 30}, c.cluster)
		if err != nil {
			t.Fatal(err)
		}
		if got := figures(p); got != c.want || p.MergeBlock != 0 || p.MergeOutputPerNode != 0 {
			t.Fatalf("1 GB on %+v: %+v, merge block %d; want %+v and no merge", c.cluster, got, p.MergeBlock, c.want)
		}
	}
	// At most one map per node: nothing to gain.
	p, err := MakePlan(Spec{Records: 1000, Maps: 3, Partitions: 100}, Cluster{Nodes: 3, CoresPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.MergeGroup != 0 {
		t.Fatalf("3 maps on 3 nodes: merge group %d", p.MergeGroup)
	}
}

// The many-tasks run: 10 GB in exactly 2,000 maps and 1,000
// partitions on 3 nodes × 2 cores. A node's 667 map outputs merge into one,
// so a reduce reads 3 segments of 3.33 MB (at most 5) instead of 2,000 of
// 5 kB.
func TestPlanMergeManyTasks(t *testing.T) {
	p, err := MakePlan(Spec{Records: 1e8, Maps: 2000, Partitions: 1000, Memory: 4 << 30}, Cluster{Nodes: 3, CoresPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Three merges a node, so that two run while its maps do: each
	// merged segment is still over 1 MB.
	want := mergeFigures{maps: 2000, partitions: 1000, group: 223, mergesPerNode: 3,
		segments: 9, maxSegments: 11, segmentBytes: 1_111_111, passes: 1}
	if got := figures(p); got != want {
		t.Fatalf("10 GB in 2000 maps × 1000 partitions on 3 nodes: %+v, want %+v", got, want)
	}
	// A reduce that reads the 2000 map outputs unmerged opens MaxFanIn
	// (1024) at once with smaller blocks.
	if b := p.BlockFor(p.MapCount); b != 1_028_000 || p.BlockFor(1) != 1_048_500 {
		t.Fatalf("BlockFor(2000) = %d, BlockFor(1) = %d", b, p.BlockFor(1))
	}
	// A node runs two merges at a time (one per worker), each writing 223
	// map outputs of 5 MB once more.
	if p.MergeOutputPerNode != 2*223*5_000_000 || p.MapOutputPerNode != 3_333_333_334 {
		t.Fatalf("merge output per node %d, map output per node %d", p.MergeOutputPerNode, p.MapOutputPerNode)
	}
	if s := p.Split(1999); s.Start+s.Records != p.Records || p.Split(0).Records != 50_000 {
		t.Fatalf("splits: first %+v, last %+v", p.Split(0), s)
	}
}

// The merge fan-in is MaxMergeFanIn, or less when the budget cannot hold
// two minimum blocks per input; a node with more outputs merges in several
// equal groups.
func TestPlanMergeGroups(t *testing.T) {
	for _, c := range []struct {
		name                     string
		maps, nodes              int64
		budget                   int64
		group                    int
		mergesPerNode, segsPerRd int64
	}{
		{"one group", 1000, 1, 4 << 30, 1000, 1, 1},
		{"fan-in limit", 1025, 1, 4 << 30, 513, 2, 2},
		{"two nodes", 4096, 2, 4 << 30, 1024, 2, 4},
		{"uneven", 3001, 2, 4 << 30, 751, 2, 4},
		{"small budget", 100, 1, 10 * minBlock, 5, 20, 20},
		{"no budget", 100, 1, -5, 2, 50, 50},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := mergeGroup(c.maps*100, c.maps, 1000, c.nodes, c.budget)
			p := &Plan{MapCount: int(c.maps), Cluster: Cluster{Nodes: int(c.nodes)}, MergeGroup: g}
			if g != c.group || int64(p.MergesPerNode()) != c.mergesPerNode || p.SegmentsPerReduce() != c.segsPerRd {
				t.Fatalf("%d maps on %d nodes, budget %d: group %d, %d merges per node, %d segments per reduce; want %d, %d, %d",
					c.maps, c.nodes, c.budget, g, p.MergesPerNode(), p.SegmentsPerReduce(), c.group, c.mergesPerNode, c.segsPerRd)
			}
		})
	}
}

// Blocks are whole records within 64 KiB and 1 MiB.
func TestBlockFor(t *testing.T) {
	for _, c := range []struct {
		budget int64
		inputs int
		want   int
	}{
		{4 << 30, 1, 1_048_500},
		{4 << 30, 512, 1_048_500},
		{1 << 30, 1000, 536_800},
		{1 << 20, 1000, 65_600},
		{-1, 0, 65_600},
	} {
		if got := blockFor(c.budget, c.inputs); got != c.want {
			t.Errorf("blockFor(%d, %d) = %d, want %d", c.budget, c.inputs, got, c.want)
		}
	}
}

// The dry run reports the segments a reduce reads after consolidation and
// the merge, and warns about small segments only when the consolidated
// ones are small.
func TestPlanTextMerge(t *testing.T) {
	text := func(spec Spec, c Cluster) string {
		t.Helper()
		p, err := MakePlan(spec, c)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		p.WriteText(&b, Rate{})
		return b.String()
	}
	big := text(Spec{Records: 1e12, Memory: 4 << 30}, Cluster{Nodes: 200, CoresPerNode: 2})
	for _, want := range []string{
		"800 segments of ~1.25 MB per reduce, 1 merge pass(es)",
		"every 932 map outputs on a node merge into one: 4 merge(s) per node, 800 in all, fan-in 932",
		"instead of 745200 of ~1.34 kB (up to 999",
		"map tasks        745200 (3726 per node",
		"disk needed      1.00 TB per node (map output + output; input is generated in memory), and up to 250 GB more while merges run",
	} {
		if !strings.Contains(big, want) {
			t.Errorf("100 TB plan does not say %q:\n%s", want, big)
		}
	}
	if strings.Contains(big, "warning") {
		t.Errorf("100 TB plan warns:\n%s", big)
	}
	small := text(Spec{Records: 1e7, Memory: 4 << 30}, Cluster{Nodes: 1, CoresPerNode: 2})
	if !strings.Contains(small, "shuffle merge    none (map segments of ~31.2 MB are at least 1.00 MB)") || strings.Contains(small, "warning") {
		t.Errorf("1 GB plan:\n%s", small)
	}
	// 1 GB in 10,000 partitions: even merged, a segment is 50 kB.
	seeky := text(Spec{Records: 1e7, Memory: 4 << 30, Partitions: 10_000}, Cluster{Nodes: 2, CoresPerNode: 2})
	if !strings.Contains(seeky, "warning          segments of 50.0 kB (after consolidation) are small") {
		t.Errorf("1 GB plan in 10,000 partitions does not warn:\n%s", seeky)
	}
}
