package burstbuffer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"unsafe"

	"golang.org/x/sys/unix"
)

func statAtime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	return fi.ModTime()
}

// maxDrainWrite bounds one pwrite to the backing file system (a whole
// number of drain chunks).
const maxDrainWrite = 8 << 20

// drainWorkers is how many windows of a file are read and written at once.
const drainWorkers = 4

func (s *Service) kickDrain() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Service) drainLoop() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		func() {
			defer s.recovered("a drain pass", nil)
			s.markDone()
			s.drainPass(context.Background(), false)
		}()
	}
}

// drainPass drains the files this node owns. With all set it drains
// everything owned now, however recent.
func (s *Service) drainPass(ctx context.Context, all bool) {
	files, err := s.index.Files()
	if err != nil {
		s.log.Error("burstbuffer: drain: index", "err", err)
		return
	}
	live := s.cfg.Cluster.Live()
	var ids []uint64
	for f, dirty := range files {
		if dirty > 0 && owner(f, live) == s.cfg.Node {
			ids = append(ids, f)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	pressure := s.flashUsed() >= s.cfg.FlashLimit*3/4
	if !all && s.backFull.Load() != nil && time.Since(s.lastFull.Load().(time.Time)) < 5*time.Second {
		return // the backing file system is full: retry every few seconds, not every pass
	}
	for _, f := range ids {
		select {
		case <-s.stop:
			return
		default:
		}
		if !all && !pressure && !s.quiet(f) {
			continue
		}
		if err := s.drainFile(ctx, f); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			if errors.Is(err, errDrainBusy) {
				s.log.Info("burstbuffer: drain deferred", "file", fmt.Sprintf("%016x", f), "err", err)
				continue
			}
			s.log.Warn("burstbuffer: drain failed; will retry", "file", fmt.Sprintf("%016x", f), "err", err)
		}
	}
}

// quiet reports whether file's newest buffered write is older than
// DrainDelay (versions are nanosecond clock readings).
func (s *Service) quiet(file uint64) bool {
	return time.Since(time.Unix(0, int64(s.index.Newest(file)))) >= s.cfg.DrainDelay
}

// drainFile writes file's dirty extents to its backing file as whole,
// aligned chunks, fsyncs it, then drops the drained pieces everywhere.
//
// Drains are fenced. Drain ownership is owner(file, Live()) as each node
// sees it, so during a join or leave two nodes can drain one file at once,
// and a node's index can lag another's (a publish still in flight, or a
// Drop that arrived before the publish it drops). Two things keep an older
// drain from ever landing over a newer one:
//
//   - The whole drain of a file (the snapshot of its extents, the reads of
//     the backing bytes its windows keep, the writes, the fence update and
//     the fsync) runs under an exclusive flock of the backing file, which
//     every node shares. Drains of one file never interleave, and each
//     takes its snapshot after the last one has landed.
//   - The backing file carries a drain fence (the xattr fenceXattr): for
//     byte ranges of the file, a version that has already landed there. A
//     drainer writes no byte of an extent older than the fence over that
//     byte (the newer bytes there stay, read back from the backing file
//     into its window), and drops that piece as drained: newer bytes are on
//     the backing file, durable (fsynced by the drain that landed them, and
//     again by this one before it drops anything).
//
// The fence only ever says less than what landed (a byte's fence version
// is at most the highest version written there), never more: it is raised
// only for bytes this drain writes, to the version it writes, and merged
// down (the older of two neighbours) or forgotten when it grows too big.
// So the fence can make a drain skip only bytes a newer version has
// already replaced, the rule the index applies between buffered writes
// (newest version wins byte by byte).
func (s *Service) drainFile(ctx context.Context, file uint64) (err error) {
	defer s.recovered(fmt.Sprintf("the drain of file %016x", file), &err)
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if n, err := s.index.FileExtents(file); err != nil {
		return err
	} else if !hasDirty(n) {
		return nil
	}
	s.mu.Lock()
	ref, ok := s.mu.refs[file]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no handle known for the file")
	}
	start := time.Now()
	bf, err := openRef(s.backing, ref, os.O_RDWR)
	if errors.Is(err, ErrStale) {
		// The file was deleted: its buffered bytes have nowhere to go.
		exts, err := s.index.FileExtents(file)
		if err != nil {
			return err
		}
		s.log.Info("burstbuffer: dropping the buffered bytes of a deleted file", "file", fmt.Sprintf("%016x", file))
		return s.dropEverywhere(ctx, piecesOf(file, exts))
	}
	if err != nil {
		return err
	}
	defer bf.Close()
	unlock, err := s.lockDrain(ctx, bf, file)
	if err != nil {
		return err
	}
	defer unlock()
	// The snapshot the drain writes, taken under the lock.
	exts, err := s.index.FileExtents(file)
	if err != nil {
		return err
	}
	var dirty []Extent
	var end uint64
	for _, e := range exts {
		if !e.Clean {
			dirty = append(dirty, e)
		} else {
			end = max(end, e.FileOff+e.Length)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	fi, err := bf.Stat()
	if err != nil {
		return err
	}
	fc := s.readFence(bf, file)
	land, stale := fc.split(dirty)
	for _, e := range land {
		end = max(end, e.FileOff+e.Length)
	}
	if len(stale) > 0 {
		s.log.Info("burstbuffer: a newer drain already landed over buffered bytes; dropping them", "file", fmt.Sprintf("%016x", file), "pieces", len(stale))
	}
	bsize := fi.Size()
	size := max(uint64(bsize), end)
	chunk := uint64(s.cfg.DrainChunk)
	wins := planDrain(land, chunk, size)
	// drainWorkers goroutines each read a window from flash into their own
	// page-aligned buffer (for O_DIRECT; Go's heap does not move objects)
	// and write it: reads of one overlap writes of another, and the
	// backing file system gets more than one write at a time.
	for len(s.drainBufs) < drainWorkers {
		raw := make([]byte, maxDrainWrite+4096)
		skip := (4096 - int(uintptr(unsafe.Pointer(&raw[0]))%4096)) % 4096
		s.drainBufs = append(s.drainBufs, raw[skip:skip+maxDrainWrite])
	}
	// Whole chunks go through O_DIRECT: they are aligned, and the backing
	// file system gets them as they are, without filling the page cache.
	direct, derr := openRef(s.backing, ref, os.O_RDWR|syscall.O_DIRECT)
	if derr == nil {
		defer direct.Close()
	}
	var (
		next    atomic.Int64
		written atomic.Int64
		wg      sync.WaitGroup
		errMu   sync.Mutex
		first   error
	)
	for w := 0; w < drainWorkers; w++ {
		buf := s.drainBufs[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var perr error
			defer func() {
				if perr != nil {
					errMu.Lock()
					first = cmp.Or(first, perr)
					errMu.Unlock()
				}
			}()
			defer s.recovered(fmt.Sprintf("a drain worker of file %016x", file), &perr)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(wins) {
					return
				}
				errMu.Lock()
				failed := first != nil
				errMu.Unlock()
				if failed {
					return
				}
				win := wins[i]
				if h := s.hooks.drainWindow; h != nil {
					h(file, win.off)
				}
				b := buf[:win.end-win.off]
				err := s.readRange(ctx, file, bf, bsize, b, int64(win.off))
				if err == nil {
					// Where a newer drain landed, the backing bytes stay.
					err = keepLanded(bf, bsize, b, win, stale)
				}
				if err == nil {
					out := bf
					if direct != nil && uint64(len(b))%chunk == 0 {
						out = direct
					}
					if _, e := out.WriteAt(b, int64(win.off)); e != nil {
						err = s.backingError(e)
					} else {
						s.stats.observeWrite(len(b), win.off%chunk == 0 && uint64(len(b))%chunk == 0, win.end == size)
						written.Add(int64(len(b)))
					}
				}
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// The data is the file's as of the writes, not of the drain: keep the
	// times the mount set (ctime cannot be kept).
	ts := []unix.Timespec{unix.NsecToTimespec(statAtime(fi).UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", bf.Fd()), ts, 0); err != nil {
		s.log.Debug("burstbuffer: keeping the mtime of a drained file failed", "err", err)
	}
	// The fence goes with the data: the fsync below makes both durable, and
	// no other drain reads it before the lock is released after that.
	s.writeFence(bf, file, fc.raise(land))
	if err := bf.Sync(); err != nil {
		return s.backingError(err)
	}
	unlock()
	s.backFull.Store(nil)
	var drained int64
	for _, e := range dirty {
		drained += int64(e.Length)
	}
	if err := s.dropEverywhere(ctx, piecesOf(file, dirty)); err != nil {
		return err
	}
	s.stats.drained(drained, written.Load(), time.Since(start))
	return nil
}

// window is a range of a file a drain writes in one pwrite.
type window struct {
	off, end uint64
}

// planDrain returns the windows that write a file's dirty extents (in
// file order, each inside the file's size): the chunks they touch, as
// runs of consecutive chunks, cut into whole aligned chunks of up to
// maxDrainWrite bytes, the file's short tail on its own.
func planDrain(dirty []Extent, chunk, size uint64) []window {
	var runs [][2]uint64 // [first chunk, last chunk]
	for _, e := range dirty {
		c0, c1 := e.FileOff/chunk, (e.FileOff+e.Length-1)/chunk
		if n := len(runs); n > 0 && c0 <= runs[n-1][1]+1 {
			runs[n-1][1] = max(runs[n-1][1], c1)
		} else {
			runs = append(runs, [2]uint64{c0, c1})
		}
	}
	var wins []window
	for _, r := range runs {
		for off := r[0] * chunk; off < (r[1]+1)*chunk && off < size; {
			wend := min(off+maxDrainWrite/chunk*chunk, (r[1]+1)*chunk, size)
			if n := (wend - off) / chunk * chunk; wend == size && n > 0 && n < wend-off {
				wend = off + n
			}
			wins = append(wins, window{off, wend})
			off = wend
		}
	}
	return wins
}

func piecesOf(file uint64, exts []Extent) []Piece {
	ps := make([]Piece, 0, len(exts))
	for _, e := range exts {
		ps = append(ps, Piece{Stripe: e.Stripe, File: file, Off: e.FileOff, End: e.FileOff + e.Length, Version: e.Version})
	}
	return ps
}

func (s *Service) backingError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		e := fmt.Errorf("burstbuffer: the backing file system %s is full (%v): buffered data stays in flash; free space on it: %w", s.cfg.BackingDir, err, syscall.ENOSPC)
		if s.backFull.Load() == nil {
			s.log.Error("burstbuffer: " + e.Error())
		}
		s.backFull.Store(&e)
		s.lastFull.Store(time.Now())
		return e
	}
	return fmt.Errorf("burstbuffer: write to the backing file system: %w", err)
}

// dropEverywhere drops pieces here, durably, then on every other live
// node. A node that misses it learns it when it resyncs.
func (s *Service) dropEverywhere(ctx context.Context, ps []Piece) error {
	dead, err := s.index.Drop(ps)
	if err != nil {
		return err
	}
	if err := s.bury(dead); err != nil {
		return err
	}
	s.toPeers("telling a node about drained bytes", func(n string) error { return s.cfg.Transport.Drop(ctx, n, ps) })
	return nil
}

// checkPieces checks pieces from a peer (a Drop, a Dump's tombstones):
// each a non-empty file range that ends before 2^63.
func checkPieces(ps []Piece) error {
	for i, p := range ps {
		if p.End <= p.Off || p.End > math.MaxInt64 {
			return fmt.Errorf("burstbuffer: piece %d (stripe %016x file %016x): range %d..%d: must be non-empty and end before 2^63", i, p.Stripe, p.File, p.Off, p.End)
		}
	}
	return nil
}

// checkDrop checks a peer's Drop against what this node knows: the pieces
// are well formed, and a piece of a stripe this node holds the meta of
// lies inside one of that stripe's writes to the file (the drain owner
// drops only what it drained or truncated away, and those are pieces of
// writes). A piece of a stripe this node does not know is kept as a
// tombstone: the stripe may reach it later.
func (s *Service) checkDrop(ps []Piece) error {
	if err := checkPieces(ps); err != nil {
		return err
	}
	metas := map[uint64]*Meta{} // a stored meta is never changed: check outside the lock
	s.mu.Lock()
	for _, p := range ps {
		if _, ok := metas[p.Stripe]; !ok {
			metas[p.Stripe] = s.mu.metas[p.Stripe]
		}
	}
	s.mu.Unlock()
	spans := map[[2]uint64]*writeSpans{}
	for i, p := range ps {
		m := metas[p.Stripe]
		if m == nil {
			continue
		}
		k := [2]uint64{p.Stripe, p.File}
		ws := spans[k]
		if ws == nil {
			ws = newWriteSpans(m.Writes, p.File)
			spans[k] = ws
		}
		if !ws.covers(p.Off, p.End) {
			return fmt.Errorf("burstbuffer: piece %d: bytes %d..%d of file %016x are not a write of stripe %016x here", i, p.Off, p.End, p.File, p.Stripe)
		}
		// A drained piece's version is the version of the write it
		// drained: one newer would cut writes it never drained.
		if p.Version != 0 {
			newest := uint64(0)
			for _, w := range m.Writes {
				if w.File == p.File && w.Off < p.End && p.Off < w.Off+uint64(w.Len) {
					newest = max(newest, w.Version)
				}
			}
			if p.Version > newest {
				return fmt.Errorf("burstbuffer: piece %d: version %d of bytes %d..%d of file %016x is newer than stripe %016x's writes there (%d)", i, p.Version, p.Off, p.End, p.File, p.Stripe, newest)
			}
		}
	}
	return nil
}

// writeSpans answers whether one write of a stripe to a file covers a
// range: the writes sorted by offset, with the furthest end among each
// write and those before it.
type writeSpans struct {
	off    []uint64
	maxEnd []uint64
}

func newWriteSpans(writes []Write, file uint64) *writeSpans {
	var ws [][2]uint64
	for _, w := range writes {
		if w.File == file {
			ws = append(ws, [2]uint64{w.Off, w.Off + uint64(w.Len)})
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i][0] < ws[j][0] })
	sp := &writeSpans{off: make([]uint64, len(ws)), maxEnd: make([]uint64, len(ws))}
	var me uint64
	for i, w := range ws {
		me = max(me, w[1])
		sp.off[i], sp.maxEnd[i] = w[0], me
	}
	return sp
}

// covers reports whether a single write holds all of [off, end): some
// write starting at or before off ends at or after end.
func (sp *writeSpans) covers(off, end uint64) bool {
	i := sort.Search(len(sp.off), func(i int) bool { return sp.off[i] > off }) // writes [0, i) start at or before off
	return i > 0 && sp.maxEnd[i-1] >= end
}

// applyDrop is a peer's Drop (checked by checkDrop).
func (s *Service) applyDrop(ps []Piece) error {
	dead, err := s.index.Drop(ps)
	if err != nil {
		return err
	}
	return s.bury(dead)
}

// Truncate sets ref's logical size to size: this node's writes are made
// durable first; then the file's drain owner (so that no drain of the file
// runs meanwhile) drops the buffered bytes past size everywhere and
// truncates the backing file.
func (s *Service) Truncate(ctx context.Context, ref FileRef, backing *os.File, size int64) error {
	if size < 0 {
		return fmt.Errorf("burstbuffer: negative size: %w", syscall.EINVAL)
	}
	if err := s.Sync(ctx, ref); err != nil {
		return err
	}
	if o := owner(ref.ID, s.cfg.Cluster.Live()); o != s.cfg.Node {
		err := s.cfg.Transport.Truncate(ctx, o, ref, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errNotBuffered):
			// Nothing of the file is buffered: truncating here is the same.
		default:
			s.log.Warn("burstbuffer: truncating on the file's drain owner failed; truncating here", "owner", o, "err", err)
		}
	}
	return s.truncateOwned(ctx, ref, backing, size)
}

// errNotBuffered answers a peer's Truncate of a file this node holds no
// buffered bytes of: the caller truncates its own backing file.
var errNotBuffered = errors.New("burstbuffer: no buffered bytes of the file here: truncate it where it is open")

// checkTruncate checks a peer's Truncate request.
func checkTruncate(ref FileRef, size int64) error {
	if size < 0 {
		return fmt.Errorf("burstbuffer: truncate to %d bytes: the size must not be negative", size)
	}
	return checkFileRef(ref)
}

// truncatePeer is a peer's Truncate: only of a file that has buffered
// bytes here, named by the handle this node knows it by; otherwise
// errNotBuffered, and the caller truncates its own open backing file.
func (s *Service) truncatePeer(ctx context.Context, ref FileRef, size int64) error {
	if err := checkTruncate(ref, size); err != nil {
		return err
	}
	s.mu.Lock()
	known, ok := s.mu.refs[ref.ID]
	s.mu.Unlock()
	if exts, err := s.index.FileExtents(ref.ID); err != nil {
		return err
	} else if len(exts) == 0 || !ok {
		return fmt.Errorf("%w (file %016x)", errNotBuffered, ref.ID)
	}
	if known.Type != ref.Type || !bytes.Equal(known.Handle, ref.Handle) {
		return fmt.Errorf("%w (file %016x: the handle differs from the one its writes carry)", errNotBuffered, ref.ID)
	}
	return s.truncateOwned(ctx, known, nil, size)
}

// truncateOwned truncates with the drain lock held, and the backing
// file's drain flock (so that no other node's drain lands bytes past the
// new size after it). backing nil: open the file by its handle.
func (s *Service) truncateOwned(ctx context.Context, ref FileRef, backing *os.File, size int64) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if backing == nil {
		f, err := openRef(s.backing, ref, os.O_WRONLY)
		if err != nil {
			return err
		}
		defer f.Close()
		backing = f
	}
	// The caller's descriptor: its flock is released below, before it
	// goes back to the caller.
	unlock, err := s.lockDrain(ctx, backing, ref.ID)
	if err != nil {
		return err
	}
	defer unlock()
	exts, err := s.index.Lookup(ref.ID, uint64(size), ^uint64(0)-uint64(size))
	if err != nil {
		return err
	}
	var ps []Piece
	for _, e := range exts {
		if !e.Hole {
			ps = append(ps, Piece{Stripe: e.Stripe, File: ref.ID, Off: e.FileOff, End: e.FileOff + e.Length, Version: e.Version})
		}
	}
	if len(ps) > 0 {
		if err := s.dropEverywhere(ctx, ps); err != nil {
			return err
		}
	}
	if err := backing.Truncate(size); err != nil {
		return fmt.Errorf("burstbuffer: truncate backing file: %w", err)
	}
	return nil
}

