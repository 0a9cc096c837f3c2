package s3

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// memFS is the store's fileSys over a pebble vfs.FS: vfs.NewCrashableMem,
// maybe wrapped by errorfs. vfs has no xattrs, so memFS keeps them beside
// it, as a journaling file system would: an xattr set is durable once its
// file (or directory) is fsynced, and a crash image keeps only those. A
// file's xattrs follow it across renames: each file begins with a 16-byte
// header naming its inode (written at create, durable with the file's
// bytes); ReadAt, WriteAt and Stat hide it.
type memFS struct {
	mem  *vfs.MemFS // for CrashClone
	fs   vfs.FS     // mem, or errorfs over it
	root string

	// onSync, if set, runs before every sync, rename and removal: a
	// crash point.
	onSync func()

	mu     sync.Mutex
	next   uint64
	inodes map[uint64]*memXattrs // files, by inode
	dirs   map[string]*memXattrs // directories, by path
	bb     map[uint64]vfs.File   // memData's files being written, by inode
}

// bbDir holds memData's files: the objects' bytes, by inode, apart from
// the namespace as the burst buffer holds them in production.
const bbDir = "/bb"

type memXattrs struct{ cur, synced map[string][]byte }

const memHdr = 16

var memMagic = [8]byte{'s', '3', 'm', 'e', 'm', 'i', 'n', 'o'}

func newMemFS(mem *vfs.MemFS, fsys vfs.FS) *memFS {
	m := &memFS{mem: mem, fs: fsys, root: "/ns", inodes: map[uint64]*memXattrs{}, dirs: map[string]*memXattrs{}, bb: map[uint64]vfs.File{}}
	for _, d := range []string{m.root, bbDir} {
		if err := mem.MkdirAll(d, 0o755); err != nil {
			panic(err)
		}
	}
	d, _ := mem.OpenDir("/")
	d.Sync()
	d.Close()
	return m
}

// crashClone is the memFS a power cut would leave now.
func (m *memFS) crashClone(cfg vfs.CrashCloneCfg) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem := m.mem.CrashClone(cfg)
	c := &memFS{mem: mem, fs: mem, root: m.root, next: m.next, inodes: map[uint64]*memXattrs{}, dirs: map[string]*memXattrs{}, bb: map[uint64]vfs.File{}}
	for ino, x := range m.inodes {
		c.inodes[ino] = &memXattrs{cur: maps.Clone(x.synced), synced: maps.Clone(x.synced)}
	}
	for p, x := range m.dirs {
		c.dirs[p] = &memXattrs{cur: maps.Clone(x.synced), synced: maps.Clone(x.synced)}
	}
	return c
}

func (m *memFS) crashPoint() {
	if m.onSync != nil {
		m.onSync()
	}
}

func (m *memFS) abs(p string) string { return path.Join(m.root, p) }

