package burstbuffer

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/btree"
)

// The extents live in memory, one B-tree per file ordered by offset: they
// are rebuilt from the stripe metas at every start, and a Pebble index of
// them (the first design) spent most of a 4 KiB write's CPU time stepping
// back over deleted keys. Pebble keeps what must survive a restart:
//
//	't' stripe(8) file(8) start(8) -> end(8)   drained piece of a stripe (tombstone)
//	'd' stripe(8)                  -> ""       dead stripe: nothing of it is live
//
// All integers big-endian, committed with fsync.
//
//	'c' stripe(8)                  -> ""       a stripe this node stored completely (no fsync: a hint)
const (
	tombPrefix = 't'
	// drainedPrefix keys a drainedRange: 'f', file, off, version -> end.
	drainedPrefix = 'f'
	deadPrefix    = 'd'
	donePrefix    = 'c'
)

// Extent is a piece of a file and where its newest bytes are: a range of a
// stripe's data. A hole (Hole set) is a range the buffer does not hold.
type Extent struct {
	FileOff uint64
	Length  uint64
	Hole    bool
	Stripe  uint64
	Pos     uint32 // offset of the first byte in the stripe's data
	Version uint64
	Clean   bool // a prestaged copy of backing bytes: nothing to drain
}

// Write is one write in a stripe: Len bytes of file at Off, stored at Pos
// of the stripe's data.
type Write struct {
	File    uint64
	Off     uint64
	Len     uint32
	Pos     uint32
	Version uint64
	Clean   bool
}

// Piece is a drained range of one stripe's bytes in one file.
type Piece struct {
	Stripe uint64
	File   uint64
	Off    uint64
	End    uint64
	// Version, when not 0, is the version of the bytes dropped: every
	// write of File in [Off, End) at that version or older is gone too,
	// whatever its stripe (drainedRange).
	Version uint64 `json:",omitempty"`
}

// drainedRange records that the bytes of a file in [off, end) at version
// or older were drained (the backing file holds them or newer) or
// truncated away. A drop tombstones only the stripe whose extent it
// drained; the writes that extent had shadowed (older, in stripes kept
// live by other bytes) would come back when the index is rebuilt after a
// restart, with the newer stripe dead and unknown. These ranges cut them
// at every Apply, here and on every node that merges them.
type drainedRange struct {
	off, end, version uint64
}

// Index maps (file, offset) ranges to stripe bytes, newest version wins,
// and keeps the tombstones of drained pieces and the set of dead stripes.
// It also counts the live bytes of every stripe. It is safe for concurrent
// use; mutations are serialized.
type Index struct {
	db *pebble.DB

	mu     sync.RWMutex
	files  map[uint64]*btree.BTreeG[Extent]
	live   map[uint64]int64  // stripe -> live bytes in extents
	dead   map[uint64]bool   // cache of the 'd' keys
	newest map[uint64]uint64 // file -> highest version applied
	dirty  map[uint64]int64  // file -> bytes in extents not Clean
	tombed map[uint64]int    // stripe -> Drops that gave it tombstones (0: none in Pebble)
	// drained: file -> the ranges drained or truncated (drainedRange),
	// by offset, not overlapping: each byte has the newest version any
	// drop gave it.
	drained map[uint64]*btree.BTreeG[drainedRange]
	broken  error // a Drop's commit failed: see Drop
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic("pebble: " + fmt.Sprintf(format, args...))
}