func hasDirty(exts []Extent) bool {
	for _, e := range exts {
		if !e.Clean {
			return true
		}
	}
	return false
}

// errDrainBusy: another drain of the file holds its backing file's lock
// longer than drainLockWait; the drain is retried on a later pass.
var errDrainBusy = errors.New("burstbuffer: another drain of the file (on this node or another) holds its lock; the drain is retried later")

// drainLockWait bounds how long a drain or a truncation waits for another
// node's drain of the same file.
const drainLockWait = 10 * time.Second

// warnedNoLock: the backing file system refused flock once (logged once).
var warnedNoLock atomic.Bool

// lockDrain takes the exclusive flock of the backing file f that fences
// drains and truncations of the file (see drainFile), waiting up to
// drainLockWait for another holder. The lock belongs to f's open file
// description: every drain opens the file anew, so drains on one machine
// exclude each other as drains on several do. A file system with no
// flock (ENOLCK, EOPNOTSUPP) leaves only the fence: logged once. The
// returned unlock may be called more than once.
func (s *Service) lockDrain(ctx context.Context, f *os.File, file uint64) (unlock func(), err error) {
	fd := int(f.Fd())
	deadline := time.Now().Add(drainLockWait)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			if !warnedNoLock.Swap(true) {
				s.log.Warn("burstbuffer: the backing file system refuses flock: drains of one file by two nodes at once are fenced by version only", "dir", s.cfg.BackingDir, "err", err)
			}
			return func() {}, nil
		case !errors.Is(err, unix.EWOULDBLOCK):
			return nil, fmt.Errorf("burstbuffer: lock the backing file of %016x for a drain: %w", file, err)
		}
		if h := s.hooks.drainBusy; h != nil {
			h(file)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (file %016x)", errDrainBusy, file)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.stop:
			t.Stop()
			return nil, fmt.Errorf("%w (file %016x): the node is stopping", errDrainBusy, file)
		case <-t.C:
		}
	}
	var once sync.Once
	return func() { once.Do(func() { unix.Flock(fd, unix.LOCK_UN) }) }, nil
}

