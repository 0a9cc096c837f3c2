package tier

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// S3-FIFO parameters.
const (
	// smallPercent is the small queue's share of the limit, in percent.
	smallPercent = 10
	// maxFreq caps the per-entry frequency counter (2 bits).
	maxFreq = 3
	// promoteFreq is the frequency at which an entry leaving the small
	// queue moves to main instead of the ghost: hit at least once since it
	// was admitted.
	promoteFreq = 1
	// minGhost is the ghost's entry bound while the cache holds fewer
	// entries than this.
	minGhost = 64
)

// Queue an entry is in.
const (
	inNone uint8 = iota
	inSmall
	inMain
)

// entry is one cached key. size and the list links are guarded by the
// owner's mutex; freq and val may be read and bumped without it.
type entry[V any] struct {
	key        string
	size       int64
	queue      uint8
	stripe     uint8 // spreads hit counting over counter stripes
	prev, next *entry[V]
	freq       atomic.Uint32
	val        atomic.Pointer[V]
}

// touch records a hit. It writes nothing once the counter is saturated, so
// a hot key's hits do not bounce a cache line between cores. A lost
// increment under contention only makes the hint a little colder.
func (e *entry[V]) touch() {
	if f := e.freq.Load(); f < maxFreq {
		e.freq.CompareAndSwap(f, f+1)
	}
}

// fifo is an intrusive doubly linked queue of entries with a byte total.
// Entries enter at the front and leave from the back.
type fifo[V any] struct {
	front, back *entry[V]
	n           int
	bytes       int64
}

func (q *fifo[V]) pushFront(e *entry[V]) {
	e.prev, e.next = nil, q.front
	if q.front != nil {
		q.front.prev = e
	} else {
		q.back = e
	}
	q.front = e
	q.n++
	q.bytes += e.size
}

func (q *fifo[V]) remove(e *entry[V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.front = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.back = e.prev
	}
	e.prev, e.next = nil, nil
	q.n--
	q.bytes -= e.size
}

// ghost remembers the key hashes of entries recently evicted from the
// small queue, with the bytes they had, in FIFO order. It holds no keys
// or values: a 64-bit hash collision only sends a new object to main.
type ghost struct {
	seq  uint64
	live map[uint64]uint64 // key hash → seq of its newest ring record
	ring []ghostRec        // circular; records whose seq is not live are stale
	head int               // index of the oldest record
	n    int
	// bytes counts every record in the ring, stale ones too, so stale
	// records shorten the ghost a little rather than grow it.
	bytes int64
}

type ghostRec struct {
	h    uint64
	seq  uint64
	size int64
}

func (g *ghost) add(h uint64, size int64) {
	if g.n == len(g.ring) {
		ring := make([]ghostRec, max(16, 2*len(g.ring)))
		for i := range g.n {
			ring[i] = g.ring[(g.head+i)%len(g.ring)]
		}
		g.ring, g.head = ring, 0
	}
	g.seq++
	g.ring[(g.head+g.n)%len(g.ring)] = ghostRec{h: h, seq: g.seq, size: size}
	g.n++
	g.bytes += size
	g.live[h] = g.seq
}

// hit reports whether h is in the ghost and forgets it.
func (g *ghost) hit(h uint64) bool {
	if _, ok := g.live[h]; !ok {
		return false
	}
	delete(g.live, h)
	return true
}

// trim drops the oldest records until at most maxN remain and they
// represent at most maxBytes.
func (g *ghost) trim(maxN int, maxBytes int64) {
	for g.n > 0 && (g.n > maxN || g.bytes > maxBytes) {
		r := g.ring[g.head]
		if g.live[r.h] == r.seq {
			delete(g.live, r.h)
		}
		g.ring[g.head] = ghostRec{}
		g.head = (g.head + 1) % len(g.ring)
		g.n--
		g.bytes -= r.size
	}
}

// policy is S3-FIFO over byte-sized entries: a small FIFO (smallPercent of
// the limit) where new keys start, a main FIFO for keys that proved useful,
// and a ghost of keys recently evicted from small.
//
//   - A hit only bumps the entry's 2-bit counter (lookup + touch, lock-free).
//   - An entry leaving small with freq ≥ promoteFreq moves to main (keeping
//     its counter); otherwise it is evicted and its key hash goes to the
//     ghost. A key added while in the ghost starts in main.
//   - An entry leaving main with freq > 0 is reinserted at main's front with
//     freq−1; otherwise it is evicted.
//   - Small is evicted from while it holds more than its share (or main is
//     empty), main otherwise; so a scan of one-hit keys only cycles through
//     small and the ghost.
//
// policy is not safe for concurrent mutation: its owner serializes add,
// addMain, resize, remove, removePrefix and stats with one mutex. lookup and
// entry.touch may run concurrently with them and with each other.
type policy[V any] struct {
	limit      int64
	smallLimit int64
	index      sync.Map // string → *entry[V]
	small      fifo[V]
	main       fifo[V]
	ghost      ghost
	seed       maphash.Seed
	evictions  int64
	admissions int64
	stripe     uint8 // the next entry's stripe
}

func newPolicy[V any](limit int64) *policy[V] {
	return &policy[V]{
		limit:      limit,
		smallLimit: max(1, limit*smallPercent/100),
		ghost:      ghost{live: make(map[uint64]uint64)},
		seed:       maphash.MakeSeed(),
	}
}

