package burstbuffer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"engine/burstbuffer/flash"
	"engine/erasure"
)

// Cluster says which nodes are members and alive. Names are node names.
type Cluster interface {
	Live() []string
}

// Transport carries the burst buffer's node-to-node calls. Calls to this
// node never reach it: the Service serves them itself.
type Transport interface {
	// PutShard stores a shard on node's store, durably if durable is set
	// (else SyncStores makes it durable later).
	PutShard(ctx context.Context, node string, store int, stripe uint64, idx int, payload []byte, durable bool) error
	// ReadShard reads n bytes at off of a stored shard of a stripe with
	// k+m shards of shardSize bytes, checked block by block on node.
	ReadShard(ctx context.Context, node string, store int, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, error)
	// SyncStores makes every shard stored on node's stores durable.
	SyncStores(ctx context.Context, node string, stores []int) error
	// GetShard returns a stored shard's payload (checked against the
	// store's record checksum).
	GetShard(ctx context.Context, node string, store int, stripe uint64, idx int) ([]byte, error)
	// Publish hands node the metas of stripes whose k+m shards are durable.
	Publish(ctx context.Context, node string, metas []*Meta) error
	// Drop tells node that pieces were drained (or truncated away).
	Drop(ctx context.Context, node string, ps []Piece) error
	// Dump returns what node knows: for resyncs.
	Dump(ctx context.Context, node string) (*Dump, error)
	// Truncate runs a truncation on node, the file's drain owner.
	Truncate(ctx context.Context, node string, ref FileRef, size int64) error
	// Call runs a named control operation on node: "drain" (the files
	// under path it owns), "resync" (with the node named by path, holding
	// reads until done: that node failed to tell it something).
	Call(ctx context.Context, node, op, path string) error
}

// Dump is a node's knowledge for a peer that resyncs: the metas of the
// stripes it knows, the shards it holds, its tombstones and dead stripes.
type Dump struct {
	Metas []*Meta          // stripes it knows complete (published to it)
	Cands []*Meta          // stripes it holds shards of, not known complete
	Held  map[uint64][]int // stripe -> shard indexes held by this node
	DurableState
}

// Config configures a Service. Zero values mean the defaults.
type Config struct {
	Node       string // this node's name, as Cluster and Transport know it
	FlashDir   string // the fast tier: shard stores live in FlashDir/store-N
	BackingDir string // the backing file system the drainer writes to
	K, M       int    // erasure code, 4+2 by default
	// ShardSize is the size of a full stripe's shards (64 KiB); a stripe
	// sealed early by an fsync has shards just big enough for its data.
	ShardSize int
	// DrainChunk is the backing file system's stripe: the drainer writes
	// only whole, aligned chunks (a file's last chunk excepted). 1 MiB.
	DrainChunk int
	// FlashLimit is how many bytes this node's stores may hold before
	// writers wait for the drainer (backpressure). 2 GiB by default.
	FlashLimit int64
	// DrainDelay is how long a file's newest write stays buffered before
	// the drainer may write it out (300 ms), so bursts drain as a whole.
	DrainDelay time.Duration
	// MaxInflight bounds the stripes being written at once (8).
	MaxInflight int
	// DownGrace is how long a member must be seen down, in a settled view
	// of the cluster, before this node acts on it: rebuilds its shards
	// elsewhere, or stops waiting for it at start. 3 s.
	DownGrace time.Duration
	// PeerRetry bounds how long a publish or a drop retries a live node
	// that fails it before the writer returns; the node is then asked to
	// resync (and holds its reads) when it answers again. 30 s.
	PeerRetry time.Duration
	Cluster   Cluster
	Transport Transport
	Log       *slog.Logger
	// FS is the file system FlashDir is on (stores and index); nil means
	// vfs.Default. Tests give a crashable vfs.MemFS. The backing directory
	// is always the operating system's.
	FS vfs.FS
}

