package coordbench

import (
	"encoding/binary"
	"math/bits"

	"engine/shuffle"
)

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
