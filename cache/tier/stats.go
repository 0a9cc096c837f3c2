package tier

import (
	"math/rand/v2"
	"sync/atomic"
)

// Stats is a snapshot of a tier's counters. Sizes are in bytes; counts
// are since the tier was created or opened.
type Stats struct {
	Entries      int64 // objects held
	Bytes        int64 // bytes held, as accounted (see Memory and Disk)
	Limit        int64 // byte limit
	SmallBytes   int64 // bytes in the small FIFO
	MainBytes    int64 // bytes in the main FIFO
	GhostEntries int64 // key hashes remembered by the ghost FIFO
	Hits         int64 // Gets that returned an object
	Misses       int64 // Gets that did not
	Evictions    int64 // objects evicted to stay within Limit
	Admissions   int64 // Puts and Commits that stored an object
	Refused      int64 // Puts and Commits refused as too large
	Corrupt      int64 // disk files dropped as torn, corrupt or foreign
}

// counter is a statistics counter striped over cache lines, so that
// parallel hits on different keys do not all write one line. Hits use the
// entry's stripe (free); other events a random one (about 8 ns).
type counter struct {
	cells [16]struct {
		n atomic.Int64
		_ [56]byte
	}
}

func (c *counter) add(n int64) { c.cells[rand.Uint32()%16].n.Add(n) }

func (c *counter) addAt(stripe uint8, n int64) { c.cells[stripe%16].n.Add(n) }

func (c *counter) load() int64 {
	var n int64
	for i := range c.cells {
		n += c.cells[i].n.Load()
	}
	return n
}