func (c *Config) ensureDefaults() error {
	if c.K == 0 && c.M == 0 {
		c.K, c.M = 4, 2
	}
	if c.ShardSize == 0 {
		c.ShardSize = 64 << 10
	}
	if c.DrainChunk == 0 {
		c.DrainChunk = 1 << 20
	}
	if c.FlashLimit == 0 {
		c.FlashLimit = 2 << 30
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = 300 * time.Millisecond
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 8
	}
	if c.DownGrace == 0 {
		c.DownGrace = 3 * time.Second
	}
	if c.PeerRetry == 0 {
		c.PeerRetry = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	switch {
	case c.Node == "":
		return errors.New("burstbuffer: Config.Node is empty")
	case c.FlashDir == "":
		return errors.New("burstbuffer: no flash directory: give --flash DIR")
	case c.BackingDir == "":
		return errors.New("burstbuffer: no backing directory: give --backing DIR")
	case c.Cluster == nil || c.Transport == nil:
		return errors.New("burstbuffer: Config.Cluster and Config.Transport are required")
	case c.DrainChunk%4096 != 0 || c.DrainChunk < 0 || c.DrainChunk > maxDrainWrite:
		return fmt.Errorf("burstbuffer: drain chunk %d: must be a multiple of 4096 up to %d", c.DrainChunk, maxDrainWrite)
	case c.ShardSize < 1 || c.ShardSize > MaxShardSize:
		return fmt.Errorf("burstbuffer: shard size %d: must be 1..%d bytes", c.ShardSize, MaxShardSize)
	}
	return nil
}

// smallStripe: a stripe sealed by an fsync with at most this much data is
// stored as m+1 copies.
const smallStripe = 16 << 10

// Service is one node's part of the burst buffer. It is safe for
// concurrent use.
type Service struct {
	cfg     Config
	code    *erasure.Code
	small   *erasure.Code // 1+m: small stripes sealed by an fsync
	log     *slog.Logger
	index   *Index
	stores  []*flash.Store
	backing *os.File // the backing root, for open_by_handle_at
	shards  *shardCache
	layouts layoutCache

	liveSnap atomic.Pointer[liveSnapshot] // see nodeLive

	reapMu      sync.Mutex
	reapQ       []uint64 // dead stripes whose shards are still to delete
	overwritten []uint64 // stripes overwritten, to bury once their overwriters are durable
	reapKick    chan struct{}

	clock atomic.Uint64 // hybrid logical clock: versions

	mu struct {
		sync.Mutex
		open     *openStripe
		inflight []*openStripe             // sealed, not yet published, in seal order
		pending  map[uint64][]pendingWrite // file -> writes not yet published
		metas    map[uint64]*Meta          // stripes known live
		refs     map[uint64]FileRef        // file id -> handle
		cands    map[uint64]*candidate     // stripes seen in stores, not yet known complete
		held     map[uint64]map[int]bool   // stripe -> shard indexes held on this node
		synced   map[string]bool           // nodes resynced with since they came up
		dirty    map[StoreRef]bool         // stores holding shards not yet made durable
		done     []uint64                  // stripes stored since the last meta was sealed (Meta.Done)
		known    map[uint64]bool           // stripes some meta lists as Done
		lost     map[uint64]*lostStripe    // acknowledged stripes applied with fewer than k shards known
		view     viewState                 // memberLoop's view of the cluster
		// wantResync: nodes that failed to tell this node something
		// (publish, drop); reads wait until it has resynced with them.
		wantResync map[string]bool
		owed       map[string]bool // nodes this node failed to tell something: asked to resync
		// rechecked: when a read last asked the holders of a stripe whose
		// shards they no longer have to resync (recheckGone).
		rechecked map[uint64]time.Time
		toMark    []uint64 // stored stripes to note in the index (MarkDone)
		seq       uint64
		warned    string
		closed    bool
	}
	slots   chan struct{}
	drainMu sync.Mutex   // one drain pass at a time
	dirtyMu sync.Mutex   // serializes syncDirty
	used    atomic.Int64 // flash bytes at the last flashUsed
	pubMu   sync.RWMutex // held (write) while a stripe's writes leave pending
	kick    chan struct{}
	stop    chan struct{}
	// memberKick wakes memberLoop; wantResync counts s.mu.wantResync (a
	// read checks it without the lock).
	memberKick chan struct{}
	wantResync atomic.Int32
	// memberPasses counts memberLoop's passes (tests wait on it).
	memberPasses atomic.Int64
	wg           sync.WaitGroup
	stats        Metrics
	backFull     atomic.Pointer[error]
	settled      atomic.Bool  // the first resync pass (and applyLost) is done
	heardAll     atomic.Bool  // Synced has seen every member resynced with or long down, once
	lastFull     atomic.Value // time.Time of the last ENOSPC from the backing file system
	drainBufs    [][]byte     // drainFile's buffers (drainMu)
	hooks        hooks
}

type openStripe struct {
	id      uint64
	durable bool // sealed for a Sync: store its shards durably at once
	seq     uint64
	buf     []byte
	used    int
	writes  []Write
	files   map[uint64]FileRef
	done    chan struct{}
	err     error
}

type pendingWrite struct {
	w    Write
	st   *openStripe
	data []byte // the write's bytes in its stripe's buffer
}

// Open opens (creating) the node's stores and index, rebuilds the index
// from the stores and from the live peers, and starts the drainer.
func Open(cfg Config) (*Service, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	code, err := erasure.New(cfg.K, cfg.M)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %w", err)
	}
	small, err := erasure.New(1, cfg.M)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %w", err)
	}
	s := &Service{cfg: cfg, code: code, small: small, log: cfg.Log, shards: newShardCache(256),
		slots: make(chan struct{}, cfg.MaxInflight), kick: make(chan struct{}, 1), reapKick: make(chan struct{}, 1), stop: make(chan struct{}), memberKick: make(chan struct{}, 1)}
	s.mu.pending = map[uint64][]pendingWrite{}
	s.mu.metas = map[uint64]*Meta{}
	s.mu.refs = map[uint64]FileRef{}
	s.mu.cands = map[uint64]*candidate{}
	s.mu.held = map[uint64]map[int]bool{}
	s.mu.dirty = map[StoreRef]bool{}
	s.mu.known = map[uint64]bool{}
	s.mu.lost = map[uint64]*lostStripe{}
	s.mu.wantResync = map[string]bool{}
	s.mu.owed = map[string]bool{}
	s.mu.rechecked = map[uint64]time.Time{}
	if err := flash.MkdirAllDurable(cfg.FS, cfg.FlashDir, 0o700); err != nil {
		return nil, fmt.Errorf("burstbuffer: flash directory: %w", err)
	}
	if s.backing, err = os.Open(cfg.BackingDir); err != nil {
		return nil, fmt.Errorf("burstbuffer: backing directory: %w", err)
	}
	if s.index, err = OpenIndex(filepath.Join(cfg.FlashDir, "index"), cfg.FS); err != nil {
		s.backing.Close()
		return nil, err
	}
	for i := 0; i < cfg.K+cfg.M; i++ {
		// Space is freed in whole segments: keep them small against the
		// limit, so that draining frees flash well before it is full.
		seg := min(max(cfg.FlashLimit/int64(cfg.K+cfg.M)/8, 1<<20), 64<<20)
		st, err := flash.OpenStore(filepath.Join(cfg.FlashDir, fmt.Sprintf("store-%d", i)), flash.StoreOptions{SegmentSize: seg, Preallocate: true, Logger: cfg.Log, FS: cfg.FS})
		if err != nil {
			s.closeStores()
			return nil, fmt.Errorf("burstbuffer: %w", err)
		}
		s.stores = append(s.stores, st)
	}
	s.clock.Store(uint64(time.Now().UnixNano()))
	s.lastFull.Store(time.Time{})
	if err := s.rebuildLocal(); err != nil {
		s.closeStores()
		return nil, err
	}
	s.wg.Add(3)
	go s.drainLoop()
	go s.memberLoop()
	go s.reapLoop()
	return s, nil
}

