package tier

import (
	"container/list"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type none struct{}

// access is a cache read through p: a hit touches, a miss adds.
func access(p *policy[none], key string, size int64) bool {
	if e := p.lookup(key); e != nil {
		e.touch()
		return true
	}
	p.add(key, size, &none{}, nil)
	return false
}

// lru is a byte-bounded LRU, the reference S3-FIFO is compared with.
type lru struct {
	limit, bytes int64
	ll           *list.List // front = most recent
	m            map[string]*list.Element
}

type lruItem struct {
	key  string
	size int64
}

func newLRU(limit int64) *lru {
	return &lru{limit: limit, ll: list.New(), m: make(map[string]*list.Element)}
}

func (c *lru) access(key string, size int64) bool {
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		return true
	}
	c.m[key] = c.ll.PushFront(lruItem{key, size})
	c.bytes += size
	for c.bytes > c.limit {
		it := c.ll.Remove(c.ll.Back()).(lruItem)
		delete(c.m, it.key)
		c.bytes -= it.size
	}
	return false
}

// TestScanResistance: a hot working set warmed into the cache survives a
// long scan of one-hit keys under S3-FIFO, where an LRU of the same size
// loses it.
func TestScanResistance(t *testing.T) {
	const (
		limit = 1000 // 100 objects of 10 bytes
		size  = 10
		hot   = 30
		scan  = 20000
		every = 50 // one hot access per this many scan keys
	)
	p := newPolicy[none](limit)
	l := newLRU(limit)
	hotKey := func(i int) string { return fmt.Sprintf("hot/%d", i) }
	for range 3 {
		for i := range hot {
			access(p, hotKey(i), size)
			l.access(hotKey(i), size)
		}
	}
	var s3Hits, lruHits, hotAccesses int
	for i := range scan {
		k := fmt.Sprintf("scan/%d", i)
		access(p, k, size)
		l.access(k, size)
		if i%every == 0 {
			h := hotKey(i / every % hot)
			hotAccesses++
			if access(p, h, size) {
				s3Hits++
			}
			if l.access(h, size) {
				lruHits++
			}
		}
		if i%500 == 0 {
			checkInvariants(t, p)
		}
	}
	checkInvariants(t, p)
	after := 0
	for i := range hot {
		if p.lookup(hotKey(i)) != nil {
			after++
		}
	}
	t.Logf("hot hits during scan: S3-FIFO %d/%d, LRU %d/%d; hot keys cached after: %d/%d",
		s3Hits, hotAccesses, lruHits, hotAccesses, after, hot)
	if s3Hits != hotAccesses || after != hot {
		t.Errorf("S3-FIFO lost hot keys to the scan: %d/%d hits, %d/%d cached after", s3Hits, hotAccesses, after, hot)
	}
	if lruHits > hotAccesses/10 {
		t.Errorf("LRU kept %d/%d hot hits; the scan is too gentle to show anything", lruHits, hotAccesses)
	}
	for i := range hot {
		if e := p.lookup(hotKey(i)); e == nil || e.queue != inMain {
			t.Fatalf("hot key %d not in main", i)
		}
	}
}

func TestGhostHitGoesToMain(t *testing.T) {
	p := newPolicy[none](100) // small queue: 10 bytes
	access(p, "a", 10)
	if e := p.lookup("a"); e.queue != inSmall {
		t.Fatalf("new key in queue %d, want small", e.queue)
	}
	for i := range 10 {
		access(p, fmt.Sprint("x", i), 10)
	}
	if p.lookup("a") != nil {
		t.Fatal("a (never hit) survived a full cycle of the small queue")
	}
	if p.ghost.n != 1 || !p.ghost.hit(p.hash("a")) {
		t.Fatalf("a not in the ghost (%d records)", p.ghost.n)
	}
	p.ghost.add(p.hash("a"), 10) // put it back, hit consumed it
	access(p, "a", 10)
	if e := p.lookup("a"); e == nil || e.queue != inMain {
		t.Fatal("a key returning from the ghost did not start in main")
	}
	if p.ghost.hit(p.hash("a")) {
		t.Fatal("ghost still holds a key that went to main")
	}
	checkInvariants(t, p)
}