func (m *memFS) dirX(p string) *memXattrs {
	p = path.Clean(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	x := m.dirs[p]
	if x == nil {
		x = &memXattrs{cur: map[string][]byte{}, synced: map[string][]byte{}}
		m.dirs[p] = x
	}
	return x
}

func (m *memFS) dropDirs(p string) {
	p = path.Clean(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	for q := range m.dirs {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(m.dirs, q)
		}
	}
}

func (m *memFS) fileX(ino uint64) *memXattrs {
	m.mu.Lock()
	defer m.mu.Unlock()
	x := m.inodes[ino]
	if x == nil {
		x = &memXattrs{cur: map[string][]byte{}, synced: map[string][]byte{}}
		m.inodes[ino] = x
	}
	return x
}

func getX(mu *sync.Mutex, x *memXattrs, name string) ([]byte, error) {
	mu.Lock()
	defer mu.Unlock()
	b, ok := x.cur[name]
	if !ok {
		return nil, syscall.ENODATA
	}
	return append([]byte(nil), b...), nil
}

func setX(mu *sync.Mutex, x *memXattrs, name string, b []byte) {
	mu.Lock()
	defer mu.Unlock()
	x.cur[name] = append([]byte(nil), b...)
}

func syncX(mu *sync.Mutex, x *memXattrs) {
	mu.Lock()
	defer mu.Unlock()
	x.synced = maps.Clone(x.cur)
}

// memInfo hides the header from a file's size.
type memInfo struct{ fs.FileInfo }

func (i memInfo) Size() int64 {
	if i.IsDir() {
		return i.FileInfo.Size()
	}
	return max(0, i.FileInfo.Size()-memHdr)
}

func (i memInfo) Mode() fs.FileMode {
	if i.IsDir() {
		return fs.ModeDir | 0o755
	}
	return 0o640
}

func (m *memFS) Stat(p string) (fs.FileInfo, error) {
	fi, err := m.fs.Stat(m.abs(p))
	if err != nil {
		return nil, err
	}
	return memInfo{fi}, nil
}

func (m *memFS) Lstat(p string) (fs.FileInfo, error) { return m.Stat(p) }

func (m *memFS) ReadDir(p string) ([]fs.DirEntry, error) {
	names, err := m.fs.List(m.abs(p))
	if err != nil {
		return nil, err
	}
	var out []fs.DirEntry
	for _, n := range names {
		fi, err := m.Stat(path.Join(p, n))
		if err != nil {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	return out, nil
}

// exists reports whether p exists; an error if its parent does not.
func (m *memFS) mkdirCheck(p string) error {
	if _, err := m.fs.Stat(m.abs(p)); err == nil {
		return &os.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
	}
	fi, err := m.fs.Stat(m.abs(path.Dir(p)))
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: p, Err: fs.ErrNotExist}
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	return nil
}

func (m *memFS) Mkdir(p string, perm os.FileMode) error {
	if err := m.mkdirCheck(p); err != nil {
		return err
	}
	if err := m.fs.MkdirAll(m.abs(p), perm); err != nil {
		return err
	}
	m.dropDirs(p)
	return nil
}

func (m *memFS) Chmod(p string, perm os.FileMode) error {
	_, err := m.fs.Stat(m.abs(p))
	return err
}

func (m *memFS) Remove(p string) error {
	m.crashPoint()
	if err := m.fs.Remove(m.abs(p)); err != nil {
		return err
	}
	m.dropDirs(p)
	return nil
}

func (m *memFS) RemoveAll(p string) error {
	m.crashPoint()
	if err := m.fs.RemoveAll(m.abs(p)); err != nil {
		return err
	}
	m.dropDirs(p)
	return nil
}

func (m *memFS) Rename(from, to string) error {
	m.crashPoint()
	if _, err := m.fs.Stat(m.abs(path.Dir(to))); err != nil {
		return err // MemFS would lose the file
	}
	return m.fs.Rename(m.abs(from), m.abs(to))
}

func (m *memFS) SyncDir(p string) error {
	m.crashPoint()
	d, err := m.fs.OpenDir(m.abs(p))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return err
	}
	syncX(&m.mu, m.dirX(p))
	return nil
}

func (m *memFS) GetXattr(p, name string) ([]byte, error) {
	fi, err := m.fs.Stat(m.abs(p))
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return getX(&m.mu, m.dirX(p), name)
	}
	f, _, err := m.OpenRegular(".", p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.GetXattr(name)
}

func (m *memFS) SetXattr(p, name string, b []byte) error {
	fi, err := m.fs.Stat(m.abs(p))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("memfs: SetXattr by path on a file")
	}
	setX(&m.mu, m.dirX(p), name, b)
	return nil
}

func (m *memFS) Create(p string, perm os.FileMode) (file, error) {
	if err := m.mkdirCheck(p); err != nil {
		return nil, err
	}
	vf, err := m.fs.Create(m.abs(p), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.next++
	ino := m.next
	m.mu.Unlock()
	var h [memHdr]byte
	copy(h[:], memMagic[:])
	binary.LittleEndian.PutUint64(h[8:], ino)
	if _, err := vf.WriteAt(h[:], 0); err != nil {
		vf.Close()
		m.fs.Remove(m.abs(p))
		return nil, err
	}
	return &memFile{m: m, vf: vf, name: p, ino: ino, x: m.fileX(ino)}, nil
}

func (m *memFS) OpenRegular(dir, rel string) (file, fs.FileInfo, error) {
	p := path.Join(dir, rel)
	fi, err := m.fs.Stat(m.abs(p))
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		return nil, nil, errNotFile
	}
	vf, err := m.fs.Open(m.abs(p))
	if err != nil {
		return nil, nil, err
	}
	f := &memFile{m: m, vf: vf, name: p}
	var h [memHdr]byte
	if n, _ := vf.ReadAt(h[:], 0); n == memHdr && [8]byte(h[:8]) == memMagic {
		f.ino = binary.LittleEndian.Uint64(h[8:])
		f.x = m.fileX(f.ino)
	} else {
		f.x = &memXattrs{cur: map[string][]byte{}, synced: map[string][]byte{}} // its header was lost: no xattrs
	}
	return f, memInfo{fi}, nil
}

