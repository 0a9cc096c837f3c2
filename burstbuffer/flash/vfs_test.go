package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Tests of the Log and the Store on pebble's crashable MemFS (a CrashClone
// keeps what was synced, and as much of the rest as asked) and on errorfs
// (I/O errors injected by operation and path).

// crashClone returns fs after a crash: what was synced, plus, if
// unsyncedPct > 0, that share of the unsynced blocks and names.
func crashClone(fs *vfs.MemFS, unsyncedPct int, seed uint64) *vfs.MemFS {
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct}
	if unsyncedPct > 0 {
		cfg.RNG = randv2.New(randv2.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return fs.CrashClone(cfg)
}

// TestLogCrashCloneKeepsSynced appends records and syncs at random points,
// crashing a clone of the file system now and then: the clone's log holds
// every record a Sync acknowledged, at its Location and with its bytes,
// and any further record it recovers is one that was appended, intact (a
// crash never turns a record into garbage). Segments roll, with and without
// Preallocate, and some of the unsynced data survives some crashes.
func TestLogCrashCloneKeepsSynced(t *testing.T) {
	for _, pre := range []bool{false, true} {
		t.Run(fmt.Sprintf("prealloc=%v", pre), func(t *testing.T) {
			ctx := context.Background()
			seed := int64(1)
			r := rand.New(rand.NewSource(seed))
			fs := vfs.NewCrashableMem()
			opts := LogOptions{SegmentSize: 16 << 10, Preallocate: pre, FS: fs}
			l, err := Open("/flash/log", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var locs []Location
			var data [][]byte
			acked := 0 // records [0, acked) were acknowledged by a Sync
			crashes := 0
			for i := 0; i < 400; i++ {
				p := payload(i, r.Intn(3000))
				ls, err := l.Append(ctx, Record{File: uint64(i % 5), Offset: uint64(i), Data: p})
				if err != nil {
					t.Fatal(err)
				}
				locs = append(locs, ls...)
				data = append(data, p)
				if r.Intn(4) == 0 {
					if err := l.Sync(ctx); err != nil {
						t.Fatal(err)
					}
					acked = len(locs)
				}
				if r.Intn(20) != 0 {
					continue
				}
				crashes++
				pct := []int{0, 50, 100}[r.Intn(3)]
				cl := crashClone(fs, pct, uint64(i))
				c, err := Open("/flash/log", LogOptions{SegmentSize: opts.SegmentSize, FS: cl})
				if err != nil {
					t.Fatalf("record %d, crash keeping %d%% of unsynced data: open: %v", i, pct, err)
				}
				rec := c.Recovery()
				if rec.LastSeq < uint64(acked) {
					t.Fatalf("record %d, crash (%d%%): recovered up to seq %d, %d were acknowledged", i, pct, rec.LastSeq, acked)
				}
				for j := 0; j < int(rec.LastSeq); j++ {
					buf := make([]byte, locs[j].Length)
					if _, err := c.Read(locs[j], buf); err != nil || !bytes.Equal(buf, data[j]) {
						t.Fatalf("record %d, crash (%d%%): record seq %d (acknowledged: %v) reads wrong: %v", i, pct, locs[j].Seq, j < acked, err)
					}
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if crashes == 0 {
				t.Fatal("no crash tested")
			}
		})
	}
}

// TestStoreCrashCloneKeepsPuts: every shard whose Put returned (or that a
// Sync after PutBuffered covered) is in a store reopened from a crash clone,
// with its bytes; deletes may be undone by a crash, never turned into
// garbage.
func TestStoreCrashCloneKeepsPuts(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewSource(2))
	fs := vfs.NewCrashableMem()
	opts := StoreOptions{SegmentSize: 32 << 10, Preallocate: true, FS: fs}
	s, err := OpenStore("/flash/store-0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type key struct {
		stripe uint64
		idx    int
	}
	acked := map[key][]byte{}    // durable and not deleted
	buffered := map[key][]byte{} // PutBuffered, not yet synced
	ever := map[key][][]byte{}   // every payload ever put, for the unacknowledged
	for i := 0; i < 300; i++ {
		k := key{uint64(1 + r.Intn(40)), r.Intn(6)}
		switch op := r.Intn(10); {
		case op < 5:
			p := payload(i, 1+r.Intn(4000))
			if err := s.Put(ctx, k.stripe, k.idx, p); err != nil {
				t.Fatal(err)
			}
			for bk, bp := range buffered {
				acked[bk] = bp // the Put's fdatasync covered them
			}
			clear(buffered)
			acked[k] = p
			ever[k] = append(ever[k], p)
		case op < 8:
			p := payload(i, 1+r.Intn(4000))
			if err := s.PutBuffered(ctx, k.stripe, k.idx, p); err != nil {
				t.Fatal(err)
			}
			buffered[k] = p
			delete(acked, k)
			ever[k] = append(ever[k], p)
		case op < 9:
			if err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			for bk, bp := range buffered {
				acked[bk] = bp
			}
			clear(buffered)
		default:
			s.Delete(k.stripe)
			for kk := range acked {
				if kk.stripe == k.stripe {
					delete(acked, kk)
				}
			}
			for kk := range buffered {
				if kk.stripe == k.stripe {
					delete(buffered, kk)
				}
			}
		}
		if i%15 != 14 {
			continue
		}
		pct := []int{0, 50, 100}[r.Intn(3)]
		c, err := OpenStore("/flash/store-0", StoreOptions{SegmentSize: opts.SegmentSize, FS: crashClone(fs, pct, uint64(i))})
		if err != nil {
			t.Fatalf("op %d, crash (%d%%): %v", i, pct, err)
		}
		for k, p := range acked {
			got, err := c.Get(k.stripe, k.idx)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("op %d, crash (%d%%): acknowledged shard %v: %v", i, pct, k, err)
			}
		}
		if err := c.Scan(func(stripe uint64, idx int, payload []byte) error {
			for _, p := range ever[key{stripe, idx}] {
				if bytes.Equal(p, payload) {
					return nil
				}
			}
			return fmt.Errorf("shard %d/%d holds bytes never put", stripe, idx)
		}); err != nil {
			t.Fatalf("op %d, crash (%d%%): %v", i, pct, err)
		}
		if st := c.Stats(); st.CorruptSkipped != 0 {
			t.Fatalf("op %d, crash (%d%%): %d corrupt records after a crash", i, pct, st.CorruptSkipped)
		}
		c.Close()
	}
}

// TestLogSyncErrorNotDurable: an fdatasync that fails (EIO injected on the
// segment) fails the Sync, and every later one; the records are never
// reported durable, a Put of the Store returns the error and its shard is
// not served; the log reopens after a crash with what was synced before.
func TestLogSyncErrorNotDurable(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	inj := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileSyncData && strings.HasPrefix(filepath.Base(op.Path), "seg-") {
			return syscall.EIO
		}
		return nil
	})}
	fs := errorfs.Wrap(mem, inj)
	l, err := Open("/log", LogOptions{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	good, err := l.Append(ctx, Record{Data: []byte("synced")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	inj.On()
	bad, err := l.Append(ctx, Record{Data: []byte("never durable")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with fdatasync failing: %v, want EIO", err)
	}
	if d := l.DurableSeq(); d >= bad[0].Seq {
		t.Fatalf("DurableSeq %d after a failed sync covers seq %d", d, bad[0].Seq)
	}
	inj.Off()
	// Sticky: the page cache's state is unknown after a failed fdatasync.
	if err := l.Sync(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync after a failed fdatasync: %v, want the error again", err)
	}
	if d := l.DurableSeq(); d != good[0].Seq {
		t.Fatalf("DurableSeq %d, want %d", d, good[0].Seq)
	}
	c, err := Open("/log", LogOptions{FS: mem.CrashClone(vfs.CrashCloneCfg{})})
	if err != nil {
		t.Fatal(err)
	}
	if rec := c.Recovery(); rec.LastSeq != good[0].Seq {
		t.Fatalf("after a crash: last seq %d, want %d (what was synced)", rec.LastSeq, good[0].Seq)
	}
	buf := make([]byte, good[0].Length)
	if _, err := c.Read(good[0], buf); err != nil || string(buf) != "synced" {
		t.Fatalf("synced record after the crash: %q, %v", buf, err)
	}
	c.Close()
	l.Close()

	// The Store: a Put whose fdatasync fails is an error and is not served.
	mem = vfs.NewCrashableMem()
	inj.Off()
	s, err := OpenStore("/store", StoreOptions{FS: errorfs.Wrap(mem, inj)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(ctx, 1, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	inj.On()
	if err := s.Put(ctx, 2, 0, []byte("two")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Put with fdatasync failing: %v, want EIO", err)
	}
	if s.Has(2, 0) {
		t.Fatal("a Put whose sync failed is served")
	}
	inj.Off()
	if err := s.Put(ctx, 3, 0, []byte("three")); err == nil {
		t.Fatal("a Put after a failed fdatasync succeeded: the failure must stick")
	}
}

// shortWriteFS makes the armed WriteAt of a file whose name has prefix
// write half its bytes and fail with ENOSPC, as a full disk does.
type shortWriteFS struct {
	vfs.FS
	prefix string
	armed  atomic.Bool
}

func (fs *shortWriteFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasPrefix(filepath.Base(name), fs.prefix) {
		return f, err
	}
	return &shortWriteFile{File: f, fs: fs}, nil
}

func (fs *shortWriteFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *shortWriteFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, o...)
	return fs.wrap(name, f, err)
}

type shortWriteFile struct {
	vfs.File
	fs *shortWriteFS
}

func (f *shortWriteFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.armed.Swap(false) {
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		if err != nil {
			return n, err
		}
		return n, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

// TestLogShortWriteRecoverable: a write that lands half its bytes and fails
// (ENOSPC) fails the Append and every later one (the tail is unknown); a
// crash then, even one that keeps the torn half, leaves a log that opens
// with every synced record, drops the torn one, and takes appends again
// (on a MemFS, which cannot truncate, the torn bytes are zeroed). A plain
// failed write (EIO injected by errorfs) does the same.
func TestLogShortWriteRecoverable(t *testing.T) {
	ctx := context.Background()
	for _, short := range []bool{true, false} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			sw := &shortWriteFS{FS: mem, prefix: "seg-"}
			var failWrites atomic.Bool
			fs := errorfs.Wrap(sw, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if failWrites.Load() && op.Kind == errorfs.OpFileWriteAt {
					return syscall.EIO
				}
				return nil
			}))
			l, err := Open("/log", LogOptions{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			var synced []Location
			for i := 0; i < 5; i++ {
				ls, err := l.Append(ctx, Record{Offset: uint64(i), Data: payload(i, 1000)})
				if err != nil {
					t.Fatal(err)
				}
				synced = append(synced, ls...)
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if short {
				sw.armed.Store(true)
			} else {
				failWrites.Store(true)
			}
			if _, err := l.Append(ctx, Record{Data: payload(99, 5000)}); err == nil {
				t.Fatal("Append with a failing write succeeded")
			}
			failWrites.Store(false)
			if _, err := l.Append(ctx, Record{Data: []byte("x")}); err == nil {
				t.Fatal("Append after a failed write succeeded: the unknown tail must stop appends")
			}
			if err := l.Sync(ctx); err == nil {
				t.Fatal("Sync after a failed write succeeded")
			}
			for _, pct := range []int{0, 100} {
				cl := crashClone(mem, pct, 7)
				c, err := Open("/log", LogOptions{FS: cl})
				if err != nil {
					t.Fatalf("open after the failed write (%d%% unsynced kept): %v", pct, err)
				}
				rec := c.Recovery()
				if rec.LastSeq != uint64(len(synced)) {
					t.Fatalf("%d%%: recovered to seq %d, want %d", pct, rec.LastSeq, len(synced))
				}
				if short && pct == 100 && !rec.Truncated {
					t.Fatalf("%d%%: the torn half record was not cut: %+v", pct, rec)
				}
				for i, loc := range synced {
					buf := make([]byte, loc.Length)
					if _, err := c.Read(loc, buf); err != nil || !bytes.Equal(buf, payload(i, 1000)) {
						t.Fatalf("%d%%: synced record %d: %v", pct, i, err)
					}
				}
				ls, err := c.Append(ctx, Record{Data: []byte("after")})
				if err != nil || ls[0].Seq != uint64(len(synced))+1 {
					t.Fatalf("%d%%: append after recovery: %v %+v", pct, err, ls)
				}
				if err := c.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				// And once more, from what that recovery made durable.
				c, err = Open("/log", LogOptions{FS: crashClone(cl, 0, 0)})
				if err != nil {
					t.Fatal(err)
				}
				if rec := c.Recovery(); rec.LastSeq != uint64(len(synced))+1 || rec.Truncated {
					t.Fatalf("%d%%: second recovery %+v", pct, rec)
				}
				c.Close()
			}
			l.Close()
		})
	}
}

// TestStoreShortWriteRecoverable: a store whose Put hit a short write
// reopens (after a crash keeping the torn bytes) with every acknowledged
// shard and takes Puts again in a fresh segment.
func TestStoreShortWriteRecoverable(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	sw := &shortWriteFS{FS: mem, prefix: "seg-"}
	s, err := OpenStore("/store", StoreOptions{FS: sw})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := s.Put(ctx, uint64(i+1), 0, payload(i, 2000)); err != nil {
			t.Fatal(err)
		}
	}
	sw.armed.Store(true)
	if err := s.Put(ctx, 9, 0, payload(9, 6000)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put with a short write: %v, want ENOSPC", err)
	}
	if s.Has(9, 0) {
		t.Fatal("a failed Put is served")
	}
	s.Close()
	c, err := OpenStore("/store", StoreOptions{FS: crashClone(mem, 100, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 5; i++ {
		got, err := c.Get(uint64(i+1), 0)
		if err != nil || !bytes.Equal(got, payload(i, 2000)) {
			t.Fatalf("acknowledged shard %d after the short write and a crash: %v", i+1, err)
		}
	}
	if c.Has(9, 0) {
		t.Fatal("the torn shard is served")
	}
	if err := c.Put(ctx, 10, 0, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(10, 0); err != nil || string(got) != "after" {
		t.Fatalf("put after recovery: %q %v", got, err)
	}
}

// TestRemoveSegmentOnMemFS: reading a removed segment on a file system
// without descriptors fails with ErrNotFound, as on the OS, not a panic.
func TestRemoveSegmentOnMemFS(t *testing.T) {
	ctx := context.Background()
	l, err := Open("/log", LogOptions{SegmentSize: 4096, FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var locs []Location
	for i := 0; i < 10; i++ {
		ls, err := l.Append(ctx, Record{Data: payload(i, 3000)})
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, ls...)
	}
	if err := l.RemoveSegment(locs[0].Segment); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, locs[0].Length)
	if _, err := l.Read(locs[0], buf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of a removed segment: %v, want ErrNotFound", err)
	}
	if _, err := l.Read(locs[1], buf); err != nil {
		t.Fatal(err)
	}
}
