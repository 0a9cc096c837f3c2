package tier

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors returned by the disk tier; they are wrapped with the key or
// directory they concern.
var (
	ErrClosed   = errors.New("cache/tier: disk tier is closed")
	ErrNotFound = errors.New("cache/tier: no such entry")
	ErrPurged   = errors.New("cache/tier: entry deleted while it was being written; the write was discarded")
	ErrTooLarge = errors.New("cache/tier: object too large")
)

const (
	tagName = "CACHEDIR.TAG"
	tagBody = "Signature: 8a477f597d28d172789f06886806bc55\n" +
		"# This directory is the disk tier of the engine edge cache (package engine/cache/tier).\n" +
		"# Its contents are recreated from the origin as needed; do not back it up.\n"
	tmpDir      = "tmp"
	scanWorkers = 8
	// nameLen is the length of an entry file name: hex SHA-256, '-', hex gen.
	nameLen = 64 + 1 + 16
)

// diskFile identifies one entry file; it is immutable except verified.
type diskFile struct {
	sum     [32]byte // SHA-256 of the key: the file name
	gen     uint64   // distinguishes successive files for one key
	metaLen int
	bodyLen int64
	// verified is set once the body's CRC32C has been checked: at Commit,
	// or at the first Get after OpenDisk found the file.
	verified atomic.Bool
}

func (f *diskFile) size(key string) int64 {
	return headerSize + int64(len(key)+f.metaLen) + f.bodyLen
}

// Disk is the disk tier: one file per object under a directory, which
// survives restarts. Entries are bounded by the bytes of their files. It is
// safe for concurrent use; no file I/O happens under its lock.
type Disk struct {
	fs    fileSystem
	dir   string
	limit int64
	lock  io.Closer // holds the lock on the tag file
	gen   atomic.Uint64
	mu    struct {
		sync.Mutex
		p       *policy[diskFile]
		writers map[*Writer]struct{} // in-flight fills, so purges can void them
		closed  bool
	}
	closed atomic.Bool
	// dirty[i]: an entry file of fan-out directory i was removed and the
	// directory not synced since. A Delete of a key that is not in the
	// index (evicted, replaced) syncs its directory if dirty, so that
	// the removed file cannot come back after a power cut.
	dirty  [256]atomic.Bool
	hits   counter
	misses counter
	// testHookRenamed, if set, runs in Commit and UpdateMeta between the
	// rename of the new file into place and the index update.
	testHookRenamed func(key string)
	refused         atomic.Int64
	corrupt         atomic.Int64
}

// OpenDisk opens the disk tier in dir, holding at most limit bytes of
// files. It creates dir (which must be empty or a disk tier's), takes an
// exclusive lock on it, deletes leftover temp files and rebuilds the index by
// reading each file's header; files that are torn, corrupt or not entries are
// deleted. Rebuilt entries start in the main queue with frequency 0, oldest
// modification time nearest eviction; if they exceed limit, the oldest are
// deleted. A body's checksum is checked at its first Get.
func OpenDisk(dir string, limit int64) (*Disk, error) {
	return openDiskOn(osFS{}, dir, limit)
}

// OpenDiskFS is OpenDisk on the file system fsys (tests run the tier on
// vfs.NewCrashableMem and errorfs); OpenDisk uses the machine's, through
// package os.
func OpenDiskFS(fsys vfs.FS, dir string, limit int64) (*Disk, error) {
	return openDiskOn(vfsFS{fsys}, dir, limit)
}

