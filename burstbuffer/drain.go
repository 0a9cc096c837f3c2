package burstbuffer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
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
func (s *Service) drainFile(ctx context.Context, file uint64) (err error) {
	defer s.recovered(fmt.Sprintf("the drain of file %016x", file), &err)
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	exts, err := s.index.FileExtents(file)
	if err != nil {
		return err
	}
	var dirty []Extent
	var end uint64
	for _, e := range exts {
		end = max(end, e.FileOff+e.Length)
		if !e.Clean {
			dirty = append(dirty, e)
		}
	}
	if len(dirty) == 0 {
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
		s.log.Info("burstbuffer: dropping the buffered bytes of a deleted file", "file", fmt.Sprintf("%016x", file))
		return s.dropEverywhere(ctx, piecesOf(file, exts))
	}
	if err != nil {
		return err
	}
	defer bf.Close()
	fi, err := bf.Stat()
	if err != nil {
		return err
	}
	bsize := fi.Size()
	size := max(uint64(bsize), end)
	chunk := uint64(s.cfg.DrainChunk)
	wins := planDrain(dirty, chunk, size)
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
	if err := bf.Sync(); err != nil {
		return s.backingError(err)
	}
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
		ps = append(ps, Piece{Stripe: e.Stripe, File: file, Off: e.FileOff, End: e.FileOff + e.Length})
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

// truncateOwned truncates with the drain lock held. backing nil: open the
// file by its handle.
func (s *Service) truncateOwned(ctx context.Context, ref FileRef, backing *os.File, size int64) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	exts, err := s.index.Lookup(ref.ID, uint64(size), ^uint64(0)-uint64(size))
	if err != nil {
		return err
	}
	var ps []Piece
	for _, e := range exts {
		if !e.Hole {
			ps = append(ps, Piece{Stripe: e.Stripe, File: ref.ID, Off: e.FileOff, End: e.FileOff + e.Length})
		}
	}
	if len(ps) > 0 {
		if err := s.dropEverywhere(ctx, ps); err != nil {
			return err
		}
	}
	if backing == nil {
		f, err := openRef(s.backing, ref, os.O_WRONLY)
		if err != nil {
			return err
		}
		defer f.Close()
		backing = f
	}
	if err := backing.Truncate(size); err != nil {
		return fmt.Errorf("burstbuffer: truncate backing file: %w", err)
	}
	return nil
}