// fenceXattr names the drain fence of a backing file (see drainFile).
const fenceXattr = "user.engine.drained"

// maxFenceRanges bounds the ranges a fence keeps (its xattr stays within
// about 3.5 KiB, which every file system with user xattrs takes).
const maxFenceRanges = 128

// fenceRange says that version ver, or a newer one, has landed on every
// byte of [off, end) of the backing file.
type fenceRange struct{ off, end, ver uint64 }

// drainFence is a file's fence: sorted, non-overlapping ranges.
type drainFence []fenceRange

// readFence reads f's fence. A missing, unreadable or malformed fence
// reads as empty: it then fences nothing, which is what it was before
// fences existed, never more than what landed.
func (s *Service) readFence(f *os.File, file uint64) drainFence {
	buf := make([]byte, 4096)
	var n int
	for {
		var err error
		n, err = unix.Fgetxattr(int(f.Fd()), fenceXattr, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Fgetxattr(int(f.Fd()), fenceXattr, nil)
			if err != nil {
				return nil
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			if !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
				s.log.Warn("burstbuffer: reading the drain fence failed; draining without it", "file", fmt.Sprintf("%016x", file), "err", err)
			}
			return nil
		}
		break
	}
	fc, err := decodeFence(buf[:n])
	if err != nil {
		s.log.Warn("burstbuffer: the drain fence is malformed; draining without it", "file", fmt.Sprintf("%016x", file), "err", err)
		return nil
	}
	return fc
}

