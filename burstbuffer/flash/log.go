package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultSegmentSize is the size at which a segment is rolled.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by operations on a closed Log.
var ErrClosed = errors.New("flash: log closed")

// Segments hold users' file data: only the owner (root) may read them.
const (
	segmentMode = 0o600
	dirMode     = 0o700
)

// ErrNotFound is wrapped by errors for something that is not there: a
// Store's shard, or a Log segment that never existed or was removed.
var ErrNotFound = errors.New("flash: not found")

// LogOptions configures a Log.
type LogOptions struct {
	// SegmentSize rolls to a new segment once appending a batch would exceed
	// it (a single record larger than SegmentSize gets a segment of its own).
	// Zero means DefaultSegmentSize.
	SegmentSize int64
	// SyncHook, if set, is called once per fdatasync of a segment file,
	// just before it is issued (tests count syncs or inject device latency).
	SyncHook func(segment uint64)
	// Preallocate, under an fsync-heavy load of small appends (see
	// spareAfterSyncs), keeps a zero-filled spare segment file ready,
	// written and fsynced in the background, and rolls onto it (at once,
	// the first time, if the current segment is not one): appends then
	// overwrite blocks that are allocated and written already, so the
	// fdatasync after them has no metadata to commit, only data (on ext4
	// here about 0.3 ms instead of 0.45). A rolled segment is cut to its
	// records. Open takes zeros after the last record for the clean end
	// they are, with or without this option.
	Preallocate bool
	// FS is the file system the log's directory is on; nil means
	// vfs.Default (the operating system's). Tests give a vfs.MemFS made by
	// vfs.NewCrashableMem, or an errorfs, to crash the log or fail its I/O.
	FS vfs.FS
}

// spareName is the file a Log with Preallocate zero-fills for its next
// segment.
const spareName = "spare.tmp"

// Location says where a record lives in the log and what it holds.
type Location struct {
	Segment uint64 // segment number (seg-%08d.log)
	Offset  int64  // byte offset of the record header in the segment
	Length  uint32 // payload length
	Seq     uint64 // sequence number
	Type    RecordType
	File    uint64 // file id the payload belongs to
	FileOff uint64 // offset in that file
}

// RecoveryInfo reports what Open found.
type RecoveryInfo struct {
	Segments       int    // segment files found
	Records        int    // valid records recovered
	Bytes          int64  // valid bytes (headers + payloads) recovered
	LastSeq        uint64 // highest recovered sequence (0 when empty)
	Truncated      bool   // the last segment had a torn/corrupt tail
	TruncSegment   uint64 // segment that was truncated
	TruncOffset    int64  // offset it was truncated at
	TruncDiscarded int64  // bytes discarded
	TruncReason    string // why the tail was rejected

	// Only for a Log opened by OpenStore, which never truncates or fails on
	// a bad record (see OpenStore):
	Skipped      int   // records with a readable header but a bad CRC, skipped
	SkippedBytes int64 // their bytes (headers and payloads)
	Unreadable   int64 // bytes left unread after a segment's first unreadable record
}

// Stats are cumulative counters.
type Stats struct {
	Appends    uint64 // records appended
	Bytes      uint64 // payload bytes appended
	SyncCalls  uint64 // Sync calls
	Fdatasyncs uint64 // fdatasync system calls on segment files
}

type segment struct {
	id       uint64
	f        vfs.File
	size     int64 // end of the last valid record: where appends go
	tail     int64 // bytes after size that a lenient Open left unread
	prealloc bool  // the file is zero-filled past size (Preallocate)
	syncs    int   // fdatasyncs of it by Sync (Preallocate's trigger)

	removed atomic.Bool // set by RemoveSegment before f is closed
}

// readErr reports an error reading s at off. Reading a segment removed
// meanwhile fails (its file is closed): that is reported as ErrNotFound.
func (s *segment) readErr(what string, off int64, err error) error {
	if s.removed.Load() {
		return fmt.Errorf("%w: segment %s removed", ErrNotFound, segName(s.id))
	}
	return fmt.Errorf("flash: read %s %s@%d: %w", what, segName(s.id), off, err)
}

type syncReq struct {
	target uint64 // sequence that must be durable
	done   chan error
}

