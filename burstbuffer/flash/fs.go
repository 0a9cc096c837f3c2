package flash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// The file system a Log lives on is a vfs.FS (LogOptions.FS): vfs.Default in
// production, vfs.NewCrashableMem or errorfs in tests. What vfs.FS lacks is
// done here, the same way on every file system the Log meets:
//
//   - modes: vfs creates files 0666 (less the umask) and has no chmod. A file
//     backed by an OS descriptor (Fd() is valid) is fchmod'ed; a file system
//     without descriptors (MemFS) has no modes to set.
//   - truncation: vfs.File has none. An OS file has one (Truncate); on a
//     file without it the bytes cut are overwritten with zeros instead,
//     which Open takes for the clean end of the records they follow.
//   - closing under readers: an os.File read after Close fails with
//     os.ErrClosed; a MemFS file panics. Files without a descriptor are
//     wrapped so that they fail the same way (guardedFile).

// fsOr returns fs, or vfs.Default for nil.
func fsOr(fs vfs.FS) vfs.FS {
	if fs == nil {
		return vfs.Default
	}
	return fs
}

// chmodFile sets f's permission bits if it is an OS file.
func chmodFile(f vfs.File, mode os.FileMode) error {
	if fd := f.Fd(); fd != vfs.InvalidFd {
		if err := unix.Fchmod(int(fd), uint32(mode.Perm())); err != nil {
			return fmt.Errorf("flash: chmod %#o: %w", mode.Perm(), err)
		}
	}
	return nil
}

// chmodDir sets dir's permission bits if it is an OS directory.
func chmodDir(fs vfs.FS, dir string, mode os.FileMode) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := chmodFile(d, mode); err != nil {
		return fmt.Errorf("flash: %s: %w", dir, err)
	}
	return nil
}

// syncDir fsyncs dir, making the names created, renamed or removed in it
// durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// createSegmentFile creates name, which must not exist (O_EXCL: vfs.Create
// would replace it), as a private file.
func createSegmentFile(fs vfs.FS, name string) (vfs.File, error) {
	if _, err := fs.Stat(name); err == nil {
		return nil, fmt.Errorf("flash: create %s: %w", name, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return createPrivate(fs, name)
}

// createPrivate creates (or replaces) name as a 0600 file.
func createPrivate(fs vfs.FS, name string) (vfs.File, error) {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if err := chmodFile(f, segmentMode); err != nil {
		f.Close()
		return nil, err
	}
	return guard(f), nil
}

// openSegmentFile opens an existing file for reading and writing.
func openSegmentFile(fs vfs.FS, name string) (vfs.File, error) {
	f, err := fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	return guard(f), nil
}

type truncater interface{ Truncate(size int64) error }

// truncaterOf returns f's Truncate, if it has one (an OS file does).
func truncaterOf(f vfs.File) (truncater, bool) {
	if g, ok := f.(*guardedFile); ok {
		f = g.File
	}
	t, ok := f.(truncater)
	return t, ok
}

// truncateFile cuts f to size; a file that cannot be truncated gets zeros
// from size to its end instead.
func truncateFile(f vfs.File, size int64) error {
	if t, ok := truncaterOf(f); ok {
		return t.Truncate(size)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size()
	z := make([]byte, min(max(end-size, 0), 1<<20))
	for off := size; off < end; {
		n := min(int64(len(z)), end-off)
		if _, err := f.WriteAt(z[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// guard wraps a file that has no OS descriptor so that a use after Close
// fails with os.ErrClosed, as an os.File does, instead of panicking.
func guard(f vfs.File) vfs.File {
	if f.Fd() != vfs.InvalidFd {
		return f
	}
	return &guardedFile{File: f}
}

type guardedFile struct {
	vfs.File
	mu     sync.RWMutex
	closed bool
}

func (g *guardedFile) use() (func(), error) {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return nil, os.ErrClosed
	}
	return g.mu.RUnlock, nil
}

func (g *guardedFile) ReadAt(p []byte, off int64) (int, error) {
	done, err := g.use()
	if err != nil {
		return 0, err
	}
	defer done()
	return g.File.ReadAt(p, off)
}

func (g *guardedFile) WriteAt(p []byte, off int64) (int, error) {
	done, err := g.use()
	if err != nil {
		return 0, err
	}
	defer done()
	return g.File.WriteAt(p, off)
}

func (g *guardedFile) SyncData() error {
	done, err := g.use()
	if err != nil {
		return err
	}
	defer done()
	return g.File.SyncData()
}

func (g *guardedFile) Sync() error {
	done, err := g.use()
	if err != nil {
		return err
	}
	defer done()
	return g.File.Sync()
}

func (g *guardedFile) Stat() (vfs.FileInfo, error) {
	done, err := g.use()
	if err != nil {
		return nil, err
	}
	defer done()
	return g.File.Stat()
}

func (g *guardedFile) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return os.ErrClosed
	}
	g.closed = true
	return g.File.Close()
}

var _ io.ReaderAt = (*guardedFile)(nil)

// MkdirAllDurable creates dir and any missing parents with mode perm (as
// os.MkdirAll), and makes their names durable: it fsyncs the parent of
// every directory it created and always dir's own parent (which also
// covers a dir made by a process killed before it synced it). Without
// this, a power cut after the first acknowledged write could take the
// whole new directory, synced files and all. (Pebble does the same for its
// directories.)
func MkdirAllDurable(fs vfs.FS, dir string, perm os.FileMode) error {
	fs = fsOr(fs)
	var parents []string
	for p := fs.PathDir(dir); ; p = fs.PathDir(p) {
		parents = append(parents, p)
		if fs.PathDir(p) == p {
			break
		}
		if _, err := fs.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, p := range parents {
		if err := syncDir(fs, p); err != nil {
			return fmt.Errorf("flash: sync directory %s: %w", p, err)
		}
	}
	return nil
}