// OpenIndex opens (creating if needed) the Pebble store of tombstones and
// dead stripes in dir on fs (nil: vfs.Default, the operating system's),
// with no extents: the caller rebuilds them.
func OpenIndex(dir string, fs vfs.FS) (*Index, error) {
	if fs == nil {
		fs = vfs.Default
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, FS: fs})
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: open index %s: %w", dir, err)
	}
	x := &Index{db: db, files: map[uint64]*btree.BTreeG[Extent]{}, live: map[uint64]int64{}, dead: map[uint64]bool{}, newest: map[uint64]uint64{}, dirty: map[uint64]int64{}, tombed: map[uint64]int{}, drained: map[uint64]*btree.BTreeG[drainedRange]{}}
	st, err := x.Durable()
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, d := range st.Dead {
		x.dead[d] = true
	}
	for _, t := range st.Tombs {
		x.tombed[t.Stripe] = 1
	}
	for _, p := range st.Drained {
		t := x.drained[p.File]
		if t == nil {
			t = btree.NewG(16, lessDrained)
			x.drained[p.File] = t
		}
		t.ReplaceOrInsert(drainedRange{p.Off, p.End, p.Version})
	}
	return x, nil
}

// Close closes the index.
func (x *Index) Close() error { return x.db.Close() }

func lessExtent(a, b Extent) bool { return a.FileOff < b.FileOff }

func (x *Index) tree(file uint64, create bool) *btree.BTreeG[Extent] {
	t := x.files[file]
	if t == nil && create {
		t = btree.NewG(16, lessExtent)
		x.files[file] = t
	}
	return t
}

// overlappingLocked returns the extents of file that overlap [off, end), in order.
func (x *Index) overlappingLocked(file, off, end uint64) []Extent {
	t := x.files[file]
	if t == nil {
		return nil
	}
	var out []Extent
	// At most one extent starting before off can reach into the range.
	t.DescendLessOrEqual(Extent{FileOff: off}, func(e Extent) bool {
		if e.FileOff < off && e.FileOff+e.Length > off {
			out = append(out, e)
		}
		return false
	})
	t.AscendGreaterOrEqual(Extent{FileOff: off}, func(e Extent) bool {
		if e.FileOff >= end {
			return false
		}
		out = append(out, e)
		return true
	})
	return out
}

func tombKey(stripe, file, off uint64) []byte {
	k := make([]byte, 25)
	k[0] = tombPrefix
	binary.BigEndian.PutUint64(k[1:], stripe)
	binary.BigEndian.PutUint64(k[9:], file)
	binary.BigEndian.PutUint64(k[17:], off)
	return k
}

func deadKey(stripe uint64) []byte {
	k := make([]byte, 9)
	k[0] = deadPrefix
	binary.BigEndian.PutUint64(k[1:], stripe)
	return k
}

type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// tombstones returns the drained ranges of file in stripe, sorted.
func tombstones(r reader, stripe, file uint64) ([][2]uint64, error) {
	lo := tombKey(stripe, file, 0)
	hi := tombKey(stripe, file+1, 0)
	if file == ^uint64(0) {
		hi = tombKey(stripe+1, 0, 0)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out [][2]uint64
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2]uint64{binary.BigEndian.Uint64(it.Key()[17:]), binary.BigEndian.Uint64(it.Value())})
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// subtract returns [off, end) minus the ranges cut.
func subtract(off, end uint64, cut [][2]uint64) [][2]uint64 {
	out := [][2]uint64{{off, end}}
	for _, c := range cut {
		var next [][2]uint64
		for _, r := range out {
			if c[1] <= r[0] || c[0] >= r[1] {
				next = append(next, r)
				continue
			}
			if c[0] > r[0] {
				next = append(next, [2]uint64{r[0], c[0]})
			}
			if c[1] < r[1] {
				next = append(next, [2]uint64{c[1], r[1]})
			}
		}
		out = next
	}
	return out
}

// Dead reports whether stripe is recorded dead.
func (x *Index) Dead(stripe uint64) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.dead[stripe]
}