// writeFence stores fc as f's fence, made coarser until the file system
// takes it. A fence that cannot be stored leaves the old one, which says
// less than what has now landed: safe, only weaker. Logged.
func (s *Service) writeFence(f *os.File, file uint64, fc drainFence) {
	for limit := maxFenceRanges; ; limit /= 2 {
		fc = fc.coarsen(limit)
		err := unix.Fsetxattr(int(f.Fd()), fenceXattr, fc.encode(), 0)
		if err == nil {
			return
		}
		if (errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ERANGE)) && limit > 4 {
			continue
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			if !warnedNoLock.Swap(true) {
				s.log.Warn("burstbuffer: the backing file system has no user xattrs: drains of one file by two nodes at once are fenced by the lock only", "dir", s.cfg.BackingDir, "err", err)
			}
			return
		}
		s.log.Warn("burstbuffer: storing the drain fence failed", "file", fmt.Sprintf("%016x", file), "err", err)
		return
	}
}

// encode: a format byte (1), the count, then per range the gap from the
// previous range's end, the length and the version, as uvarints.
func (fc drainFence) encode() []byte {
	b := binary.AppendUvarint([]byte{1}, uint64(len(fc)))
	var prev uint64
	for _, r := range fc {
		b = binary.AppendUvarint(b, r.off-prev)
		b = binary.AppendUvarint(b, r.end-r.off)
		b = binary.AppendUvarint(b, r.ver)
		prev = r.end
	}
	return b
}

