package tier

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"engine/internal/fsutil"
)

// fileSystem is what the disk tier needs of a file system: osFS, the
// machine's, in production; vfsFS, any pebble vfs.FS, in tests, where the
// tier runs on vfs.NewCrashableMem (a power cut keeps only what was
// synced) and errorfs (EIO, ENOSPC by operation and path).
type fileSystem interface {
	MkdirAll(dir string, perm os.FileMode) error
	// Mkdir fails with fs.ErrExist if dir exists.
	Mkdir(dir string, perm os.FileMode) error
	Stat(name string) (os.FileInfo, error)
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Create makes a new file (it must not exist) open for writing.
	Create(name string, perm os.FileMode) (file, error)
	// CreateTemp makes a new file, 0600, in dir with a name from pattern
	// (its '*' replaced by random characters).
	CreateTemp(dir, pattern string) (file, error)
	Open(name string) (file, error)
	Rename(from, to string) error
	Remove(name string) error
	RemoveAll(name string) error
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the file name, released by Close;
	// it fails at once if the file is locked already.
	Lock(name string) (io.Closer, error)
}

// file is an open file of a fileSystem. *os.File is one.
type file interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	Stat() (os.FileInfo, error)
	Sync() error
	Name() string
}

// osFS is the machine's file system, through package os.
type osFS struct{}

func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) Mkdir(dir string, perm os.FileMode) error    { return os.Mkdir(dir, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }
func (osFS) ReadDir(dir string) ([]fs.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) Rename(from, to string) error                { return os.Rename(from, to) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                 { return os.RemoveAll(name) }
func (osFS) SyncDir(dir string) error                    { return fsutil.SyncDir(dir) }
func (osFS) Open(name string) (file, error)              { return nilIfErr(os.Open(name)) }
func (osFS) CreateTemp(dir, pattern string) (file, error) {
	return nilIfErr(os.CreateTemp(dir, pattern))
}

func (osFS) Create(name string, perm os.FileMode) (file, error) {
	return nilIfErr(os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm))
}

func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// nilIfErr keeps a nil *os.File from becoming a non-nil file.
func nilIfErr(f *os.File, err error) (file, error) {
	if err != nil {
		return nil, err
	}
	return f, nil
}

// vfsFS is a pebble vfs.FS as the tier's file system.
type vfsFS struct{ fs vfs.FS }

func (v vfsFS) MkdirAll(dir string, perm os.FileMode) error { return v.fs.MkdirAll(dir, perm) }
func (v vfsFS) Rename(from, to string) error                { return v.fs.Rename(from, to) }
func (v vfsFS) Remove(name string) error                    { return v.fs.Remove(name) }
func (v vfsFS) RemoveAll(name string) error                 { return v.fs.RemoveAll(name) }
func (v vfsFS) Lock(name string) (io.Closer, error)         { return v.fs.Lock(name) }
func (v vfsFS) Stat(name string) (os.FileInfo, error)       { return v.fs.Stat(name) }

func (v vfsFS) Mkdir(dir string, perm os.FileMode) error {
	if _, err := v.fs.Stat(dir); err == nil {
		return &os.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
	}
	return v.fs.MkdirAll(dir, perm)
}

func (v vfsFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	names, err := v.fs.List(dir)
	if err != nil {
		return nil, err
	}
	var out []fs.DirEntry
	for _, n := range names {
		fi, err := v.fs.Stat(v.fs.PathJoin(dir, n))
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	return out, nil
}

func (v vfsFS) Create(name string, perm os.FileMode) (file, error) {
	if _, err := v.fs.Stat(name); err == nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	f, err := v.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	return &vfsFile{File: f, name: name}, nil
}

func (v vfsFS) CreateTemp(dir, pattern string) (file, error) {
	for {
		var b [8]byte
		rand.Read(b[:])
		f, err := v.Create(v.fs.PathJoin(dir, strings.Replace(pattern, "*", hex.EncodeToString(b[:]), 1)), 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}

func (v vfsFS) Open(name string) (file, error) {
	f, err := v.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return &vfsFile{File: f, name: name}, nil
}

func (v vfsFS) SyncDir(dir string) error {
	d, err := v.fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// vfsFile is a vfs.File as a file.
type vfsFile struct {
	vfs.File
	name string
}

func (f *vfsFile) Name() string { return f.name }

// Write and WriteAt keep io.Writer's contract: p is not modified (pebble's
// MemFS scribbles over it when built with invariants, as under -race).
func (f *vfsFile) Write(p []byte) (int, error) { return f.File.Write(bytes.Clone(p)) }

func (f *vfsFile) WriteAt(p []byte, off int64) (int, error) {
	return f.File.WriteAt(bytes.Clone(p), off)
}

func (f *vfsFile) Stat() (os.FileInfo, error) { return f.File.Stat() }
