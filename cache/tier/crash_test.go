package tier

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// The disk tier on a crashable file system (vfs.NewCrashableMem): a
// power cut (CrashClone) keeps what was synced and, in the variants, a
// random part or all of what was not. After any crash, an entry served is
// whole and one that was committed for its key (body and meta together),
// and a key deleted (Delete, DeletePrefix) with no fill committed since is
// absent: the purge is durable. Entries are not fsynced (a cache), so a
// committed one may be lost, or an older version of its key come back.

const memDir = "/edge"

func openMem(t *testing.T, fs vfs.FS, limit int64) *Disk {
	t.Helper()
	d, err := OpenDiskFS(fs, memDir, limit)
	if err != nil {
		t.Fatalf("OpenDiskFS: %v", err)
	}
	return d
}

// crashKeys returns n keys of each of two fan-out directories, so that
// the sequences make entries of different keys share directories (and
// their syncs).
func crashKeys(n int) []string {
	var a, b []string
	first := sha256.Sum256([]byte("key-0"))[0]
	second := -1
	for i := 0; len(a) < n || len(b) < n; i++ {
		k := fmt.Sprintf("key-%d", i)
		s := sha256.Sum256([]byte(k))[0]
		switch {
		case s == first && len(a) < n:
			a = append(a, k)
		case second < 0 && s != first:
			second = int(s)
			fallthrough
		case int(s) == second && len(b) < n:
			b = append(b, k)
		}
	}
	return append(a, b...)
}

// version is a committed (meta, body) of a key.
type version struct{ meta, body []byte }

// tierModel holds, per key, the versions a crash may leave: every one
// committed since the key was last deleted.
type tierModel map[string][]version

func (m tierModel) check(t *testing.T, d *Disk, keys []string, when string) {
	t.Helper()
	for _, k := range keys {
		o, ok := d.Get(k)
		if !ok {
			continue
		}
		body, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size))
		meta := o.Meta
		o.Close()
		if err != nil {
			t.Fatalf("%s: key %s: reading the body: %v", when, k, err)
		}
		found := false
		for _, v := range m[k] {
			if bytes.Equal(v.meta, meta) && bytes.Equal(v.body, body) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("%s: key %s served meta %q and a %d-byte body, which is no version committed since its last delete (%d allowed)",
				when, k, meta, len(body), len(m[k]))
		}
	}
}

// TestDiskCrashConsistency runs seeded random sequences of fills,
// overwrites, meta updates, deletes and prefix deletes on a crashable
// file system, crashes at random points (keeping none, half or all of
// the unsynced state), reopens on the crash image and checks the model.
// ENGINE_LONG=1 runs more seeds.
func TestDiskCrashConsistency(t *testing.T) {
	seeds, ops := 40, 150
	if os.Getenv("ENGINE_LONG") == "1" {
		seeds, ops = 400, 400
	}
	keys := crashKeys(6)
	crashes := 0
	for seed := range seeds {
		crashes += runDiskCrashSeed(t, uint64(seed), ops, keys)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d seeds × %d operations, %d crash points, 0 violations", seeds, ops, crashes)
}

func runDiskCrashSeed(t *testing.T, seed uint64, ops int, keys []string) (crashes int) {
	rng := rand.New(rand.NewPCG(seed, 14))
	fs := vfs.NewCrashableMem()
	const limit = 96 << 10 // small: evictions happen
	d := openMem(t, fs, limit)
	defer func() { d.Close() }()
	m := tierModel{}
	for i := range ops {
		k := keys[rng.IntN(len(keys))]
		when := fmt.Sprintf("seed %d op %d", seed, i)
		switch r := rng.IntN(100); {
		case r < 50: // fill (a new key or an overwrite)
			meta := fmt.Appendf(nil, "meta %d/%d", seed, i)
			body := make([]byte, rng.IntN(20<<10))
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
			w, err := d.Create(k, meta)
			if err != nil {
				t.Fatalf("%s: Create: %v", when, err)
			}
			w.Write(body)
			if err := w.Commit(); err != nil {
				t.Fatalf("%s: Commit: %v", when, err)
			}
			m[k] = append(m[k], version{meta, body})
		case r < 60: // update meta
			o, ok := d.Get(k)
			if !ok {
				continue
			}
			body, _ := io.ReadAll(io.NewSectionReader(o, 0, o.Size))
			o.Close()
			meta := fmt.Appendf(nil, "updated %d/%d", seed, i)
			if err := d.UpdateMeta(k, meta, nil); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: UpdateMeta: %v", when, err)
			}
			m[k] = append(m[k], version{meta, body})
		case r < 78:
			d.Delete(k)
			m[k] = nil
		case r < 82:
			p := k[:min(len(k), 5+rng.IntN(2))]
			d.DeletePrefix(p)
			for kk := range m {
				if strings.HasPrefix(kk, p) {
					m[kk] = nil
				}
			}
		default: // a power cut
			cfg := vfs.CrashCloneCfg{}
			if pct := []int{0, 50, 100}[rng.IntN(3)]; pct > 0 {
				cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(seed, uint64(i)))}
			}
			clone := fs.CrashClone(cfg)
			d.Close()
			fs = clone
			d = openMem(t, fs, limit)
			crashes++
			m.check(t, d, keys, when+fmt.Sprintf(" (crash, %d%% of unsynced state kept)", cfg.UnsyncedDataPercent))
			if t.Failed() {
				return
			}
		}
		m.check(t, d, keys, when)
	}
	return crashes
}

