package s3

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"engine/burstbuffer"
	"engine/internal/fsutil"
)

// fileSys is the namespace as the store uses it: the few operations it
// needs, every path slash-separated and relative to the namespace root.
// nsFS is the production one (the machine's file system; a key's path is
// resolved beneath its bucket by package namespace, openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); the tests run the store on one
// over a pebble vfs.FS (vfs.NewCrashableMem: a power cut keeps only what
// was synced; errorfs: injected EIO, ENOSPC), with xattrs kept beside it.
type fileSys interface {
	// Stat follows a symlink; Lstat does not.
	Stat(p string) (fs.FileInfo, error)
	Lstat(p string) (fs.FileInfo, error)
	ReadDir(p string) ([]fs.DirEntry, error)
	Mkdir(p string, perm os.FileMode) error
	Chmod(p string, perm os.FileMode) error
	Remove(p string) error
	RemoveAll(p string) error
	Rename(from, to string) error
	// SyncDir makes the names in directory p durable (and p's own xattrs).
	SyncDir(p string) error
	// GetXattr and SetXattr read and write an xattr of p (a directory).
	GetXattr(p, name string) ([]byte, error)
	SetXattr(p, name string, b []byte) error
	// Create makes the new file p (fs.ErrExist if p exists), open for
	// reading and writing, with permission bits perm.
	Create(p string, perm os.FileMode) (file, error)
	// OpenRegular opens rel beneath the directory dir for reading if it
	// is a regular file, else fails with errNotFile; a symlink in rel is
	// errSymlink.
	OpenRegular(dir, rel string) (file, fs.FileInfo, error)
	// OpenDir opens the directory rel ("." for dir itself) beneath dir.
	OpenDir(dir, rel string) (dirFile, error)
	// MkdirAll makes the directories of rel beneath dir, each new one's
	// name made durable before the next is made in it, and returns the
	// last one open. A component that is a file is ENOTDIR, a symlink
	// errSymlink.
	MkdirAll(dir, rel string) (dirFile, error)
	// RenameInto renames the file from (made by Create) to name in
	// parent, replacing what was there.
	RenameInto(from string, parent dirFile, name string) error
}

// file is an open file or directory of a fileSys.
type file interface {
	// ReadAt and WriteAt: the backing file's own bytes, not through the
	// burst buffer (upload records).
	io.ReaderAt
	io.WriterAt
	// Name is the file's path, for messages.
	Name() string
	Stat() (fs.FileInfo, error)
	// Sync makes the file's metadata (mode, xattrs) and its own bytes
	// durable.
	Sync() error
	Chmod(perm os.FileMode) error
	GetXattr(name string) ([]byte, error)
	SetXattr(name string, b []byte) error
	// Unlinked reports whether the file has no name any more.
	Unlinked() bool
	Close() error
}

// dirFile is an open directory of a fileSys.
type dirFile interface {
	file
	RemoveXattr(name string) error
	// Names lists the directory.
	Names() ([]string, error)
	// Type returns the file type bits of the entry name (not followed).
	Type(name string) (fs.FileMode, error)
	// OpenDir opens the directory name in this one, not following a
	// symlink.
	OpenDir(name string) (dirFile, error)
	// Rmdir removes the empty directory name (ENOTEMPTY, EEXIST if not).
	Rmdir(name string) error
	// Unlink removes the file name.
	Unlink(name string) error
}

// objectData carries an object's bytes: in production the burst buffer
// (bbData), in tests the file itself.
type objectData interface {
	WriteAt(ctx context.Context, f file, p []byte, off int64) error
	// ReadAt reads the newest bytes at off; n < len(p) only at the end.
	ReadAt(ctx context.Context, f file, p []byte, off int64) (int, error)
	// Size is f's logical size, its file being fileSize bytes.
	Size(f file, fileSize int64) int64
	// Sync makes every write to f durable.
	Sync(ctx context.Context, f file) error
	// Check fails if f cannot carry data (the backing file system gives
	// no file handles).
	Check(f file) error
}

// nsFS is the machine's file system under root.
type nsFS struct{ root string }

func (n nsFS) abs(p string) string { return filepath.Join(n.root, filepath.FromSlash(p)) }

func (n nsFS) Stat(p string) (fs.FileInfo, error)      { return os.Stat(n.abs(p)) }
func (n nsFS) Lstat(p string) (fs.FileInfo, error)     { return os.Lstat(n.abs(p)) }
func (n nsFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(n.abs(p)) }
func (n nsFS) Mkdir(p string, perm os.FileMode) error  { return os.Mkdir(n.abs(p), perm) }
func (n nsFS) Chmod(p string, perm os.FileMode) error  { return os.Chmod(n.abs(p), perm) }
func (n nsFS) Remove(p string) error                   { return os.Remove(n.abs(p)) }
func (n nsFS) RemoveAll(p string) error                { return os.RemoveAll(n.abs(p)) }
func (n nsFS) Rename(from, to string) error            { return os.Rename(n.abs(from), n.abs(to)) }
func (n nsFS) SyncDir(p string) error                  { return fsutil.SyncDir(n.abs(p)) }
func (n nsFS) GetXattr(p, name string) ([]byte, error) { return getXattr(n.abs(p), name) }
func (n nsFS) SetXattr(p, name string, b []byte) error { return unix.Setxattr(n.abs(p), name, b, 0) }