// Log is an append-only record log in a directory of segment files. It is
// safe for concurrent use.
type Log struct {
	fs      vfs.FS
	dir     string
	opts    LogOptions
	lenient bool // opened by OpenStore; see openMode

	mu       sync.Mutex
	segs     []*segment // ordered by id; last is current
	nextSeq  uint64
	closed   bool
	writeErr error // sticky: a failed write leaves the tail unknown
	recovery RecoveryInfo

	durable atomic.Uint64 // highest sequence known durable
	syncErr atomic.Pointer[error]

	syncMu  sync.Mutex // held while an fdatasync runs (syncer or an inline Sync)
	syncCh  chan syncReq
	stopCh  chan struct{}
	stopped chan struct{}

	nAppends, nBytes, nSyncCalls, nFdatasyncs atomic.Uint64

	// The spare segment (Preallocate).
	spareMu    sync.Mutex
	spareReady bool // spareName is zero-filled to SegmentSize and synced
	spareBusy  bool // a goroutine is filling it
	spareWG    sync.WaitGroup
}

func segName(id uint64) string { return fmt.Sprintf("seg-%08d.log", id) }

func parseSegName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
		return 0, false
	}
	var id uint64
	if _, err := fmt.Sscanf(name, "seg-%d.log", &id); err != nil {
		return 0, false
	}
	return id, segName(id) == name
}

// Open opens (creating if needed) the log in dir, scanning every segment.
// A torn or corrupt record in the last segment ends the log: the segment is
// truncated there and later appends continue from that point. Corruption in
// any earlier segment is an error (earlier segments are fdatasynced before
// a new one is started, so a crash cannot tear them). Segment numbers need
// not be consecutive: RemoveSegment (or an operator) leaves gaps. The last
// segment is fdatasynced, so that what Open recovered is durable even if the
// previous process died before syncing it.
func Open(dir string, opts LogOptions) (*Log, error) {
	return open(dir, opts, openMode{})
}

// openMode says how open treats what it finds. Open uses the zero value.
type openMode struct {
	// lenient never discards bytes nor fails on a bad record, for a shard
	// store whose shards have copies elsewhere: a record whose header is
	// readable but whose CRC is bad is skipped, a segment ends at its first
	// unreadable header (whatever follows stays in the file, unread), and if
	// the last segment ends that way a fresh segment is started for appends
	// instead of truncating it.
	lenient bool
	// record, if set, is called for every valid record in log order.
	record func(Location) error
}