func openDiskOn(fsys fileSystem, dir string, limit int64) (*Disk, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("cache/tier: disk dir %s: limit %d bytes: must be positive", dir, limit)
	}
	if fi, err := fsys.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("cache/tier: disk dir %s: not a directory; give the disk tier a directory of its own", dir)
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache/tier: disk dir %s: %w", dir, err)
	}
	tag := filepath.Join(dir, tagName)
	if _, err := fsys.Stat(tag); errors.Is(err, fs.ErrNotExist) {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("cache/tier: disk dir %s: %w", dir, err)
		}
		if len(ents) > 0 {
			return nil, fmt.Errorf("cache/tier: disk dir %s: not empty and has no %s, so it is not a disk tier; use an empty or new directory", dir, tagName)
		}
		if err := writeTag(fsys, dir, tag); err != nil {
			return nil, fmt.Errorf("cache/tier: disk dir %s: %w", dir, err)
		}
	}
	lock, err := fsys.Lock(tag)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cache/tier: disk dir %s: %w", dir, err)
		}
		return nil, fmt.Errorf("cache/tier: disk dir %s: in use by another Disk (lock on %s: %v); close it or use another directory", dir, tag, err)
	}
	d := &Disk{fs: fsys, dir: filepath.Clean(dir), limit: limit, lock: lock}
	d.mu.p = newPolicy[diskFile](limit)
	d.mu.writers = make(map[*Writer]struct{})
	if err := d.rebuild(); err != nil {
		lock.Close()
		return nil, err
	}
	return d, nil
}

// writeTag writes the tag file of the new disk tier dir durably, before
// any other file is made there: a power cut must not leave the fan-out
// directories without the tag, which would make the next OpenDisk refuse
// the directory as not a disk tier's.
func writeTag(fsys fileSystem, dir, tag string) error {
	f, err := fsys.Create(tag, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(tagBody))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		fsys.Remove(tag)
	}
	return err
}

// scanned is an entry file found by rebuild.
type scanned struct {
	key   string
	file  *diskFile
	mtime time.Time
}

func (d *Disk) rebuild() error {
	tmp := filepath.Join(d.dir, tmpDir)
	if err := d.fs.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cache/tier: disk dir %s: removing temp files: %w", d.dir, err)
	}
	if err := d.fs.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("cache/tier: disk dir %s: %w", d.dir, err)
	}
	var found [256][]scanned
	var errs [256]error
	var made atomic.Bool // a fan-out directory was made
	var next atomic.Int32
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < 256; i = int(next.Add(1) - 1) {
				found[i], errs[i] = d.scanDir(i, &made)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	if made.Load() {
		// The fan-out directories' names durable once, so that the
		// entries renamed into them can survive a power cut.
		if err := d.fs.SyncDir(d.dir); err != nil {
			return fmt.Errorf("cache/tier: disk dir %s: %w", d.dir, err)
		}
	}

	// Keep the newest file of each key (a crash between a replacing rename
	// and the unlink of the old file leaves two).
	newest := make(map[string]scanned)
	var all []scanned
	for i := range found {
		for _, s := range found[i] {
			if o, ok := newest[s.key]; ok {
				if o.file.gen > s.file.gen {
					o, s = s, o
				}
				d.unlink(o.file)
			}
			newest[s.key] = s
		}
	}
	var maxGen uint64
	for _, s := range newest {
		all = append(all, s)
		maxGen = max(maxGen, s.file.gen)
	}
	d.gen.Store(maxGen)
	slices.SortFunc(all, func(a, b scanned) int {
		return cmp.Or(a.mtime.Compare(b.mtime), cmp.Compare(a.file.gen, b.file.gen))
	})
	p := d.mu.p
	for _, s := range all {
		p.addMain(s.key, s.file.size(s.key), s.file)
	}
	for _, e := range p.evict(nil) {
		d.unlink(e.val.Load())
	}
	return nil
}

