package burstbuffer

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"engine/burstbuffer/flash"
	"sync"
	"syscall"
	"time"

	"engine/erasure"
)

// shardCache keeps recently read, checked data shards, so small reads of
// one stripe fetch and check a shard once.
type shardCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[[2]uint64]*list.Element
}

type cacheEntry struct {
	key  [2]uint64
	data []byte
}

func newShardCache(n int) *shardCache {
	return &shardCache{max: n, ll: list.New(), items: map[[2]uint64]*list.Element{}}
}

func (c *shardCache) get(stripe uint64, idx int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[[2]uint64{stripe, uint64(idx)}]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).data
	}
	return nil
}

func (c *shardCache) put(stripe uint64, idx int, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := [2]uint64{stripe, uint64(idx)}
	if e, ok := c.items[k]; ok {
		e.Value.(*cacheEntry).data = data
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, data: data})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*cacheEntry).key)
	}
}

// forget drops the cached shards 0..shards-1 of stripe.
func (c *shardCache) forget(stripe uint64, shards int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < shards; i++ {
		k := [2]uint64{stripe, uint64(i)}
		if e, ok := c.items[k]; ok {
			c.ll.Remove(e)
			delete(c.items, k)
		}
	}
}

func (s *Service) meta(stripe uint64) *Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.metas[stripe]
}

// fetchShard gets shard idx of meta's stripe from its store and checks it
// against its checksum. It returns the shard bytes and header.
func (s *Service) fetchShard(ctx context.Context, meta *Meta, idx int) ([]byte, erasure.ShardHeader, error) {
	ref := meta.Stores[idx]
	var payload []byte
	var err error
	if ref.Node == s.cfg.Node {
		payload, err = s.getLocal(ref.Store, meta.Stripe, idx)
	} else {
		payload, err = s.cfg.Transport.GetShard(ctx, ref.Node, ref.Store, meta.Stripe, idx)
	}
	if err != nil {
		return nil, erasure.ShardHeader{}, &storeError{ref: ref, err: err}
	}
	_, h, shard, err := parsePayload(payload, false)
	if err == nil && (h.StripeID != meta.Stripe || h.Index != idx) {
		err = fmt.Errorf("%w: holds stripe %016x shard %d", errPayload, h.StripeID, h.Index)
	}
	if err == nil {
		err = h.CheckPayload(shard)
	}
	if err != nil {
		return nil, h, &storeError{ref: ref, err: err}
	}
	return shard, h, nil
}

// nodeLive reports whether node n is live, from a snapshot of the live
// set at most liveTTL old: reads ask it for every piece, and a fresh
// Cluster.Live costs more than the read. A stale answer is harmless: a
// shard on a node that just died fails to read and is reconstructed.
func (s *Service) nodeLive(n string) bool {
	if n == s.cfg.Node {
		return true
	}
	snap := s.liveSnap.Load()
	if snap == nil || time.Since(snap.at) > liveTTL {
		snap = &liveSnapshot{at: time.Now(), set: map[string]bool{}}
		for _, l := range s.cfg.Cluster.Live() {
			snap.set[l] = true
		}
		s.liveSnap.Store(snap)
	}
	return snap.set[n]
}

// liveTTL is how old nodeLive's snapshot of the live set may be.
const liveTTL = 100 * time.Millisecond

type liveSnapshot struct {
	at  time.Time
	set map[string]bool
}

// errGone says a stripe died (its bytes were overwritten or drained)
// between the index lookup and the read: look up again.
var errGone = errors.New("burstbuffer: stripe gone")

