package flash

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// StoreOptions configures a Store. Zero values mean defaults.
type StoreOptions struct {
	// SegmentSize is the Log's segment size in bytes (LogOptions), which is
	// also the unit in which Delete frees space. Zero means
	// DefaultSegmentSize.
	SegmentSize int64
	// SyncHook is passed to the Log (LogOptions.SyncHook).
	SyncHook func(segment uint64)
	// Preallocate is passed to the Log (LogOptions.Preallocate).
	Preallocate bool
	// FS is passed to the Log (LogOptions.FS): nil means vfs.Default.
	FS vfs.FS
	// Logger reports what the Store skips or fails to clean up (corrupt
	// shards, segment files it could not remove). Nil discards.
	Logger *slog.Logger
}

// StoreStats describes a Store's contents, and counts since OpenStore.
type StoreStats struct {
	LiveShards     int    // shards that Get returns
	LiveBytes      int64  // their payload bytes
	DiskBytes      int64  // bytes in segment files, live or not
	Segments       int    // segment files
	SegmentsFreed  uint64 // segment files removed since OpenStore
	CorruptSkipped uint64 // corrupt records skipped by OpenStore, and shards by Scan
	Puts           uint64 // successful Puts
	Fdatasyncs     uint64 // fdatasyncs of segment files (Log.Stats)
}

// Store keeps the erasure-coded shards that one flash directory holds: each
// is an opaque payload keyed by (stripe, shard index), stored as a TypeShard
// record (File = stripe, Offset = index) in a Log. It is safe for
// concurrent use.
//
// The index is in memory, rebuilt by OpenStore from the log, where the
// newest record of a key wins. Deletions are not logged: Delete forgets the
// shards and removes segment files left with no live shard, but a deleted
// shard whose record sits in a segment that is still partly live (or whose
// older version does) comes back after a restart. Callers drop, after
// OpenStore, the stripes they no longer reference, and never reuse a stripe
// id after deleting it. Space is reclaimed a whole segment at a time, with
// no compaction: one live shard keeps its segment's file.
type Store struct {
	dir    string
	log    *Log
	logger *slog.Logger

	// appendMu is held shared by Put from its Append until its record is
	// counted in mu.segs, and exclusively by sweep while it picks segments
	// to remove: so sweep never removes a segment holding a record it
	// cannot see yet.
	appendMu sync.RWMutex

	mu struct {
		sync.Mutex
		stripes   map[uint64][]shard
		segs      map[uint64]*segUse
		dead      map[uint64]bool // segs with no live shard nor pending Put, not being removed
		shards    int
		liveBytes int64
		closed    bool
	}

	puts, freed, corrupt atomic.Uint64
}

type shard struct {
	idx int
	loc Location
}

// segUse is what a Store knows about one segment.
type segUse struct {
	live     int  // shards whose newest record is in the segment
	pending  int  // Puts that appended to it and have not finished
	removing bool // a sweep is removing it
}

