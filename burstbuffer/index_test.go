package burstbuffer

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// refFile is the in-memory reference: bytes plus which were written.
type refFile struct {
	data    []byte
	written []bool
}

func (r *refFile) write(off int, p []byte) {
	if n := off + len(p); n > len(r.data) {
		r.data = append(r.data, make([]byte, n-len(r.data))...)
		r.written = append(r.written, make([]bool, n-len(r.written))...)
	}
	copy(r.data[off:], p)
	for i := range p {
		r.written[off+i] = true
	}
}

// checkRange compares the index+log view of [off, off+n) with the reference.
func checkRange(t *testing.T, x *Index, l *Log, ref *refFile, file uint64, off, n int) {
	t.Helper()
	exts, err := x.Lookup(file, uint64(off), uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	pos := uint64(off)
	for _, e := range exts {
		if e.FileOff != pos || e.Length == 0 {
			t.Fatalf("file %d [%d,+%d): pieces not contiguous: %+v", file, off, n, exts)
		}
		for i := e.FileOff; i < e.FileOff+e.Length; i++ {
			w := int(i) < len(ref.written) && ref.written[i]
			if w == e.Hole {
				t.Fatalf("file %d byte %d: hole=%v but written=%v", file, i, e.Hole, w)
			}
		}
		pos += e.Length
	}
	if pos != uint64(off+n) {
		t.Fatalf("file %d [%d,+%d): pieces end at %d", file, off, n, pos)
	}
	got := make([]byte, n)
	if _, err := ReadRange(x, l, file, uint64(off), got); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	if off < len(ref.data) {
		copy(want, ref.data[off:])
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("file %d: byte %d = %d, want %d", file, off+i, got[i], want[i])
			}
		}
	}
}

func seed(t *testing.T) int64 {
	s := time.Now().UnixNano()
	if v := os.Getenv("BB_SEED"); v != "" {
		s, _ = strconv.ParseInt(v, 10, 64)
	}
	t.Logf("seed %d (rerun with BB_SEED=%d)", s, s)
	return s
}