func (s *Service) closeStores() {
	for _, st := range s.stores {
		st.Close()
	}
	if s.index != nil {
		s.index.Close()
	}
	if s.backing != nil {
		s.backing.Close()
	}
}

// Close flushes buffered writes (waiting for their stripes), stops the
// drainer and closes the stores. Data not yet drained stays in flash.
func (s *Service) Close() error {
	if s.isClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.SyncAll(ctx)
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.markDone()
	s.closeStores()
	return err
}

// markDone notes the stripes stored since the last call (Index.MarkDone).
func (s *Service) markDone() {
	s.mu.Lock()
	ids := s.mu.toMark
	s.mu.toMark = nil
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := s.index.MarkDone(ids...); err != nil {
		s.log.Warn("burstbuffer: noting stored stripes", "err", err)
	}
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// version returns a new version: a hybrid logical clock, above every
// version this node has issued or seen.
func (s *Service) version() uint64 {
	now := uint64(time.Now().UnixNano())
	for {
		old := s.clock.Load()
		v := max(now, old+1)
		if s.clock.CompareAndSwap(old, v) {
			return v
		}
	}
}

func (s *Service) observe(v uint64) {
	for {
		old := s.clock.Load()
		if v <= old || s.clock.CompareAndSwap(old, v) {
			return
		}
	}
}

func newStripeID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1
}

// flashUsed is the bytes this node's stores hold on disk; it also
// refreshes the figure writers check (used).
func (s *Service) flashUsed() int64 {
	n := s.countFlash()
	s.used.Store(n)
	return n
}

func (s *Service) countFlash() int64 {
	var n int64
	for _, st := range s.stores {
		n += st.Stats().DiskBytes
	}
	return n
}

// WriteAt buffers p at off of ref. It waits while this node's flash is full
// (the drainer frees it); it is durable once Sync returns.
func (s *Service) WriteAt(ctx context.Context, ref FileRef, p []byte, off int64) error {
	return s.writeAt(ctx, ref, p, off, false)
}