// scanDir reads the headers of the files in fan-out directory i, deleting
// the ones that are not intact entries. It makes the directory if
// missing, and then sets made.
func (d *Disk) scanDir(i int, made *atomic.Bool) ([]scanned, error) {
	sub := filepath.Join(d.dir, fmt.Sprintf("%02x", i))
	if err := d.fs.Mkdir(sub, 0o755); err == nil {
		made.Store(true)
		return nil, nil
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cache/tier: disk dir %s: %w", d.dir, err)
	}
	ents, err := d.fs.ReadDir(sub)
	if err != nil {
		return nil, fmt.Errorf("cache/tier: disk dir %s: %w", d.dir, err)
	}
	var out []scanned
	for _, de := range ents {
		name := filepath.Join(sub, de.Name())
		s, ok := d.scanFile(sub, de)
		if !ok {
			d.corrupt.Add(1)
			d.fs.RemoveAll(name)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func (d *Disk) scanFile(sub string, de fs.DirEntry) (scanned, bool) {
	f := parseName(de.Name())
	if f == nil || !de.Type().IsRegular() || d.path(f) != d.dir+string(filepath.Separator)+filepath.Base(sub)+string(filepath.Separator)+de.Name() {
		return scanned{}, false
	}
	file, err := d.fs.Open(filepath.Join(sub, de.Name()))
	if err != nil {
		return scanned{}, false
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return scanned{}, false
	}
	var fixed [headerSize]byte
	if _, err := file.ReadAt(fixed[:], 0); err != nil {
		return scanned{}, false
	}
	h, err := parseHeader(fixed[:], fi.Size())
	if err != nil {
		return scanned{}, false
	}
	km := make([]byte, h.keyLen+h.metaLen)
	if _, err := file.ReadAt(km, headerSize); err != nil {
		return scanned{}, false
	}
	key, _, err := h.checkKeyMeta(fixed[:], km)
	if err != nil || sha256.Sum256([]byte(key)) != f.sum {
		return scanned{}, false
	}
	f.metaLen, f.bodyLen = h.metaLen, h.bodyLen
	return scanned{key: key, file: f, mtime: fi.ModTime()}, true
}

// parseName parses an entry file name, "<hex sha256>-<hex gen>".
func parseName(name string) *diskFile {
	if len(name) != nameLen || name[64] != '-' {
		return nil
	}
	f := &diskFile{}
	if _, err := hex.Decode(f.sum[:], []byte(name[:64])); err != nil {
		return nil
	}
	gen, err := strconv.ParseUint(name[65:], 16, 64)
	if err != nil {
		return nil
	}
	f.gen = gen
	return f
}

func (d *Disk) path(f *diskFile) string {
	var b [nameLen]byte
	hex.Encode(b[:64], f.sum[:])
	b[64] = '-'
	var g [8]byte
	for i := range g {
		g[i] = byte(f.gen >> (56 - 8*i))
	}
	hex.Encode(b[65:], g[:])
	return d.dir + string(filepath.Separator) + string(b[:2]) + string(filepath.Separator) + string(b[:])
}

// Object is an open disk entry. Its body stays readable after the entry is
// deleted, evicted or replaced; the caller must Close it.
type Object struct {
	Meta    []byte // the entry's meta; owned by the caller
	Size    int64  // body length in bytes
	f       file
	off     int64
	bodyCRC uint32
}

// ReadAt reads body bytes at offset off, as io.ReaderAt.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cache/tier: read at negative offset %d", off)
	}
	if off >= o.Size {
		return 0, io.EOF
	}
	short := false
	if rest := o.Size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := o.f.ReadAt(p, o.off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// File returns the open file, for sendfile: the body is the Size bytes
// at BodyOffset. The caller must not close it except through Close. It is
// nil on a file system other than the machine's (OpenDiskFS).
func (o *Object) File() *os.File {
	f, _ := o.f.(*os.File)
	return f
}

// BodyOffset returns the body's offset within File.
func (o *Object) BodyOffset() int64 { return o.off }

// Close closes the file.
func (o *Object) Close() error { return o.f.Close() }

// errCorrupt marks a file that fails validation at Get.
var errCorrupt = errors.New("corrupt")

// Get opens key's entry; the caller must Close it. A hit bumps the key's
// frequency. A file found corrupt is deleted and reported as a miss.
func (d *Disk) Get(key string) (*Object, bool) {
	for range 3 {
		if d.closed.Load() {
			break
		}
		e := d.mu.p.lookup(key)
		if e == nil {
			break
		}
		f := e.val.Load()
		o, err := d.open(key, f)
		if err == nil {
			e.touch()
			d.hits.addAt(e.stripe, 1)
			return o, true
		}
		if errors.Is(err, errCorrupt) {
			d.corrupt.Add(1)
		} else if !errors.Is(err, fs.ErrNotExist) {
			break // e.g. out of file descriptors: not the entry's fault
		}
		// Corrupt, or gone: dropped if the index still names this file;
		// otherwise it was replaced under us, so look again.
		d.dropIfCurrent(key, f)
	}
	d.misses.add(1)
	return nil, false
}

// open opens and validates f, checking the body's CRC if not yet verified.
func (d *Disk) open(key string, f *diskFile) (*Object, error) {
	file, err := d.fs.Open(d.path(f))
	if err != nil {
		return nil, err
	}
	o, err := d.validate(key, f, file)
	if err != nil {
		file.Close()
		return nil, err
	}
	return o, nil
}

func (d *Disk) validate(key string, f *diskFile, file file) (*Object, error) {
	buf := make([]byte, headerSize+len(key)+f.metaLen)
	if _, err := file.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	h, err := parseHeader(buf, f.size(key))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	k, meta, err := h.checkKeyMeta(buf, buf[headerSize:])
	if err != nil || k != key {
		return nil, fmt.Errorf("%w: header: %v", errCorrupt, err)
	}
	o := &Object{Meta: meta, Size: h.bodyLen, f: file, off: h.bodyOffset(), bodyCRC: h.bodyCRC}
	if !f.verified.Load() {
		c := crc32.New(castagnoli)
		n, err := io.Copy(c, io.NewSectionReader(file, o.off, o.Size+1))
		if err != nil {
			return nil, err
		}
		if n != o.Size || c.Sum32() != h.bodyCRC {
			return nil, fmt.Errorf("%w: body: %d bytes, CRC32C %08x; header says %d bytes, %08x", errCorrupt, n, c.Sum32(), o.Size, h.bodyCRC)
		}
		f.verified.Store(true)
	}
	return o, nil
}

// dropIfCurrent removes key's entry and file if the index still names f.
func (d *Disk) dropIfCurrent(key string, f *diskFile) {
	d.mu.Lock()
	e := d.mu.p.lookup(key)
	current := e != nil && e.val.Load() == f
	if current {
		d.mu.p.remove(key)
	}
	d.mu.Unlock()
	if current {
		d.unlink(f)
	}
}

// Writer fills a new entry. Write the body, then Commit to make the entry
// visible, or Abort. Abort after Commit does nothing, so `defer w.Abort()`
// is safe. A Writer is not safe for concurrent use.
type Writer struct {
	d    *Disk
	key  string
	meta []byte
	f    file // the temp file; nil after Commit or Abort
	crc  uint32
	n    int64 // body bytes written
	err  error // sticky
	// purged is set under d.mu by a Delete or DeletePrefix that matches key.
	purged bool
}

// Create starts filling key's entry with meta. The entry becomes visible at
// Commit, replacing any previous one. A fill whose key is deleted (Delete,
// DeletePrefix) before Commit is discarded.
func (d *Disk) Create(key string, meta []byte) (*Writer, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if len(key) > maxKeyLen {
		return nil, fmt.Errorf("cache/tier: disk: key %s is %d bytes, over the maximum of %d; do not cache it", quoteKey(key), len(key), maxKeyLen)
	}
	if len(meta) > maxMetaLen {
		return nil, fmt.Errorf("cache/tier: disk: meta of key %s is %d bytes, over the maximum of %d; do not cache it", quoteKey(key), len(meta), maxMetaLen)
	}
	w := &Writer{d: d, key: key, meta: append([]byte(nil), meta...)}
	if size := w.size(0); size > d.limit {
		d.refused.Add(1)
		return nil, tooLarge("disk", key, size, d.limit)
	}
	f, err := d.fs.CreateTemp(filepath.Join(d.dir, tmpDir), "fill-*")
	if err != nil {
		return nil, fmt.Errorf("cache/tier: disk dir %s: creating a fill for key %s: %w", d.dir, quoteKey(key), err)
	}
	buf := make([]byte, headerSize, headerSize+len(key)+len(meta))
	buf = append(append(buf, key...), meta...)
	if _, err := f.Write(buf); err != nil { // zero magic until Commit
		f.Close()
		d.fs.Remove(f.Name())
		return nil, fmt.Errorf("cache/tier: disk fill %s: %w", f.Name(), err)
	}
	w.f = f
	d.mu.Lock()
	d.mu.writers[w] = struct{}{}
	d.mu.Unlock()
	return w, nil
}

func (w *Writer) size(body int64) int64 {
	return headerSize + int64(len(w.key)+len(w.meta)) + body
}

var errWriterDone = errors.New("cache/tier: write to a committed or aborted Writer")

// Write appends body bytes. It fails once the entry would exceed the tier's
// limit; Commit then returns the same error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.f == nil {
		return 0, errWriterDone
	}
	if size := w.size(w.n + int64(len(p))); size > w.d.limit {
		w.d.refused.Add(1)
		w.err = tooLarge("disk", w.key, size, w.d.limit)
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("cache/tier: disk fill %s for key %s: %w", w.f.Name(), quoteKey(w.key), err)
	}
	return n, w.err
}

// Commit writes the header and renames the file into place, making the
// entry visible atomically. On error nothing is visible and the temp file
// is gone.
func (w *Writer) Commit() error {
	if w.f == nil {
		return errWriterDone
	}
	if w.err != nil {
		err := w.err
		w.Abort()
		return err
	}
	d := w.d
	var hdr [headerSize]byte
	encodeHeader(hdr[:], w.key, w.meta, w.n, w.crc)
	tmp := w.f.Name()
	_, err := w.f.WriteAt(hdr[:], 0)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		w.forget()
		d.fs.Remove(tmp)
		return fmt.Errorf("cache/tier: disk fill %s for key %s: %w", tmp, quoteKey(w.key), err)
	}
	if err := w.voided(); err != nil {
		w.forget()
		d.fs.Remove(tmp)
		return err
	}
	f := &diskFile{sum: sha256.Sum256([]byte(w.key)), gen: d.gen.Add(1), metaLen: len(w.meta), bodyLen: w.n}
	f.verified.Store(true)
	path := d.path(f)
	if err := d.fs.Rename(tmp, path); err != nil {
		w.forget()
		d.fs.Remove(tmp)
		return fmt.Errorf("cache/tier: disk fill %s for key %s: %w", tmp, quoteKey(w.key), err)
	}
	if d.testHookRenamed != nil {
		d.testHookRenamed(w.key)
	}

	d.mu.Lock()
	delete(d.mu.writers, w)
	err = w.voidedLocked()
	var old *diskFile
	var evicted []*entry[diskFile]
	if err == nil {
		old, evicted = d.mu.p.add(w.key, f.size(w.key), f, nil)
	}
	d.mu.Unlock()
	if err != nil {
		// Purged (or closed) after the rename: a Delete may have synced
		// the directory with this file in it, so its removal is synced
		// too, or the purged entry could come back after a power cut.
		d.removeSynced(f)
		return err
	}
	if old != nil {
		d.unlink(old)
	}
	d.removeFiles(evicted)
	return nil
}