// readStripe copies len(dst) bytes of a stripe's data at pos into dst:
// from the data shards that hold them, checked; if one is missing or
// corrupt, from k others by reconstruction (and the bad shard is repaired).
func (s *Service) readStripe(ctx context.Context, stripe uint64, pos int, dst []byte) error {
	meta := s.meta(stripe)
	if meta == nil {
		if s.index.Dead(stripe) {
			return errGone
		}
		return fmt.Errorf("burstbuffer: stripe %016x is not known on %s (its shards are not reachable yet): %w", stripe, s.cfg.Node, syscall.EIO)
	}
	for len(dst) > 0 {
		idx, at := pos/meta.ShardSize, pos%meta.ShardSize
		n := min(len(dst), meta.ShardSize-at)
		if shard := s.shards.get(stripe, idx); shard != nil { // rebuilt lately
			copy(dst[:n], shard[at:])
		} else {
			var err error
			if s.nodeLive(meta.Stores[idx].Node) {
				err = s.readShardInto(ctx, meta, idx, at, dst[:n])
			} else {
				err = fmt.Errorf("store %s: node is down", meta.Stores[idx])
			}
			if err != nil {
				s.stats.degradedReads.Add(1)
				s.log.Warn("burstbuffer: shard unreadable; reconstructing", "stripe", fmt.Sprintf("%016x", stripe), "shard", idx, "err", err)
				if s.index.Dead(stripe) {
					return errGone
				}
				shards, rerr := s.reconstruct(ctx, meta)
				if rerr != nil {
					if s.index.Dead(stripe) || (errors.Is(rerr, flash.ErrNotFound) && s.recheckGone(ctx, meta)) {
						return errGone
					}
					return fmt.Errorf("burstbuffer: stripe %016x: %v; %w", stripe, rerr, syscall.EIO)
				}
				for i, sh := range shards[:meta.K] {
					s.shards.put(stripe, i, sh)
				}
				copy(dst[:n], shards[idx][at:at+n])
			}
		}
		dst, pos = dst[n:], pos+n
	}
	return nil
}

// readShard reads n bytes at off of shard idx of meta's stripe, checked
// block by block, from the store that holds it.
func (s *Service) readShard(ctx context.Context, meta *Meta, idx, off, n int) ([]byte, error) {
	ref := meta.Stores[idx]
	if ref.Node == s.cfg.Node {
		return s.readLocalRange(ref.Store, meta.Stripe, idx, meta.K, meta.M, meta.ShardSize, off, n)
	}
	return s.cfg.Transport.ReadShard(ctx, ref.Node, ref.Store, meta.Stripe, idx, meta.K, meta.M, meta.ShardSize, off, n)
}

// readShardInto is readShard into dst (n = len(dst)): from this node's
// store, straight from its page cache into dst.
func (s *Service) readShardInto(ctx context.Context, meta *Meta, idx, off int, dst []byte) error {
	ref := meta.Stores[idx]
	if ref.Node == s.cfg.Node && ref.Store >= 0 && ref.Store < len(s.stores) {
		key := layoutKey{ref.Store, meta.Stripe, idx}
		if l, ok := s.layouts.get(key); ok && l.shardSize == meta.ShardSize {
			return l.readInto(s.stores[ref.Store], meta.Stripe, idx, off, dst)
		}
	}
	b, err := s.readShard(ctx, meta, idx, off, len(dst))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// readLocalRange is readShard on this node's store.
func (s *Service) readLocalRange(store int, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, error) {
	if store < 0 || store >= len(s.stores) {
		return nil, fmt.Errorf("burstbuffer: no store %d on %s", store, s.cfg.Node)
	}
	st := s.stores[store]
	key := layoutKey{store, stripe, idx}
	if l, ok := s.layouts.get(key); ok && l.shardSize == shardSize {
		return l.read(st, stripe, idx, off, n)
	}
	read := func(p []byte, at int64) (int, error) {
		got, err := st.ReadAt(stripe, idx, p, at)
		if got == len(p) {
			return got, nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: payload ends at %d", errPayload, at+int64(got))
		}
		return got, err
	}
	b, l, err := readShardRange(read, stripe, idx, k, m, shardSize, off, n)
	if err == nil {
		s.layouts.put(key, l)
	}
	return b, err
}

// layout is where a stored shard's bytes and block checksums are in its
// payload, kept so that a small read is one pread.
type layout struct {
	shardSize int
	dataOff   int64
	sums      []byte // 4 bytes per block
}

type layoutKey struct {
	store  int
	stripe uint64
	idx    int
}

func (l layout) read(st *flash.Store, stripe uint64, idx, off, n int) ([]byte, error) {
	b := make([]byte, n)
	if err := l.readInto(st, stripe, idx, off, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readInto is read into dst (n = len(dst)). A range of whole blocks is
// read straight into dst and checked there; otherwise the blocks it lies
// in are read into a scratch buffer, checked, and the range copied out.
func (l layout) readInto(st *flash.Store, stripe uint64, idx, off int, dst []byte) error {
	n := len(dst)
	if n == 0 {
		return nil
	}
	if off < 0 || off+n > l.shardSize {
		return fmt.Errorf("burstbuffer: read %d bytes at %d of a %d-byte shard", n, off, l.shardSize)
	}
	b0, b1 := off/blockSize, (off+n-1)/blockSize
	lo, hi := b0*blockSize, min((b1+1)*blockSize, l.shardSize)
	buf := dst
	if lo != off || hi != off+n {
		sp := scratch.Get().(*[]byte)
		defer scratch.Put(sp)
		if cap(*sp) < hi-lo {
			*sp = make([]byte, hi-lo)
		}
		buf = (*sp)[:hi-lo]
	}
	got, err := st.ReadAt(stripe, idx, buf, l.dataOff+int64(lo))
	if got != len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: payload ends early", errPayload)
		}
		return err
	}
	if err := checkBlocks(buf, l.sums, stripe, idx, b0, b1); err != nil {
		return err
	}
	if len(buf) != n || &buf[0] != &dst[0] {
		copy(dst, buf[off-lo:])
	}
	return nil
}

// scratch holds buffers for reads of partial blocks.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// layoutCache is a bounded map of layouts (evicting at random when full).
type layoutCache struct {
	mu sync.Mutex
	m  map[layoutKey]layout
}

func (c *layoutCache) get(k layoutKey) (layout, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[k]
	return l, ok
}

func (c *layoutCache) put(k layoutKey, l layout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[layoutKey]layout{}
	}
	if len(c.m) >= 65536 {
		for k := range c.m {
			delete(c.m, k)
			if len(c.m) < 60000 {
				break
			}
		}
	}
	c.m[k] = l
}