func decodeFence(b []byte) (drainFence, error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, fmt.Errorf("burstbuffer: drain fence: unknown format")
	}
	b = b[1:]
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("burstbuffer: drain fence: truncated")
		}
		b = b[n:]
		return v, nil
	}
	count, err := next()
	if err != nil {
		return nil, err
	}
	if count > 1<<16 {
		return nil, fmt.Errorf("burstbuffer: drain fence: %d ranges", count)
	}
	fc := make(drainFence, 0, count)
	var prev uint64
	for i := uint64(0); i < count; i++ {
		var v [3]uint64
		for j := range v {
			if v[j], err = next(); err != nil {
				return nil, err
			}
		}
		off := prev + v[0]
		end := off + v[1]
		if off < prev || end <= off || end > math.MaxInt64 || v[2] == 0 {
			return nil, fmt.Errorf("burstbuffer: drain fence: range %d is malformed", i)
		}
		fc = append(fc, fenceRange{off, end, v[2]})
		prev = end
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("burstbuffer: drain fence: %d trailing bytes", len(b))
	}
	return fc, nil
}

// subExtent is the part [off, end) of e.
func subExtent(e Extent, off, end uint64) Extent {
	e.Pos += uint32(off - e.FileOff)
	e.FileOff, e.Length = off, end-off
	return e
}