// Apply stores the writes of one stripe, newest version winning byte by
// byte against what the index holds, minus the stripe's drained pieces. A
// dead stripe is ignored. Re-applying a stripe changes nothing. It returns
// the stripes (this one included) left with no live bytes.
func (x *Index) Apply(stripe uint64, ws []Write) ([]uint64, error) {
	for {
		// The tombstones are read from Pebble without the lock; if a Drop
		// gave the stripe more meanwhile, read them again.
		x.mu.RLock()
		tombed := x.tombed[stripe]
		x.mu.RUnlock()
		tombs := map[uint64][][2]uint64{}
		for _, w := range ws {
			if tombed == 0 {
				break
			}
			if _, ok := tombs[w.File]; !ok {
				t, err := tombstones(x.db, stripe, w.File)
				if err != nil {
					return nil, err
				}
				tombs[w.File] = t
			}
		}
		x.mu.Lock()
		if x.tombed[stripe] != tombed {
			x.mu.Unlock()
			continue
		}
		dead := x.applyLocked(stripe, ws, tombs)
		x.mu.Unlock()
		return dead, nil
	}
}

func (x *Index) applyLocked(stripe uint64, ws []Write, tombs map[uint64][][2]uint64) []uint64 {
	if x.dead[stripe] {
		return nil
	}
	delta := map[uint64]int64{stripe: 0}
	for _, w := range ws {
		if w.Len == 0 {
			continue
		}
		for _, r := range subtract(w.Off, w.Off+uint64(w.Len), tombs[w.File]) {
			for _, r := range subtract(r[0], r[1], x.drainedCutLocked(w.File, w.Version, r[0], r[1])) {
				x.applyRangeLocked(w, stripe, r[0], r[1], delta)
			}
		}
	}
	x.addLive(delta)
	return x.deadLocked(delta)
}

func lessDrained(a, b drainedRange) bool { return a.off < b.off }

// drainedOverlap returns the ranges of t that overlap [off, end), in order.
func drainedOverlap(t *btree.BTreeG[drainedRange], off, end uint64) []drainedRange {
	if t == nil {
		return nil
	}
	var out []drainedRange
	t.DescendLessOrEqual(drainedRange{off: off}, func(d drainedRange) bool {
		if d.end > off {
			out = append(out, d)
		}
		return false
	})
	t.AscendRange(drainedRange{off: off + 1}, drainedRange{off: end}, func(d drainedRange) bool {
		out = append(out, d)
		return true
	})
	return out
}

// drainedCutLocked returns the parts of [off, end) of file drained or
// truncated at version or newer: a write of that version there is gone.
func (x *Index) drainedCutLocked(file, version, off, end uint64) [][2]uint64 {
	var cut [][2]uint64
	for _, d := range drainedOverlap(x.drained[file], off, end) {
		if d.version >= version {
			cut = append(cut, [2]uint64{d.off, d.end})
		}
	}
	return cut
}

func drainedKey(file, off, version uint64) []byte {
	k := make([]byte, 25)
	k[0] = drainedPrefix
	binary.BigEndian.PutUint64(k[1:], file)
	binary.BigEndian.PutUint64(k[9:], off)
	binary.BigEndian.PutUint64(k[17:], version)
	return k
}

// addDrained adds p's drained range to t (a file's ranges) and the same
// changes to b: where a range of an older or equal version lies, p's
// replaces it; where one of a newer version lies, that one stays.
func addDrained(t *btree.BTreeG[drainedRange], b *pebble.Batch, p Piece) error {
	put := func(d drainedRange) error {
		t.ReplaceOrInsert(d)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], d.end)
		return b.Set(drainedKey(p.File, d.off, d.version), v[:], nil)
	}
	var newer [][2]uint64
	for _, d := range drainedOverlap(t, p.Off, p.End) {
		t.Delete(d)
		if err := b.Delete(drainedKey(p.File, d.off, d.version), nil); err != nil {
			return err
		}
		if d.off < p.Off {
			if err := put(drainedRange{d.off, p.Off, d.version}); err != nil {
				return err
			}
		}
		if d.end > p.End {
			if err := put(drainedRange{p.End, d.end, d.version}); err != nil {
				return err
			}
		}
		if d.version > p.Version {
			lo, hi := max(d.off, p.Off), min(d.end, p.End)
			if err := put(drainedRange{lo, hi, d.version}); err != nil {
				return err
			}
			newer = append(newer, [2]uint64{lo, hi})
		}
	}
	for _, r := range subtract(p.Off, p.End, newer) {
		if err := put(drainedRange{r[0], r[1], p.Version}); err != nil {
			return err
		}
	}
	return nil
}

