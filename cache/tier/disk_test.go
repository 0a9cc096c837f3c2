package tier

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func openDisk(t *testing.T, dir string, limit int64) *Disk {
	t.Helper()
	d, err := OpenDisk(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func put(t *testing.T, d *Disk, key string, meta, body []byte) {
	t.Helper()
	w, err := d.Create(key, meta)
	if err != nil {
		t.Fatal(err)
	}
	// Several writes, as a streaming fill does.
	for b := body; len(b) > 0; {
		n := min(len(b), 1000)
		if _, err := w.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// get returns key's meta and body, or ok false.
func get(t *testing.T, d *Disk, key string) (meta, body []byte, ok bool) {
	t.Helper()
	o, ok := d.Get(key)
	if !ok {
		return nil, nil, false
	}
	defer o.Close()
	body, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size))
	if err != nil {
		t.Fatalf("key %q: reading body: %v", key, err)
	}
	return o.Meta, body, true
}

func wantEntry(t *testing.T, d *Disk, key string, meta, body []byte) {
	t.Helper()
	m, b, ok := get(t, d, key)
	if !ok {
		t.Fatalf("key %q: miss", key)
	}
	if !bytes.Equal(m, meta) || !bytes.Equal(b, body) {
		t.Fatalf("key %q: got meta %q and %d body bytes, want %q and %d", key, m, len(b), meta, len(body))
	}
}

func wantMiss(t *testing.T, d *Disk, key string) {
	t.Helper()
	if o, ok := d.Get(key); ok {
		o.Close()
		t.Fatalf("key %q: hit, want miss", key)
	}
}

// entryFiles returns the entry files under dir.
func entryFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "??", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, tmpDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fileOf returns the path of key's only file.
func fileOf(t *testing.T, dir, key string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	h := fmt.Sprintf("%x", sum)
	files, _ := filepath.Glob(filepath.Join(dir, h[:2], h+"-*"))
	if len(files) != 1 {
		t.Fatalf("key %q: %d files, want 1", key, len(files))
	}
	return files[0]
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

var testKeys = []string{
	"/bucket/object",
	"/bucket/dir/with/slashes?query=1",
	"nul\x00key\xff\xfe",
	"",
	strings.Repeat("long/", 1000),
}

func TestDiskRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	d := openDisk(t, dir, 1<<30)
	want := map[string][2][]byte{}
	for i, k := range testKeys {
		meta := []byte("meta " + strconv.Itoa(i))
		body := randBytes(rng, []int{0, 1, 4095, 100000, 7}[i])
		put(t, d, k, meta, body)
		want[k] = [2][]byte{meta, body}
	}
	for k, v := range want {
		wantEntry(t, d, k, v[0], v[1])
	}

	// ReadAt edges, and the File/BodyOffset view used for sendfile.
	o, ok := d.Get("")
	if !ok {
		t.Fatal("miss")
	}
	body := want[""][1]
	p := make([]byte, 10)
	if n, err := o.ReadAt(p, o.Size-4); n != 4 || err != io.EOF || !bytes.Equal(p[:4], body[len(body)-4:]) {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := o.ReadAt(p, o.Size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end = %d, %v", n, err)
	}
	if _, err := o.File().ReadAt(p, o.BodyOffset()+100); err != nil || !bytes.Equal(p, body[100:110]) {
		t.Fatalf("File().ReadAt at BodyOffset+100 = %q, %v", p, err)
	}
	o.Close()

	s := d.Stats()
	if s.Entries != int64(len(testKeys)) || s.Admissions != int64(len(testKeys)) {
		t.Fatalf("stats %+v", s)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d2 := openDisk(t, dir, 1<<30)
	if s2 := d2.Stats(); s2.Entries != s.Entries || s2.Bytes != s.Bytes || s2.Corrupt != 0 {
		t.Fatalf("after reopen stats %+v, before %+v", s2, s)
	}
	for k, v := range want {
		wantEntry(t, d2, k, v[0], v[1])
	}
	// New fills after a reopen replace the rebuilt entries.
	put(t, d2, "/bucket/object", []byte("v2"), []byte("new body"))
	wantEntry(t, d2, "/bucket/object", []byte("v2"), []byte("new body"))
	fileOf(t, dir, "/bucket/object")
}

func TestDiskTornFilesDropped(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	body := bytes.Repeat([]byte("0123456789"), 1000)
	for _, k := range []string{"truncated", "bad-header-crc", "bad-body-crc", "zero-header", "renamed", "good"} {
		put(t, d, k, []byte("meta of "+k), body)
	}
	d.Close()

	corrupt := func(key string, f func(b []byte) []byte) {
		path := fileOf(t, dir, key)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt("truncated", func(b []byte) []byte { return b[:len(b)-1] })
	corrupt("bad-header-crc", func(b []byte) []byte { b[headerSize+len("bad-header-crc")+2] ^= 1; return b })
	corrupt("bad-body-crc", func(b []byte) []byte { b[len(b)-10] ^= 1; return b })
	corrupt("zero-header", func(b []byte) []byte { clear(b[:headerSize]); return b })
	// A valid file under another key's name.
	renamed := fileOf(t, dir, "renamed")
	sum := sha256.Sum256([]byte("other"))
	h := fmt.Sprintf("%x", sum)
	os.Rename(renamed, filepath.Join(dir, h[:2], h+"-0000000000000001"))
	// Garbage: a foreign name, a well-formed name with random bytes, a
	// directory, and a leftover fill.
	os.WriteFile(filepath.Join(dir, "ab", "notes.txt"), []byte("hello"), 0o644)
	sum = sha256.Sum256([]byte("garbage"))
	h = fmt.Sprintf("%x", sum)
	os.WriteFile(filepath.Join(dir, h[:2], h+"-0000000000000009"), randBytes(rand.New(rand.NewPCG(3, 4)), 5000), 0o644)
	os.Mkdir(filepath.Join(dir, "cd", "subdir"), 0o755)
	os.WriteFile(filepath.Join(dir, tmpDir, "fill-123"), body, 0o644)

	d2 := openDisk(t, dir, 1<<30)
	// Header-level damage is found by OpenDisk; body damage at first Get.
	if s := d2.Stats(); s.Entries != 2 || s.Corrupt != 7 {
		t.Fatalf("after open: %d entries, %d corrupt; want 2 (good, bad-body-crc) and 7", s.Entries, s.Corrupt)
	}
	for _, k := range []string{"truncated", "bad-header-crc", "bad-body-crc", "zero-header", "renamed", "other", "garbage"} {
		wantMiss(t, d2, k)
	}
	wantEntry(t, d2, "good", []byte("meta of good"), body)
	if files := entryFiles(t, dir); len(files) != 1 {
		t.Fatalf("files left: %q, want only good's", files)
	}
	if files := tmpFiles(t, dir); len(files) != 0 {
		t.Fatalf("temp files left: %q", files)
	}
	if s := d2.Stats(); s.Entries != 1 || s.Corrupt != 8 {
		t.Fatalf("after gets: %d entries, %d corrupt; want 1 and 8", s.Entries, s.Corrupt)
	}
}

func TestDiskUpdateMeta(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	body := bytes.Repeat([]byte("x"), 300000)
	put(t, d, "k", []byte("old"), body)
	o, _ := d.Get("k") // a reader of the old file
	// Meant for another version of the entry: left alone.
	if err := d.UpdateMeta("k", []byte("stale"), func(cur []byte) bool { return string(cur) == "older" }); err != nil {
		t.Fatal(err)
	}
	wantEntry(t, d, "k", []byte("old"), body)
	if err := d.UpdateMeta("k", []byte("fresh until tomorrow"), func(cur []byte) bool { return string(cur) == "old" }); err != nil {
		t.Fatal(err)
	}
	wantEntry(t, d, "k", []byte("fresh until tomorrow"), body)
	if string(o.Meta) != "old" {
		t.Fatalf("open object's meta changed to %q", o.Meta)
	}
	o.Close()
	if err := d.UpdateMeta("missing", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateMeta of a missing key = %v, want ErrNotFound", err)
	}
	if s := d.Stats(); s.Bytes != headerSize+1+20+300000 {
		t.Fatalf("accounted %d bytes after UpdateMeta", s.Bytes)
	}
	d.Close()
	d2 := openDisk(t, dir, 1<<30)
	wantEntry(t, d2, "k", []byte("fresh until tomorrow"), body)
	fileOf(t, dir, "k")
}

// TestDiskCrashBetweenRenameAndUnlink: two intact files for one key (a
// replacement renamed in, the old one not yet unlinked); the newer wins.
func TestDiskCrashBetweenRenameAndUnlink(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	put(t, d, "k", []byte("v1"), []byte("one"))
	oldPath := fileOf(t, dir, "k")
	old, _ := os.ReadFile(oldPath)
	put(t, d, "k", []byte("v2"), []byte("two"))
	d.Close()
	os.WriteFile(oldPath, old, 0o644) // the old file survives the "crash"
	d2 := openDisk(t, dir, 1<<30)
	wantEntry(t, d2, "k", []byte("v2"), []byte("two"))
	if fileOf(t, dir, "k") == oldPath {
		t.Fatal("kept the older file")
	}
}

func TestDiskAbort(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	w, err := d.Create("k", []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if len(tmpFiles(t, dir)) != 1 {
		t.Fatal("no temp file during the fill")
	}
	wantMiss(t, d, "k") // not visible before Commit
	w.Abort()
	w.Abort()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	wantMiss(t, d, "k")
	if f := append(tmpFiles(t, dir), entryFiles(t, dir)...); len(f) != 0 {
		t.Fatalf("Abort left %q", f)
	}
	if s := d.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDiskLimit(t *testing.T) {
	dir := t.TempDir()
	const limit = 100 << 10
	d := openDisk(t, dir, limit)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		k := fmt.Sprintf("/o/%d", i)
		put(t, d, k, []byte("m"), randBytes(rng, 100+rng.IntN(3000)))
		if i%3 == 0 {
			d.Get(fmt.Sprintf("/o/%d", i/2)) // some reuse
		}
		if s := d.Stats(); s.Bytes > limit {
			t.Fatalf("after put %d: %d bytes, over the limit of %d", i, s.Bytes, limit)
		}
	}
	checkFilesMatch(t, d, dir)
	if s := d.Stats(); s.Evictions == 0 {
		t.Fatal("no evictions")
	}
	d.Close()

	d2 := openDisk(t, dir, limit/4)
	if s := d2.Stats(); s.Bytes > limit/4 || s.Bytes < limit/4-4000 || s.Evictions == 0 {
		t.Fatalf("reopened with a quarter of the limit: %+v", s)
	}
	checkFilesMatch(t, d2, dir)
}

// checkFilesMatch checks that the files on disk are exactly the accounted
// entries.
func checkFilesMatch(t *testing.T, d *Disk, dir string) {
	t.Helper()
	var total int64
	files := entryFiles(t, dir)
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if s := d.Stats(); s.Entries != int64(len(files)) || s.Bytes != total {
		t.Fatalf("index: %d entries %d bytes; disk: %d files %d bytes", s.Entries, s.Bytes, len(files), total)
	}
}

func TestDiskTooLarge(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 10000)
	put(t, d, "big", []byte("m"), []byte("old"))
	w, err := d.Create("big", []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 5000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write past the limit = %v, want ErrTooLarge", err)
	}
	err = w.Commit()
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), "10000") {
		t.Fatalf("Commit = %v; want ErrTooLarge naming the key and the limit", err)
	}
	wantEntry(t, d, "big", []byte("m"), []byte("old"))
	if _, err := d.Create("k", make([]byte, 10000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Create with a meta over the limit = %v", err)
	}
	if f := tmpFiles(t, dir); len(f) != 0 {
		t.Fatalf("left %q", f)
	}
	if s := d.Stats(); s.Refused != 2 {
		t.Fatalf("refused %d, want 2", s.Refused)
	}
}

func TestDiskDeleteWhileOpen(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	body := bytes.Repeat([]byte("abc"), 10000)
	put(t, d, "k", []byte("m"), body)
	o1, _ := d.Get("k")
	defer o1.Close()
	put(t, d, "k", []byte("m2"), []byte("replacement")) // replace while open
	o2, _ := d.Get("k")
	defer o2.Close()
	if !d.Delete("k") || d.Delete("k") {
		t.Fatal("Delete: want true then false")
	}
	wantMiss(t, d, "k")
	if len(entryFiles(t, dir)) != 0 {
		t.Fatal("files left after Delete")
	}
	for _, c := range []struct {
		o    *Object
		body []byte
	}{{o1, body}, {o2, []byte("replacement")}} {
		got, err := io.ReadAll(io.NewSectionReader(c.o, 0, c.o.Size))
		if err != nil || !bytes.Equal(got, c.body) {
			t.Fatalf("reading an open object after its deletion: %d bytes, %v", len(got), err)
		}
	}
}

func TestDiskDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	for _, k := range []string{"/a/1", "/a/2", "/a", "/b/1", "/ab"} {
		put(t, d, k, nil, []byte(k))
	}
	if n := d.DeletePrefix("/a/"); n != 2 {
		t.Fatalf("DeletePrefix removed %d, want 2", n)
	}
	d.Close()
	d2 := openDisk(t, dir, 1<<30)
	for k, want := range map[string]bool{"/a/1": false, "/a/2": false, "/a": true, "/b/1": true, "/ab": true} {
		if o, ok := d2.Get(k); ok != want {
			t.Errorf("Get(%q) = %v, want %v", k, ok, want)
		} else if ok {
			o.Close()
		}
	}
}

func TestDiskPurgeDuringFill(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<30)
	put(t, d, "/p/k", []byte("m"), []byte("old"))
	for _, purge := range []func(){
		func() { d.Delete("/p/k") },
		func() { d.DeletePrefix("/p/") },
	} {
		w, err := d.Create("/p/k", []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("stale body"))
		purge()
		if err := w.Commit(); !errors.Is(err, ErrPurged) {
			t.Fatalf("Commit after a purge = %v, want ErrPurged", err)
		}
		wantMiss(t, d, "/p/k")
	}
	if f := append(tmpFiles(t, dir), entryFiles(t, dir)...); len(f) != 0 {
		t.Fatalf("left %q", f)
	}
	// A fill of another key is not affected.
	w, _ := d.Create("/q", nil)
	d.DeletePrefix("/p/")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestDiskDirErrors(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := OpenDisk(file, 1<<20); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("OpenDisk on a file = %v", err)
	}
	foreign := filepath.Join(root, "home")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "thesis.tex"), nil, 0o644)
	if _, err := OpenDisk(foreign, 1<<20); err == nil || !strings.Contains(err.Error(), tagName) {
		t.Fatalf("OpenDisk on a foreign directory = %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "thesis.tex")); err != nil {
		t.Fatal("OpenDisk touched a foreign directory")
	}
	dir := filepath.Join(root, "cache")
	d := openDisk(t, dir, 1<<20)
	if _, err := OpenDisk(dir, 1<<20); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenDisk of an open dir = %v", err)
	}
	d.Close()
	if _, err := d.Create("k", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Create after Close = %v", err)
	}
	openDisk(t, dir, 1<<20) // free again
	if _, err := OpenDisk(dir, 0); err == nil {
		t.Fatal("OpenDisk with limit 0 succeeded")
	}
}