// forget drops the layouts of a stripe's shards on stores 0..stores-1.
func (c *layoutCache) forget(stripe uint64, stores, shards int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for st := 0; st < stores; st++ {
		for i := 0; i < shards; i++ {
			delete(c.m, layoutKey{st, stripe, i})
		}
	}
}

func (c *layoutCache) drop(k layoutKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// reconstruct fetches the shards of meta's stripe it can, rebuilds the
// missing and corrupt ones, repairs them onto their stores (or onto other
// live nodes when theirs are gone) and returns all k+m shards.
func (s *Service) reconstruct(ctx context.Context, meta *Meta) ([][]byte, error) {
	total := meta.K + meta.M
	type got struct {
		i     int
		shard []byte
		h     erasure.ShardHeader
		err   error
	}
	ch := make(chan got, total)
	live := map[string]bool{}
	for _, n := range s.cfg.Cluster.Live() {
		live[n] = true
	}
	for i := 0; i < total; i++ {
		if !live[meta.Stores[i].Node] {
			ch <- got{i: i, err: fmt.Errorf("store %s: node is down", meta.Stores[i])}
			continue
		}
		go func() {
			var g got
			defer func() { ch <- g }()
			g.i = i
			defer s.recovered("fetching a shard", &g.err)
			g.shard, g.h, g.err = s.fetchShard(ctx, meta, i)
		}()
	}
	code, err := erasure.New(meta.K, meta.M)
	if err != nil {
		return nil, err
	}
	es := &erasure.Stripe{}
	var bad []int
	var badErr []error
	for i := 0; i < total; i++ {
		g := <-ch
		if g.err != nil {
			bad = append(bad, g.i)
			badErr = append(badErr, g.err)
			continue
		}
		if err := code.PutShard(es, &g.h, g.shard); err != nil {
			bad = append(bad, g.i)
			badErr = append(badErr, err)
		}
	}
	if len(bad) > meta.M {
		return nil, fmt.Errorf("%d of %d shards unreadable, at most %d can be rebuilt: %w", len(bad), total, meta.M, errors.Join(badErr...))
	}
	if len(es.Shards) != total {
		return nil, fmt.Errorf("no shard readable: %w", errors.Join(badErr...))
	}
	if _, err := code.Reconstruct(es); err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.recovered("repairing a stripe", nil)
			s.repair(meta, code, es, bad)
		}()
	}
	return es.Shards, nil
}

