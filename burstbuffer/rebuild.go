package burstbuffer

import (
	"context"
	"errors"
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
//  3. resolveMissing, once the view of the cluster is settled (Membership)
//     and every live node is resynced, applies the acknowledged
//     candidates still short of k shards (their bytes read as EIO, not as
//     older ones), declaring them lost only when the holders of the
//     missing shards are known gone; resyncs keep counting their shards,
//     and they read again once k are known.
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
//
// It also waits for the members not live yet: a node that restarts sees
// the cluster's members (Raft) before gossip shows them live, and until
// it has heard from them it would serve and place shards as if alone
// (all k+m on itself) and publish to no one. A member is waited for until
// it is resynced with or has been down for DownGrace in a settled view;
// once (a member that goes down later does not stop this node serving).
func (s *Service) Synced() bool {
	if !s.settled.Load() || !s.peersSynced() {
		return false
	}
	if s.heardAll.Load() {
		return true
	}
	members, settled := s.members()
	if !settled {
		return false
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range members {
		if m != s.cfg.Node && !s.mu.synced[m] && !s.downLongLocked(m, now) {
			return false
		}
	}
	s.heardAll.Store(true)
	return true
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
	if err := checkPieces(d.Drained); err != nil {
		return err
	}
	for _, p := range d.Drained {
		if p.Stripe != 0 || p.Version == 0 {
			return fmt.Errorf("burstbuffer: drained range %d..%d of file %016x: stripe %016x, version %d: want no stripe and a version", p.Off, p.End, p.File, p.Stripe, p.Version)
		}
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
	// The peer's drained ranges with its tombstones: they cut older
	// writes this node may hold (from its own shards) that no live stripe
	// shadows any more.
	if ps := append(append([]Piece(nil), d.Tombs...), d.Drained...); len(ps) > 0 {
		dead, err := s.index.Drop(ps)
		if err != nil {
			return err
		}
		if err := s.bury(dead); err != nil {
			return err
		}
	}
	// The metas before the dead stripes: a stripe this node applied and
	// the peer knows dead loses its extents to the newer stripes first,
	// then the rest of them (bury), so that no read here sees the older
	// bytes beneath in between.
	for _, m := range d.Metas {
		if err := s.applyMeta(m); err != nil {
			return err
		}
	}
	if err := s.bury(d.Dead); err != nil {
		return err
	}
	var ready []*Meta
	s.mu.Lock()
	// Stripes applied short of shards keep counting them: once k are
	// known they read again (resolveMissing), with the newest placement.
	for id, l := range s.mu.lost {
		for _, i := range d.Held[id] {
			l.held[i] = true
		}
	}
	for _, m := range d.Cands {
		if l := s.mu.lost[m.Stripe]; l != nil && m.Gen > l.meta.Gen {
			l.meta = m
		}
	}
	for _, m := range d.Cands {
		for _, x := range m.Done {
			s.mu.known[x] = true
		}
		if _, ok := s.mu.metas[m.Stripe]; ok {
			continue
		}
		if s.index.Dead(m.Stripe) {
			// Another peer's dump buried it (drained or overwritten) and
			// this peer has not heard yet: it is no candidate here.
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

// Membership is what a Cluster may also tell: every member of the cluster,
// live or down, and whether this node's view is settled (it has joined the
// cluster and caught up with its replicated state). A node missing from a
// settled answer has left the cluster for good, with the shards it held;
// a member that is merely not live may come back with them. Without
// Membership the view counts as settled and no node as gone.
type Membership interface {
	Members() (members []string, settled bool)
}

// members returns the cluster's members (nil: not known) and whether this
// node's view of them is settled.
func (s *Service) members() (map[string]bool, bool) {
	ms, ok := s.cfg.Cluster.(Membership)
	if !ok {
		return nil, true
	}
	names, settled := ms.Members()
	if !settled {
		return nil, false
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, true
}

// removed reports whether node has left the cluster for good (a settled
// view of its members that does not list it).
func removed(members map[string]bool, node string) bool {
	return members != nil && !members[node]
}

// viewState is memberLoop's view of the cluster, for the decisions that
// must not be taken from a transient one (loss, heal, repair).
type viewState struct {
	since    time.Time            // when the view first settled (zero: not yet)
	lastLive map[string]time.Time // when each node was last seen live
	live     map[string]bool
	members  map[string]bool // nil: not known
}

// downLong reports whether node has been down (not live) for at least
// Config.DownGrace in a settled view: long enough to act on (rebuild its
// shards elsewhere, stop waiting for it). A node this node has not seen
// yet since start counts from when the view settled.
func (s *Service) downLong(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downLongLocked(node, time.Now())
}

func (s *Service) downLongLocked(node string, now time.Time) bool {
	v := &s.mu.view
	if node == s.cfg.Node || v.since.IsZero() || v.live[node] {
		return false
	}
	from := v.since
	if t := v.lastLive[node]; t.After(from) {
		from = t
	}
	return now.Sub(from) >= s.cfg.DownGrace
}

// noteView records the live set and the members seen now.
func (s *Service) noteView(live []string, members map[string]bool, settled bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &s.mu.view
	if v.lastLive == nil {
		v.lastLive = map[string]time.Time{}
	}
	v.live = map[string]bool{}
	for _, n := range live {
		v.live[n] = true
		v.lastLive[n] = now
	}
	if settled && v.since.IsZero() {
		v.since = now
	}
	if settled {
		v.members = members
	}
}

// viewSettled reports whether the membership view has settled once.
func (s *Service) viewSettled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.mu.view.since.IsZero()
}

// memberLoop resyncs with nodes that join or come back (or ask for it),
// decides on acknowledged stripes missing shards, and heals stripes with
// shards on nodes that are gone.
func (s *Service) memberLoop() {
	defer s.wg.Done()
	synced := map[string]bool{}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		want := copyNames(s.mu.wantResync)
		s.mu.Unlock()
		for n := range want {
			delete(synced, n) // a peer said this node missed what it sent
		}
		members, settled := s.members()
		live := s.cfg.Cluster.Live()
		s.noteView(live, members, settled, time.Now())
		now := map[string]bool{}
		for _, n := range live {
			now[n] = true
			if n == s.cfg.Node || synced[n] {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := s.resync(ctx, n)
			cancel()
			if errors.Is(err, ErrNoService) {
				err = nil // a member without a burst buffer holds nothing of it
			}
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
		for n := range want {
			// Done once resynced; a node not live is resynced when it is
			// (its entry in synced is gone).
			if synced[n] || !now[n] {
				delete(s.mu.wantResync, n)
			}
		}
		s.wantResync.Store(int32(len(s.mu.wantResync)))
		s.mu.Unlock()
		func() {
			defer s.recovered("the member loop", nil)
			// Nothing is decided from a view not yet settled (a restarted
			// node sees only itself until it has joined), nor before this
			// node has heard from every live node.
			if !settled || !s.peersSynced() {
				return
			}
			if !s.settled.Load() && s.waitingForHolders(synced, members) {
				return
			}
			s.resolveMissing(synced, members)
			s.settled.Store(true)
			s.heal(live)
		}()
		s.sendOwed(live)
		s.memberPasses.Add(1)
		select {
		case <-s.stop:
			return
		case <-s.memberKick:
		case <-t.C:
		}
	}
}

// missingGone reports whether every shard of c's stripe that no node
// reported holding is known gone: its holder is this node (whose stores
// were scanned), a node resynced with (that does not hold it), or a node
// that left the cluster. A holder merely not live (not yet seen after a
// restart, or down) may still have it.
func (s *Service) missingGone(c *candidate, synced, members map[string]bool) bool {
	for i, r := range c.meta.Stores {
		if c.held[i] || r.Node == s.cfg.Node || synced[r.Node] || removed(members, r.Node) {
			continue
		}
		return false
	}
	return true
}

// waitingForHolders reports whether, before the first decision, some
// acknowledged stripe short of shards has a holder that may still come:
// not live yet, not gone, not down for DownGrace. The first decision waits
// for it (a node that starts sees the others come live one by one).
func (s *Service) waitingForHolders(synced, members map[string]bool) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.mu.cands {
		if !s.mu.known[id] || len(c.held) >= c.meta.K {
			continue
		}
		for i, r := range c.meta.Stores {
			if c.held[i] || r.Node == s.cfg.Node || synced[r.Node] || removed(members, r.Node) || s.downLongLocked(r.Node, now) {
				continue
			}
			return true
		}
	}
	return false
}

// lostStripe is an acknowledged stripe applied with fewer than k shards
// known: lost (verdict set: every missing shard's holder is known gone) or
// unavailable (a holder is down, and may come back). Its bytes read as EIO
// rather than as the older bytes beneath them; resyncs keep counting its
// shards, and it reads again once k are known.
type lostStripe struct {
	candidate
	verdict bool
}

// resolveMissing applies the acknowledged stripes (some meta lists them as
// Done) that have fewer than k shards known anywhere, once this node has
// heard from every live node in a settled view: their bytes read as EIO
// rather than as the older bytes beneath them. A stripe is declared lost
// only when the holders of its missing shards are known gone
// (missingGone); until then it is unavailable. Stripes applied so before
// and now with k shards known are applied again (revived).
func (s *Service) resolveMissing(synced, members map[string]bool) {
	var apply []*Meta
	var lost, unavail, revived []*lostStripe
	s.mu.Lock()
	for id, c := range s.mu.cands {
		if s.index.Dead(id) {
			delete(s.mu.cands, id) // buried meanwhile: nothing is missing
			continue
		}
		if s.mu.known[id] && len(c.held) < c.meta.K {
			l := &lostStripe{candidate: *c}
			s.mu.lost[id] = l
			delete(s.mu.cands, id)
			apply = append(apply, c.meta)
			unavail = append(unavail, l)
		}
	}
	for id, l := range s.mu.lost {
		switch {
		case len(l.held) >= l.meta.K:
			delete(s.mu.lost, id)
			revived = append(revived, l)
		case !l.verdict && s.missingGone(&l.candidate, synced, members):
			l.verdict = true
			lost = append(lost, l)
		}
	}
	s.mu.Unlock()
	for _, l := range unavail {
		if !l.verdict {
			s.log.Warn("burstbuffer: an acknowledged stripe has fewer than k shards on the nodes heard from; its bytes read as EIO until the nodes holding the rest are back",
				"stripe", fmt.Sprintf("%016x", l.meta.Stripe), "shards_known", len(l.held), "need", l.meta.K)
		}
	}
	for _, l := range lost {
		s.log.Error("burstbuffer: an acknowledged stripe lost more than m shards; its bytes read as EIO until rewritten",
			"stripe", fmt.Sprintf("%016x", l.meta.Stripe), "shards_left", len(l.held), "need", l.meta.K)
		s.stats.lostStripes.Add(1)
	}
	for _, l := range revived {
		s.log.Info("burstbuffer: a stripe short of shards has k of them again; it reads", "stripe", fmt.Sprintf("%016x", l.meta.Stripe), "shards", len(l.held))
		apply = append(apply, l.meta)
	}
	for _, m := range apply {
		if err := s.applyMeta(m); err != nil {
			s.log.Error("burstbuffer: applying a stripe short of shards", "err", err)
		}
	}
}

// isMember reports whether node is a member of the cluster: in the
// members when the view is settled, else live now.
func (s *Service) isMember(node string) bool {
	if members, settled := s.members(); settled && members != nil {
		return members[node]
	}
	for _, n := range s.cfg.Cluster.Live() {
		if n == node {
			return true
		}
	}
	return false
}

// RequestResync makes this node resync with node (which failed to tell it
// something: a publish or a drop) and hold reads until it has. It is the
// peer side of the "resync" call.
func (s *Service) RequestResync(node string) {
	if node == s.cfg.Node {
		return
	}
	s.mu.Lock()
	s.mu.wantResync[node] = true
	s.wantResync.Store(int32(len(s.mu.wantResync)))
	s.mu.Unlock()
	select {
	case s.memberKick <- struct{}{}:
	default:
	}
}

// sendOwed asks the live nodes this node failed to tell something to
// resync with it.
func (s *Service) sendOwed(live []string) {
	s.mu.Lock()
	var owed []string
	for _, n := range live {
		if s.mu.owed[n] {
			owed = append(owed, n)
		}
	}
	s.mu.Unlock()
	for _, n := range owed {
		if err := s.askResync(n); err != nil {
			s.log.Warn("burstbuffer: asking a node to resync failed; retrying", "node", n, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.mu.owed, n)
		s.mu.Unlock()
	}
}

// askResync asks node n to resync with this one (the "resync" call).
func (s *Service) askResync(n string) (err error) {
	defer s.recovered("asking a node to resync", &err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.cfg.Transport.Call(ctx, n, "resync", s.cfg.Node); err != nil && !errors.Is(err, ErrNoService) {
		return err
	}
	return nil
}

// heal rebuilds the shards this node owns (by stripe) that live on nodes
// down for DownGrace (or gone), onto live nodes. It runs only from a
// settled view (memberLoop).
func (s *Service) heal(live []string) {
	if len(live) == 0 {
		return
	}
	alive := map[string]bool{}
	for _, n := range live {
		alive[n] = true
	}
	now := time.Now()
	var todo []*Meta
	s.mu.Lock()
	for id, m := range s.mu.metas {
		if owner(id, live) != s.cfg.Node {
			continue
		}
		if _, short := s.mu.lost[id]; short {
			continue // fewer than k shards known: nothing to rebuild from
		}
		for _, r := range m.Stores {
			if !alive[r.Node] && s.downLongLocked(r.Node, now) {
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