func open(dir string, opts LogOptions, mode openMode) (*Log, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	fs := fsOr(opts.FS)
	opts.FS = fs
	if err := MkdirAllDurable(fs, dir, dirMode); err != nil {
		return nil, err
	}
	if fi, err := fs.Stat(dir); err != nil {
		return nil, err
	} else if fi.Mode().Perm()&^dirMode != 0 {
		if err := chmodDir(fs, dir, dirMode); err != nil {
			return nil, err
		}
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, name := range names {
		if id, ok := parseSegName(name); ok {
			if fi, err := fs.Stat(fs.PathJoin(dir, name)); err == nil && fi.Mode().IsRegular() {
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	l := &Log{
		fs:      fs,
		dir:     dir,
		opts:    opts,
		lenient: mode.lenient,
		nextSeq: 1,
		syncCh:  make(chan syncReq, 256),
		stopCh:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			for _, s := range l.segs {
				s.f.Close()
			}
		}
	}()
	info := &l.recovery
	info.Segments = len(ids)
	var lastSeq uint64
	for i, id := range ids {
		f, err := openSegmentFile(fs, fs.PathJoin(dir, segName(id)))
		if err != nil {
			return nil, err
		}
		seg := &segment{id: id, f: f}
		l.segs = append(l.segs, seg)
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&^segmentMode != 0 { // made by an older version, 0644
			if err := chmodFile(f, segmentMode); err != nil {
				return nil, err
			}
		}
		var skip func(off, n int64)
		if mode.lenient {
			skip = func(_, n int64) {
				info.Skipped++
				info.SkippedBytes += n
			}
		}
		end, n, nb, seq, reason, err := scanSection(f, st.Size(), id, lastSeq, skip, mode.record)
		if err != nil {
			return nil, err
		}
		info.Records += n
		info.Bytes += nb
		lastSeq = seq
		seg.size = end
		if end < st.Size() {
			zero, err := zeroFrom(f, end, st.Size())
			if err != nil {
				return nil, err
			}
			if zero {
				// Preallocated (or extended and never written): the
				// records end here, cleanly.
				seg.prealloc = true
				continue
			}
			if mode.lenient {
				seg.tail = st.Size() - end
				info.Unreadable += seg.tail
				continue
			}
			if i != len(ids)-1 {
				return nil, fmt.Errorf("%w: segment %s at offset %d (not the last segment): %s",
					ErrCorrupt, segName(id), end, reason)
			}
			if err := truncateFile(f, end); err != nil {
				return nil, err
			}
			if err := f.SyncData(); err != nil {
				return nil, err
			}
			info.Truncated = true
			info.TruncSegment = id
			info.TruncOffset = end
			info.TruncDiscarded = st.Size() - end
			info.TruncReason = reason
		}
	}
	info.LastSeq = lastSeq
	l.nextSeq = lastSeq + 1
	l.durable.Store(lastSeq)
	if len(l.segs) == 0 {
		if err := l.newSegmentLocked(1); err != nil {
			return nil, err
		}
	} else {
		last := l.segs[len(l.segs)-1]
		if !info.Truncated && last.size+last.tail > 0 {
			if err := last.f.SyncData(); err != nil {
				return nil, fmt.Errorf("flash: fdatasync %s: %w", segName(last.id), err)
			}
		}
		if last.tail > 0 {
			// Lenient: keep the unreadable bytes, append elsewhere.
			if err := l.newSegmentLocked(last.id + 1); err != nil {
				return nil, err
			}
		}
	}
	if opts.Preallocate {
		// A spare from before is of unknown state: it is filled anew
		// when one is wanted.
		if err := fs.Remove(fs.PathJoin(dir, spareName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	ok = true
	go l.syncer()
	return l, nil
}

// zeroFrom reports whether f holds only zero bytes in [off, end).
func zeroFrom(f io.ReaderAt, off, end int64) (bool, error) {
	buf := make([]byte, min(end-off, 1<<20))
	for off < end {
		n := min(int64(len(buf)), end-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false, err
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		off += n
	}
	return true, nil
}

// kickSpare starts filling the spare segment if none is ready or being
// filled.
func (l *Log) kickSpare() {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spareReady || l.spareBusy {
		return
	}
	l.spareBusy = true
	l.spareWG.Add(1)
	go l.fillSpare()
}

// fillSpare writes the spare segment: SegmentSize zero bytes, fsynced.
// It gives up when the log closes.
func (l *Log) fillSpare() {
	defer l.spareWG.Done()
	path := l.fs.PathJoin(l.dir, spareName)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("flash: %s: preparing a spare segment panicked: %v", l.dir, r)
			}
		}()
		f, err := createPrivate(l.fs, path)
		if err != nil {
			return err
		}
		defer f.Close()
		z := make([]byte, 1<<20)
		for off := int64(0); off < l.opts.SegmentSize; off += int64(len(z)) {
			select {
			case <-l.stopCh:
				return ErrClosed
			default:
			}
			if _, err := f.WriteAt(z[:min(int64(len(z)), l.opts.SegmentSize-off)], off); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	if err != nil {
		l.fs.Remove(path)
	}
	l.spareMu.Lock()
	l.spareBusy = false
	l.spareReady = err == nil
	l.spareMu.Unlock()
}

// takeSpare renames the ready spare to segment id's name and opens it;
// nil when no spare is ready.
func (l *Log) takeSpare(id uint64) vfs.File {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if !l.spareReady {
		return nil
	}
	l.spareReady = false
	name := l.fs.PathJoin(l.dir, segName(id))
	if _, err := l.fs.Stat(name); err == nil {
		return nil // never overwrite a segment
	}
	if err := l.fs.Rename(l.fs.PathJoin(l.dir, spareName), name); err != nil {
		return nil
	}
	f, err := openSegmentFile(l.fs, name)
	if err != nil {
		l.fs.Remove(name)
		return nil
	}
	return f
}

// spareIsReady reports whether a spare segment is ready.
func (l *Log) spareIsReady() bool {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	return l.spareReady
}

// scanSection reads records from f from the start. It returns the end of the
// last valid (or skipped) record, the number of valid records and their
// bytes, the last sequence, and the reason scanning stopped early (empty at
// a clean end). fn, if non-nil, is called for each valid record. prevSeq is
// the last sequence before this segment; sequences must increase. If skip is
// non-nil, a record with a good header that fits in f but fails its CRC is
// passed to skip and scanning goes on after it.
func scanSection(f io.ReaderAt, size int64, id uint64, prevSeq uint64, skip func(off, n int64), fn func(Location) error) (end int64, n int, nb int64, lastSeq uint64, reason string, err error) {
	lastSeq = prevSeq
	var hdr [HeaderSize]byte
	var buf []byte
	for end < size {
		if size-end < HeaderSize {
			return end, n, nb, lastSeq, "torn header", nil
		}
		if _, err := f.ReadAt(hdr[:], end); err != nil {
			return 0, 0, 0, 0, "", err
		}
		h, derr := DecodeHeader(hdr[:])
		if derr != nil {
			return end, n, nb, lastSeq, derr.Error(), nil
		}
		if size-end-HeaderSize < int64(h.Length) {
			return end, n, nb, lastSeq, "torn payload", nil
		}
		if cap(buf) < int(h.Length) {
			buf = make([]byte, h.Length)
		}
		buf = buf[:h.Length]
		if _, err := f.ReadAt(buf, end+HeaderSize); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
			return 0, 0, 0, 0, "", err
		}
		if !checkCRC(hdr[:], buf, h.CRC) {
			if skip == nil {
				return end, n, nb, lastSeq, "CRC mismatch", nil
			}
			rl := HeaderSize + int64(h.Length)
			skip(end, rl)
			end += rl
			continue
		}
		if h.Seq <= lastSeq {
			return end, n, nb, lastSeq, fmt.Sprintf("sequence %d not after %d", h.Seq, lastSeq), nil
		}
		if fn != nil {
			if err := fn(Location{Segment: id, Offset: end, Length: h.Length, Seq: h.Seq,
				Type: h.Type, File: h.File, FileOff: h.Offset}); err != nil {
				return 0, 0, 0, 0, "", err
			}
		}
		lastSeq = h.Seq
		n++
		rl := HeaderSize + int64(h.Length)
		nb += rl
		end += rl
	}
	return end, n, nb, lastSeq, "", nil
}

// Recovery returns what Open recovered.
func (l *Log) Recovery() RecoveryInfo { return l.recovery }

// Dir returns the log directory.
func (l *Log) Dir() string { return l.dir }

// LastSeq returns the sequence of the last appended record (0 if none).
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nextSeq - 1
}

// DurableSeq returns the highest sequence known to be durable.
func (l *Log) DurableSeq() uint64 { return l.durable.Load() }

// Stats returns cumulative counters.
func (l *Log) Stats() Stats {
	return Stats{Appends: l.nAppends.Load(), Bytes: l.nBytes.Load(),
		SyncCalls: l.nSyncCalls.Load(), Fdatasyncs: l.nFdatasyncs.Load()}
}

func (l *Log) fdatasync(s *segment) error {
	if l.opts.SyncHook != nil {
		l.opts.SyncHook(s.id)
	}
	l.nFdatasyncs.Add(1)
	return s.f.SyncData()
}

// newSegmentLocked creates segment id, makes its directory entry durable and
// makes it current.
func (l *Log) newSegmentLocked(id uint64) error {
	if l.opts.Preallocate {
		if f := l.takeSpare(id); f != nil {
			if err := syncDir(l.fs, l.dir); err != nil {
				f.Close()
				return err
			}
			l.segs = append(l.segs, &segment{id: id, f: f, prealloc: true})
			return nil
		}
	}
	f, err := createSegmentFile(l.fs, l.fs.PathJoin(l.dir, segName(id)))
	if err != nil {
		return err
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		f.Close()
		return err
	}
	l.segs = append(l.segs, &segment{id: id, f: f})
	return nil
}

// Append writes recs to the log in order, assigning consecutive sequence
// numbers, and returns where each landed. A zero Type means TypeWrite. The records are not durable until
// a Sync that starts after Append returns has returned nil.
func (l *Log) Append(ctx context.Context, recs ...Record) ([]Location, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range recs {
		if len(recs[i].Data) > MaxPayload {
			return nil, fmt.Errorf("flash: record %d payload %d exceeds %d", i, len(recs[i].Data), MaxPayload)
		}
		if t := recs[i].Type; t != 0 && !t.known() {
			return nil, fmt.Errorf("flash: record %d has unknown type %d", i, recs[i].Type)
		}
		if recs[i].Offset+uint64(len(recs[i].Data)) < recs[i].Offset {
			return nil, fmt.Errorf("flash: record %d file range overflows", i)
		}
	}
	locs := make([]Location, len(recs))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.writeErr != nil {
		return nil, l.writeErr
	}
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		cur := l.segs[len(l.segs)-1]
		if _, err := cur.f.WriteAt(buf, cur.size); err != nil {
			l.writeErr = fmt.Errorf("flash: write %s: %w", segName(cur.id), err)
			return l.writeErr
		}
		cur.size += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	for i, r := range recs {
		rl := int64(HeaderSize + len(r.Data))
		cur := l.segs[len(l.segs)-1]
		pos := cur.size + int64(len(buf))
		// Onto a preallocated segment as soon as there is one.
		early := l.opts.Preallocate && !cur.prealloc && pos > 0 && l.spareIsReady()
		if pos > 0 && (early || pos+rl > l.opts.SegmentSize) {
			if err := flush(); err != nil {
				return nil, err
			}
			if cur.prealloc {
				// Cut the zeros past the records (a file system that
				// cannot truncate keeps them: they read as a clean end).
				if t, ok := truncaterOf(cur.f); ok {
					if err := t.Truncate(cur.size); err != nil {
						l.writeErr = fmt.Errorf("flash: truncate %s: %w", segName(cur.id), err)
						return nil, l.writeErr
					}
				}
				cur.prealloc = false
			}
			// Earlier segments are always durable, so a crash can tear only
			// the last one.
			if err := l.fdatasync(cur); err != nil {
				l.writeErr = fmt.Errorf("flash: fdatasync %s: %w", segName(cur.id), err)
				return nil, l.writeErr
			}
			if err := l.newSegmentLocked(cur.id + 1); err != nil {
				l.writeErr = err
				return nil, err
			}
			cur = l.segs[len(l.segs)-1]
			pos = 0
		}
		if r.Type == 0 {
			r.Type = TypeWrite
		}
		seq := l.nextSeq
		l.nextSeq++
		h := Header{Type: r.Type, File: r.File, Offset: r.Offset, Length: uint32(len(r.Data)), Seq: seq}
		start := len(buf)
		buf = append(buf, make([]byte, HeaderSize)...)
		buf = append(buf, r.Data...)
		encodeHeader(buf[start:start+HeaderSize], h, r.Data)
		locs[i] = Location{Segment: cur.id, Offset: pos, Length: h.Length, Seq: seq,
			Type: r.Type, File: r.File, FileOff: r.Offset}
		l.nBytes.Add(uint64(len(r.Data)))
	}
	if err := flush(); err != nil {
		return nil, err
	}
	l.nAppends.Add(uint64(len(recs)))
	return locs, nil
}

// Sync makes every record appended before the call durable (fdatasync).
// Concurrent callers share fdatasyncs: a single goroutine owns syncing and
// serves every request queued while the previous fdatasync ran with one
// more. If ctx ends first Sync returns ctx.Err(); the sync still happens.
func (l *Log) Sync(ctx context.Context) error {
	l.nSyncCalls.Add(1)
	if p := l.syncErr.Load(); p != nil {
		return *p
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	target := l.nextSeq - 1
	l.mu.Unlock()
	if target <= l.durable.Load() {
		return nil
	}
	// Nobody is syncing: fdatasync here, without a hand-off to the syncer
	// (two goroutine switches on the fsync path). Callers that come while
	// it runs queue for the syncer, which serves them all with one more.
	if l.syncMu.TryLock() {
		err := l.syncOnce()
		l.syncMu.Unlock()
		return err
	}
	req := syncReq{target: target, done: make(chan error, 1)}
	select {
	case l.syncCh <- req:
	case <-l.stopCh:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-l.stopped:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncer is the single goroutine that issues fdatasync for Sync callers.
func (l *Log) syncer() {
	defer close(l.stopped)
	var batch []syncReq
	for {
		batch = batch[:0]
		select {
		case r := <-l.syncCh:
			batch = append(batch, r)
		case <-l.stopCh:
			l.drainSyncs(ErrClosed)
			return
		}
		// Everyone who queued while the last fdatasync ran rides this one.
	more:
		for {
			select {
			case r := <-l.syncCh:
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := l.syncGuarded()
		for _, r := range batch {
			r.done <- err
		}
	}
}

// syncGuarded is syncOnce under syncMu; a panic fails the batch's syncs
// (with an error that says so) instead of the process.
func (l *Log) syncGuarded() (err error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("flash: %s: sync panicked: %v\n%s", l.dir, r, debug.Stack())
		}
	}()
	return l.syncOnce()
}

func (l *Log) drainSyncs(err error) {
	for {
		select {
		case r := <-l.syncCh:
			r.done <- err
		default:
			return
		}
	}
}

// syncOnce fdatasyncs the current segment, covering everything appended so
// far (earlier segments were synced when they were rolled).
func (l *Log) syncOnce() error {
	if p := l.syncErr.Load(); p != nil {
		return *p
	}
	l.mu.Lock()
	cur := l.segs[len(l.segs)-1]
	mark := l.nextSeq - 1
	werr := l.writeErr
	l.mu.Unlock()
	if werr != nil {
		return werr
	}
	if mark <= l.durable.Load() {
		return nil
	}
	if err := l.fdatasync(cur); err != nil {
		// After a failed fdatasync the page cache state is unknown: fail
		// every later Sync rather than pretend.
		err = fmt.Errorf("flash: fdatasync %s: %w", segName(cur.id), err)
		l.syncErr.Store(&err)
		return err
	}
	for {
		d := l.durable.Load()
		if mark <= d || l.durable.CompareAndSwap(d, mark) {
			break
		}
	}
	if l.opts.Preallocate {
		// Zero-filling a segment writes it twice: worth it only where
		// fdatasyncs are many and the bytes between them few.
		l.mu.Lock()
		cur.syncs++
		heavy := cur.syncs >= spareAfterSyncs && cur.size/int64(cur.syncs) < spareBytesPerSync
		l.mu.Unlock()
		if heavy {
			l.kickSpare()
		}
	}
	return nil
}

// A spare segment is filled once the current segment has had
// spareAfterSyncs fdatasyncs, fewer than spareBytesPerSync bytes apart on
// average: an fsync-heavy load of small writes, which the preallocated
// segment speeds up. A load of big buffered writes never pays for the
// zeros.
const (
	spareAfterSyncs   = 32
	spareBytesPerSync = 64 << 10
)

// Read reads the payload of the record at loc into buf (which must hold
// loc.Length bytes), checking the record's header against loc and its CRC.
// It returns the payload length.
func (l *Log) Read(loc Location, buf []byte) (int, error) {
	if len(buf) < int(loc.Length) {
		return 0, fmt.Errorf("flash: buffer %d < record length %d", len(buf), loc.Length)
	}
	seg, err := l.segment(loc.Segment)
	if err != nil {
		return 0, err
	}
	var hdr [HeaderSize]byte
	if _, err := seg.f.ReadAt(hdr[:], loc.Offset); err != nil {
		return 0, seg.readErr("header", loc.Offset, err)
	}
	h, err := DecodeHeader(hdr[:])
	if err != nil {
		return 0, fmt.Errorf("%s@%d: %w", segName(loc.Segment), loc.Offset, err)
	}
	if h.Length != loc.Length || h.Seq != loc.Seq {
		return 0, fmt.Errorf("%w: %s@%d: header (len %d, seq %d) does not match location (len %d, seq %d)",
			ErrCorrupt, segName(loc.Segment), loc.Offset, h.Length, h.Seq, loc.Length, loc.Seq)
	}
	p := buf[:h.Length]
	if h.Length > 0 {
		if _, err := seg.f.ReadAt(p, loc.Offset+HeaderSize); err != nil {
			return 0, seg.readErr("payload", loc.Offset, err)
		}
	}
	if !checkCRC(hdr[:], p, h.CRC) {
		return 0, fmt.Errorf("%w: %s@%d: CRC mismatch", ErrCorrupt, segName(loc.Segment), loc.Offset)
	}
	return int(h.Length), nil
}

// segment returns segment id for reading.
func (l *Log) segment(id uint64) (*segment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].id >= id })
	if i == len(l.segs) || l.segs[i].id != id {
		return nil, fmt.Errorf("%w: no segment %s", ErrNotFound, segName(id))
	}
	return l.segs[i], nil
}

// ReadAt reads len(p) bytes of the payload of the record at loc, starting
// off bytes into the payload. Unlike Read it neither reads the header nor
// checks the CRC (which covers the whole payload): the caller checks the
// bytes some other way. As with io.ReaderAt, fewer than len(p) bytes come
// with an error, io.EOF when the payload ends first.
func (l *Log) ReadAt(loc Location, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("flash: read %s@%d: negative payload offset %d", segName(loc.Segment), loc.Offset, off)
	}
	if off >= int64(loc.Length) {
		return 0, io.EOF
	}
	var short error
	if rem := int64(loc.Length) - off; int64(len(p)) > rem {
		p, short = p[:rem], io.EOF
	}
	seg, err := l.segment(loc.Segment)
	if err != nil {
		return 0, err
	}
	n, err := seg.f.ReadAt(p, loc.Offset+HeaderSize+off)
	if err == io.EOF && !seg.removed.Load() {
		return n, fmt.Errorf("%w: %s@%d: file ends inside the payload", ErrCorrupt, segName(loc.Segment), loc.Offset)
	}
	if err != nil {
		return n, seg.readErr("payload", loc.Offset, err)
	}
	return n, short
}

// SegmentInfo describes a segment file.
type SegmentInfo struct {
	ID   uint64
	Size int64 // bytes in the file
}

// Segments lists the segments in id order; the last is the current one,
// which appends go to.
func (l *Log) Segments() []SegmentInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{ID: s.id, Size: s.size + s.tail}
	}
	return out
}

// currentSegment returns the id of the segment appends go to.
func (l *Log) currentSegment() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[len(l.segs)-1].id
}