func (s *Service) writeAt(ctx context.Context, ref FileRef, p []byte, off int64, clean bool) error {
	if off < 0 {
		return fmt.Errorf("burstbuffer: negative offset %d: %w", off, syscall.EINVAL)
	}
	if err := s.waitSpace(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return fmt.Errorf("burstbuffer: closed: %w", syscall.EIO)
	}
	s.mu.refs[ref.ID] = ref
	for len(p) > 0 {
		st := s.mu.open
		if st == nil {
			st = &openStripe{id: newStripeID(), buf: make([]byte, 0, min(s.cfg.K*s.cfg.ShardSize, 16<<10)),
				files: map[uint64]FileRef{}, done: make(chan struct{})}
			s.mu.open = st
		}
		// The buffer grows to a full stripe as writes come (an fsync after
		// every small write seals small stripes without allocating full
		// ones); bytes once written never move in the buffer they were
		// written to, so pending writes keep their own slice of it.
		full := s.cfg.K * s.cfg.ShardSize
		n := min(len(p), full-len(st.buf))
		if len(st.buf)+n > cap(st.buf) {
			nb := make([]byte, len(st.buf), min(full, max(2*cap(st.buf), len(st.buf)+n)))
			copy(nb, st.buf)
			st.buf = nb
		}
		st.buf = append(st.buf, p[:n]...)
		data := st.buf[st.used : st.used+n]
		w := Write{File: ref.ID, Off: uint64(off), Len: uint32(n), Pos: uint32(st.used), Version: s.version(), Clean: clean}
		st.used += n
		st.writes = append(st.writes, w)
		st.files[ref.ID] = ref
		s.mu.pending[ref.ID] = append(s.mu.pending[ref.ID], pendingWrite{w: w, st: st, data: data})
		s.stats.bytesWritten.Add(int64(n))
		p, off = p[n:], off+int64(n)
		if st.used == full {
			if err := s.sealLocked(ctx, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitSpace blocks while this node's flash is over its limit, kicking the
// drainer, until space is freed or ctx ends.
func (s *Service) waitSpace(ctx context.Context) error {
	// The figure refreshed once a stripe (and by the drain loop): counting
	// the stores' segments on every write would take 12 locks.
	if s.used.Load() < s.cfg.FlashLimit {
		return nil
	}
	s.stats.throttled.Add(1)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.flashUsed() >= s.cfg.FlashLimit {
		if p := s.backFull.Load(); p != nil {
			return *p
		}
		s.kickDrain()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return fmt.Errorf("burstbuffer: closed: %w", syscall.EIO)
		case <-t.C:
		}
	}
	return nil
}

// sealLocked closes the open stripe and starts writing it. It waits (with
// s.mu released) while MaxInflight stripes are being written.
func (s *Service) sealLocked(ctx context.Context, durable bool) error {
	st := s.mu.open
	if st == nil {
		return nil
	}
	st.durable = durable
	s.mu.open = nil
	s.mu.seq++
	st.seq = s.mu.seq
	s.mu.inflight = append(s.mu.inflight, st)
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		// The stripe is sealed; write it anyway so no write is left
		// behind, but without holding the caller.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.slots <- struct{}{}
			s.writeStripe(st)
		}()
		return ctx.Err()
	}
	if durable {
		// An fsync waits for this stripe anyway: write it here, without a
		// hand-off to another goroutine.
		s.writeStripe(st)
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.writeStripe(st)
	}()
	return nil
}

// writeStripe encodes st, stores its k+m shards (retrying on other nodes
// until it succeeds or the service closes), applies and publishes its
// meta, and releases its waiters.
func (s *Service) writeStripe(st *openStripe) {
	defer func() { <-s.slots }()
	meta, err := s.storeStripe(st)
	if err != nil {
		s.log.Error("burstbuffer: a stripe could not be stored; fsync of its files fails", "err", err)
	}
	s.releaseStripe(st, meta, err)
}

// storeStripe encodes st, stores its shards, applies and publishes its meta.
func (s *Service) storeStripe(st *openStripe) (meta *Meta, err error) {
	defer s.recovered("writing a stripe", &err)
	meta = &Meta{Writer: s.cfg.Node, K: s.cfg.K, M: s.cfg.M, DataLen: st.used, Writes: st.writes}
	for _, r := range st.files {
		meta.Files = append(meta.Files, r)
	}
	sort.Slice(meta.Files, func(i, j int) bool { return meta.Files[i].ID < meta.Files[j].ID })
	s.mu.Lock()
	meta.Done, s.mu.done = s.mu.done, nil
	s.mu.Unlock()
	// A small stripe sealed by an fsync is stored as m+1 copies (a 1+m
	// code): it survives the loss of any m shards as a k+m stripe does,
	// with m+1 fdatasyncs instead of k+m.
	code := s.code
	if st.durable && st.used <= smallStripe {
		code = s.small
		meta.K = 1
	}
	meta.ShardSize = code.MinShardSize(st.used)
	if meta.ShardSize < s.cfg.ShardSize {
		meta.ShardSize = (meta.ShardSize + 511) &^ 511
	}
	es, err := code.NewStripe(meta.ShardSize)
	if err == nil {
		err = code.Fill(es, st.buf[:st.used])
	}
	if err == nil {
		err = code.EncodeInto(es)
	}
	var exclude map[string]bool
	backoff := 10 * time.Millisecond
	id := st.id
	for err == nil {
		meta.Stripe = id
		es.ID = id
		if meta.Stores, err = s.place(id, meta.K+meta.M, exclude); err != nil {
			break
		}
		var perr error
		perr = s.putShards(code, meta, es, st.durable)
		s.flashUsed() // once a stripe, not once a write
		if perr == nil {
			if !st.durable {
				s.mu.Lock()
				for _, r := range meta.Stores {
					s.mu.dirty[r] = true
				}
				s.mu.Unlock()
			}
			break
		}
		s.log.Warn("burstbuffer: storing a stripe failed; retrying on other stores", "stripe", fmt.Sprintf("%016x", id), "err", perr)
		var bad *storeError
		if errors.As(perr, &bad) {
			if exclude == nil {
				exclude = map[string]bool{}
			}
			exclude[bad.ref.Node] = true
		}
		select {
		case <-s.stop:
			err = fmt.Errorf("burstbuffer: closed while storing stripe %016x: %w", id, perr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		if len(exclude) >= len(s.cfg.Cluster.Live()) {
			exclude = nil
		}
		id = newStripeID() // the shards already stored are orphans with a different id
	}
	if err == nil {
		// Into the index, then to the other nodes, while its writes are
		// still pending here (a read on this node sees them either way):
		// an fsync waits until they leave pending, so it returns only once
		// every live node has the stripe (close-to-open).
		var dead []uint64
		if dead, err = s.apply(meta); err == nil {
			s.buryOverwritten(dead)
			s.publishPeers(meta)
		}
	}
	return meta, err
}

// releaseStripe ends st's write: its writes leave pending and its waiters
// get err.
func (s *Service) releaseStripe(st *openStripe, meta *Meta, err error) {
	s.pubMu.Lock() // readers take the index and the pending writes as one snapshot
	s.mu.Lock()
	st.err = err
	if err == nil {
		if len(s.mu.done) < 4096 {
			s.mu.done = append(s.mu.done, meta.Stripe)
		}
		s.mu.known[meta.Stripe] = true
		s.mu.toMark = append(s.mu.toMark, meta.Stripe) // a hint for restarts, noted by the drain loop
	}
	for f := range st.files {
		pw := s.mu.pending[f]
		kept := pw[:0]
		for _, x := range pw {
			if x.st != st {
				kept = append(kept, x)
			}
		}
		if len(kept) == 0 {
			delete(s.mu.pending, f)
		} else {
			s.mu.pending[f] = kept
		}
	}
	for i, x := range s.mu.inflight {
		if x == st {
			s.mu.inflight = append(s.mu.inflight[:i], s.mu.inflight[i+1:]...)
			break
		}
	}
	close(st.done)
	s.mu.Unlock()
	s.pubMu.Unlock()
	if err == nil {
		s.stats.stripes.Add(1)
		s.stats.stripeBytes.Add(int64(st.used))
	}
}

type storeError struct {
	ref StoreRef
	err error
}

func (e *storeError) Error() string { return fmt.Sprintf("store %s: %v", e.ref, e.err) }
func (e *storeError) Unwrap() error { return e.err }

// putShards stores every shard of es on meta.Stores, in parallel.
func (s *Service) putShards(code *erasure.Code, meta *Meta, es *erasure.Stripe, durable bool) error {
	mj, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, len(meta.Stores))
	for i, ref := range meta.Stores {
		h := code.ShardHeader(es, i)
		payload, err := encodePayload(mj, &h, es.Shards[i])
		if err != nil {
			return err
		}
		go func() {
			var err error
			defer func() { errs <- err }()
			defer s.recovered("storing a shard", &err)
			if ref.Node == s.cfg.Node {
				err = s.putLocal(ctx, ref.Store, meta.Stripe, i, payload, durable)
			} else {
				err = s.cfg.Transport.PutShard(ctx, ref.Node, ref.Store, meta.Stripe, i, payload, durable)
			}
			if err != nil {
				err = &storeError{ref: ref, err: err}
			}
		}()
	}
	var first error
	for range meta.Stores {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// place picks the k+m stores of a stripe: distinct live nodes while there
// are enough, then distinct stores of the same nodes.
func (s *Service) place(id uint64, total int, exclude map[string]bool) ([]StoreRef, error) {
	var nodes []string
	for _, n := range s.cfg.Cluster.Live() {
		if !exclude[n] {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("burstbuffer: no live node to store shards on")
	}
	sort.Strings(nodes)
	n := len(nodes)
	if n < s.cfg.K+s.cfg.M {
		s.warnPlacement(n)
	}
	start := int(id % uint64(n))
	out := make([]StoreRef, total)
	for i := range out {
		out[i] = StoreRef{Node: nodes[(start+i)%n], Store: i / n}
	}
	return out, nil
}

func (s *Service) warnPlacement(n int) {
	msg := s.placementWarning(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != "" && s.mu.warned != msg {
		s.mu.warned = msg
		s.log.Warn("burstbuffer: " + msg)
	}
}

// putLocal stores a shard on this node's store i.
func (s *Service) putLocal(ctx context.Context, store int, stripe uint64, idx int, payload []byte, durable bool) error {
	if store < 0 || store >= len(s.stores) {
		return fmt.Errorf("burstbuffer: no store %d on %s", store, s.cfg.Node)
	}
	s.layouts.drop(layoutKey{store, stripe, idx}) // a repair rewrites a shard elsewhere in the log
	put := s.stores[store].Put
	if !durable {
		put = s.stores[store].PutBuffered
	}
	if err := put(ctx, stripe, idx, payload); err != nil {
		return err
	}
	s.mu.Lock()
	h := s.mu.held[stripe]
	if h == nil {
		h = map[int]bool{}
		s.mu.held[stripe] = h
	}
	h[idx] = true
	s.mu.Unlock()
	return nil
}

// getLocal returns a shard payload from this node's store i.
func (s *Service) getLocal(store int, stripe uint64, idx int) ([]byte, error) {
	if store < 0 || store >= len(s.stores) {
		return nil, fmt.Errorf("burstbuffer: no store %d on %s", store, s.cfg.Node)
	}
	return s.stores[store].Get(stripe, idx)
}

// publish applies meta here and hands it to every other live node. A node
// that misses it learns it when it resyncs.
func (s *Service) publish(meta *Meta) error {
	if err := s.applyMeta(meta); err != nil {
		return err
	}
	s.publishPeers(meta)
	return nil
}

func (s *Service) publishPeers(meta *Meta) {
	s.toPeers("publishing a stripe", func(n string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.cfg.Transport.Publish(ctx, n, []*Meta{meta})
	})
}

// toPeers calls fn for every other live node at once and waits. A call
// that fails is retried (fn must be idempotent) until it succeeds, the
// node is no longer live, Config.PeerRetry has passed or the service
// stops: a writer's fsync waits for it, so that no live node serves older
// bytes once it returns. A node it gave up on is owed a resync: asked
// (sendOwed), as soon as it answers, to resync with this node, holding
// its reads until it has.
func (s *Service) toPeers(what string, fn func(node string) error) {
	var wg sync.WaitGroup
	live := s.cfg.Cluster.Live()
	s.oweAbsent(live)
	for _, n := range live {
		if n == s.cfg.Node {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.toPeer(what, n, fn)
		}()
	}
	wg.Wait()
}

func (s *Service) toPeer(what, n string, fn func(node string) error) {
	deadline := time.Now().Add(s.cfg.PeerRetry)
	backoff := 10 * time.Millisecond
	for try := 0; ; try++ {
		var err error
		func() {
			defer s.recovered(what, &err)
			err = fn(n)
		}()
		if err == nil || errors.Is(err, ErrNoService) {
			if err == nil && try > 0 {
				s.log.Info("burstbuffer: "+what+" succeeded after retrying", "node", n, "tries", try+1)
			}
			return
		}
		giveUp := ""
		switch {
		case !s.nodeLiveNow(n):
			giveUp = "the node is no longer live"
		case time.Now().After(deadline):
			giveUp = "still failing after " + s.cfg.PeerRetry.String()
		}
		if giveUp == "" {
			select {
			case <-s.stop:
				giveUp = "this node is stopping"
			case <-time.After(backoff):
			}
		}
		if giveUp != "" {
			// Ask it now, before the writer returns, to resync with this
			// node (holding its reads until it has); else as soon as it
			// answers (sendOwed).
			if s.askResync(n) == nil {
				s.log.Warn("burstbuffer: "+what+" failed ("+giveUp+"); the node resyncs with this one, holding its reads until it has", "node", n, "err", err)
				return
			}
			s.mu.Lock()
			s.mu.owed[n] = true
			s.mu.Unlock()
			s.log.Warn("burstbuffer: "+what+" failed ("+giveUp+"); the node is asked to resync with this one as soon as it answers", "node", n, "err", err)
			return
		}
		if try == 0 {
			s.log.Warn("burstbuffer: "+what+" failed; retrying", "node", n, "err", err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// nodeLiveNow reports whether n is in a fresh Cluster.Live.
func (s *Service) nodeLiveNow(n string) bool {
	for _, l := range s.cfg.Cluster.Live() {
		if l == n {
			return true
		}
	}
	return false
}

// waitResynced holds a read while this node has a resync to do with a
// node that failed to tell it something (RequestResync): until then it
// may hold older bytes than that node acknowledged.
func (s *Service) waitResynced(ctx context.Context) error {
	if s.wantResync.Load() == 0 {
		return nil
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	limit := time.After(30 * time.Second)
	for s.wantResync.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return fmt.Errorf("burstbuffer: closed: %w", syscall.EIO)
		case <-limit:
			return fmt.Errorf("burstbuffer: %s missed an update from a peer and has not resynced with it yet (retry): %w", s.cfg.Node, syscall.EIO)
		case <-t.C:
		}
	}
	return nil
}

// applyMeta adds a durable stripe to the index and buries the stripes it
// leaves dead.
func (s *Service) applyMeta(meta *Meta) error {
	dead, err := s.apply(meta)
	if err != nil {
		return err
	}
	s.buryOverwritten(dead)
	return nil
}

// buryOverwritten buries stripes whose bytes newer stripes overwrote, once
// those are durable. A newer stripe may have been stored without an fsync
// (buffered): if its shards were lost in a crash, the older stripe's
// bytes, fsynced, would be what the file holds, so the older stripe must
// not be marked dead (nor its shards deleted) before the newer one is
// durable. The reaper makes every live node sync its stores, which covers
// every stripe stored before, then buries these.
func (s *Service) buryOverwritten(dead []uint64) {
	if len(dead) == 0 {
		return
	}
	s.reapMu.Lock()
	s.overwritten = append(s.overwritten, dead...)
	s.reapMu.Unlock()
	select {
	case s.reapKick <- struct{}{}:
	default:
	}
}

// buryOverwrittenNow syncs every live node's stores and buries the
// overwritten stripes noted before the sync began. On failure they wait
// for the next try.
func (s *Service) buryOverwrittenNow() {
	s.reapMu.Lock()
	ids := s.overwritten
	s.overwritten = nil
	s.reapMu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := make([]int, s.cfg.K+s.cfg.M)
	for i := range all {
		all[i] = i
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for _, n := range s.cfg.Cluster.Live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			func() {
				defer s.recovered("syncing a node's stores", &err)
				if n == s.cfg.Node {
					err = s.syncLocal(ctx, all)
				} else {
					err = s.cfg.Transport.SyncStores(ctx, n, all)
				}
			}()
			if err != nil {
				errMu.Lock()
				first = cmp.Or(first, fmt.Errorf("%s: %w", n, err))
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = s.bury(ids)
	}
	if first != nil {
		s.log.Warn("burstbuffer: burying overwritten stripes failed; will retry", "stripes", len(ids), "err", first)
		s.reapMu.Lock()
		s.overwritten = append(s.overwritten, ids...)
		s.reapMu.Unlock()
	}
}

// apply adds a durable stripe to the index and returns the stripes left
// dead.
func (s *Service) apply(meta *Meta) ([]uint64, error) {
	if err := meta.Validate(); err != nil {
		return nil, err
	}
	if s.index.Dead(meta.Stripe) {
		return nil, nil
	}
	for _, w := range meta.Writes {
		s.observe(w.Version)
	}
	s.mu.Lock()
	old := s.mu.metas[meta.Stripe]
	if old != nil && old.Gen >= meta.Gen {
		s.mu.Unlock()
		return nil, nil
	}
	if l := s.mu.lost[meta.Stripe]; l != nil && old != nil && meta.Gen > old.Gen {
		// A newer placement: a repair rebuilt it from k shards.
		delete(s.mu.lost, meta.Stripe)
	}
	s.mu.metas[meta.Stripe] = meta
	for _, d := range meta.Done {
		s.mu.known[d] = true
	}
	for _, r := range meta.Files {
		if _, ok := s.mu.refs[r.ID]; !ok {
			s.mu.refs[r.ID] = r
		}
	}
	s.mu.Unlock()
	dead, err := s.index.Apply(meta.Stripe, meta.Writes)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: index: %w", err)
	}
	s.kickDrain()
	return dead, nil
}

// bury records dead stripes and deletes their local shards.
func (s *Service) bury(dead []uint64) error {
	if len(dead) == 0 {
		return nil
	}
	// A stripe with bytes still in the index (one applied here that a
	// peer knows drained or overwritten: a node that restarts may apply
	// what its own shards say before it hears of it) loses them too: a
	// dead stripe is never read, and its extents would answer EIO for
	// good.
	var cut []Piece
	s.mu.Lock()
	for _, id := range dead {
		if m := s.mu.metas[id]; m != nil && s.index.Live(id) > 0 {
			for _, w := range m.Writes {
				cut = append(cut, Piece{Stripe: id, File: w.File, Off: w.Off, End: w.Off + uint64(w.Len)})
			}
		}
	}
	s.mu.Unlock()
	if err := s.index.MarkDead(dead); err != nil {
		return err
	}
	if len(cut) > 0 {
		if _, err := s.index.Drop(cut); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, id := range dead {
		delete(s.mu.metas, id)
		delete(s.mu.held, id)
		delete(s.mu.cands, id)
		delete(s.mu.known, id)
		delete(s.mu.lost, id)
	}
	s.mu.Unlock()
	for _, id := range dead {
		s.shards.forget(id, s.cfg.K+s.cfg.M)
		s.layouts.forget(id, len(s.stores), s.cfg.K+s.cfg.M)
	}
	s.reapMu.Lock()
	s.reapQ = append(s.reapQ, dead...)
	s.reapMu.Unlock()
	select {
	case s.reapKick <- struct{}{}:
	default:
	}
	return nil
}

// reapLoop deletes the shards of the stripes bury buried, off the drain's
// path: deleting them frees log segments, and removing a segment syncs its
// directory (a journal commit each). Nothing reads a dead stripe, and a
// crash before the delete leaves shards that the restart finds dead and
// deletes.
func (s *Service) reapLoop() {
	defer s.wg.Done()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-s.stop:
			s.reap()
			return
		case <-s.reapKick:
		case <-retry.C:
		}
		func() {
			defer s.recovered("the reaper", nil)
			s.buryOverwrittenNow()
			s.reap()
		}()
	}
}

func (s *Service) reap() {
	s.reapMu.Lock()
	ids := s.reapQ
	s.reapQ = nil
	s.reapMu.Unlock()
	if len(ids) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, st := range s.stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.recovered("deleting dead shards", nil)
			for _, id := range ids {
				st.Delete(id)
			}
		}()
	}
	wg.Wait()
	s.flashUsed()
}

// Sync waits until every write to ref acknowledged by this node is durable
// on k+m shards.
func (s *Service) Sync(ctx context.Context, ref FileRef) error {
	s.mu.Lock()
	pw := s.mu.pending[ref.ID]
	if len(pw) == 0 {
		// Every stripe with its writes is stored; some perhaps not yet
		// durably.
		s.mu.Unlock()
		return s.syncDirty(ctx)
	}
	st := pw[len(pw)-1].st // the newest write's stripe: the last sealed of them
	if st == s.mu.open {
		if err := s.sealLocked(ctx, true); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	// Every stripe sealed up to st.
	var wait []*openStripe
	for _, x := range s.mu.inflight {
		if x.seq <= st.seq {
			wait = append(wait, x)
		}
	}
	s.mu.Unlock()
	if err := s.waitStripes(ctx, append(wait, st)); err != nil {
		return err
	}
	return s.syncDirty(ctx)
}

// SyncAll makes every write this node acknowledged durable.
func (s *Service) SyncAll(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.open != nil && !s.mu.closed {
		if err := s.sealLocked(ctx, true); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	wait := append([]*openStripe(nil), s.mu.inflight...)
	s.mu.Unlock()
	if err := s.waitStripes(ctx, wait); err != nil {
		return err
	}
	return s.syncDirty(ctx)
}

// syncDirty makes durable the shards stored without waiting for it (those
// of stripes that filled up): one group-committed fdatasync per store.
func (s *Service) syncDirty(ctx context.Context) error {
	// One at a time: a caller that found the set empty while another's
	// fdatasyncs run must not return before they end.
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	s.mu.Lock()
	if len(s.mu.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	dirty := s.mu.dirty
	s.mu.dirty = map[StoreRef]bool{}
	s.mu.Unlock()
	byNode := map[string][]int{}
	for r := range dirty {
		byNode[r.Node] = append(byNode[r.Node], r.Store)
	}
	errs := make(chan error, len(byNode))
	for node, stores := range byNode {
		go func() {
			var err error
			defer func() { errs <- err }()
			defer s.recovered("syncing a node's stores", &err)
			if node == s.cfg.Node {
				err = s.syncLocal(ctx, stores)
				return
			}
			err = s.cfg.Transport.SyncStores(ctx, node, stores)
		}()
	}
	var first error
	for range byNode {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		s.mu.Lock()
		for r := range dirty {
			s.mu.dirty[r] = true
		}
		s.mu.Unlock()
		return fmt.Errorf("burstbuffer: making shards durable: %v: %w", first, syscall.EIO)
	}
	return nil
}

// syncLocal makes this node's stores durable.
func (s *Service) syncLocal(ctx context.Context, stores []int) error {
	for _, i := range stores {
		if i < 0 || i >= len(s.stores) {
			return fmt.Errorf("burstbuffer: no store %d on %s", i, s.cfg.Node)
		}
		if err := s.stores[i].Sync(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) waitStripes(ctx context.Context, sts []*openStripe) error {
	for _, st := range sts {
		select {
		case <-st.done:
			if st.err != nil {
				return fmt.Errorf("%w: %w", st.err, syscall.EIO)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Size returns ref's logical size: the larger of backingSize and the end
// of its buffered bytes.
func (s *Service) Size(ref FileRef, backingSize int64) int64 {
	size := backingSize
	if end, err := s.index.End(ref.ID); err == nil && int64(end) > size {
		size = int64(end)
	}
	s.mu.Lock()
	for _, pw := range s.mu.pending[ref.ID] {
		if e := int64(pw.w.Off) + int64(pw.w.Len); e > size {
			size = e
		}
	}
	s.mu.Unlock()
	return size
}

// ReadAt reads ref's newest bytes at off into p: buffered extents over the
// backing file. n < len(p) only at the logical end, with io.EOF.
func (s *Service) ReadAt(ctx context.Context, ref FileRef, backing *os.File, p []byte, off int64) (int, error) {
	if err := s.waitResynced(ctx); err != nil {
		return 0, err
	}
	fi, err := backing.Stat()
	if err != nil {
		return 0, err
	}
	size := s.Size(ref, fi.Size())
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	if err := s.readRange(ctx, ref.ID, backing, fi.Size(), p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readRange fills p with file's bytes at off.
func (s *Service) readRange(ctx context.Context, file uint64, backing *os.File, backingSize int64, p []byte, off int64) error {
	for try := 0; ; try++ {
		err := s.readRangeOnce(ctx, file, backing, backingSize, p, off)
		if !errors.Is(err, errGone) {
			return err
		}
		if try == 100 {
			return fmt.Errorf("burstbuffer: file %016x keeps changing under a read: %w", file, syscall.EIO)
		}
		// A drain may have just extended the backing file.
		if fi, serr := backing.Stat(); serr == nil {
			backingSize = fi.Size()
		}
	}
}

func (s *Service) readRangeOnce(ctx context.Context, file uint64, backing *os.File, backingSize int64, p []byte, off int64) error {
	// The lookup and the pending writes are one snapshot: a stripe moves
	// from pending to the index under pubMu.
	s.pubMu.RLock()
	exts, err := s.index.Lookup(file, uint64(off), uint64(len(p)))
	s.mu.Lock()
	pending := append([]pendingWrite(nil), s.mu.pending[file]...)
	s.mu.Unlock()
	s.pubMu.RUnlock()
	if err != nil {
		return err
	}
	for i := 0; i < len(exts); i++ {
		e := exts[i]
		if !e.Hole { // one read for neighbours that are neighbours in their stripe too
			for i+1 < len(exts) && !exts[i+1].Hole && exts[i+1].Stripe == e.Stripe &&
				exts[i+1].FileOff == e.FileOff+e.Length && uint64(exts[i+1].Pos) == uint64(e.Pos)+e.Length {
				e.Length += exts[i+1].Length
				i++
			}
		}
		dst := p[int64(e.FileOff)-off : int64(e.FileOff)-off+int64(e.Length)]
		if e.Hole {
			if err := readBacking(backing, backingSize, dst, int64(e.FileOff)); err != nil {
				return err
			}
			continue
		}
		if err := s.readStripe(ctx, e.Stripe, int(e.Pos), dst); err != nil {
			return err
		}
	}
	// This node's own writes not yet published lie on top, where they are
	// newer than what the index holds (a later stripe may be published
	// before an earlier one), in version order: the order they were
	// written in.
	end := off + int64(len(p))
	for _, pw := range pending {
		ws, we := int64(pw.w.Off), int64(pw.w.Off)+int64(pw.w.Len)
		lo, hi := max(ws, off), min(we, end)
		if lo >= hi {
			continue
		}
		var newer [][2]uint64
		for _, e := range exts {
			if !e.Hole && e.Version > pw.w.Version {
				newer = append(newer, [2]uint64{e.FileOff, e.FileOff + e.Length})
			}
		}
		for _, r := range subtract(uint64(lo), uint64(hi), newer) {
			a, b := int64(r[0]), int64(r[1])
			copy(p[a-off:b-off], pw.data[a-ws:b-ws])
		}
	}
	return nil
}

func readBacking(f *os.File, size int64, dst []byte, off int64) error {
	n := 0
	if off < size {
		m, err := f.ReadAt(dst[:min(int64(len(dst)), size-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("burstbuffer: read backing file: %w", err)
		}
		n = m
	}
	clear(dst[n:])
	return nil
}

// oweAbsent marks the nodes seen live before but not live now as owed a
// resync (sendOwed asks them once they are live again): a publish or a
// drop sent now does not reach them. Views of the cluster differ for a
// while: a node that restarted may have resynced with this one already
// while this one does not see it live yet, and it would keep for good the
// stripes drained and reaped meanwhile, and miss the ones published.
func (s *Service) oweAbsent(live []string) {
	now := make(map[string]bool, len(live))
	for _, n := range live {
		now[n] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.mu.view.lastLive {
		if n != s.cfg.Node && !now[n] {
			s.mu.owed[n] = true
		}
	}
}