// split cuts the sorted extents exts into the parts to land and the parts
// over which a newer version has already landed (stale), both sorted.
func (fc drainFence) split(exts []Extent) (land, stale []Extent) {
	for _, e := range exts {
		off, end := e.FileOff, e.FileOff+e.Length
		i := sort.Search(len(fc), func(i int) bool { return fc[i].end > off })
		for off < end {
			if i >= len(fc) || fc[i].off >= end {
				land = append(land, subExtent(e, off, end))
				break
			}
			r := fc[i]
			if r.off > off {
				land = append(land, subExtent(e, off, r.off))
				off = r.off
			}
			hi := min(r.end, end)
			if r.ver > e.Version {
				stale = append(stale, subExtent(e, off, hi))
			} else {
				land = append(land, subExtent(e, off, hi))
			}
			off = hi
			i++
		}
	}
	return land, stale
}

// raise returns the fence after the extents land (sorted, not
// overlapping): each of their bytes at the newer of its fence version and
// the version landed.
func (fc drainFence) raise(land []Extent) drainFence {
	if len(land) == 0 {
		return fc
	}
	add := make(drainFence, 0, len(land))
	pts := make([]uint64, 0, 2*(len(fc)+len(land)))
	for _, e := range land {
		add = append(add, fenceRange{e.FileOff, e.FileOff + e.Length, e.Version})
	}
	for _, r := range append(append(drainFence(nil), fc...), add...) {
		pts = append(pts, r.off, r.end)
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	var out drainFence
	i, j := 0, 0
	for k := 0; k+1 < len(pts); k++ {
		lo, hi := pts[k], pts[k+1]
		for i < len(fc) && fc[i].end <= lo {
			i++
		}
		for j < len(add) && add[j].end <= lo {
			j++
		}
		var v uint64
		if i < len(fc) && fc[i].off <= lo {
			v = fc[i].ver
		}
		if j < len(add) && add[j].off <= lo {
			v = max(v, add[j].ver)
		}
		if v == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].end == lo && out[n-1].ver == v {
			out[n-1].end = hi
			continue
		}
		out = append(out, fenceRange{lo, hi, v})
	}
	return out.coarsen(maxFenceRanges)
}