func (n nsFS) Create(p string, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(n.abs(p), os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{File: f}, nil
}

func (n nsFS) OpenRegular(dir, rel string) (file, fs.FileInfo, error) {
	f, fi, err := openRegular(n.abs(dir), rel)
	if err != nil {
		return nil, nil, err
	}
	return &osFile{File: f}, fi, nil
}

func (n nsFS) OpenDir(dir, rel string) (dirFile, error) {
	d, err := openBeneath(n.abs(dir), rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &osDir{osFile{File: d}}, nil
}

func (n nsFS) MkdirAll(dir, rel string) (dirFile, error) {
	d, err := mkdirBeneath(n.abs(dir), rel)
	if err != nil {
		return nil, err
	}
	return &osDir{osFile{File: d}}, nil
}

func (n nsFS) RenameInto(from string, parent dirFile, name string) error {
	return unix.Renameat(unix.AT_FDCWD, n.abs(from), int(parent.(*osDir).Fd()), name)
}

// osFile is an open file of nsFS.
type osFile struct {
	*os.File
	ref    burstbuffer.FileRef
	refErr error
	hasRef bool
}

// fileRef returns the file's burst buffer reference (its file handle).
func (f *osFile) fileRef() (burstbuffer.FileRef, error) {
	if !f.hasRef {
		f.ref, f.refErr = burstbuffer.RefOf(f.File)
		f.hasRef = true
	}
	return f.ref, f.refErr
}

func (f *osFile) Stat() (fs.FileInfo, error)           { return f.File.Stat() }
func (f *osFile) Chmod(perm os.FileMode) error         { return f.File.Chmod(perm) }
func (f *osFile) GetXattr(name string) ([]byte, error) { return fgetXattr(f.File, name) }

func (f *osFile) SetXattr(name string, b []byte) error {
	return unix.Fsetxattr(int(f.Fd()), name, b, 0)
}

func (f *osFile) Unlinked() bool {
	var stt unix.Stat_t
	return unix.Fstat(int(f.Fd()), &stt) == nil && stt.Nlink == 0
}

// osDir is an open directory of nsFS.
type osDir struct{ osFile }

func (d *osDir) RemoveXattr(name string) error { return unix.Fremovexattr(int(d.Fd()), name) }
func (d *osDir) Names() ([]string, error)      { return d.File.Readdirnames(-1) }

func (d *osDir) Type(name string) (fs.FileMode, error) {
	var stt unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), name, &stt, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: filepath.Join(d.Name(), name), Err: err}
	}
	switch stt.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	case unix.S_IFREG:
		return 0, nil
	case unix.S_IFLNK:
		return fs.ModeSymlink, nil
	}
	return fs.ModeIrregular, nil
}

func (d *osDir) OpenDir(name string) (dirFile, error) {
	f, err := openAt(int(d.Fd()), d.Name(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	return &osDir{osFile{File: f}}, nil
}

func (d *osDir) Rmdir(name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, unix.AT_REMOVEDIR); err != nil {
		return &os.PathError{Op: "rmdir", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

func (d *osDir) Unlink(name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "unlink", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// bbData is the burst buffer as the store's objectData: concurrent syncs
// share the burst buffer's SyncAll when it has one.
type bbData struct {
	data  burstbuffer.Data
	syncs *groupSync
}

// allSyncer is a Data that can make every write it took durable at once
// (*burstbuffer.Service).
type allSyncer interface {
	SyncAll(ctx context.Context) error
}

func refOf(f file) (burstbuffer.FileRef, error) { return f.(*osFile).fileRef() }

func (b bbData) Check(f file) error {
	_, err := refOf(f)
	return err
}

func (b bbData) WriteAt(ctx context.Context, f file, p []byte, off int64) error {
	ref, err := refOf(f)
	if err != nil {
		return err
	}
	return b.data.WriteAt(ctx, ref, p, off)
}

func (b bbData) ReadAt(ctx context.Context, f file, p []byte, off int64) (int, error) {
	ref, err := refOf(f)
	if err != nil {
		return 0, err
	}
	return b.data.ReadAt(ctx, ref, f.(*osFile).File, p, off)
}

func (b bbData) Size(f file, fileSize int64) int64 {
	ref, err := refOf(f)
	if err != nil {
		return fileSize
	}
	return b.data.Size(ref, fileSize)
}

// Sync makes the bytes written to f durable. When the burst buffer can
// make every write durable at once, concurrent commits share that.
func (b bbData) Sync(ctx context.Context, f file) error {
	ref, err := refOf(f)
	if err != nil {
		return err
	}
	all, ok := b.data.(allSyncer)
	if !ok {
		return b.data.Sync(ctx, ref)
	}
	return b.syncs.do(ctx, allData, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		return all.SyncAll(ctx)
	})
}
