package shuffle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
)

// Partitioner assigns keys to reduce partitions by range. Partition p holds
// keys k with Splits[p-1] <= k < Splits[p]; partition 0 has no lower bound and
// the last partition no upper bound. Equal keys always land in one partition.
type Partitioner struct {
	Splits []Key // sorted, len = partitions-1
}

// NewPartitioner picks partitions-1 split keys at the quantiles of the sampled
// keys (each at least KeySize bytes; only the key is read). With no samples
// every split is the zero key, so all records land in the last partition: a
// correct, if unbalanced, result.
func NewPartitioner(samples [][]byte, partitions int) (*Partitioner, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("shuffle: %d partitions: need at least 1", partitions)
	}
	keys := make([]Key, len(samples))
	for i, s := range samples {
		if len(s) < KeySize {
			return nil, fmt.Errorf("shuffle: sample %d is %d bytes, shorter than a %d-byte key", i, len(s), KeySize)
		}
		copy(keys[i][:], s)
	}
	return NewPartitionerFromKeys(keys, partitions)
}

// NewPartitionerFromKeys is NewPartitioner over sampled keys; it sorts keys
// in place.
func NewPartitionerFromKeys(keys []Key, partitions int) (*Partitioner, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("shuffle: %d partitions: need at least 1", partitions)
	}
	slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
	p := &Partitioner{Splits: make([]Key, partitions-1)}
	if len(keys) == 0 {
		return p, nil
	}
	for i := 1; i < partitions; i++ {
		p.Splits[i-1] = keys[i*len(keys)/partitions]
	}
	return p, nil
}

// Partitions returns the number of partitions.
func (p *Partitioner) Partitions() int { return len(p.Splits) + 1 }

// Partition returns the partition of a key (or record).
func (p *Partitioner) Partition(key []byte) int {
	return sort.Search(len(p.Splits), func(i int) bool {
		return bytes.Compare(p.Splits[i][:], key[:KeySize]) > 0
	})
}

// MarshalBinary encodes the partitioner as a count and the split keys.
func (p *Partitioner) MarshalBinary() ([]byte, error) {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(p.Splits)))
	for _, s := range p.Splits {
		b = append(b, s[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (p *Partitioner) UnmarshalBinary(b []byte) error {
	if len(b) < 4 {
		return fmt.Errorf("shuffle: partitioner encoding is %d bytes, want at least 4", len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(len(b)-4) != uint64(n)*KeySize {
		return fmt.Errorf("shuffle: partitioner encoding has %d bytes for %d splits, want %d", len(b)-4, n, uint64(n)*KeySize)
	}
	splits := make([]Key, n)
	for i := range splits {
		copy(splits[i][:], b[4+i*KeySize:])
		if i > 0 && bytes.Compare(splits[i-1][:], splits[i][:]) > 0 {
			return fmt.Errorf("shuffle: partitioner split %d is smaller than split %d", i, i-1)
		}
	}
	p.Splits = splits
	return nil
}
