package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustOpen(t testing.TB, dir string, opts LogOptions) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func payload(seed, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewSource(int64(seed)))
	r.Read(b)
	return b
}

func TestAppendReadReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, LogOptions{SegmentSize: 4096})
	var locs []Location
	var data [][]byte
	for i := 0; i < 100; i++ {
		p := payload(i, i*37%3000)
		ls, err := l.Append(ctx, Record{File: uint64(i % 3), Offset: uint64(i * 10), Data: p})
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, ls...)
		data = append(data, p)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, LogOptions{SegmentSize: 4096})
	defer l.Close()
	rec := l.Recovery()
	if rec.Records != 100 || rec.LastSeq != 100 || rec.Truncated || rec.Segments < 2 {
		t.Fatalf("recovery %+v", rec)
	}
	for i, loc := range locs {
		buf := make([]byte, loc.Length)
		n, err := l.Read(loc, buf)
		if err != nil || !bytes.Equal(buf[:n], data[i]) {
			t.Fatalf("record %d: n=%d err=%v", i, n, err)
		}
	}
	var scanned int
	if err := l.Scan(func(loc Location) error {
		if loc != locs[scanned] {
			return fmt.Errorf("scan %d: %+v != %+v", scanned, loc, locs[scanned])
		}
		scanned++
		return nil
	}); err != nil || scanned != 100 {
		t.Fatalf("scan: %v (%d)", err, scanned)
	}
	// Appends continue the sequence.
	ls, err := l.Append(ctx, Record{File: 9, Data: []byte("x")})
	if err != nil || ls[0].Seq != 101 {
		t.Fatalf("append after reopen: %v %+v", err, ls)
	}
}

func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var syncs atomic.Int64
	// The hook counts fdatasyncs and adds device-like latency, so that the
	// test does not depend on how fast this disk happens to be.
	opts := LogOptions{SegmentSize: 1 << 20, SyncHook: func(uint64) {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond)
	}}
	l := mustOpen(t, dir, opts)
	const writers, iters = 16, 25
	type wrote struct {
		loc  Location
		data []byte
	}
	results := make([][]wrote, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				p := payload(w*1000+i, 100+(w*i)%4000)
				ls, err := l.Append(ctx, Record{File: uint64(w), Offset: uint64(i) * 4096, Data: p})
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.Sync(ctx); err != nil {
					t.Error(err)
					return
				}
				if l.DurableSeq() < ls[0].Seq {
					t.Errorf("Sync returned before seq %d durable (%d)", ls[0].Seq, l.DurableSeq())
				}
				results[w] = append(results[w], wrote{ls[0], p})
			}
		}(w)
	}
	wg.Wait()
	st := l.Stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	total := int64(writers * iters)
	t.Logf("%d Sync calls, %d fdatasyncs (hook saw %d)", st.SyncCalls, st.Fdatasyncs, syncs.Load())
	if st.SyncCalls != uint64(total) {
		t.Fatalf("SyncCalls = %d, want %d", st.SyncCalls, total)
	}
	if syncs.Load() > total/3 {
		t.Fatalf("group commit not effective: %d fdatasyncs for %d Syncs", syncs.Load(), total)
	}
	l = mustOpen(t, dir, opts)
	defer l.Close()
	if r := l.Recovery(); r.Records != int(total) || r.Truncated {
		t.Fatalf("recovery %+v", r)
	}
	for w := range results {
		for _, r := range results[w] {
			buf := make([]byte, r.loc.Length)
			if _, err := l.Read(r.loc, buf); err != nil || !bytes.Equal(buf, r.data) {
				t.Fatalf("writer %d seq %d: %v", w, r.loc.Seq, err)
			}
		}
	}
}