// OpenStore opens (creating if needed) the store in dir, reading the whole
// log to rebuild the index. Unlike Open it does not give up a directory of
// good shards for one bad record: a record whose CRC fails is skipped and
// counted (StoreStats.CorruptSkipped); a segment ends at its first record
// whose header cannot be read, the rest of it left unread (a new segment is
// started if that is the last one: nothing is truncated); and missing
// segment numbers are fine. It fails on a record that is not a shard: dir
// then holds some other log. Recovery tells what it found.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	s := &Store{dir: dir, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.mu.stripes = make(map[uint64][]shard)
	s.mu.segs = make(map[uint64]*segUse)
	s.mu.dead = make(map[uint64]bool)
	record := func(loc Location) error {
		switch loc.Type {
		case TypeShard:
		case TypeNoop:
			return nil
		default:
			return fmt.Errorf("flash: %s@%d is a record of type %d, not a shard: not a shard store",
				segName(loc.Segment), loc.Offset, loc.Type)
		}
		if loc.FileOff > math.MaxInt {
			return fmt.Errorf("%w: %s@%d: shard index %d out of range",
				ErrCorrupt, segName(loc.Segment), loc.Offset, loc.FileOff)
		}
		s.setLocked(loc.File, int(loc.FileOff), loc)
		return nil
	}
	l, err := open(dir, LogOptions{SegmentSize: opts.SegmentSize, SyncHook: opts.SyncHook, Preallocate: opts.Preallocate, FS: opts.FS},
		openMode{lenient: true, record: record})
	if err != nil {
		return nil, fmt.Errorf("flash: open store %s: %w", dir, err)
	}
	s.log = l
	for _, sg := range l.Segments() {
		s.noteLocked(sg.ID, s.useLocked(sg.ID))
	}
	if r := l.Recovery(); r.Skipped > 0 || r.Unreadable > 0 {
		s.corrupt.Add(uint64(r.Skipped))
		s.logger.Warn("flash: store opened around corrupt records", "dir", dir,
			"skipped", r.Skipped, "skipped_bytes", r.SkippedBytes, "unreadable_bytes", r.Unreadable)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Recovery returns what OpenStore found in the log.
func (s *Store) Recovery() RecoveryInfo { return s.log.Recovery() }

// Put stores payload as shard idx of stripe, replacing any shard there, and
// returns once it is durable. Concurrent Puts share fdatasyncs (Log.Sync).
// A Put that fails (or whose ctx ends before it is durable) changes nothing
// now, but its shard may be found after a restart.
func (s *Store) Put(ctx context.Context, stripe uint64, idx int, payload []byte) error {
	return s.put(ctx, stripe, idx, payload, true)
}

// PutBuffered stores payload like Put but returns without waiting for it to
// be durable: a later Sync (or Put) makes it durable. Until then a crash
// may lose it.
func (s *Store) PutBuffered(ctx context.Context, stripe uint64, idx int, payload []byte) error {
	return s.put(ctx, stripe, idx, payload, false)
}

// Sync makes every shard stored before the call durable.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.log.Sync(ctx); err != nil {
		return fmt.Errorf("flash: sync %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, stripe uint64, idx int, payload []byte, durable bool) error {
	if idx < 0 {
		return fmt.Errorf("flash: put stripe %d shard %d: negative shard index", stripe, idx)
	}
	s.appendMu.RLock()
	locs, err := s.log.Append(ctx, Record{Type: TypeShard, File: stripe, Offset: uint64(idx), Data: payload})
	if err != nil {
		s.appendMu.RUnlock()
		return fmt.Errorf("flash: put stripe %d shard %d: %w", stripe, idx, err)
	}
	loc := locs[0]
	s.mu.Lock()
	u := s.useLocked(loc.Segment)
	u.pending++
	s.noteLocked(loc.Segment, u)
	s.mu.Unlock()
	s.appendMu.RUnlock()

	if durable {
		err = s.log.Sync(ctx)
	}

	s.mu.Lock()
	u.pending--
	if err == nil {
		// Only now: the record it replaces may be in a segment a sweep
		// removes as soon as it is not live.
		s.setLocked(stripe, idx, loc)
	}
	s.noteLocked(loc.Segment, u)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("flash: put stripe %d shard %d: %w", stripe, idx, err)
	}
	s.puts.Add(1)
	return nil
}

// Get returns shard idx of stripe, after checking its CRC. A missing shard
// is an error wrapping ErrNotFound, a damaged one ErrCorrupt.
func (s *Store) Get(stripe uint64, idx int) ([]byte, error) {
	loc, err := s.lookup(stripe, idx)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, loc.Length)
	if _, err := s.log.Read(loc, buf); err != nil {
		return nil, fmt.Errorf("flash: stripe %d shard %d: %w", stripe, idx, err)
	}
	return buf, nil
}

// ReadAt reads len(p) bytes of shard idx of stripe starting off bytes into
// it, without the CRC check of Get (which must read the whole record): the
// caller checks its own shard checksum. As with io.ReaderAt, fewer than
// len(p) bytes come with an error, io.EOF when the shard ends first; off
// must not be negative. A missing shard is an error wrapping ErrNotFound.
func (s *Store) ReadAt(stripe uint64, idx int, p []byte, off int64) (int, error) {
	loc, err := s.lookup(stripe, idx)
	if err != nil {
		return 0, err
	}
	n, err := s.log.ReadAt(loc, p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("flash: stripe %d shard %d: %w", stripe, idx, err)
	}
	return n, err
}

// Has reports whether the store holds shard idx of stripe.
func (s *Store) Has(stripe uint64, idx int) bool {
	_, err := s.lookup(stripe, idx)
	return err == nil
}

func (s *Store) lookup(stripe uint64, idx int) (Location, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return Location{}, ErrClosed
	}
	for _, sh := range s.mu.stripes[stripe] {
		if sh.idx == idx {
			return sh.loc, nil
		}
	}
	return Location{}, fmt.Errorf("%w: stripe %d shard %d", ErrNotFound, stripe, idx)
}

// Delete drops every shard of stripe and returns how many there were. The
// segment files that no longer hold a live shard, except the one being
// appended to, are removed (see Store for what a restart brings back).
// Reads of the dropped shards that race with Delete either succeed or fail
// with ErrNotFound.
func (s *Store) Delete(stripe uint64) int {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return 0
	}
	shards := s.mu.stripes[stripe]
	delete(s.mu.stripes, stripe)
	for _, sh := range shards {
		s.dropLocked(sh.loc)
	}
	s.mu.Unlock()
	if len(shards) > 0 {
		s.sweep()
	}
	return len(shards)
}