// RemoveSegment deletes segment id: it closes the file, removes it and syncs
// the directory. The current segment cannot be removed. The caller decides
// that no record in it is needed any more; the Log keeps no note of it, so
// a crash before the directory sync may leave the file in place, records
// and all. Reads racing with the removal are safe: a Read or ReadAt of the
// segment either completes or fails with an error wrapping ErrNotFound, and
// a Scan in progress skips the rest of the segment. Removing a segment that
// does not exist is an error wrapping ErrNotFound.
func (l *Log) RemoveSegment(id uint64) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].id >= id })
	if i == len(l.segs) || l.segs[i].id != id {
		l.mu.Unlock()
		return fmt.Errorf("%w: no segment %s", ErrNotFound, segName(id))
	}
	if i == len(l.segs)-1 {
		l.mu.Unlock()
		return fmt.Errorf("flash: %s is the current segment and cannot be removed", segName(id))
	}
	seg := l.segs[i]
	l.segs = slices.Delete(l.segs, i, i+1)
	seg.removed.Store(true)
	l.mu.Unlock()

	// Reads in progress hold a reference to the descriptor (os.File, or a
	// guardedFile), so Close cannot pull it from under them; later reads
	// fail.
	cerr := seg.f.Close()
	if err := l.fs.Remove(l.fs.PathJoin(l.dir, segName(id))); err != nil {
		return fmt.Errorf("flash: remove segment: %w", err)
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return fmt.Errorf("flash: sync %s after removing %s: %w", l.dir, segName(id), err)
	}
	if cerr != nil {
		return fmt.Errorf("flash: close %s: %w", segName(id), cerr)
	}
	return nil
}