func (m *memFS) openDir(p string) (dirFile, error) {
	fi, err := m.fs.Stat(m.abs(p))
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.ENOTDIR}
	}
	return &memDir{m: m, name: path.Clean(p)}, nil
}

func (m *memFS) OpenDir(dir, rel string) (dirFile, error) { return m.openDir(path.Join(dir, rel)) }

func (m *memFS) MkdirAll(dir, rel string) (dirFile, error) {
	cur := path.Clean(dir)
	if _, err := m.openDir(cur); err != nil {
		return nil, err
	}
	if rel != "" && rel != "." {
		for _, c := range strings.Split(rel, "/") {
			next := path.Join(cur, c)
			fi, err := m.fs.Stat(m.abs(next))
			switch {
			case err == nil && !fi.IsDir():
				return nil, &os.PathError{Op: "mkdir", Path: next, Err: syscall.ENOTDIR}
			case err != nil:
				if err := m.Mkdir(next, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
					return nil, err
				}
				if err := m.SyncDir(cur); err != nil {
					return nil, err
				}
			}
			cur = next
		}
	}
	return m.openDir(cur)
}

func (m *memFS) RenameInto(from string, parent dirFile, name string) error {
	to := path.Join(parent.(*memDir).name, name)
	if fi, err := m.fs.Stat(m.abs(to)); err == nil && fi.IsDir() {
		return &os.PathError{Op: "rename", Path: to, Err: syscall.EISDIR}
	}
	return m.Rename(from, to)
}

// memFile is an open file of memFS.
type memFile struct {
	m    *memFS
	vf   vfs.File
	name string
	ino  uint64 // 0: the header was lost
	x    *memXattrs
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) { return f.vf.ReadAt(p, off+memHdr) }
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	// A copy: pebble's MemFS scribbles over p when built with invariants
	// (as under -race), and io.WriterAt's callers keep theirs.
	return f.vf.WriteAt(bytes.Clone(p), off+memHdr)
}
func (f *memFile) Name() string { return f.name }

func (f *memFile) Stat() (fs.FileInfo, error) {
	fi, err := f.vf.Stat()
	if err != nil {
		return nil, err
	}
	return memInfo{fi}, nil
}

func (f *memFile) Sync() error {
	f.m.crashPoint()
	if err := f.vf.Sync(); err != nil {
		return err
	}
	syncX(&f.m.mu, f.x)
	return nil
}

func (f *memFile) Chmod(perm os.FileMode) error         { return nil }
func (f *memFile) GetXattr(name string) ([]byte, error) { return getX(&f.m.mu, f.x, name) }
func (f *memFile) SetXattr(name string, b []byte) error {
	setX(&f.m.mu, f.x, name, b)
	return nil
}
func (f *memFile) Unlinked() bool { return false }
func (f *memFile) Close() error   { return f.vf.Close() }

// memDir is an open directory of memFS.
type memDir struct {
	m    *memFS
	name string
}

func (d *memDir) ReadAt([]byte, int64) (int, error)  { return 0, syscall.EISDIR }
func (d *memDir) WriteAt([]byte, int64) (int, error) { return 0, syscall.EISDIR }
func (d *memDir) Name() string                       { return d.name }
func (d *memDir) Stat() (fs.FileInfo, error)         { return d.m.Stat(d.name) }
func (d *memDir) Sync() error                        { return d.m.SyncDir(d.name) }
func (d *memDir) Chmod(os.FileMode) error            { return nil }
func (d *memDir) Close() error                       { return nil }
func (d *memDir) GetXattr(name string) ([]byte, error) {
	return getX(&d.m.mu, d.m.dirX(d.name), name)
}
func (d *memDir) SetXattr(name string, b []byte) error {
	setX(&d.m.mu, d.m.dirX(d.name), name, b)
	return nil
}