func (x *Index) deadLocked(delta map[uint64]int64) []uint64 {
	var dead []uint64
	for s := range delta {
		if x.live[s] == 0 {
			dead = append(dead, s)
		}
	}
	return dead
}

func (x *Index) addLive(delta map[uint64]int64) {
	for s, d := range delta {
		if v := x.live[s] + d; v != 0 {
			x.live[s] = v
		} else {
			delete(x.live, s)
		}
	}
}

// applyRangeLocked writes the part [off, end) of w.
func (x *Index) applyRangeLocked(w Write, stripe, off, end uint64, delta map[uint64]int64) {
	olds := x.overlappingLocked(w.File, off, end)
	// The ranges that stay with newer (or equal) extents.
	var keep [][2]uint64
	for _, o := range olds {
		if o.Version > w.Version || (o.Version == w.Version && o.Stripe >= stripe) {
			keep = append(keep, [2]uint64{o.FileOff, o.FileOff + o.Length})
		}
	}
	t := x.tree(w.File, true)
	for _, r := range subtract(off, end, keep) {
		x.cutLocked(w.File, r[0], r[1], func(Extent) bool { return true }, delta)
		e := Extent{FileOff: r[0], Length: r[1] - r[0], Stripe: stripe,
			Pos: w.Pos + uint32(r[0]-w.Off), Version: w.Version, Clean: w.Clean}
		t.ReplaceOrInsert(e)
		delta[stripe] += int64(e.Length)
		x.newest[w.File] = max(x.newest[w.File], w.Version)
		if !e.Clean {
			x.dirty[w.File] += int64(e.Length)
		}
	}
}

// cutLocked removes from file's extents the bytes in [off, end) of the
// extents match selects, keeping their parts outside the range.
func (x *Index) cutLocked(file, off, end uint64, match func(Extent) bool, delta map[uint64]int64) {
	t := x.files[file]
	if t == nil {
		return
	}
	for _, o := range x.overlappingLocked(file, off, end) {
		if !match(o) {
			continue
		}
		t.Delete(o)
		oend := o.FileOff + o.Length
		n := int64(min(oend, end) - max(o.FileOff, off))
		delta[o.Stripe] -= n
		if !o.Clean {
			if x.dirty[file] -= n; x.dirty[file] == 0 {
				delete(x.dirty, file)
			}
		}
		if o.FileOff < off {
			left := o
			left.Length = off - o.FileOff
			t.ReplaceOrInsert(left)
		}
		if oend > end {
			right := o
			right.FileOff = end
			right.Pos = o.Pos + uint32(end-o.FileOff)
			right.Length = oend - end
			t.ReplaceOrInsert(right)
		}
	}
}