// sweep removes the segments, other than the current one, that hold no live
// shard and no record of a Put in progress: those whose shards were all
// deleted or replaced, or that held only corrupt records.
func (s *Store) sweep() {
	s.appendMu.Lock()
	cur := s.log.currentSegment()
	var dead []uint64
	s.mu.Lock()
	for id := range s.mu.dead {
		if id != cur {
			s.mu.segs[id].removing = true
			delete(s.mu.dead, id)
			dead = append(dead, id)
		}
	}
	s.mu.Unlock()
	s.appendMu.Unlock()
	// Appends go to the current segment or later ones: none will go to
	// the segments picked, which stay non-current.
	for _, id := range dead {
		err := s.log.RemoveSegment(id)
		s.mu.Lock()
		delete(s.mu.segs, id)
		s.mu.Unlock()
		switch {
		case err == nil:
			s.freed.Add(1)
		case errors.Is(err, ErrClosed):
		default:
			s.logger.Error("flash: removing a segment with no live shard", "dir", s.dir,
				"segment", segName(id), "err", err)
		}
	}
}

// Scan calls fn for every shard in the store, in log order, with its
// payload after checking its CRC; payload is only valid until fn returns.
// A shard that fails the check is skipped, counted in
// StoreStats.CorruptSkipped and logged (other shards of its stripe live on
// other nodes); Get keeps reporting it as ErrCorrupt until it is replaced
// or deleted. Shards put or deleted while Scan runs may or may not be seen.
// Scan stops at, and returns, fn's first error or an I/O error.
func (s *Store) Scan(fn func(stripe uint64, idx int, payload []byte) error) error {
	type item struct {
		stripe uint64
		shard
	}
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	items := make([]item, 0, s.mu.shards)
	for stripe, shards := range s.mu.stripes {
		for _, sh := range shards {
			items = append(items, item{stripe, sh})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.loc.Segment, b.loc.Segment), cmp.Compare(a.loc.Offset, b.loc.Offset))
	})
	var buf []byte
	for _, it := range items {
		buf = slices.Grow(buf[:0], int(it.loc.Length))[:it.loc.Length]
		if _, err := s.log.Read(it.loc, buf); err != nil {
			switch {
			case errors.Is(err, ErrCorrupt):
				s.corrupt.Add(1)
				s.logger.Warn("flash: skipping corrupt shard", "dir", s.dir,
					"stripe", it.stripe, "shard", it.idx, "err", err)
				continue
			case errors.Is(err, ErrNotFound): // deleted meanwhile
				continue
			}
			return fmt.Errorf("flash: scan %s: stripe %d shard %d: %w", s.dir, it.stripe, it.idx, err)
		}
		if err := fn(it.stripe, it.idx, buf); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the store's current contents and counters.
func (s *Store) Stats() StoreStats {
	segs := s.log.Segments()
	st := StoreStats{
		Segments:       len(segs),
		SegmentsFreed:  s.freed.Load(),
		CorruptSkipped: s.corrupt.Load(),
		Puts:           s.puts.Load(),
		Fdatasyncs:     s.log.Stats().Fdatasyncs,
	}
	for _, sg := range segs {
		st.DiskBytes += sg.Size
	}
	s.mu.Lock()
	st.LiveShards, st.LiveBytes = s.mu.shards, s.mu.liveBytes
	s.mu.Unlock()
	return st
}

// Close closes the log, waiting for pending syncs. Puts still running fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.mu.closed = true
	s.mu.Unlock()
	return s.log.Close()
}

// useLocked returns what the store knows about segment id, creating it.
func (s *Store) useLocked(id uint64) *segUse {
	u := s.mu.segs[id]
	if u == nil {
		u = &segUse{}
		s.mu.segs[id] = u
	}
	return u
}

// noteLocked keeps mu.dead up to date after u, segment id's use, changed.
func (s *Store) noteLocked(id uint64, u *segUse) {
	if u.live == 0 && u.pending == 0 && !u.removing {
		s.mu.dead[id] = true
	} else {
		delete(s.mu.dead, id)
	}
}

// setLocked makes loc the record of shard idx of stripe, unless the shard's
// record is already a newer one (concurrent Puts of one shard may finish
// out of order).
func (s *Store) setLocked(stripe uint64, idx int, loc Location) {
	shards := s.mu.stripes[stripe]
	for i := range shards {
		if shards[i].idx == idx {
			if shards[i].loc.Seq > loc.Seq {
				return
			}
			s.dropLocked(shards[i].loc)
			shards[i].loc = loc
			s.addLocked(loc)
			return
		}
	}
	s.mu.stripes[stripe] = append(shards, shard{idx, loc})
	s.addLocked(loc)
}

func (s *Store) addLocked(loc Location) {
	u := s.useLocked(loc.Segment)
	u.live++
	s.noteLocked(loc.Segment, u)
	s.mu.shards++
	s.mu.liveBytes += int64(loc.Length)
}

func (s *Store) dropLocked(loc Location) {
	u := s.useLocked(loc.Segment)
	u.live--
	s.noteLocked(loc.Segment, u)
	s.mu.shards--
	s.mu.liveBytes -= int64(loc.Length)
}
