package shuffle

import (
	"encoding/binary"
	"io"
)

// cursor is one merge input: its current block and the key of its head record.
type cursor struct {
	hi  uint64
	lo  uint16
	eof bool
	blk []byte
	src blockSource
}

// load sets the head key from blk, fetching the next block when blk is empty.
func (c *cursor) load() error {
	if len(c.blk) == 0 {
		b, err := c.src.next()
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		c.blk = b
	}
	c.hi = binary.BigEndian.Uint64(c.blk)
	c.lo = binary.BigEndian.Uint16(c.blk[8:])
	return nil
}

// loserTree merges sorted cursors. tree[0] is the winner (smallest head);
// tree[1:] hold the losers of the matches at the internal nodes of an implicit
// binary tree whose leaves k..2k-1 are the cursors.
type loserTree struct {
	c    []cursor
	tree []int
	w    []int // init's scratch
}

// less orders cursors by head key, exhausted ones last, ties by input number
// so the merge is stable.
func (t *loserTree) less(a, b int) bool {
	ca, cb := &t.c[a], &t.c[b]
	if ca.eof || cb.eof {
		return !ca.eof && cb.eof || (ca.eof && cb.eof && a < b)
	}
	if ca.hi != cb.hi {
		return ca.hi < cb.hi
	}
	if ca.lo != cb.lo {
		return ca.lo < cb.lo
	}
	return a < b
}

func (t *loserTree) init() {
	k := len(t.c)
	t.tree = grow(t.tree, k)
	t.w = grow(t.w, 2*k)
	w := t.w
	for i := range k {
		w[k+i] = i
	}
	for n := k - 1; n >= 1; n-- {
		a, b := w[2*n], w[2*n+1]
		if t.less(b, a) {
			a, b = b, a
		}
		w[n], t.tree[n] = a, b
	}
	t.tree[0] = w[1]
	if k == 1 {
		t.tree[0] = 0
	}
}

// fix replays the matches from the winner's leaf to the root after its head
// changed.
func (t *loserTree) fix() {
	k := len(t.c)
	win := t.tree[0]
	for n := (win + k) / 2; n >= 1; n /= 2 {
		if t.less(t.tree[n], win) {
			t.tree[n], win = win, t.tree[n]
		}
	}
	t.tree[0] = win
}

// merge k-way merges the sources into out. With splits set, it ends a segment
// of out at every split key (out's context cancels the merge), so out's segments are the partitions; otherwise
// everything is one segment. It returns the number of records written. The
// sources are closed on return.
func merge(srcs []blockSource, out *segmentWriter, splits []Key) (int64, error) {
	var t loserTree
	return t.merge(srcs, out, splits)
}

// grow returns s resliced to n elements, reallocated if it is too short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// merge is merge reusing t's slices, for a caller that merges many times.
func (t *loserTree) merge(srcs []blockSource, out *segmentWriter, splits []Key) (int64, error) {
	defer func() {
		for _, s := range srcs {
			s.close()
		}
	}()
	t.c = grow(t.c, len(srcs))
	clear(t.c)
	for i, s := range srcs {
		t.c[i].src = s
		if err := t.c[i].load(); err != nil {
			return 0, err
		}
	}
	if len(srcs) == 0 {
		for range len(splits) + 1 {
			out.endSegment()
		}
		return 0, nil
	}
	t.init()
	var n int64
	part := 0
	nextHi, nextLo, haveSplit := splitParts(splits, part)
	for {
		c := &t.c[t.tree[0]]
		if c.eof {
			break
		}
		for haveSplit && (c.hi > nextHi || c.hi == nextHi && c.lo >= nextLo) {
			out.endSegment()
			part++
			nextHi, nextLo, haveSplit = splitParts(splits, part)
		}
		if err := out.flushIfFull(); err != nil {
			return n, err
		}
		out.buf = append(out.buf, c.blk[:RecordSize]...)
		c.blk = c.blk[RecordSize:]
		n++
		if err := c.load(); err != nil {
			return n, err
		}
		t.fix()
	}
	for ; part <= len(splits); part++ {
		out.endSegment()
	}
	return n, nil
}

func splitParts(splits []Key, p int) (uint64, uint16, bool) {
	if p >= len(splits) {
		return 0, 0, false
	}
	hi, lo := keyParts(splits[p][:])
	return hi, lo, true
}