// Drop removes the drained pieces from the extents (only bytes that still
// belong to the piece's stripe: newer writes stay) and records them,
// durably: as tombstones, or, for a stripe the Drop leaves with no live
// bytes, as the stripe's death (one key instead of a tombstone per piece:
// a drained file's stripes usually die whole). It returns the stripes left
// with no live bytes, already marked dead.
//
// The lock is held across the Pebble commit, so that an Apply that read
// the tombstones before the commit reads them again. Should the commit
// fail, the extents are cut already (the bytes are on the backing file
// system, so reads stay right) but not durably: the index refuses further
// Drops, so that no newer bytes are drained over which a restart would
// then drain these again.
func (x *Index) Drop(ps []Piece) ([]uint64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.broken != nil {
		return nil, x.broken
	}
	delta := map[uint64]int64{}
	for _, p := range ps {
		if p.End <= p.Off {
			continue
		}
		x.cutLocked(p.File, p.Off, p.End, func(e Extent) bool {
			return (p.Stripe != 0 && e.Stripe == p.Stripe) || (p.Version != 0 && e.Version <= p.Version)
		}, delta)
		if t := x.files[p.File]; t != nil && t.Len() == 0 {
			delete(x.files, p.File)
			delete(x.newest, p.File)
		}
	}
	x.addLive(delta)
	dead := x.deadLocked(delta)
	isDead := make(map[uint64]bool, len(dead))
	for _, s := range dead {
		isDead[s] = true
	}
	b := x.db.NewBatch()
	defer b.Close()
	tombed := map[uint64]bool{}
	// The files' drained ranges change on copies (a btree clone is copy
	// on write), installed once the batch is committed.
	drained := map[uint64]*btree.BTreeG[drainedRange]{}
	for _, p := range ps {
		if p.End <= p.Off || p.Version == 0 {
			continue
		}
		t, ok := drained[p.File]
		if !ok {
			if cur := x.drained[p.File]; cur != nil {
				t = cur.Clone()
			} else {
				t = btree.NewG(16, lessDrained)
			}
			drained[p.File] = t
		}
		if err := addDrained(t, b, p); err != nil {
			return nil, err
		}
	}
	for _, p := range ps {
		if p.End <= p.Off || p.Stripe == 0 || isDead[p.Stripe] || x.dead[p.Stripe] {
			continue
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], p.End)
		if err := b.Set(tombKey(p.Stripe, p.File, p.Off), v[:], nil); err != nil {
			return nil, err
		}
		tombed[p.Stripe] = true
	}
	if err := x.deadToBatch(b, dead); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		x.broken = fmt.Errorf("burstbuffer: index: recording drained bytes failed, no more are drained until a restart: %w", err)
		return nil, x.broken
	}
	for s := range tombed {
		x.tombed[s]++
	}
	for f, ds := range drained {
		x.drained[f] = ds
	}
	for _, s := range dead {
		x.dead[s] = true
		delete(x.tombed, s)
	}
	return dead, nil
}