func (d *memDir) RemoveXattr(name string) error {
	x := d.m.dirX(d.name)
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if _, ok := x.cur[name]; !ok {
		return syscall.ENODATA
	}
	delete(x.cur, name)
	return nil
}

func (d *memDir) Unlinked() bool {
	_, err := d.m.fs.Stat(d.m.abs(d.name))
	return err != nil
}

func (d *memDir) Names() ([]string, error) { return d.m.fs.List(d.m.abs(d.name)) }

func (d *memDir) Type(name string) (fs.FileMode, error) {
	fi, err := d.m.fs.Stat(d.m.abs(path.Join(d.name, name)))
	if err != nil {
		return 0, err
	}
	if fi.IsDir() {
		return fs.ModeDir, nil
	}
	return 0, nil
}

func (d *memDir) OpenDir(name string) (dirFile, error) { return d.m.openDir(path.Join(d.name, name)) }

func (d *memDir) Rmdir(name string) error {
	p := path.Join(d.name, name)
	names, err := d.m.fs.List(d.m.abs(p))
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return &os.PathError{Op: "rmdir", Path: p, Err: syscall.ENOTEMPTY}
	}
	return d.m.Remove(p)
}

func (d *memDir) Unlink(name string) error {
	p := path.Join(d.name, name)
	fi, err := d.m.fs.Stat(d.m.abs(p))
	if err != nil {
		return &os.PathError{Op: "unlink", Path: p, Err: syscall.ENOENT}
	}
	if fi.IsDir() {
		return &os.PathError{Op: "unlink", Path: p, Err: syscall.EISDIR}
	}
	return d.m.Remove(p)
}

// memData carries objects' bytes the way the burst buffer does: apart
// from the namespace (in bbDir, a file per inode), durable at Sync.
type memData struct{}

func (memData) Check(file) error { return nil }

func bbPath(ino uint64) string { return fmt.Sprintf("%s/%d", bbDir, ino) }

func (memData) WriteAt(_ context.Context, f file, p []byte, off int64) error {
	mf := f.(*memFile)
	m := mf.m
	m.mu.Lock()
	vf := m.bb[mf.ino]
	m.mu.Unlock()
	if vf == nil {
		var err error
		if vf, err = m.fs.Create(bbPath(mf.ino), vfs.WriteCategoryUnspecified); err != nil {
			return err
		}
		m.mu.Lock()
		m.bb[mf.ino] = vf
		m.mu.Unlock()
	}
	_, err := vf.WriteAt(bytes.Clone(p), off) // see memFile.WriteAt
	return err
}

func (memData) ReadAt(_ context.Context, f file, p []byte, off int64) (int, error) {
	mf := f.(*memFile)
	vf, err := mf.m.fs.Open(bbPath(mf.ino))
	if err != nil {
		return 0, io.EOF // no bytes
	}
	defer vf.Close()
	return vf.ReadAt(p, off)
}

func (memData) Size(f file, _ int64) int64 {
	mf := f.(*memFile)
	fi, err := mf.m.fs.Stat(bbPath(mf.ino))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Sync makes the bytes written durable, not the file's metadata.
func (memData) Sync(_ context.Context, f file) error {
	mf := f.(*memFile)
	m := mf.m
	m.crashPoint()
	m.mu.Lock()
	vf := m.bb[mf.ino]
	m.mu.Unlock()
	if vf == nil {
		return nil // no bytes
	}
	if err := vf.Sync(); err != nil {
		return err
	}
	d, err := m.fs.OpenDir(bbDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openMemStore opens a store on m for node "local".
func openMemStore(m *memFS, now func() time.Time) (*store, error) {
	return openStoreFS(m, "memfs", defaultNodeID, 24*time.Hour, memData{}, &groupSync{stop: make(chan struct{})}, now)
}
