package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustOpenStore(t testing.TB, dir string, opts StoreOptions) *Store {
	t.Helper()
	s, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type key struct {
	stripe uint64
	idx    int
}

// checkStore checks that s holds exactly want, through Get, Has, Scan and
// Stats.
func checkStore(t *testing.T, s *Store, want map[key][]byte) {
	t.Helper()
	var liveBytes int64
	for k, p := range want {
		got, err := s.Get(k.stripe, k.idx)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("Get(%d, %d): %d bytes, err %v; want %d bytes", k.stripe, k.idx, len(got), err, len(p))
		}
		if !s.Has(k.stripe, k.idx) {
			t.Fatalf("Has(%d, %d) = false", k.stripe, k.idx)
		}
		liveBytes += int64(len(p))
	}
	seen := map[key]bool{}
	err := s.Scan(func(stripe uint64, idx int, payload []byte) error {
		k := key{stripe, idx}
		if seen[k] {
			return fmt.Errorf("scan: %v twice", k)
		}
		seen[k] = true
		if p, ok := want[k]; !ok || !bytes.Equal(p, payload) {
			return fmt.Errorf("scan: %v: unexpected payload (%d bytes, wanted: %v)", k, len(payload), ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("scan saw %d shards, want %d", len(seen), len(want))
	}
	st := s.Stats()
	if st.LiveShards != len(want) || st.LiveBytes != liveBytes {
		t.Fatalf("stats %+v, want %d shards, %d bytes", st, len(want), liveBytes)
	}
}

// segFiles lists the segment ids in dir.
func segFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, e := range ents {
		if id, ok := parseSegName(e.Name()); ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func TestStorePutGetReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := StoreOptions{SegmentSize: 8192}
	s := mustOpenStore(t, dir, opts)
	want := map[key][]byte{}
	for i := 0; i < 200; i++ {
		k := key{uint64(i % 37), i % 5}
		p := payload(i, i*53%3000)
		if err := s.Put(ctx, k.stripe, k.idx, p); err != nil {
			t.Fatal(err)
		}
		want[k] = p // later Puts of a key replace earlier ones
	}
	if err := s.Put(ctx, 1, 1000, nil); err != nil {
		t.Fatal(err)
	}
	want[key{1, 1000}] = []byte{}
	checkStore(t, s, want)
	if _, err := s.Get(99, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing shard: %v", err)
	}
	if s.Has(99, 0) {
		t.Fatal("Has of a missing shard")
	}
	if err := s.Put(ctx, 1, -1, []byte("x")); err == nil {
		t.Fatal("Put with a negative index succeeded")
	}
	if st := s.Stats(); st.Puts != 201 || st.Segments < 10 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(1, 1000); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}

	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	checkStore(t, s, want)
	if err := s.Put(ctx, 5, 0, []byte("after reopen")); err != nil {
		t.Fatal(err)
	}
	want[key{5, 0}] = []byte("after reopen")
	checkStore(t, s, want)
}

func TestStoreOpenRefusesWriteLog(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, LogOptions{})
	if _, err := l.Append(context.Background(), Record{File: 1, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if s, err := OpenStore(dir, StoreOptions{}); err == nil {
		s.Close()
		t.Fatal("OpenStore over a log of writes succeeded")
	}
}

func TestStoreConcurrentPutsShareFdatasyncs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var syncs atomic.Int64
	// Device-like latency, so that the test does not depend on this disk.
	opts := StoreOptions{SegmentSize: 1 << 20, SyncHook: func(uint64) {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond)
	}}
	s := mustOpenStore(t, dir, opts)
	const writers, iters = 16, 25
	var mu sync.Mutex
	want := map[key][]byte{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				k := key{uint64(w*iters + i), w % 6}
				p := payload(w*1000+i, 100+(w*i)%4000)
				if err := s.Put(ctx, k.stripe, k.idx, p); err != nil {
					t.Error(err)
					return
				}
				if !s.Has(k.stripe, k.idx) {
					t.Errorf("Put %v returned but Has is false", k)
				}
				mu.Lock()
				want[k] = p
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	total := int64(writers * iters)
	st := s.Stats()
	t.Logf("%d Puts, %d fdatasyncs (hook saw %d)", st.Puts, st.Fdatasyncs, syncs.Load())
	if st.Puts != uint64(total) {
		t.Fatalf("Puts = %d, want %d", st.Puts, total)
	}
	if syncs.Load() > total/3 {
		t.Fatalf("group commit not effective: %d fdatasyncs for %d Puts", syncs.Load(), total)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, StoreOptions{SegmentSize: 1 << 20})
	defer s.Close()
	checkStore(t, s, want)
}

func TestStoreDeleteFreesSegments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Two 1000-byte shards fill a segment: stripe i's shards 0 and 1 share
	// segment i+1.
	opts := StoreOptions{SegmentSize: 2 * (HeaderSize + 1000)}
	s := mustOpenStore(t, dir, opts)
	want := map[key][]byte{}
	const stripes = 10
	for i := 0; i < stripes; i++ {
		for idx := 0; idx < 2; idx++ {
			p := payload(i*2+idx, 1000)
			if err := s.Put(ctx, uint64(i), idx, p); err != nil {
				t.Fatal(err)
			}
			want[key{uint64(i), idx}] = p
		}
	}
	if got := segFiles(t, dir); len(got) != stripes || got[0] != 1 || got[stripes-1] != stripes {
		t.Fatalf("segments %v, want 1..%d", got, stripes)
	}
	before := s.Stats()
	files := func(want ...uint64) {
		t.Helper()
		if got := segFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("segment files %v, want %v", got, want)
		}
	}
	put := func(stripe uint64, idx int, p []byte) {
		t.Helper()
		if err := s.Put(ctx, stripe, idx, p); err != nil {
			t.Fatal(err)
		}
		want[key{stripe, idx}] = p
	}
	del := func(stripe uint64, n int) {
		t.Helper()
		if got := s.Delete(stripe); got != n {
			t.Fatalf("Delete(%d) = %d, want %d", stripe, got, n)
		}
		for k := range want {
			if k.stripe == stripe {
				delete(want, k)
			}
		}
	}

	// Odd stripes: their segments go, except the current one (stripe 9's).
	for i := 1; i < stripes; i += 2 {
		del(uint64(i), 2)
	}
	del(1, 0)
	files(1, 3, 5, 7, 9, 10)
	checkStore(t, s, want)
	if st := s.Stats(); st.SegmentsFreed != 4 || st.Segments != 6 || st.DiskBytes != 6*opts.SegmentSize ||
		before.DiskBytes != 10*opts.SegmentSize {
		t.Fatalf("stats before %+v, after %+v", before, st)
	}

	// Replacing both shards of stripe 2 leaves segment 3 with no live
	// shard, and segment 10 is no longer current once 11 is started: both
	// go at the next Delete.
	put(2, 0, payload(100, 1000))
	put(2, 1, payload(101, 1000))
	files(1, 3, 5, 7, 9, 10, 11)
	del(4, 2)
	files(1, 7, 9, 11)
	checkStore(t, s, want)

	// A segment keeps a deleted shard while it holds a live one.
	put(30, 0, payload(30, 1000))
	put(31, 0, payload(31, 1000))
	put(32, 0, payload(32, 1000))
	del(30, 1)
	files(1, 7, 9, 11, 12, 13)
	checkStore(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: the gaps left by removed segments are fine. Stripe 30 is
	// back (see TestStoreDeleteResurrectsFromLiveSegment); nothing else.
	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	if !s.Has(30, 0) {
		t.Fatal("stripe 30 did not come back")
	}
	del(30, 1)
	checkStore(t, s, want)
	files(1, 7, 9, 11, 12, 13)
	put(40, 0, []byte("more"))
	files(1, 7, 9, 11, 12, 13)
	checkStore(t, s, want)
}

func TestStoreDeleteResurrectsFromLiveSegment(t *testing.T) {
	// The documented limit: Delete is not logged, so a deleted shard whose
	// segment still holds a live shard is back after a restart.
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, StoreOptions{})
	s.Put(ctx, 1, 0, []byte("one"))
	s.Put(ctx, 2, 0, []byte("two"))
	if s.Delete(1) != 1 || s.Has(1, 0) {
		t.Fatal("delete")
	}
	s.Close()
	s = mustOpenStore(t, dir, StoreOptions{})
	defer s.Close()
	if got, err := s.Get(1, 0); err != nil || string(got) != "one" {
		t.Fatalf("resurrected shard: %q %v", got, err)
	}
}

func TestStoreCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := StoreOptions{SegmentSize: 4 * (HeaderSize + 500)}
	s := mustOpenStore(t, dir, opts)
	want := map[key][]byte{}
	for i := 0; i < 12; i++ {
		p := payload(i, 500)
		if err := s.Put(ctx, uint64(i), 0, p); err != nil {
			t.Fatal(err)
		}
		want[key{uint64(i), 0}] = p
	}
	flip := func(loc Location, at int64) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(dir, segName(loc.Segment)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var b [1]byte
		if _, err := f.ReadAt(b[:], loc.Offset+at); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x10
		if _, err := f.WriteAt(b[:], loc.Offset+at); err != nil {
			t.Fatal(err)
		}
	}
	// A payload byte of stripe 1 (segment 1, not the last one).
	loc, _ := s.lookup(1, 0)
	flip(loc, HeaderSize+123)
	if _, err := s.Get(1, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a corrupted shard: %v", err)
	}
	// ReadAt does not check the CRC: the caller's checksum would.
	buf := make([]byte, 10)
	if n, err := s.ReadAt(1, 0, buf, 120); n != 10 || err != nil || bytes.Equal(buf, want[key{1, 0}][120:130]) {
		t.Fatalf("ReadAt of the corrupted bytes: %d %v", n, err)
	}
	delete(want, key{1, 0})
	// Scan skips it and counts it; other shards read fine.
	var scanned int
	if err := s.Scan(func(uint64, int, []byte) error { scanned++; return nil }); err != nil || scanned != 11 {
		t.Fatalf("scan: %d shards, %v", scanned, err)
	}
	if st := s.Stats(); st.CorruptSkipped != 1 {
		t.Fatalf("CorruptSkipped = %d", st.CorruptSkipped)
	}
	// The header of stripe 5 (second record of segment 2): the rest of
	// that segment (stripes 5 to 7) cannot be found after a restart.
	loc, _ = s.lookup(5, 0)
	if loc.Segment != 2 || loc.Offset != HeaderSize+500 {
		t.Fatalf("stripe 5 at %+v", loc)
	}
	flip(loc, 0)
	if _, err := s.Get(5, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a shard with a corrupt header: %v", err)
	}
	s.Close()

	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	r := s.Recovery()
	if r.Skipped != 1 || r.SkippedBytes != HeaderSize+500 || r.Unreadable != 3*(HeaderSize+500) || r.Truncated {
		t.Fatalf("recovery %+v", r)
	}
	for i := 5; i <= 7; i++ {
		delete(want, key{uint64(i), 0})
	}
	checkStore(t, s, want)
	if st := s.Stats(); st.CorruptSkipped != 1 {
		t.Fatalf("CorruptSkipped = %d", st.CorruptSkipped)
	}
	if _, err := s.Get(1, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of the skipped shard: %v", err)
	}
	// Both damaged segments are left as they are, and go once they hold no
	// live shard: stripes 0, 2, 3 are segment 1's others, 4 segment 2's.
	for _, i := range []uint64{0, 2, 3, 4} {
		s.Delete(i)
		delete(want, key{i, 0})
	}
	for _, id := range segFiles(t, dir) {
		if id == 1 || id == 2 {
			t.Fatalf("segment %d still there: %v", id, segFiles(t, dir))
		}
	}
	checkStore(t, s, want)
}

func TestStoreTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, StoreOptions{})
	want := map[key][]byte{}
	for i := 0; i < 5; i++ {
		p := payload(i, 1000)
		s.Put(ctx, uint64(i), 0, p)
		want[key{uint64(i), 0}] = p
	}
	last, _ := s.lookup(4, 0)
	s.Close()
	delete(want, key{4, 0})
	// A crash tore the last record: the store keeps the bytes and appends
	// to a new segment.
	path := filepath.Join(dir, segName(1))
	if err := os.Truncate(path, last.Offset+HeaderSize+300); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		s = mustOpenStore(t, dir, StoreOptions{})
		if r := s.Recovery(); r.Unreadable != HeaderSize+300 || r.Truncated {
			t.Fatalf("round %d: recovery %+v", round, r)
		}
		checkStore(t, s, want)
		p := payload(100+round, 700)
		if err := s.Put(ctx, uint64(100+round), 0, p); err != nil {
			t.Fatal(err)
		}
		want[key{uint64(100 + round), 0}] = p
		s.Close()
	}
	if got := segFiles(t, dir); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("segments %v", got)
	}
	if st, _ := os.Stat(path); st.Size() != last.Offset+HeaderSize+300 {
		t.Fatalf("torn segment is %d bytes", st.Size())
	}
}

func TestStoreMissingSegmentFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := StoreOptions{SegmentSize: 2 * (HeaderSize + 100)}
	s := mustOpenStore(t, dir, opts)
	want := map[key][]byte{}
	for i := 0; i < 10; i++ {
		p := payload(i, 100)
		s.Put(ctx, uint64(i/2), i%2, p) // stripe j in segment j+1
		want[key{uint64(i / 2), i % 2}] = p
	}
	s.Close()
	// An operator (or a failing disk) lost segments 2 and the last one, 5.
	for _, id := range []uint64{2, 5} {
		if err := os.Remove(filepath.Join(dir, segName(id))); err != nil {
			t.Fatal(err)
		}
		delete(want, key{id - 1, 0})
		delete(want, key{id - 1, 1})
	}
	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	checkStore(t, s, want)
	if _, err := s.Get(1, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shard of the lost segment: %v", err)
	}
	if err := s.Put(ctx, 50, 0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	want[key{50, 0}] = []byte("new")
	checkStore(t, s, want)
}

func TestStoreReadAt(t *testing.T) {
	ctx := context.Background()
	s := mustOpenStore(t, t.TempDir(), StoreOptions{})
	defer s.Close()
	p := payload(7, 1000)
	s.Put(ctx, 1, 2, p)
	s.Put(ctx, 1, 3, nil)
	for _, tc := range []struct {
		idx     int
		off     int64
		n       int
		wantN   int
		wantErr error // nil, io.EOF, or any error (errAny)
	}{
		{2, 0, 1000, 1000, nil},
		{2, 0, 10, 10, nil},
		{2, 990, 10, 10, nil},
		{2, 500, 0, 0, nil},
		{2, 995, 10, 5, io.EOF},
		{2, 0, 2000, 1000, io.EOF},
		{2, 1000, 1, 0, io.EOF},
		{2, 5000, 1, 0, io.EOF},
		{2, -1, 1, 0, errAny},
		{3, 0, 1, 0, io.EOF},
		{4, 0, 1, 0, ErrNotFound},
	} {
		buf := make([]byte, tc.n)
		n, err := s.ReadAt(1, tc.idx, buf, tc.off)
		okErr := err == tc.wantErr || (tc.wantErr == errAny && err != nil) ||
			(tc.wantErr == ErrNotFound && errors.Is(err, ErrNotFound))
		if n != tc.wantN || !okErr {
			t.Errorf("ReadAt(idx %d, len %d, off %d) = %d, %v; want %d, %v", tc.idx, tc.n, tc.off, n, err, tc.wantN, tc.wantErr)
			continue
		}
		if tc.idx == 2 && tc.off >= 0 && !bytes.Equal(buf[:n], p[min(tc.off, 1000):][:n]) {
			t.Errorf("ReadAt(len %d, off %d): wrong bytes", tc.n, tc.off)
		}
	}
}

var errAny = errors.New("any error")

