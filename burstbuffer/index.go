package burstbuffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Key layout in Pebble:
//
//	'e' file(8 BE) start(8 BE) -> extent value (extentValueSize bytes)
//	"m/applied"                -> last applied sequence (8 BE)
//
// Extents of one file never overlap; a key's start plus its value's length
// gives its end.
const (
	extentPrefix    = 'e'
	extentKeySize   = 17
	extentValueSize = 8 + 8 + 4 + 4 + 4 + 8
)

var appliedKey = []byte("m/applied")

// Extent is a piece of a file range and where its bytes live. A hole has
// Hole set and no location.
type Extent struct {
	FileOff uint64 // offset in the file
	Length  uint64 // bytes
	Hole    bool
	// Where the bytes are: the record holding them and the offset of the
	// first byte within the record's payload.
	Segment   uint64
	RecOffset int64  // record header offset in the segment
	RecLength uint32 // record payload length
	Skip      uint32 // offset within the payload
	Seq       uint64
}

// Location returns the log location of the record holding the extent.
func (e Extent) Location() Location {
	return Location{Segment: e.Segment, Offset: e.RecOffset, Length: e.RecLength, Seq: e.Seq, Type: TypeWrite}
}

// Index maps (file, offset) ranges to log locations, newest write wins. It is
// safe for concurrent use; Apply calls are serialized.
type Index struct {
	db *pebble.DB
	mu chan struct{} // serializes writers (Apply/Reset)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic("pebble: " + fmt.Sprintf(format, args...))
}

// OpenIndex opens (creating if needed) the Pebble index in dir.
func OpenIndex(dir string) (*Index, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	return &Index{db: db, mu: make(chan struct{}, 1)}, nil
}

// Close closes the index.
func (x *Index) Close() error { return x.db.Close() }

func extentKey(file, off uint64) []byte {
	k := make([]byte, extentKeySize)
	k[0] = extentPrefix
	binary.BigEndian.PutUint64(k[1:], file)
	binary.BigEndian.PutUint64(k[9:], off)
	return k
}