func TestIndexRandomOverlappingWrites(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewSource(seed(t)))
	dir := t.TempDir()
	logDir, idxDir := filepath.Join(dir, "flash"), filepath.Join(dir, "index")
	opts := LogOptions{SegmentSize: 256 << 10}
	l := mustOpen(t, logDir, opts)
	x, err := OpenIndex(idxDir)
	if err != nil {
		t.Fatal(err)
	}
	const files, space = 4, 64 << 10
	refs := make([]*refFile, files)
	for i := range refs {
		refs[i] = &refFile{}
	}
	for i := 0; i < 1500; i++ {
		var recs []Record
		for j := r.Intn(4) + 1; j > 0; j-- {
			f := r.Intn(files)
			var n int
			switch r.Intn(4) {
			case 0:
				n = r.Intn(16) + 1
			case 1:
				n = r.Intn(8192) + 1
			default:
				n = r.Intn(1024) + 1
			}
			off := r.Intn(space)
			p := make([]byte, n)
			r.Read(p)
			recs = append(recs, Record{File: uint64(f), Offset: uint64(off), Data: p})
			refs[f].write(off, p)
		}
		if r.Intn(50) == 0 { // an empty write and a no-op record
			recs = append(recs, Record{File: 0, Offset: 5, Data: nil}, Record{Type: TypeNoop, Data: []byte("pad")})
		}
		locs, err := l.Append(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Apply(locs...); err != nil {
			t.Fatal(err)
		}
		if r.Intn(20) == 0 {
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 0 { // spot check while writing
			f := r.Intn(files)
			off := r.Intn(space)
			checkRange(t, x, l, refs[f], uint64(f), off, r.Intn(space-off)+1)
		}
	}
	check := func(x *Index, l *Log) {
		t.Helper()
		for f := 0; f < files; f++ {
			checkRange(t, x, l, refs[f], uint64(f), 0, space+9000)
			for k := 0; k < 30; k++ {
				off := r.Intn(space)
				checkRange(t, x, l, refs[f], uint64(f), off, r.Intn(9000)+1)
			}
		}
		// A file never written is one hole.
		exts, err := x.Lookup(99, 10, 100)
		if err != nil || len(exts) != 1 || !exts[0].Hole || exts[0].Length != 100 {
			t.Fatalf("unwritten file: %+v %v", exts, err)
		}
	}
	check(x, l)
	incr, err := x.Extents()
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := x.AppliedSeq()
	if applied != l.LastSeq() {
		t.Fatalf("applied %d, log last %d", applied, l.LastSeq())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: the log reopens, the old index replays nothing.
	l = mustOpen(t, logDir, opts)
	defer l.Close()
	t.Logf("recovered %+v", l.Recovery())
	x, err = OpenIndex(idxDir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	st, err := x.Rebuild(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied != 0 || st.Reset || st.Skipped != l.Recovery().Records {
		t.Fatalf("replay onto an up-to-date index: %+v", st)
	}
	check(x, l)

	// A fresh index rebuilt from the log equals the incremental one.
	y, err := OpenIndex(filepath.Join(dir, "rebuilt"))
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	st, err = y.Rebuild(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied != l.Recovery().Records || st.LastSeq != l.LastSeq() {
		t.Fatalf("rebuild: %+v", st)
	}
	rebuilt, err := y.Extents()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(incr, rebuilt) {
		t.Fatalf("rebuilt index differs from incremental one (%d vs %d files)", len(rebuilt), len(incr))
	}
	check(y, l)
}

func TestIndexSplitAndPartialReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, filepath.Join(dir, "flash"), LogOptions{})
	defer l.Close()
	x, err := OpenIndex(filepath.Join(dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	a, _ := l.Append(ctx, Record{File: 1, Offset: 0, Data: bytes.Repeat([]byte{'a'}, 100)})
	b, _ := l.Append(ctx, Record{File: 1, Offset: 40, Data: bytes.Repeat([]byte{'b'}, 20)})
	if err := x.Apply(a...); err != nil {
		t.Fatal(err)
	}
	// Apply the same records again (a replay): the first is skipped.
	if err := x.Apply(append(a, b...)...); err != nil {
		t.Fatal(err)
	}
	exts, err := x.Lookup(1, 0, 120)
	if err != nil {
		t.Fatal(err)
	}
	type piece struct {
		off, n uint64
		hole   bool
		seq    uint64
		skip   uint32
	}
	var got []piece
	for _, e := range exts {
		got = append(got, piece{e.FileOff, e.Length, e.Hole, e.Seq, e.Skip})
	}
	want := []piece{{0, 40, false, 1, 0}, {40, 20, false, 2, 0}, {60, 40, false, 1, 60}, {100, 20, true, 0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pieces\n got %+v\nwant %+v", got, want)
	}
	// An index ahead of the log (log tail lost) is rebuilt from scratch.
	c, _ := l.Append(ctx, Record{File: 1, Offset: 0, Data: []byte("c")})
	if err := x.Apply(c...); err != nil {
		t.Fatal(err)
	}
	l2dir := filepath.Join(dir, "flash2")
	l2 := mustOpen(t, l2dir, LogOptions{})
	defer l2.Close()
	if _, err := l2.Append(ctx, Record{File: 1, Offset: 0, Data: []byte("zz")}); err != nil {
		t.Fatal(err)
	}
	st, err := x.Rebuild(ctx, l2)
	if err != nil || !st.Reset || st.Applied != 1 {
		t.Fatalf("rebuild of an index ahead of its log: %+v %v", st, err)
	}
	buf := make([]byte, 3)
	if _, err := ReadRange(x, l2, 1, 0, buf); err != nil || string(buf) != "zz\x00" {
		t.Fatalf("after reset: %q %v", buf, err)
	}
}