// TestStoreConcurrentDelete races readers against Puts and Deletes that
// remove segments under them: a read returns the right bytes or
// ErrNotFound, never anything else.
func TestStoreConcurrentDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, StoreOptions{SegmentSize: 4 * (HeaderSize + 512)})
	defer s.Close()
	const stripes = 120
	content := func(stripe uint64, idx int) []byte { return payload(int(stripe)*8+idx, 512) }
	var next atomic.Uint64 // stripes below it have been put
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, found atomic.Int64
	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer halt() // also when the test fails early
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(r)))
			buf := make([]byte, 100)
			for {
				select {
				case <-stop:
					return
				default:
				}
				hi := next.Load()
				if hi == 0 {
					continue
				}
				stripe, idx := uint64(rnd.Int63n(int64(hi))), rnd.Intn(2)
				want := content(stripe, idx)
				reads.Add(1)
				var err error
				switch rnd.Intn(3) {
				case 0:
					var got []byte
					if got, err = s.Get(stripe, idx); err == nil && !bytes.Equal(got, want) {
						t.Errorf("Get(%d, %d): wrong bytes", stripe, idx)
					}
				case 1:
					var n int
					if n, err = s.ReadAt(stripe, idx, buf, 300); err == nil && !bytes.Equal(buf[:n], want[300:400]) {
						t.Errorf("ReadAt(%d, %d): wrong bytes", stripe, idx)
					}
				case 2:
					err = s.Scan(func(stripe uint64, idx int, p []byte) error {
						if !bytes.Equal(p, content(stripe, idx)) {
							return fmt.Errorf("scan %d/%d: wrong bytes", stripe, idx)
						}
						return nil
					})
				}
				if err == nil {
					found.Add(1)
				} else if !errors.Is(err, ErrNotFound) {
					t.Errorf("read %d/%d: %v", stripe, idx, err)
				}
			}
		}(r)
	}
	for i := uint64(0); i < stripes; i++ {
		for idx := 0; idx < 2; idx++ {
			if err := s.Put(ctx, i, idx, content(i, idx)); err != nil {
				t.Fatal(err)
			}
		}
		next.Store(i + 1)
		if i >= 8 {
			s.Delete(i - 8)
		}
	}
	halt()
	st := s.Stats()
	t.Logf("%d reads, %d found; %+v", reads.Load(), found.Load(), st)
	if st.LiveShards != 16 || st.SegmentsFreed < 50 || st.Segments > 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStoreRandom runs seeded random Puts, Deletes and restarts against a
// map, for several segment sizes. After a restart the caller drops the
// stripes it does not reference, as Store's doc asks.
func TestStoreRandom(t *testing.T) {
	for _, segSize := range []int64{600, 4096, 1 << 20} {
		for seed := int64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("seg%d/seed%d", segSize, seed), func(t *testing.T) {
				testStoreRandom(t, segSize, seed)
			})
		}
	}
}