// coarsen returns fc in at most limit ranges, saying no more than fc
// does: touching neighbours merge into one range at the older of their
// versions; if that is not enough, the ranges of the oldest versions are
// forgotten.
func (fc drainFence) coarsen(limit int) drainFence {
	for need := len(fc) - limit; need > 0; {
		out := make(drainFence, 0, len(fc))
		merged := 0
		for i := 0; i < len(fc); i++ {
			if merged < need && i+1 < len(fc) && fc[i].end == fc[i+1].off {
				out = append(out, fenceRange{fc[i].off, fc[i+1].end, min(fc[i].ver, fc[i+1].ver)})
				i++
				merged++
				continue
			}
			out = append(out, fc[i])
		}
		fc, need = out, need-merged
		if merged == 0 {
			break
		}
	}
	if len(fc) > limit {
		keep := slices.Clone(fc)
		slices.SortFunc(keep, func(a, b fenceRange) int { return cmp.Compare(b.ver, a.ver) })
		keep = keep[:limit]
		slices.SortFunc(keep, func(a, b fenceRange) int { return cmp.Compare(a.off, b.off) })
		fc = keep
	}
	return fc
}

// keepLanded puts back into b, the window win read for a drain, the
// backing file's bytes where a newer drain landed (the sorted stale
// parts), so that the window's write leaves them as they are.
func keepLanded(bf *os.File, bsize int64, b []byte, win window, stale []Extent) error {
	i := sort.Search(len(stale), func(i int) bool { return stale[i].FileOff+stale[i].Length > win.off })
	for ; i < len(stale) && stale[i].FileOff < win.end; i++ {
		lo, hi := max(stale[i].FileOff, win.off), min(stale[i].FileOff+stale[i].Length, win.end)
		if err := readBacking(bf, bsize, b[lo-win.off:hi-win.off], int64(lo)); err != nil {
			return err
		}
	}
	return nil
}