func TestCrashTruncation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := LogOptions{SegmentSize: 8192}
	l := mustOpen(t, dir, opts)
	var locs []Location
	var data [][]byte
	for i := 0; i < 40; i++ {
		p := payload(i, 50+i*13)
		if i == 39 {
			p = payload(i, 300)
		}
		ls, err := l.Append(ctx, Record{File: 1, Offset: uint64(i) * 100, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, ls[0])
		data = append(data, p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last := locs[len(locs)-1]
	segPath := filepath.Join(dir, segName(last.Segment))
	orig, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(orig)) != last.Offset+HeaderSize+int64(last.Length) {
		t.Fatalf("segment size %d, last record ends at %d", len(orig), last.Offset+HeaderSize+int64(last.Length))
	}
	check := func(cut int, content []byte, wantTrunc bool) {
		t.Helper()
		if err := os.WriteFile(segPath, content, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		defer l.Close()
		r := l.Recovery()
		if r.Records != len(locs)-1 || r.LastSeq != last.Seq-1 || r.Truncated != wantTrunc {
			t.Fatalf("cut %d: recovery %+v", cut, r)
		}
		if wantTrunc && (r.TruncOffset != last.Offset || r.TruncSegment != last.Segment) {
			t.Fatalf("cut %d: recovery %+v", cut, r)
		}
		for i, loc := range locs[:len(locs)-1] {
			buf := make([]byte, loc.Length)
			if _, err := l.Read(loc, buf); err != nil || !bytes.Equal(buf, data[i]) {
				t.Fatalf("cut %d: record %d: %v", cut, i, err)
			}
		}
		p := []byte(fmt.Sprintf("after cut %d", cut))
		ls, err := l.Append(ctx, Record{File: 2, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		if ls[0].Seq != last.Seq || ls[0].Offset != last.Offset {
			t.Fatalf("cut %d: new record at %+v, want where the torn one was", cut, ls[0])
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(p))
		if _, err := l.Read(ls[0], buf); err != nil || !bytes.Equal(buf, p) {
			t.Fatalf("cut %d: read new record: %v", cut, err)
		}
		if err := l.Scan(func(Location) error { return nil }); err != nil {
			t.Fatalf("cut %d: scan: %v", cut, err)
		}
	}
	// Every byte offset inside the last record.
	for cut := int(last.Offset); cut < len(orig); cut++ {
		check(cut, orig[:cut], cut > int(last.Offset))
	}
	// A flipped bit in the payload, and in the header, of the last record.
	for _, at := range []int{len(orig) - 1, int(last.Offset) + 20} {
		bad := bytes.Clone(orig)
		bad[at] ^= 0x40
		check(at, bad, true)
	}
	// Garbage appended after the last record is also a torn tail.
	os.WriteFile(segPath, orig, 0o644)
	l = mustOpen(t, dir, opts)
	if r := l.Recovery(); r.Records != len(locs) || r.Truncated {
		t.Fatalf("restored: %+v", r)
	}
	l.Close()
	junk := append(bytes.Clone(orig), bytes.Repeat([]byte{0xab}, 7)...)
	os.WriteFile(segPath, junk, 0o644)
	l = mustOpen(t, dir, opts)
	if r := l.Recovery(); r.Records != len(locs) || !r.Truncated || r.TruncDiscarded != 7 {
		t.Fatalf("junk tail: %+v", r)
	}
	l.Close()
	// Zeros after the last record (a preallocated segment) are a clean
	// end: nothing is truncated, and appends go where the records end.
	os.WriteFile(segPath, append(bytes.Clone(orig), make([]byte, 64<<10)...), 0o644)
	l = mustOpen(t, dir, opts)
	if r := l.Recovery(); r.Records != len(locs) || r.Truncated {
		t.Fatalf("zero tail: %+v", r)
	}
	ls, err := l.Append(ctx, Record{File: 3, Data: []byte("over the zeros")})
	if err != nil || ls[0].Offset != int64(len(orig)) {
		t.Fatalf("append after a zero tail: %+v, %v; want it at %d", ls, err, len(orig))
	}
	l.Close()
	if fi, _ := os.Stat(segPath); fi.Size() != int64(len(orig))+64<<10 {
		t.Fatalf("zero tail: file is %d bytes, want the zeros kept", fi.Size())
	}
	os.WriteFile(segPath, orig, 0o644)
	// Corruption in an earlier segment is not a torn tail: Open refuses.
	first := filepath.Join(dir, segName(locs[0].Segment))
	fb, _ := os.ReadFile(first)
	fb[HeaderSize+1] ^= 1
	os.WriteFile(first, fb, 0o644)
	if _, err := Open(dir, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt early segment: err = %v", err)
	}
}

func TestReadDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := mustOpen(t, dir, LogOptions{})
	defer l.Close()
	ls, err := l.Append(ctx, Record{File: 1, Data: []byte("hello, world")})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, segName(1)), os.O_RDWR, 0)
	f.WriteAt([]byte{'H'}, HeaderSize)
	f.Close()
	if _, err := l.Read(ls[0], make([]byte, 64)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	var hb [HeaderSize]byte
	encodeHeader(hb[:], Header{Type: TypeWrite, File: 7, Offset: 4096, Length: 5, Seq: 3}, []byte("hello"))
	f.Add(hb[:], []byte("hello"))
	f.Add(hb[:20], []byte{})
	f.Add(make([]byte, HeaderSize), []byte{})
	f.Fuzz(func(t *testing.T, b []byte, p []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if h.Length > MaxPayload || h.Seq == 0 || !h.Type.known() {
			t.Fatalf("accepted bad header %+v", h)
		}
		// Re-encoding the decoded fields gives back the same header prefix,
		// and the CRC check agrees with a freshly computed CRC.
		var re [HeaderSize]byte
		c := encodeHeader(re[:], h, p)
		if !bytes.Equal(re[:36], b[:36]) {
			t.Fatalf("round trip: %x != %x", re[:36], b[:36])
		}
		if checkCRC(b, p, h.CRC) != (c == h.CRC) {
			t.Fatalf("checkCRC disagrees")
		}
	})
}

func BenchmarkAppendSync4KiB(b *testing.B) {
	ctx := context.Background()
	l := mustOpen(b, b.TempDir(), LogOptions{})
	defer l.Close()
	const writers = 8
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(4096)
	data := payload(1, 4096)
	var file atomic.Uint64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		f := file.Add(1)
		var off uint64
		for pb.Next() {
			if _, err := l.Append(ctx, Record{File: f, Offset: off, Data: data}); err != nil {
				b.Error(err)
				return
			}
			if err := l.Sync(ctx); err != nil {
				b.Error(err)
				return
			}
			off += 4096
		}
	})
	el := time.Since(start).Seconds()
	st := l.Stats()
	b.ReportMetric(float64(st.Fdatasyncs)/el, "syncs/s")
	b.ReportMetric(float64(st.SyncCalls)/float64(max(st.Fdatasyncs, 1)), "Syncs/fdatasync")
}