func fileBounds(file uint64) (lo, hi []byte) {
	lo = extentKey(file, 0)
	hi = make([]byte, 9)
	hi[0] = extentPrefix
	binary.BigEndian.PutUint64(hi[1:], file)
	hi = append(hi, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return lo, hi
}

func encodeExtent(e Extent) []byte {
	v := make([]byte, extentValueSize)
	binary.BigEndian.PutUint64(v[0:], e.Segment)
	binary.BigEndian.PutUint64(v[8:], uint64(e.RecOffset))
	binary.BigEndian.PutUint32(v[16:], e.RecLength)
	binary.BigEndian.PutUint32(v[20:], e.Skip)
	binary.BigEndian.PutUint32(v[24:], uint32(e.Length))
	binary.BigEndian.PutUint64(v[28:], e.Seq)
	return v
}

func decodeExtent(k, v []byte) (uint64, Extent, error) {
	if len(k) != extentKeySize || k[0] != extentPrefix || len(v) != extentValueSize {
		return 0, Extent{}, fmt.Errorf("burstbuffer: bad index entry (key %d bytes, value %d bytes)", len(k), len(v))
	}
	return binary.BigEndian.Uint64(k[1:]), Extent{
		FileOff:   binary.BigEndian.Uint64(k[9:]),
		Segment:   binary.BigEndian.Uint64(v[0:]),
		RecOffset: int64(binary.BigEndian.Uint64(v[8:])),
		RecLength: binary.BigEndian.Uint32(v[16:]),
		Skip:      binary.BigEndian.Uint32(v[20:]),
		Length:    uint64(binary.BigEndian.Uint32(v[24:])),
		Seq:       binary.BigEndian.Uint64(v[28:]),
	}, nil
}

type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// overlapping returns the extents of file that overlap [off, end), in order.
func overlapping(r reader, file, off, end uint64) ([]Extent, error) {
	lo, hi := fileBounds(file)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out []Extent
	add := func() error {
		_, e, err := decodeExtent(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if e.FileOff < end && e.FileOff+e.Length > off {
			out = append(out, e)
		}
		return nil
	}
	// At most one extent starting before off can reach into the range.
	if it.SeekLT(extentKey(file, off)) {
		if err := add(); err != nil {
			it.Close()
			return nil, err
		}
	}
	for ok := it.SeekGE(extentKey(file, off)); ok; ok = it.Next() {
		if binary.BigEndian.Uint64(it.Key()[9:]) >= end {
			break
		}
		if err := add(); err != nil {
			it.Close()
			return nil, err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// AppliedSeq returns the sequence of the last record applied.
func (x *Index) AppliedSeq() (uint64, error) {
	v, c, err := x.db.Get(appliedKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("burstbuffer: bad applied sequence (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Apply records the writes at locs (as returned by Log.Append or Log.Scan)
// in one Pebble batch, together with the new applied sequence. Locations
// must be in increasing sequence order; those at or below the applied
// sequence are skipped, so replays are idempotent. Non-write records only
// advance the applied sequence. The batch is committed without fsync: the
// log is the truth and Rebuild replays whatever the index lost.
func (x *Index) Apply(locs ...Location) error {
	x.mu <- struct{}{}
	defer func() { <-x.mu }()
	return x.applyLocked(locs)
}

func (x *Index) applyLocked(locs []Location) error {
	applied, err := x.AppliedSeq()
	if err != nil {
		return err
	}
	b := x.db.NewIndexedBatch()
	defer b.Close()
	last := applied
	for _, l := range locs {
		if l.Seq <= last {
			if l.Seq <= applied {
				continue
			}
			return fmt.Errorf("burstbuffer: Apply sequences out of order (%d after %d)", l.Seq, last)
		}
		last = l.Seq
		if l.Type != TypeWrite || l.Length == 0 {
			continue
		}
		off, end := l.FileOff, l.FileOff+uint64(l.Length)
		olds, err := overlapping(b, l.File, off, end)
		if err != nil {
			return err
		}
		for _, o := range olds {
			if err := b.Delete(extentKey(l.File, o.FileOff), nil); err != nil {
				return err
			}
			oend := o.FileOff + o.Length
			if o.FileOff < off { // keep the part before the new write
				left := o
				left.Length = off - o.FileOff
				if err := b.Set(extentKey(l.File, left.FileOff), encodeExtent(left), nil); err != nil {
					return err
				}
			}
			if oend > end { // keep the part after it
				right := o
				right.FileOff = end
				right.Skip = o.Skip + uint32(end-o.FileOff)
				right.Length = oend - end
				if err := b.Set(extentKey(l.File, right.FileOff), encodeExtent(right), nil); err != nil {
					return err
				}
			}
		}
		e := Extent{FileOff: off, Length: uint64(l.Length), Segment: l.Segment, RecOffset: l.Offset,
			RecLength: l.Length, Seq: l.Seq}
		if err := b.Set(extentKey(l.File, off), encodeExtent(e), nil); err != nil {
			return err
		}
	}
	if last == applied {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], last)
	if err := b.Set(appliedKey, v[:], nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// Lookup returns the pieces covering [off, off+length) of file in order,
// with unwritten ranges reported as holes. Pieces are clipped to the range.
func (x *Index) Lookup(file, off, length uint64) ([]Extent, error) {
	end := off + length
	if end < off {
		return nil, fmt.Errorf("burstbuffer: range overflows")
	}
	exts, err := overlapping(x.db, file, off, end)
	if err != nil {
		return nil, err
	}
	var out []Extent
	pos := off
	for _, e := range exts {
		if e.FileOff > pos {
			out = append(out, Extent{FileOff: pos, Length: e.FileOff - pos, Hole: true})
			pos = e.FileOff
		}
		if e.FileOff < pos { // clip the front
			d := pos - e.FileOff
			e.Skip += uint32(d)
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

// Extents returns every extent of every file, ordered by (file, offset);
// for tests and tools.
func (x *Index) Extents() (map[uint64][]Extent, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{extentPrefix}, UpperBound: []byte{extentPrefix + 1}})
	if err != nil {
		return nil, err
	}
	out := map[uint64][]Extent{}
	for ok := it.First(); ok; ok = it.Next() {
		f, e, err := decodeExtent(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return nil, err
		}
		out[f] = append(out[f], e)
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// Reset drops every extent and the applied sequence.
func (x *Index) Reset() error {
	x.mu <- struct{}{}
	defer func() { <-x.mu }()
	return x.resetLocked()
}

func (x *Index) resetLocked() error {
	b := x.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{extentPrefix}, []byte{extentPrefix + 1}, nil); err != nil {
		return err
	}
	if err := b.Delete(appliedKey, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// RebuildStats says what Rebuild did.
type RebuildStats struct {
	Reset   bool   // the index was ahead of the log and was rebuilt from scratch
	Skipped int    // records at or below the applied sequence
	Applied int    // records replayed
	LastSeq uint64 // applied sequence afterwards
}

// Rebuild brings the index up to date with log by replaying, in sequence
// order, every record after the index's applied sequence. If the index is
// ahead of the log (the log's unsynced tail was lost in a crash, while the
// index's was not), the index is reset and rebuilt from the whole log.
func (x *Index) Rebuild(ctx context.Context, log *Log) (RebuildStats, error) {
	x.mu <- struct{}{}
	defer func() { <-x.mu }()
	var st RebuildStats
	applied, err := x.AppliedSeq()
	if err != nil {
		return st, err
	}
	if applied > log.LastSeq() {
		if err := x.resetLocked(); err != nil {
			return st, err
		}
		st.Reset = true
		applied = 0
	}
	const batchSize = 1024
	var pending []Location
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := x.applyLocked(pending); err != nil {
			return err
		}
		st.Applied += len(pending)
		pending = pending[:0]
		return ctx.Err()
	}
	err = log.Scan(func(l Location) error {
		if l.Seq <= applied {
			st.Skipped++
			return nil
		}
		pending = append(pending, l)
		if len(pending) >= batchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return st, err
	}
	st.LastSeq, err = x.AppliedSeq()
	return st, err
}

// ReadRange fills buf with file's bytes at off using the index and the
// log. Holes read as zeros. It returns the number of hole bytes.
func ReadRange(x *Index, log *Log, file, off uint64, buf []byte) (holes int, err error) {
	exts, err := x.Lookup(file, off, uint64(len(buf)))
	if err != nil {
		return 0, err
	}
	var rec []byte
	for _, e := range exts {
		dst := buf[e.FileOff-off : e.FileOff-off+e.Length]
		if e.Hole {
			clear(dst)
			holes += len(dst)
			continue
		}
		if cap(rec) < int(e.RecLength) {
			rec = make([]byte, e.RecLength)
		}
		rec = rec[:e.RecLength]
		if _, err := log.Read(e.Location(), rec); err != nil {
			return holes, err
		}
		copy(dst, rec[e.Skip:uint64(e.Skip)+e.Length])
	}
	return holes, nil
}