// Scan calls fn for every record in the log in sequence order (which is log
// order). Records appended concurrently with Scan may or may not be seen;
// a segment removed concurrently is skipped from where the removal caught
// the scan.
func (l *Log) Scan(fn func(Location) error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	type view struct {
		s    *segment
		size int64
	}
	views := make([]view, len(l.segs))
	for i, s := range l.segs {
		views[i] = view{s, s.size}
	}
	l.mu.Unlock()
	var skip func(off, n int64)
	if l.lenient {
		skip = func(off, n int64) {}
	}
	var fnErr error
	call := func(loc Location) error {
		fnErr = fn(loc)
		return fnErr
	}
	var prev uint64
	for _, v := range views {
		sr := io.NewSectionReader(v.s.f, 0, v.size)
		end, _, _, last, reason, err := scanSection(sr, v.size, v.s.id, prev, skip, call)
		if err != nil {
			if fnErr == nil && v.s.removed.Load() {
				continue
			}
			return err
		}
		if end != v.size {
			return fmt.Errorf("%w: %s at %d: %s", ErrCorrupt, segName(v.s.id), end, reason)
		}
		prev = last
	}
	return nil
}

// Close waits for pending syncs, syncs once more and closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.Unlock()
	close(l.stopCh)
	<-l.stopped
	l.spareWG.Wait()
	l.syncMu.Lock() // no inline Sync is using the files
	defer l.syncMu.Unlock()
	err := l.syncOnce()
	l.mu.Lock()
	l.closed = true
	for _, s := range l.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	l.mu.Unlock()
	return err
}