// deadToBatch adds to b the death of stripes: the dead key, and the
// removal of their tombstones and completed-stripe hints.
func (x *Index) deadToBatch(b *pebble.Batch, stripes []uint64) error {
	for _, s := range stripes {
		if err := b.Set(deadKey(s), nil, nil); err != nil {
			return err
		}
		if err := b.DeleteRange(tombKey(s, 0, 0), tombKey(s+1, 0, 0), nil); err != nil {
			return err
		}
		k := []byte{donePrefix, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(k[1:], s)
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// MarkDead records stripes as dead, durably, and forgets their tombstones.
// Stripes already dead are skipped.
func (x *Index) MarkDead(stripes []uint64) error {
	x.mu.RLock()
	var todo []uint64
	for _, s := range stripes {
		if !x.dead[s] {
			todo = append(todo, s)
		}
	}
	x.mu.RUnlock()
	if len(todo) == 0 {
		return nil
	}
	b := x.db.NewBatch()
	defer b.Close()
	if err := x.deadToBatch(b, todo); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range todo {
		x.dead[s] = true
		delete(x.tombed, s)
	}
	return nil
}

// MarkDone notes stripes this node stored completely (without fsync: after
// a crash the newest may be missing).
func (x *Index) MarkDone(stripes ...uint64) error {
	b := x.db.NewBatch()
	defer b.Close()
	for _, s := range stripes {
		k := []byte{donePrefix, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(k[1:], s)
		if err := b.Set(k, nil, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// DoneStripes returns the stripes MarkDone noted and MarkDead did not
// forget.
func (x *Index) DoneStripes() ([]uint64, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{donePrefix}, UpperBound: []byte{donePrefix + 1}})
	if err != nil {
		return nil, err
	}
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == 9 {
			out = append(out, binary.BigEndian.Uint64(k[1:]))
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// Live returns the live bytes of stripe.
func (x *Index) Live(stripe uint64) int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live[stripe]
}

// LiveBytes returns the live bytes of every stripe together: the bytes
// buffered and not yet drained.
func (x *Index) LiveBytes() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var n int64
	for _, v := range x.live {
		n += v
	}
	return n
}

// Lookup returns the pieces covering [off, off+length) of file in order,
// with unbuffered ranges reported as holes. Pieces are clipped to the range.
func (x *Index) Lookup(file, off, length uint64) ([]Extent, error) {
	end := off + length
	if end < off {
		return nil, fmt.Errorf("burstbuffer: range overflows")
	}
	x.mu.RLock()
	exts := x.overlappingLocked(file, off, end)
	x.mu.RUnlock()
	var out []Extent
	pos := off
	for _, e := range exts {
		if e.FileOff > pos {
			out = append(out, Extent{FileOff: pos, Length: e.FileOff - pos, Hole: true})
			pos = e.FileOff
		}
		if e.FileOff < pos { // clip the front
			d := pos - e.FileOff
			e.Pos += uint32(d)
			e.Length -= d
			e.FileOff = pos
		}
		if e.FileOff+e.Length > end { // clip the back
			e.Length = end - e.FileOff
		}
		out = append(out, e)
		pos = e.FileOff + e.Length
	}
	if pos < end {
		out = append(out, Extent{FileOff: pos, Length: end - pos, Hole: true})
	}
	return out, nil
}

// Newest returns the highest version written to file that the index holds.
func (x *Index) Newest(file uint64) uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.newest[file]
}

// FileExtents returns every extent of file in order.
func (x *Index) FileExtents(file uint64) ([]Extent, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t := x.files[file]
	if t == nil {
		return nil, nil
	}
	out := make([]Extent, 0, t.Len())
	t.Ascend(func(e Extent) bool {
		out = append(out, e)
		return true
	})
	return out, nil
}

// End returns the end of file's last extent (0 with none).
func (x *Index) End(file uint64) (uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t := x.files[file]
	if t == nil {
		return 0, nil
	}
	e, ok := t.Max()
	if !ok {
		return 0, nil
	}
	return e.FileOff + e.Length, nil
}

// Files returns the files that have extents, with their buffered dirty
// (not clean) bytes.
func (x *Index) Files() (map[uint64]int64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[uint64]int64, len(x.files))
	for f := range x.files {
		out[f] = x.dirty[f]
	}
	return out, nil
}

// DurableState is what the index keeps across restarts: tombstones of
// drained pieces and dead stripes. Peers exchange it when they resync.
type DurableState struct {
	Tombs []Piece
	Dead  []uint64
	// Drained: the drainedRanges, as pieces with no stripe.
	Drained []Piece `json:",omitempty"`
}

// Durable returns the tombstones and dead stripes.
func (x *Index) Durable() (DurableState, error) {
	var st DurableState
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{deadPrefix}, UpperBound: []byte{tombPrefix + 1}})
	if err != nil {
		return st, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case k[0] == deadPrefix && len(k) == 9:
			st.Dead = append(st.Dead, binary.BigEndian.Uint64(k[1:]))
		case k[0] == drainedPrefix && len(k) == 25:
			st.Drained = append(st.Drained, Piece{File: binary.BigEndian.Uint64(k[1:]), Off: binary.BigEndian.Uint64(k[9:]),
				Version: binary.BigEndian.Uint64(k[17:]), End: binary.BigEndian.Uint64(it.Value())})
		case k[0] == tombPrefix && len(k) == 25:
			st.Tombs = append(st.Tombs, Piece{Stripe: binary.BigEndian.Uint64(k[1:]), File: binary.BigEndian.Uint64(k[9:]),
				Off: binary.BigEndian.Uint64(k[17:]), End: binary.BigEndian.Uint64(it.Value())})
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return st, err
	}
	return st, it.Close()
}
