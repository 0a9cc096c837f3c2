package burstbuffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
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
		s.drainPass(context.Background(), false)
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
func (s *Service) drainFile(ctx context.Context, file uint64) error {
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
	// The chunks the dirty extents touch, as runs of consecutive chunks.
	var runs [][2]uint64 // [first chunk, last chunk]
	for _, e := range dirty {
		c0, c1 := e.FileOff/chunk, (e.FileOff+e.Length-1)/chunk
		if n := len(runs); n > 0 && c0 <= runs[n-1][1]+1 {
			runs[n-1][1] = max(runs[n-1][1], c1)
		} else {
			runs = append(runs, [2]uint64{c0, c1})
		}
	}
	// Two page-aligned buffers (for O_DIRECT; Go's heap does not move
	// objects): the next window is read from flash while the last one is
	// written to the backing file system.
	for len(s.drainBufs) < 2 {
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
	type job struct {
		b    []byte
		off  uint64
		tail bool
	}
	jobs := make(chan job)
	free := make(chan []byte, 2)
	free <- s.drainBufs[0]
	free <- s.drainBufs[1]
	werr := make(chan error, 1)
	var written int64
	go func() {
		var err error
		for j := range jobs {
			if err == nil {
				out := bf
				if direct != nil && uint64(len(j.b))%chunk == 0 {
					out = direct
				}
				if _, e := out.WriteAt(j.b, int64(j.off)); e != nil {
					err = s.backingError(e)
				} else {
					s.stats.observeWrite(len(j.b), j.off%chunk == 0 && uint64(len(j.b))%chunk == 0, j.tail)
					written += int64(len(j.b))
				}
			}
			free <- j.b[:cap(j.b)]
		}
		werr <- err
	}()
	var rerr error
runs:
	for _, r := range runs {
		for off := r[0] * chunk; off < (r[1]+1)*chunk && off < size; {
			wend := min(off+maxDrainWrite/chunk*chunk, (r[1]+1)*chunk, size)
			if n := (wend - off) / chunk * chunk; wend == size && n > 0 && n < wend-off {
				wend = off + n // whole chunks first, the file's short tail on its own
			}
			b := (<-free)[:wend-off]
			if rerr = s.readRange(ctx, file, bf, bsize, b, int64(off)); rerr != nil {
				break runs
			}
			jobs <- job{b: b, off: off, tail: wend == size}
			off = wend
		}
	}
	close(jobs)
	if err := <-werr; err != nil {
		return err
	}
	if rerr != nil {
		return rerr
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
	s.stats.drained(drained, written, time.Since(start))
	return nil
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

// applyDrop is a peer's Drop.
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
		if err := s.cfg.Transport.Truncate(ctx, o, ref, size); err == nil {
			return nil
		} else {
			s.log.Warn("burstbuffer: truncating on the file's drain owner failed; truncating here", "owner", o, "err", err)
		}
	}
	return s.truncateOwned(ctx, ref, backing, size)
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