// TestDiskConcurrent runs fills, reads, meta updates and deletes in
// parallel; a read must always see the meta and body of one fill (or an
// updated meta).
func TestDiskConcurrent(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 200<<10)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 150 {
				k := strconv.Itoa(rng.IntN(20))
				switch r := rng.IntN(10); {
				case r < 3:
					v := byte(rng.IntN(256))
					w, err := d.Create(k, []byte{v})
					if err != nil {
						t.Error(err)
						return
					}
					w.Write(bytes.Repeat([]byte{v}, 1+rng.IntN(8000)))
					if err := w.Commit(); err != nil && !errors.Is(err, ErrPurged) {
						t.Error(err)
						return
					}
				case r < 4:
					d.Delete(k)
				case r < 5:
					if i%40 == 0 {
						d.DeletePrefix("1")
					}
				case r < 6:
					if err := d.UpdateMeta(k, []byte("updated"), nil); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
				default:
					o, ok := d.Get(k)
					if !ok {
						continue
					}
					body, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size))
					o.Close()
					if err != nil || string(o.Meta) != "updated" && (len(o.Meta) != 1 || bytes.Count(body, o.Meta) != len(body)) {
						t.Errorf("key %s: meta %v inconsistent with a body of %d bytes (%v)", k, o.Meta, len(body), err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	checkFilesMatch(t, d, dir)
	if f := tmpFiles(t, dir); len(f) != 0 {
		t.Fatalf("left %q", f)
	}
	if s := d.Stats(); s.Bytes > s.Limit || s.Corrupt != 0 {
		t.Fatalf("stats %+v", s)
	}
}
