package coordbench

import (
	"encoding/binary"
	"math/bits"

	"engine/shuffle"
	"engine/sortjob"
)

// The planner's consolidation rule (sortjob.mergeGroup on helper P's
// branch), kept here until sortjob.MakePlan sets Plan.MergeGroup itself.
const (
	mergeBelow    = 4_000_000 // map segment size under which outputs merge
	maxMergeFanIn = 1024
	minBlock      = 64 << 10
	planReserve   = 32 << 20
)

// mergeGroup returns how many map outputs of a node one merge task
// consolidates, or 0 for no merging: when a map's segment for one reduce
// (bytes/maps/partitions) is at least mergeBelow, or when no node runs more
// than one map. Otherwise a node's m = ceil(maps/nodes) outputs merge in
// k = ceil(m/fan-in) groups of ceil(m/k), the fan-in being maxMergeFanIn or
// less when a worker's budget cannot hold two minimum blocks per input.
func mergeGroup(p *sortjob.Plan) int {
	maps, nodes, parts := int64(p.MapCount), int64(max(p.Cluster.Nodes, 1)), int64(max(p.Partitions, 1))
	if maps <= nodes || p.Bytes/maps/parts >= mergeBelow {
		return 0
	}
	res := min(planReserve, p.Memory/4)
	perWorker := (p.Memory - res) / int64(max(p.Cluster.CoresPerNode, 1))
	budget := perWorker - 3*int64(p.ReduceWriteBuffer)
	fanIn := min(maxMergeFanIn, max(2, budget/(2*minBlock)))
	m := ceilDiv(maps, nodes)
	k := ceilDiv(m, fanIn)
	return int(ceilDiv(m, k))
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// evenSplits returns a shuffle.Partitioner encoding of partitions ranges of
// equal width over the key space (gensort keys are uniform): sampling is
// the node's work and would only slow the bench down.
func evenSplits(partitions int) ([]byte, error) {
	p := shuffle.Partitioner{Splits: make([]shuffle.Key, partitions-1)}
	for i := 1; i < partitions; i++ {
		// floor(i * 2^64 / partitions) in the key's first 8 bytes.
		q, _ := bits.Div64(uint64(i), 0, uint64(partitions))
		binary.BigEndian.PutUint64(p.Splits[i-1][:8], q)
	}
	return p.MarshalBinary()
}