func (w *Writer) voided() error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.voidedLocked()
}

func (w *Writer) voidedLocked() error {
	switch {
	case w.d.mu.closed:
		return ErrClosed
	case w.purged:
		return fmt.Errorf("%w: disk: key %s", ErrPurged, quoteKey(w.key))
	}
	return nil
}

func (w *Writer) forget() {
	w.d.mu.Lock()
	delete(w.d.mu.writers, w)
	w.d.mu.Unlock()
}

// Abort discards the fill and its temp file. It does nothing after Commit.
func (w *Writer) Abort() {
	if w.f == nil {
		return
	}
	w.f.Close()
	w.d.fs.Remove(w.f.Name())
	w.f = nil
	w.forget()
}

func (d *Disk) removeFiles(es []*entry[diskFile]) {
	for _, e := range es {
		d.unlink(e.val.Load())
	}
}

// unlink removes f's file, not durably: its directory becomes dirty.
func (d *Disk) unlink(f *diskFile) {
	d.fs.Remove(d.path(f))
	d.dirty[f.sum[0]].Store(true) // after the removal: see syncDir
}

// removeSynced removes f's file durably.
func (d *Disk) removeSynced(f *diskFile) {
	d.fs.Remove(d.path(f))
	d.syncDir(f.sum[0])
}

