package shuffle

import (
	"encoding/binary"
	"slices"
)

// entry is the compact sort entry of one record: the key as two big-endian
// integers, with the record's index in the low 48 bits of lo. Ordering entries
// by (hi, lo) orders records by key and, among equal keys, by input position,
// so the sort is stable and deterministic.
type entry struct {
	hi uint64 // key bytes 0-7
	lo uint64 // key bytes 8-9 in bits 48-63, record index in bits 0-47
}

const indexMask = 1<<48 - 1

func (e entry) index() int { return int(e.lo & indexMask) }

func (e entry) less(f entry) bool { return e.hi < f.hi || (e.hi == f.hi && e.lo < f.lo) }

// keyLess reports whether the entry's key is below k.
func (e entry) keyLess(hi uint64, lo16 uint16) bool {
	return e.hi < hi || (e.hi == hi && uint16(e.lo>>48) < lo16)
}

// radixBuckets is the number of buckets of the first (MSD) radix pass, one per
// value of the key's first two bytes.
const radixBuckets = 1 << 16

// sortRecords sorts the n whole records in data by key, filling ents[:n] with
// their entries in order. counts must have radixBuckets+1 elements; it is
// scratch space. One counting pass and one scatter pass place every entry in
// the bucket of its first two key bytes; each bucket is then sorted in place.
func sortRecords(data []byte, ents []entry, counts []int) []entry {
	n := len(data) / RecordSize
	ents = ents[:n]
	clear(counts)
	for i := 0; i < n; i++ {
		rec := data[i*RecordSize : i*RecordSize+KeySize]
		counts[int(rec[0])<<8|int(rec[1])+1]++
	}
	for b := 1; b <= radixBuckets; b++ {
		counts[b] += counts[b-1]
	}
	// counts[b] is now the start of bucket b; advance it while scattering.
	for i := 0; i < n; i++ {
		rec := data[i*RecordSize : i*RecordSize+KeySize]
		b := int(rec[0])<<8 | int(rec[1])
		ents[counts[b]] = entry{
			hi: binary.BigEndian.Uint64(rec),
			lo: uint64(binary.BigEndian.Uint16(rec[8:]))<<48 | uint64(i),
		}
		counts[b]++
	}
	// counts[b] is now the end of bucket b.
	start := 0
	for b := 0; b < radixBuckets; b++ {
		end := counts[b]
		if end-start > 1 {
			sortEntries(ents[start:end])
		}
		start = end
	}
	return ents
}

// sortEntries sorts a by (hi, lo): quicksort with median-of-three pivots and
// insertion sort for short ranges, falling back to pdqsort if the recursion
// degrades.
func sortEntries(a []entry) {
	quickSort(a, 2*bitsLen(len(a)))
}

func bitsLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

func quickSort(a []entry, depth int) {
	for len(a) > 16 {
		if depth == 0 {
			slices.SortFunc(a, func(x, y entry) int {
				if x.less(y) {
					return -1
				}
				if y.less(x) {
					return 1
				}
				return 0
			})
			return
		}
		depth--
		// Median of three moved to a[0] as the pivot.
		m, l := len(a)/2, len(a)-1
		if a[m].less(a[0]) {
			a[m], a[0] = a[0], a[m]
		}
		if a[l].less(a[0]) {
			a[l], a[0] = a[0], a[l]
		}
		if a[l].less(a[m]) {
			a[l], a[m] = a[m], a[l]
		}
		a[0], a[m] = a[m], a[0]
		p := a[0]
		// Hoare partition; entries are distinct (lo holds the index).
		i, j := 1, l
		for {
			for a[i].less(p) {
				i++
			}
			for p.less(a[j]) {
				j--
			}
			if i >= j {
				break
			}
			a[i], a[j] = a[j], a[i]
			i++
			j--
		}
		a[0], a[j] = a[j], a[0]
		// Recurse into the smaller side, loop on the larger.
		if j < len(a)-j-1 {
			quickSort(a[:j], depth)
			a = a[j+1:]
		} else {
			quickSort(a[j+1:], depth)
			a = a[:j]
		}
	}
	for i := 1; i < len(a); i++ {
		e := a[i]
		j := i
		for ; j > 0 && e.less(a[j-1]); j-- {
			a[j] = a[j-1]
		}
		a[j] = e
	}
}

// lowerBound returns the first position in the sorted ents whose key is not
// below k.
func lowerBound(ents []entry, k *Key) int {
	hi, lo := keyParts(k[:])
	i, j := 0, len(ents)
	for i < j {
		h := int(uint(i+j) >> 1)
		if ents[h].keyLess(hi, lo) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i
}