func (p *policy[V]) lookup(key string) *entry[V] {
	v, ok := p.index.Load(key)
	if !ok {
		return nil
	}
	return v.(*entry[V])
}

func (p *policy[V]) bytes() int64 { return p.small.bytes + p.main.bytes }
func (p *policy[V]) len() int     { return p.small.n + p.main.n }

// add inserts key with size bytes and value v, or replaces the value and
// size of an existing entry in place (keeping its queue and counter). It
// returns the replaced value (nil if key was new) and appends the entries
// it evicted to evicted; the new entry itself may be among them. The
// caller ensures size ≤ limit.
func (p *policy[V]) add(key string, size int64, v *V, evicted []*entry[V]) (*V, []*entry[V]) {
	if e := p.lookup(key); e != nil {
		old := e.val.Swap(v)
		p.setSize(e, size)
		p.admissions++
		return old, p.evict(evicted)
	}
	e := p.newEntry(key, size, v)
	if p.ghost.hit(p.hash(key)) {
		e.queue = inMain
		p.main.pushFront(e)
	} else {
		e.queue = inSmall
		p.small.pushFront(e)
	}
	p.index.Store(key, e)
	p.admissions++
	return nil, p.evict(evicted)
}

// addMain inserts a new key at main's front with freq 0 and does not
// evict; OpenDisk uses it to rebuild the index oldest first, then calls
// evict.
func (p *policy[V]) addMain(key string, size int64, v *V) {
	e := p.newEntry(key, size, v)
	e.queue = inMain
	p.main.pushFront(e)
	p.index.Store(key, e)
}

func (p *policy[V]) newEntry(key string, size int64, v *V) *entry[V] {
	e := &entry[V]{key: key, size: size, stripe: p.stripe}
	e.val.Store(v)
	p.stripe++
	return e
}

// resize changes a live entry's size and evicts as needed.
func (p *policy[V]) resize(e *entry[V], size int64, evicted []*entry[V]) []*entry[V] {
	if e.queue == inNone {
		return evicted
	}
	p.setSize(e, size)
	return p.evict(evicted)
}

func (p *policy[V]) setSize(e *entry[V], size int64) {
	q := p.queueOf(e)
	q.bytes += size - e.size
	e.size = size
}

func (p *policy[V]) queueOf(e *entry[V]) *fifo[V] {
	if e.queue == inMain {
		return &p.main
	}
	return &p.small
}

// remove deletes key without remembering it in the ghost.
func (p *policy[V]) remove(key string) *entry[V] {
	e := p.lookup(key)
	if e == nil {
		return nil
	}
	p.unlink(e)
	return e
}

// removePrefix deletes every key starting with prefix and appends them to
// removed.
func (p *policy[V]) removePrefix(prefix string, removed []*entry[V]) []*entry[V] {
	for _, q := range []*fifo[V]{&p.small, &p.main} {
		for e := q.front; e != nil; {
			next := e.next
			if len(e.key) >= len(prefix) && e.key[:len(prefix)] == prefix {
				p.unlink(e)
				removed = append(removed, e)
			}
			e = next
		}
	}
	return removed
}

func (p *policy[V]) unlink(e *entry[V]) {
	p.queueOf(e).remove(e)
	e.queue = inNone
	p.index.CompareAndDelete(e.key, e)
	p.trimGhost()
}

// trimGhost bounds the ghost to about as many keys as the cache holds
// (at least minGhost), representing at most main's share of the bytes.
func (p *policy[V]) trimGhost() {
	p.ghost.trim(max(p.len(), minGhost), p.limit-p.smallLimit)
}

// evict removes entries until the total is within the limit.
func (p *policy[V]) evict(evicted []*entry[V]) []*entry[V] {
	for p.bytes() > p.limit {
		evicted = append(evicted, p.evictOne())
	}
	return evicted
}

func (p *policy[V]) evictOne() *entry[V] {
	for {
		if p.small.bytes > p.smallLimit || p.main.n == 0 {
			t := p.small.back
			p.small.remove(t)
			if t.freq.Load() >= promoteFreq {
				t.queue = inMain
				p.main.pushFront(t)
				continue
			}
			t.queue = inNone
			p.index.CompareAndDelete(t.key, t)
			p.ghost.add(p.hash(t.key), t.size)
			p.trimGhost()
			p.evictions++
			return t
		}
		t := p.main.back
		p.main.remove(t)
		if t.freq.Load() > 0 {
			t.freq.Add(^uint32(0)) // only this goroutine decrements
			p.main.pushFront(t)
			continue
		}
		t.queue = inNone
		p.index.CompareAndDelete(t.key, t)
		p.evictions++
		return t
	}
}

func (p *policy[V]) hash(key string) uint64 { return maphash.String(p.seed, key) }

// stats fills the policy's part of s.
func (p *policy[V]) stats(s *Stats) {
	s.Entries = int64(p.len())
	s.Bytes = p.bytes()
	s.Limit = p.limit
	s.SmallBytes = p.small.bytes
	s.MainBytes = p.main.bytes
	s.GhostEntries = int64(p.ghost.n)
	s.Evictions = p.evictions
	s.Admissions = p.admissions
}