// syncDir syncs fan-out directory i. The dirty flag is cleared first:
// a removal that sets it later is synced by the next syncDir.
func (d *Disk) syncDir(i byte) {
	d.dirty[i].Store(false)
	d.fs.SyncDir(filepath.Join(d.dir, fmt.Sprintf("%02x", i)))
}

// UpdateMeta replaces key's meta, keeping its body and its place in the
// queues. It writes a new file (header and meta, then the body copied in
// the kernel where the file system can) and renames it into place, so a
// crash leaves the old entry or the new one. If is non-nil, the current
// meta must satisfy it (say, be of the version the new meta revalidated);
// otherwise, and if the entry is replaced concurrently, the newer entry
// stays and UpdateMeta returns nil.
func (d *Disk) UpdateMeta(key string, meta []byte, is func(current []byte) bool) error {
	if len(meta) > maxMetaLen {
		return fmt.Errorf("cache/tier: disk: meta of key %s is %d bytes, over the maximum of %d; do not cache it", quoteKey(key), len(meta), maxMetaLen)
	}
	var (
		f *diskFile
		o *Object
	)
	for range 3 {
		if d.closed.Load() {
			return ErrClosed
		}
		e := d.mu.p.lookup(key)
		if e == nil {
			break
		}
		var err error
		f = e.val.Load()
		if o, err = d.open(key, f); err == nil {
			break
		}
		if errors.Is(err, errCorrupt) {
			d.corrupt.Add(1)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache/tier: disk: update meta of key %s: %w", quoteKey(key), err)
		}
		d.dropIfCurrent(key, f)
	}
	if o == nil {
		return fmt.Errorf("%w: disk: update meta of key %s", ErrNotFound, quoteKey(key))
	}
	defer o.Close()
	if is != nil && !is(o.Meta) {
		return nil // another version; installing checks it is still f
	}
	if size := headerSize + int64(len(key)+len(meta)) + o.Size; size > d.limit {
		return tooLarge("disk", key, size, d.limit)
	}

	nf := &diskFile{sum: f.sum, gen: d.gen.Add(1), metaLen: len(meta), bodyLen: o.Size}
	nf.verified.Store(true)
	path := d.path(nf)
	if err := d.writeCopy(path, key, meta, o); err != nil {
		return fmt.Errorf("cache/tier: disk: update meta of key %s: %w", quoteKey(key), err)
	}
	if d.testHookRenamed != nil {
		d.testHookRenamed(key)
	}

	d.mu.Lock()
	var evicted []*entry[diskFile]
	e := d.mu.p.lookup(key)
	current := !d.mu.closed && e != nil && e.val.Load() == f
	if current {
		e.val.Store(nf)
		evicted = d.mu.p.resize(e, nf.size(key), nil)
	}
	d.mu.Unlock()
	if !current {
		d.removeSynced(nf) // as in Commit: a Delete may have synced it in
		if e == nil {
			return fmt.Errorf("%w: disk: update meta of key %s", ErrNotFound, quoteKey(key))
		}
		return nil
	}
	d.unlink(f)
	d.removeFiles(evicted)
	return nil
}