func TestEvictionOrder(t *testing.T) {
	keys := func(es []*entry[none]) []string {
		var ks []string
		for _, e := range es {
			ks = append(ks, e.key)
		}
		return ks
	}
	t.Run("small", func(t *testing.T) {
		p := newPolicy[none](100)
		for _, k := range "ABCDEFGHIJ" {
			p.add(string(k), 10, &none{}, nil)
		}
		_, ev := p.add("K", 10, &none{}, nil)
		if got := keys(ev); !slices.Equal(got, []string{"A"}) {
			t.Fatalf("evicted %q, want the small queue's oldest, A", got)
		}
		p.lookup("B").touch()
		p.lookup("C").touch()
		_, ev = p.add("L", 10, &none{}, nil)
		if got := keys(ev); !slices.Equal(got, []string{"D"}) {
			t.Fatalf("evicted %q, want D (B and C were hit and move to main)", got)
		}
		for _, k := range []string{"B", "C"} {
			if e := p.lookup(k); e == nil || e.queue != inMain {
				t.Fatalf("%s not promoted to main", k)
			}
		}
		checkInvariants(t, p)
	})
	t.Run("main", func(t *testing.T) {
		p := newPolicy[none](100)
		for i := 1; i <= 9; i++ {
			p.addMain(fmt.Sprint("m", i), 10, &none{})
		}
		p.lookup("m1").touch()
		p.lookup("m3").touch()
		p.lookup("m3").touch()
		p.limit = 50
		got := keys(p.evict(nil))
		if want := []string{"m2", "m4", "m5", "m6"}; !slices.Equal(got, want) {
			t.Fatalf("evicted %q, want %q (hit keys get another pass)", got, want)
		}
		if f := p.lookup("m1").freq.Load(); f != 0 {
			t.Errorf("m1 freq %d after a reinsertion, want 0", f)
		}
		if f := p.lookup("m3").freq.Load(); f != 1 {
			t.Errorf("m3 freq %d after a reinsertion, want 1", f)
		}
		checkInvariants(t, p)
	})
	t.Run("freq saturates", func(t *testing.T) {
		p := newPolicy[none](100)
		p.add("a", 1, &none{}, nil)
		for range 10 {
			p.lookup("a").touch()
		}
		if f := p.lookup("a").freq.Load(); f != maxFreq {
			t.Fatalf("freq %d, want %d", f, maxFreq)
		}
	})
}

// TestPolicyLimits runs seeded random operations and checks after each one
// that the byte limit holds and the queues, index and ghost agree.
func TestPolicyLimits(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, seed))
		limit := int64(100 + rng.IntN(5000))
		p := newPolicy[none](limit)
		maxSize := max(1, limit/10)
		for op := range 2000 {
			key := fmt.Sprintf("k%d/%d", rng.IntN(4), rng.IntN(300))
			switch r := rng.IntN(100); {
			case r < 60:
				access(p, key, 1+rng.Int64N(maxSize))
			case r < 80:
				p.add(key, 1+rng.Int64N(maxSize), &none{}, nil)
			case r < 90:
				if e := p.lookup(key); e != nil {
					p.resize(e, 1+rng.Int64N(maxSize), nil)
				}
			case r < 98:
				p.remove(key)
			default:
				p.removePrefix(fmt.Sprintf("k%d/", rng.IntN(4)), nil)
			}
			if t.Failed() {
				t.Fatalf("seed %d op %d", seed, op)
			}
			checkInvariants(t, p)
		}
	}
}

func checkInvariants(t *testing.T, p *policy[none]) {
	t.Helper()
	if p.bytes() > p.limit {
		t.Fatalf("holds %d bytes, over the limit of %d", p.bytes(), p.limit)
	}
	seen := map[string]bool{}
	for _, q := range []struct {
		f  *fifo[none]
		id uint8
	}{{&p.small, inSmall}, {&p.main, inMain}} {
		var n int
		var bytes int64
		var prev *entry[none]
		for e := q.f.front; e != nil; e = e.next {
			if e.prev != prev || e.queue != q.id || p.lookup(e.key) != e || seen[e.key] {
				t.Fatalf("queue %d: entry %q inconsistent", q.id, e.key)
			}
			seen[e.key] = true
			prev = e
			n++
			bytes += e.size
		}
		if q.f.back != prev || n != q.f.n || bytes != q.f.bytes {
			t.Fatalf("queue %d: %d entries %d bytes, recorded %d and %d", q.id, n, bytes, q.f.n, q.f.bytes)
		}
	}
	indexed := 0
	p.index.Range(func(k, _ any) bool {
		indexed++
		if !seen[k.(string)] {
			t.Fatalf("index holds %q, in no queue", k)
		}
		return true
	})
	if indexed != len(seen) {
		t.Fatalf("index holds %d keys, queues %d", indexed, len(seen))
	}
	if g := p.ghost; g.n > max(p.len(), minGhost) || g.bytes > p.limit-p.smallLimit || len(g.live) > g.n {
		t.Fatalf("ghost: %d records %d bytes %d live; cache %d entries", g.n, g.bytes, len(g.live), p.len())
	}
}
