package erasure

import (
	"hash/crc32"
	"math/bits"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC32C (Castagnoli) of p: the checksum kept for each shard.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// parallelMin is the number of bytes to checksum below which spreading the
// work over goroutines costs more than it saves.
const parallelMin = 256 << 10

// workers is how many goroutines checksum count shards of size bytes.
// CRC32C runs at about 20 GB/s per core here, 2–4× slower than the
// Reed–Solomon encode, so it is spread over the cores like the library
// spreads the encode.
func workers(count, size int) int {
	if count < 2 || count*size < parallelMin {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), count)
}

// sumShards sets out[i] to the checksum of shards[i] for every i in set.
// size is the shards' size (to decide on parallelism).
func sumShards(shards [][]byte, set shardSet, out []uint32, size int) {
	if w := workers(set.count(), size); w > 1 {
		forEachParallel(w, len(shards), set, func(i int) { out[i] = Checksum(shards[i]) })
		return
	}
	for i, s := range shards {
		if set.has(i) {
			out[i] = Checksum(s)
		}
	}
}

// badShards returns the shards in set that do not match their checksum.
func badShards(shards [][]byte, sums []uint32, set shardSet, size int) shardSet {
	if w := workers(set.count(), size); w > 1 {
		return badShardsParallel(shards, sums, set, w)
	}
	var bad shardSet
	for i, s := range shards {
		if set.has(i) && Checksum(s) != sums[i] {
			bad.add(i)
		}
	}
	return bad
}

func badShardsParallel(shards [][]byte, sums []uint32, set shardSet, w int) shardSet {
	var words [len(shardSet{})]atomic.Uint64
	forEachParallel(w, len(shards), set, func(i int) {
		if Checksum(shards[i]) != sums[i] {
			words[i>>6].Or(1 << (i & 63))
		}
	})
	var bad shardSet
	for j := range words {
		bad[j] = words[j].Load()
	}
	return bad
}

// forEachParallel calls fn(i) for every i < n in set, spread round-robin over
// w goroutines (the caller's being one), and returns when all are done.
func forEachParallel(w, n int, set shardSet, fn func(i int)) {
	run := func(g int) {
		for i, j := 0, 0; i < n; i++ {
			if set.has(i) {
				if j%w == g {
					fn(i)
				}
				j++
			}
		}
	}
	var wg sync.WaitGroup
	for g := 1; g < w; g++ {
		wg.Go(func() { run(g) })
	}
	run(0)
	wg.Wait()
}

// shardSet is a set of shard indices below MaxShards.
type shardSet [MaxShards / 64]uint64

func allShards(n int) shardSet { return shardRange(0, n) }

func shardRange(lo, hi int) shardSet {
	var s shardSet
	for i := lo; i < hi; i++ {
		s.add(i)
	}
	return s
}

func (s *shardSet) add(i int)      { s[i>>6] |= 1 << (i & 63) }
func (s *shardSet) has(i int) bool { return s[i>>6]&(1<<(i&63)) != 0 }

func (s *shardSet) count() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

func (s *shardSet) empty() bool { return s.count() == 0 }

func (s shardSet) union(t shardSet) shardSet {
	for j := range s {
		s[j] |= t[j]
	}
	return s
}

func (s shardSet) intersect(t shardSet) shardSet {
	for j := range s {
		s[j] &= t[j]
	}
	return s
}

func (s *shardSet) list() []int {
	l := make([]int, 0, s.count())
	for i := range MaxShards {
		if s.has(i) {
			l = append(l, i)
		}
	}
	return l
}

// String lists the indices: "0, 3, 5".
func (s shardSet) String() string {
	var b strings.Builder
	for _, i := range s.list() {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}