// writeCopy writes an entry file at path with key, meta and o's body,
// through a temp file and a rename.
func (d *Disk) writeCopy(path, key string, meta []byte, o *Object) error {
	t, err := d.fs.CreateTemp(filepath.Join(d.dir, tmpDir), "meta-*")
	if err != nil {
		return err
	}
	buf := make([]byte, headerSize, headerSize+len(key)+len(meta))
	encodeHeader(buf, key, meta, o.Size, o.bodyCRC)
	buf = append(append(buf, key...), meta...)
	_, err = t.Write(buf)
	var body io.Reader = io.NewSectionReader(o.f, o.off, o.Size)
	if of, ok := o.f.(*os.File); ok && err == nil {
		// *io.LimitedReader over *os.File lets ReadFrom use copy_file_range.
		_, err = of.Seek(o.off, io.SeekStart)
		body = &io.LimitedReader{R: of, N: o.Size}
	}
	if err == nil {
		var n int64
		n, err = io.Copy(t, body)
		if err == nil && n != o.Size {
			err = fmt.Errorf("body copy: %d of %d bytes", n, o.Size)
		}
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.fs.Rename(t.Name(), path)
	}
	if err != nil {
		d.fs.Remove(t.Name())
	}
	return err
}

// Delete removes key's entry and reports whether it was present. A fill of
// key in progress is discarded at its Commit. The removal is made durable
// (the directory is synced), so a purged object does not return after a
// crash.
func (d *Disk) Delete(key string) bool {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		return false
	}
	e := d.mu.p.remove(key)
	for w := range d.mu.writers {
		if w.key == key {
			w.purged = true
		}
	}
	d.mu.Unlock()
	if e == nil {
		// An evicted or replaced file of key may be removed but not
		// durably so.
		if i := sha256.Sum256([]byte(key))[0]; d.dirty[i].Load() {
			d.syncDir(i)
		}
		return false
	}
	d.removeAndSync([]*entry[diskFile]{e})
	return true
}