func testStoreRandom(t *testing.T, segSize, seed int64) {
	ctx := context.Background()
	dir := t.TempDir()
	rnd := rand.New(rand.NewSource(seed))
	opts := StoreOptions{SegmentSize: segSize}
	s := mustOpenStore(t, dir, opts)
	defer func() { s.Close() }()
	want := map[key][]byte{}
	live := map[uint64]bool{} // stripes the caller references
	var nextStripe uint64
	for op := 0; op < 400; op++ {
		switch r := rnd.Intn(100); {
		case r < 55:
			// Put to a new stripe or a live one (never a deleted one).
			stripe := nextStripe
			if len(live) > 0 && rnd.Intn(3) == 0 {
				stripe = uint64(rnd.Int63n(int64(nextStripe)))
			}
			if stripe == nextStripe {
				nextStripe++
			} else if !live[stripe] {
				continue
			}
			k := key{stripe, rnd.Intn(4)}
			p := payload(op, rnd.Intn(300))
			if err := s.Put(ctx, k.stripe, k.idx, p); err != nil {
				t.Fatalf("seed %d op %d: %v", seed, op, err)
			}
			want[k] = p
			live[stripe] = true
		case r < 90:
			if nextStripe == 0 {
				continue
			}
			stripe := uint64(rnd.Int63n(int64(nextStripe)))
			var n int
			for k := range want {
				if k.stripe == stripe {
					delete(want, k)
					n++
				}
			}
			delete(live, stripe)
			if got := s.Delete(stripe); got != n {
				t.Fatalf("seed %d op %d: Delete(%d) = %d, want %d", seed, op, stripe, got, n)
			}
		default:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpenStore(t, dir, opts)
			var drop []uint64
			s.Scan(func(stripe uint64, idx int, _ []byte) error {
				if !live[stripe] {
					drop = append(drop, stripe)
				}
				return nil
			})
			for _, stripe := range drop {
				s.Delete(stripe)
			}
		}
		if op%20 == 0 {
			checkStore(t, s, want)
		}
	}
	checkStore(t, s, want)
	// Space: everything deleted, the log shrinks to a segment or two.
	for stripe := range live {
		s.Delete(stripe)
	}
	if st := s.Stats(); st.LiveShards != 0 || st.Segments > 2 {
		t.Fatalf("seed %d: after deleting all: %+v", seed, st)
	}
}

func TestLogRemoveSegment(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := LogOptions{SegmentSize: 2 * (HeaderSize + 10)}
	l := mustOpen(t, dir, opts)
	var locs []Location
	for i := 0; i < 6; i++ {
		ls, err := l.Append(ctx, Record{File: uint64(i), Data: payload(i, 10)})
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, ls[0])
	}
	l.Sync(ctx)
	if err := l.RemoveSegment(3); err == nil {
		t.Fatal("removed the current segment")
	}
	if err := l.RemoveSegment(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove a missing segment: %v", err)
	}
	if err := l.RemoveSegment(2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(2))); !os.IsNotExist(err) {
		t.Fatalf("segment file still there: %v", err)
	}
	if _, err := l.Read(locs[2], make([]byte, 10)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read of a removed segment: %v", err)
	}
	if _, err := l.ReadAt(locs[2], make([]byte, 10), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt of a removed segment: %v", err)
	}
	var seqs []uint64
	if err := l.Scan(func(loc Location) error { seqs = append(seqs, loc.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2 5 6]" {
		t.Fatalf("scan after removal: %v", seqs)
	}
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	if r := l.Recovery(); r.Segments != 2 || r.Records != 4 || r.LastSeq != 6 {
		t.Fatalf("recovery with a gap: %+v", r)
	}
	if got := l.Segments(); len(got) != 2 || got[0].ID != 1 || got[1].ID != 3 || got[0].Size != 2*(HeaderSize+10) {
		t.Fatalf("segments %+v", got)
	}
}

// TestStoreSweepSparesPendingPut: a Put waiting for its fdatasync has a
// record in a segment that is not live yet, and may no longer be current;
// Delete must not remove that segment.
func TestStoreSweepSparesPendingPut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blocked, release := make(chan struct{}), make(chan struct{})
	var seg2Syncs atomic.Int32
	opts := StoreOptions{SegmentSize: HeaderSize + 10, SyncHook: func(seg uint64) {
		if seg == 2 && seg2Syncs.Add(1) == 1 {
			close(blocked)
			<-release
		}
	}}
	s := mustOpenStore(t, dir, opts)
	defer s.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before Close, which waits for the blocked sync
	p := payload(1, 10)
	if err := s.Put(ctx, 0, 0, p); err != nil { // segment 1
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- s.Put(ctx, 1, 0, p) }() // segment 2; its sync blocks
	<-blocked
	go func() { errs <- s.Put(ctx, 2, 0, p) }() // segment 3
	for len(s.log.Segments()) < 3 {
		time.Sleep(time.Millisecond)
	}
	if s.Delete(0) != 1 {
		t.Fatal("Delete(0)")
	}
	if got := segFiles(t, dir); fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("segment files %v, want [2 3]", got)
	}
	unblock()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkStore(t, s, map[key][]byte{{1, 0}: p, {2, 0}: p})
}