// repair writes rebuilt shards back: onto the same store when its node is
// live, else, once the node has been down for DownGrace in a settled view
// (never from a transient one: a node that just started sees few others),
// onto a live node that holds no shard of the stripe (or the least loaded
// one), and publishes the new placement. A shard whose node is down but
// not for long is left for heal.
func (s *Service) repair(meta *Meta, code *erasure.Code, es *erasure.Stripe, bad []int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := map[string]bool{}
	for _, n := range s.cfg.Cluster.Live() {
		live[n] = true
	}
	nm := *meta
	nm.Stores = append([]StoreRef(nil), meta.Stores...)
	nm.Gen++
	moved := false
	var todo []int
	for _, i := range bad {
		switch n := nm.Stores[i].Node; {
		case live[n]:
			todo = append(todo, i)
		case s.settled.Load() && s.downLong(n):
			nm.Stores[i] = s.replacement(nm.Stores)
			moved = true
			todo = append(todo, i)
		}
	}
	mj, err := json.Marshal(&nm)
	if err != nil {
		return
	}
	for _, i := range todo {
		h := code.ShardHeader(es, i)
		payload, err := encodePayload(mj, &h, es.Shards[i])
		if err != nil {
			return
		}
		ref := nm.Stores[i]
		if ref.Node == s.cfg.Node {
			err = s.putLocal(ctx, ref.Store, nm.Stripe, i, payload, true)
		} else {
			err = s.cfg.Transport.PutShard(ctx, ref.Node, ref.Store, nm.Stripe, i, payload, true)
		}
		if err != nil {
			s.log.Warn("burstbuffer: repairing a shard failed", "stripe", fmt.Sprintf("%016x", nm.Stripe), "shard", i, "store", ref, "err", err)
			return
		}
		s.stats.repaired.Add(1)
		s.log.Info("burstbuffer: shard repaired", "stripe", fmt.Sprintf("%016x", nm.Stripe), "shard", i, "store", ref)
	}
	if moved {
		if err := s.publish(&nm); err != nil {
			s.log.Warn("burstbuffer: publishing a repaired stripe failed", "err", err)
		}
	}
}

// replacement picks a store for a shard whose node is gone: a live node
// holding the fewest shards of the stripe, on a store index it does not use.
func (s *Service) replacement(cur []StoreRef) StoreRef {
	count := map[string]int{}
	used := map[StoreRef]bool{}
	live := map[string]bool{}
	for _, n := range s.cfg.Cluster.Live() {
		live[n] = true
		count[n] = 0
	}
	for _, r := range cur {
		used[r] = true
		if live[r.Node] {
			count[r.Node]++
		}
	}
	best := ""
	for n, c := range count {
		if best == "" || c < count[best] || (c == count[best] && n < best) {
			best = n
		}
	}
	for st := 0; ; st++ {
		if r := (StoreRef{Node: best, Store: st}); !used[r] && st < len(s.stores) {
			return r
		}
		if st >= len(s.stores) {
			return StoreRef{Node: best, Store: 0}
		}
	}
}

// recheckGone is for a stripe whose shards its live holders answer they do
// not have: they buried it (drained, or overwritten by newer stripes)
// while this node was away or busy, and a message saying so crossed its
// restart. It asks them to resync this node (their dead stripes bury it
// here, with its extents) and waits for that, at most recheckWait; it
// reports whether the stripe is dead here now. A stripe is rechecked once
// per recheckEvery: one really short of shards answers EIO at once after.
func (s *Service) recheckGone(ctx context.Context, meta *Meta) bool {
	now := time.Now()
	s.mu.Lock()
	if t, ok := s.mu.rechecked[meta.Stripe]; ok && now.Sub(t) < recheckEvery {
		s.mu.Unlock()
		return false
	}
	if len(s.mu.rechecked) > 4096 {
		for id, t := range s.mu.rechecked {
			if now.Sub(t) >= recheckEvery {
				delete(s.mu.rechecked, id)
			}
		}
	}
	s.mu.rechecked[meta.Stripe] = now
	s.mu.Unlock()
	asked := map[string]bool{}
	for _, r := range meta.Stores {
		if r.Node != s.cfg.Node && !asked[r.Node] && s.nodeLive(r.Node) {
			asked[r.Node] = true
			s.RequestResync(r.Node)
		}
	}
	if len(asked) == 0 {
		return false
	}
	s.log.Info("burstbuffer: the holders of a stripe no longer have its shards; resyncing with them", "stripe", fmt.Sprintf("%016x", meta.Stripe), "nodes", len(asked))
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(recheckWait)
	for !s.index.Dead(meta.Stripe) {
		select {
		case <-ctx.Done():
			return false
		case <-s.stop:
			return false
		case <-deadline:
			return false
		case <-t.C:
		}
	}
	return true
}

const (
	recheckEvery = 10 * time.Second
	recheckWait  = 5 * time.Second
)
