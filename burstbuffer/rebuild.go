package burstbuffer

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"engine/erasure"
)

// The index is rebuilt at every start, never trusted from before:
//
//  1. rebuildLocal scans this node's stores. A stripe with at least k
//     shards here is applied; one with fewer is a candidate.
//  2. resync, for every live peer (at start and whenever a node joins or
//     comes back), fetches the peer's Dump: its tombstones and dead
//     stripes are applied first, then the metas it holds live, then its
//     candidates and shard inventory are counted with ours: a candidate
//     with k shards seen across the cluster is applied.
//
// Applying is idempotent and order-free (newest version wins byte by byte,
// tombstones and dead stripes win over writes), so resyncing with every
// peer in any order gives every node the same index.

// candidate is a stripe seen in shard stores but not yet known complete.
type candidate struct {
	meta *Meta
	held map[int]bool
}

func (s *Service) rebuildLocal() error {
	done, err := s.index.DoneStripes()
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, d := range done {
		s.mu.known[d] = true
	}
	s.mu.Unlock()
	cands := map[uint64]*candidate{}
	var scanned int
	for si, st := range s.stores {
		err := st.Scan(func(stripe uint64, idx int, payload []byte) error {
			meta, _, _, err := parsePayload(payload, true)
			if err == nil {
				err = meta.Validate()
			}
			if err == nil && (meta.Stripe != stripe || idx < 0 || idx >= meta.K+meta.M) {
				err = fmt.Errorf("%w: meta of stripe %016x (%d+%d) stored as shard %d", errPayload, meta.Stripe, meta.K, meta.M, idx)
			}
			if err != nil {
				s.log.Warn("burstbuffer: unreadable shard skipped at start", "store", si, "stripe", fmt.Sprintf("%016x", stripe), "err", err)
				return nil
			}
			scanned++
			c := cands[stripe]
			if c == nil {
				c = &candidate{meta: meta, held: map[int]bool{}}
				cands[stripe] = c
			} else if meta.Gen > c.meta.Gen {
				c.meta = meta
			}
			c.held[idx] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("burstbuffer: scan store %d: %w", si, err)
		}
	}
	s.mu.Lock()
	s.mu.cands = map[uint64]*candidate{}
	s.mu.held = map[uint64]map[int]bool{}
	for id, c := range cands {
		s.mu.held[id] = c.held
		for _, d := range c.meta.Done {
			s.mu.known[d] = true
		}
	}
	s.mu.Unlock()
	applied := 0
	for id, c := range cands {
		if s.index.Dead(id) {
			for _, st := range s.stores {
				st.Delete(id)
			}
			continue
		}
		if len(c.held) >= c.meta.K {
			if err := s.applyMeta(c.meta); err != nil {
				return err
			}
			applied++
			continue
		}
		s.mu.Lock()
		s.mu.cands[id] = &candidate{meta: c.meta, held: copySet(c.held)}
		s.mu.Unlock()
	}
	s.log.Info("burstbuffer: index rebuilt from local shards", "shards", scanned, "stripes", applied, "incomplete", len(cands)-applied)
	return nil
}

func copySet(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Synced reports whether this node has resynced with every node that is
// live now. Until it has, its reads may miss stripes only peers know.
func (s *Service) Synced() bool {
	return s.settled.Load() && s.peersSynced()
}

func (s *Service) peersSynced() bool {
	live := s.cfg.Cluster.Live()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range live {
		if n != s.cfg.Node && !s.mu.synced[n] {
			return false
		}
	}
	return true
}

func copyNames(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// dump is this node's Dump.
func (s *Service) dump() (*Dump, error) {
	d := &Dump{Held: map[uint64][]int{}}
	var err error
	if d.DurableState, err = s.index.Durable(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mu.metas {
		d.Metas = append(d.Metas, m)
	}
	for _, c := range s.mu.cands {
		d.Cands = append(d.Cands, c.meta)
	}
	for id, h := range s.mu.held {
		for i := range h {
			d.Held[id] = append(d.Held[id], i)
		}
	}
	return d, nil
}

// checkDump checks a peer's Dump before any of it is applied.
func checkDump(d *Dump) error {
	if err := checkPieces(d.Tombs); err != nil {
		return err
	}
	for _, ms := range [][]*Meta{d.Metas, d.Cands} {
		for _, m := range ms {
			if err := m.Validate(); err != nil {
				return err
			}
		}
	}
	for id, held := range d.Held {
		if len(held) > erasure.MaxShards {
			return fmt.Errorf("burstbuffer: stripe %016x: %d shards held", id, len(held))
		}
		for _, i := range held {
			if i < 0 || i >= erasure.MaxShards {
				return fmt.Errorf("burstbuffer: stripe %016x: shard %d held: must be 0..%d", id, i, erasure.MaxShards-1)
			}
		}
	}
	return nil
}

// merge applies a peer's Dump (checked by checkDump).
func (s *Service) merge(d *Dump) error {
	if len(d.Tombs) > 0 {
		dead, err := s.index.Drop(d.Tombs)
		if err != nil {
			return err
		}
		if err := s.bury(dead); err != nil {
			return err
		}
	}
	if err := s.bury(d.Dead); err != nil {
		return err
	}
	for _, m := range d.Metas {
		if err := s.applyMeta(m); err != nil {
			return err
		}
	}
	var ready []*Meta
	s.mu.Lock()
	for _, m := range d.Cands {
		for _, x := range m.Done {
			s.mu.known[x] = true
		}
		if _, ok := s.mu.metas[m.Stripe]; ok {
			continue
		}
		c := s.mu.cands[m.Stripe]
		if c == nil {
			c = &candidate{meta: m, held: map[int]bool{}}
			s.mu.cands[m.Stripe] = c
		}
		for _, i := range d.Held[m.Stripe] {
			c.held[i] = true
		}
	}
	for id, c := range s.mu.cands {
		for _, i := range d.Held[id] {
			c.held[i] = true
		}
		if _, ok := s.mu.metas[id]; ok {
			delete(s.mu.cands, id)
			continue
		}
		if len(c.held) >= c.meta.K {
			ready = append(ready, c.meta)
			delete(s.mu.cands, id)
		}
	}
	s.mu.Unlock()
	for _, m := range ready {
		if err := s.applyMeta(m); err != nil {
			return err
		}
	}
	return nil
}

// resync fetches node's Dump and merges it.
func (s *Service) resync(ctx context.Context, node string) (err error) {
	defer s.recovered("a resync with "+node, &err)
	d, err := s.cfg.Transport.Dump(ctx, node)
	if err != nil {
		return err
	}
	if err := checkDump(d); err != nil {
		s.log.Warn("burstbuffer: a node's dump is malformed; refused (resync retries)", "node", node, "err", err)
		return fmt.Errorf("%w (dump of %s refused)", err, node)
	}
	return s.merge(d)
}

// owner is the live node that drains file (and heals stripes keyed by the
// same hash): rendezvous hashing over the live members, so ownership moves
// only for the files of a node that leaves or joins.
func owner(key uint64, live []string) string {
	best, bestH := "", uint64(0)
	for _, n := range live {
		h := fnv.New64a()
		var b [8]byte
		for i := range b {
			b[i] = byte(key >> (8 * i))
		}
		h.Write(b[:])
		h.Write([]byte(n))
		if v := h.Sum64(); best == "" || v > bestH {
			best, bestH = n, v
		}
	}
	return best
}

// memberLoop resyncs with nodes that join or come back, and heals stripes
// with shards on nodes that are gone.
func (s *Service) memberLoop() {
	defer s.wg.Done()
	synced := map[string]bool{}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		live := s.cfg.Cluster.Live()
		now := map[string]bool{}
		for _, n := range live {
			now[n] = true
			if n == s.cfg.Node || synced[n] {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := s.resync(ctx, n)
			cancel()
			if err != nil {
				s.log.Debug("burstbuffer: resync failed; retrying", "node", n, "err", err)
				continue
			}
			synced[n] = true
			s.log.Info("burstbuffer: resynced with node", "node", n)
		}
		for n := range synced {
			if !now[n] {
				delete(synced, n) // resync when it comes back
			}
		}
		s.mu.Lock()
		s.mu.synced = copyNames(synced)
		s.mu.Unlock()
		func() {
			defer s.recovered("the member loop", nil)
			if s.peersSynced() {
				s.applyLost()
				s.settled.Store(true)
			}
			s.heal(live)
		}()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// applyLost applies the stripes that were acknowledged (some meta lists
// them as Done) but have fewer than k shards left anywhere, once this node
// has heard from every live node: their bytes read as EIO rather than as
// the older bytes beneath them.
func (s *Service) applyLost() {
	var lost []*candidate
	s.mu.Lock()
	for id, c := range s.mu.cands {
		if s.mu.known[id] && len(c.held) < c.meta.K {
			lost = append(lost, c)
			delete(s.mu.cands, id)
		}
	}
	s.mu.Unlock()
	for _, c := range lost {
		s.log.Error("burstbuffer: an acknowledged stripe lost more than m shards; its bytes read as EIO until rewritten",
			"stripe", fmt.Sprintf("%016x", c.meta.Stripe), "shards_left", len(c.held), "need", c.meta.K)
		if err := s.applyMeta(c.meta); err != nil {
			s.log.Error("burstbuffer: applying a lost stripe", "err", err)
		}
		s.stats.lostStripes.Add(1)
	}
}

// heal rebuilds the shards this node owns (by stripe) that live on nodes
// no longer live, onto live nodes.
func (s *Service) heal(live []string) {
	if len(live) == 0 {
		return
	}
	alive := map[string]bool{}
	for _, n := range live {
		alive[n] = true
	}
	var todo []*Meta
	s.mu.Lock()
	for id, m := range s.mu.metas {
		if owner(id, live) != s.cfg.Node {
			continue
		}
		for _, r := range m.Stores {
			if !alive[r.Node] {
				todo = append(todo, m)
				break
			}
		}
	}
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].Stripe < todo[j].Stripe })
	for _, m := range todo {
		select {
		case <-s.stop:
			return
		default:
		}
		var err error
		func() {
			defer s.recovered("healing a stripe", &err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = s.reconstruct(ctx, m) // repairs onto live nodes and publishes
		}()
		if err != nil {
			s.log.Warn("burstbuffer: healing a stripe failed", "stripe", fmt.Sprintf("%016x", m.Stripe), "err", err)
		}
	}
}