// TestDiskPurgeRaceSurvivesCrash: a Delete that lands between a fill's
// rename into place and its index update syncs the directory with the new
// file in it; the fill then fails with ErrPurged and removes its file,
// which must be synced too, or the purged bytes come back after a power
// cut. (Failed before Commit synced that removal.)
func TestDiskPurgeRaceSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	d := openMem(t, fs, 1<<20)
	defer d.Close()
	w, _ := d.Create("k", []byte("old"))
	w.Write([]byte("old bytes"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	d.testHookRenamed = func(key string) { d.Delete(key) } // removes "old", syncs
	w, _ = d.Create("k", []byte("m"))
	w.Write([]byte("purged bytes"))
	if err := w.Commit(); !errors.Is(err, ErrPurged) {
		t.Fatalf("Commit = %v, want ErrPurged", err)
	}
	d.testHookRenamed = nil
	all := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	d2 := openMem(t, all, 1<<20)
	defer d2.Close()
	if o, ok := d2.Get("k"); ok {
		o.Close()
		t.Fatal("an entry purged during its fill is back after a power cut")
	}
}

// TestDiskDeleteEvictedSurvivesCrash: a key evicted (its file removed, not
// durably) and then deleted must not come back after a power cut. (Failed
// before Delete synced a dirty directory for a key not in the index.)
func TestDiskDeleteEvictedSurvivesCrash(t *testing.T) {
	keys := crashKeys(2) // keys[0], keys[1]: one directory
	fs := vfs.NewCrashableMem()
	const limit = 64 << 10
	d := openMem(t, fs, limit)
	defer d.Close()
	body := bytes.Repeat([]byte("x"), 20<<10)
	put2 := func(k string) {
		w, _ := d.Create(k, []byte("m"))
		w.Write(body)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put2(keys[0])
	put2(keys[1])
	d.Delete(keys[1]) // syncs the directory, keys[0]'s file in it
	for i := range 8 {
		put2(fmt.Sprintf("filler-%d", i)) // evicts keys[0]
	}
	if o, ok := d.Get(keys[0]); ok {
		o.Close()
		t.Fatal("keys[0] not evicted: the test needs a smaller limit")
	}
	d.Delete(keys[0]) // a purge of the object: must hold
	all := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	d2 := openMem(t, all, 1<<20) // room for all: none evicted when rebuilt
	defer d2.Close()
	if o, ok := d2.Get(keys[0]); ok {
		o.Close()
		t.Fatal("an evicted entry, then deleted, is back after a power cut")
	}
}

// TestDiskTagSurvivesCrash: a new disk tier's tag file is durable before
// anything else is made there, so a power cut never leaves a directory
// that the next OpenDisk refuses as not a disk tier's.
func TestDiskTagSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll(memDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := openMem(t, fs, 1<<20)
	defer d.Close()
	for _, pct := range []int{0, 50, 100} {
		for s := range 20 {
			c := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(s), 3))})
			d2, err := OpenDiskFS(c, memDir, 1<<20)
			if err != nil {
				t.Fatalf("reopen after a power cut (%d%% of unsynced state kept): %v", pct, err)
			}
			d2.Close()
		}
	}
}

// TestDiskWriteErrors: EIO or ENOSPC on any write, sync or rename of a
// fill fails its Commit, leaves no temp file, and keeps the key's previous
// entry served whole.
func TestDiskWriteErrors(t *testing.T) {
	for _, errno := range []error{syscall.EIO, syscall.ENOSPC} {
		for _, kind := range []errorfs.OpKind{errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpRename} {
			t.Run(fmt.Sprintf("%v/op%d", errno, int(kind)), func(t *testing.T) {
				inj := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
					if op.Kind == kind {
						return &os.PathError{Op: fmt.Sprint("op", int(kind)), Path: op.Path, Err: errno}
					}
					return nil
				})}
				fs := errorfs.Wrap(vfs.NewMem(), inj)
				d := openMem(t, fs, 1<<20)
				defer d.Close()
				w, _ := d.Create("k", []byte("old"))
				w.Write([]byte("old body"))
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				inj.On()
				err := func() error {
					w, err := d.Create("k", []byte("new"))
					if err != nil {
						return err
					}
					defer w.Abort()
					if _, err := w.Write(bytes.Repeat([]byte("n"), 5000)); err != nil {
						return err
					}
					return w.Commit()
				}()
				inj.Off()
				if !errors.Is(err, errno) {
					t.Fatalf("the fill = %v, want %v", err, errno)
				}
				m := tierModel{"k": {{[]byte("old"), []byte("old body")}}}
				m.check(t, d, []string{"k"}, "after the failed fill")
				if _, ok := d.Get("k"); !ok {
					t.Fatal("the previous entry is gone")
				}
				if left, _ := fs.List(memDir + "/" + tmpDir); len(left) != 0 {
					t.Fatalf("temp files left: %q", left)
				}
			})
		}
	}
}