// TestPreallocate: a log with Preallocate rolls onto a zero-filled segment
// as soon as one is ready, appends over the zeros (the file keeps its
// size), cuts a rolled segment to its records, and reopens — strictly or
// leniently — with every record and nothing truncated. Junk written into
// the zeros is a torn tail as anywhere else.
func TestPreallocate(t *testing.T) {
	dir := t.TempDir()
	const segSize = 1 << 20
	opts := LogOptions{SegmentSize: segSize, Preallocate: true}
	l := mustOpen(t, dir, opts)
	ctx := context.Background()
	var locs []Location
	var data [][]byte
	// Every append synced, as fsync after each write does.
	app := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			p := payload(len(data), 3000+len(data)%500)
			ls, err := l.Append(ctx, Record{File: 1, Offset: uint64(len(data)), Data: p})
			if err != nil {
				t.Fatal(err)
			}
			locs, data = append(locs, ls[0]), append(data, p)
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	app(spareAfterSyncs - 1)
	time.Sleep(50 * time.Millisecond)
	if l.spareIsReady() || fileExists(filepath.Join(dir, spareName)) {
		t.Fatalf("a spare after %d syncs, want none before %d", spareAfterSyncs-1, spareAfterSyncs)
	}
	app(1)
	deadline := time.Now().Add(10 * time.Second)
	for !l.spareIsReady() {
		if time.Now().After(deadline) {
			t.Fatal("no spare segment after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first := len(locs)
	app(3)
	// The first segment (not preallocated) was left for the spare at once.
	if locs[first].Segment == locs[0].Segment {
		t.Fatalf("records 0 and %d both in %s: no early roll onto the spare", first, segName(locs[0].Segment))
	}
	cur := filepath.Join(dir, segName(locs[first].Segment))
	if fi, err := os.Stat(cur); err != nil || fi.Size() != segSize {
		t.Fatalf("current segment: %v, %v; want a %d-byte preallocated file", fi, err, segSize)
	}
	// Fill it past its size: the roll cuts it to its records.
	app(400)
	last := locs[len(locs)-1]
	if last.Segment == locs[first].Segment {
		t.Fatalf("no roll after %d bytes in %d-byte segments", 400*3250, segSize)
	}
	var end int64
	for _, loc := range locs {
		if loc.Segment == locs[first].Segment {
			end = loc.Offset + HeaderSize + int64(loc.Length)
		}
	}
	if fi, _ := os.Stat(cur); fi.Size() != end {
		t.Fatalf("rolled segment is %d bytes, want cut to its records' end %d", fi.Size(), end)
	}
	check := func(l *Log, what string) {
		t.Helper()
		if r := l.Recovery(); r.Records != len(locs) || r.Truncated || r.Unreadable != 0 {
			t.Fatalf("%s: recovery %+v, want %d records, nothing cut", what, r, len(locs))
		}
		for i, loc := range locs {
			buf := make([]byte, loc.Length)
			if _, err := l.Read(loc, buf); err != nil || !bytes.Equal(buf, data[i]) {
				t.Fatalf("%s: record %d: %v", what, i, err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, opts)
	check(l, "reopened")
	app(2)
	l.Close()
	ls, err := open(dir, opts, openMode{lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	check(ls, "reopened leniently")
	ls.Close()
	// Junk in the zeros past the last record is a torn tail.
	last = locs[len(locs)-1]
	segPath := filepath.Join(dir, segName(last.Segment))
	f, err := os.OpenFile(segPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := last.Offset + HeaderSize + int64(last.Length) + 100
	f.WriteAt([]byte{1, 2, 3}, at)
	f.Close()
	l = mustOpen(t, dir, opts)
	if r := l.Recovery(); r.Records != len(locs) || !r.Truncated || r.TruncOffset != at-100 {
		t.Fatalf("junk in the zeros: %+v, want %d records and the tail cut at %d", r, len(locs), at-100)
	}
	l.Close()
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// TestNoSpareForBigWrites: a log of big appends synced now and then never
// zero-fills a spare (that would write every segment twice).
func TestNoSpareForBigWrites(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, LogOptions{SegmentSize: 64 << 20, Preallocate: true}) // no roll: the syncs add up
	defer l.Close()
	ctx := context.Background()
	p := payload(1, 256<<10)
	for i := 0; i < 3*spareAfterSyncs; i++ {
		if _, err := l.Append(ctx, Record{File: 1, Data: p}); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if l.spareIsReady() || fileExists(filepath.Join(dir, spareName)) {
		t.Fatal("a spare segment for 256 KiB appends")
	}
}