// DeletePrefix removes every key that starts with prefix, discards fills of
// such keys in progress, and returns how many entries it removed. It walks
// all entries.
func (d *Disk) DeletePrefix(prefix string) int {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		return 0
	}
	removed := d.mu.p.removePrefix(prefix, nil)
	for w := range d.mu.writers {
		if len(w.key) >= len(prefix) && w.key[:len(prefix)] == prefix {
			w.purged = true
		}
	}
	d.mu.Unlock()
	d.removeAndSync(removed)
	// Evicted or replaced files of keys with prefix may be removed but
	// not durably so: where they were is not known any more.
	for i := range d.dirty {
		if d.dirty[i].Load() {
			d.syncDir(byte(i))
		}
	}
	return len(removed)
}

func (d *Disk) removeAndSync(es []*entry[diskFile]) {
	var dirs [256]bool
	for _, e := range es {
		f := e.val.Load()
		d.fs.Remove(d.path(f))
		dirs[f.sum[0]] = true
	}
	for i, ok := range dirs {
		if ok {
			d.syncDir(byte(i))
		}
	}
}

// Stats returns a snapshot of the tier's counters. Bytes counts whole
// files: a 32-byte header, the key, the meta and the body.
func (d *Disk) Stats() Stats {
	var s Stats
	d.mu.Lock()
	d.mu.p.stats(&s)
	d.mu.Unlock()
	s.Hits = d.hits.load()
	s.Misses = d.misses.load()
	s.Refused = d.refused.Load()
	s.Corrupt = d.corrupt.Load()
	return s
}

// Close releases the directory. Fills not yet committed fail with
// ErrClosed; open Objects stay readable.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		return nil
	}
	d.mu.closed = true
	d.closed.Store(true)
	d.mu.Unlock()
	if err := d.lock.Close(); err != nil {
		return fmt.Errorf("cache/tier: disk dir %s: %w", d.dir, err)
	}
	return nil
}

func tooLarge(tier, key string, size, limit int64) error {
	return fmt.Errorf("%w: %s: key %s: %d bytes with key and meta, over the tier's limit of %d bytes; raise the limit or do not cache it",
		ErrTooLarge, tier, quoteKey(key), size, limit)
}

// quoteKey quotes key for an error message, shortened to 80 bytes.
func quoteKey(key string) string {
	if len(key) > 80 {
		return strconv.Quote(key[:80]) + "…"
	}
	return strconv.Quote(key)
}
