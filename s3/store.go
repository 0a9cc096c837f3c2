package s3

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"engine/burstbuffer"
)

// The namespace on disk:
//
//	ROOT/BUCKET/KEY             an object: a file (its metadata in the user.engine.s3 xattr), mode 0640
//	ROOT/BUCKET/PREFIX/         a directory object ("KEY/" put with no body): a directory with the xattr
//	ROOT/.engine-s3/tmp/NODE/   objects being uploaded by node NODE (0600), renamed into place when complete
//	ROOT/.engine-s3/uploads/    multipart uploads: UPLOADID/{upload.json,PART} (0600)
//
// Bucket names cannot begin with '.', so .engine-s3 is no bucket. Its
// directories are 0700: the mount's users have no business there.
const (
	internalDir  = ".engine-s3"
	metaXattr    = "user.engine.s3"
	bucketXattr  = "user.engine.s3.bucket"
	ioChunk      = 1 << 20
	emptyMD5     = "d41d8cd98f00b204e9800998ecf8427e"
	dirObjSuffix = "/"

	objectMode   = 0o640 // an object's file: the owner writes, its group reads
	privateMode  = 0o600 // temporary files, parts, upload records
	internalMode = 0o700 // the directories of .engine-s3
)

// objectMeta is what an object carries besides its bytes.
type objectMeta struct {
	ETag        string            `json:"etag"`         // hex MD5, or hex-N for a multipart object
	ContentType string            `json:"ct,omitempty"` // as given on upload
	Headers     map[string]string `json:"h,omitempty"`  // Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires
	User        map[string]string `json:"u,omitempty"`  // x-amz-meta-NAME (NAME lowercase) → value
	Checksums   map[string]string `json:"ck,omitempty"` // CRC32, CRC32C, SHA256… → base64, as uploaded
	Parts       []int64           `json:"p,omitempty"`  // part sizes of a multipart object
	// Size and MTime stamp the file as it was when the metadata was
	// written. Src "s3": written by this server with the object; the
	// mount drops the xattr when it writes the file, so it holds while
	// the size matches (a drain changes the mtime for a moment). Else the
	// ETag was computed from a file written through the mount, and holds
	// while size and mtime match.
	Size  int64  `json:"s"`
	MTime int64  `json:"mt"`
	Src   string `json:"src,omitempty"`
}

// fresh reports whether m still describes a file of size bytes and
// modification time mtime.
func (m *objectMeta) fresh(size int64, mtime time.Time) bool {
	return m.ETag != "" && m.Size == size && (m.Src == "s3" || m.MTime == mtime.UnixNano())
}

// bucketMeta is a bucket's own metadata.
type bucketMeta struct {
	Created    int64 `json:"c"`
	PublicRead bool  `json:"pr,omitempty"`
}

type store struct {
	fs      fileSys    // the namespace: paths below are relative to its root
	data    objectData // the objects' bytes
	tmps    string     // .engine-s3/tmp: every node's temporary directory
	tmp     string     // this node's: tmps/NODE
	uploads string
	now     func() time.Time
	syncs   *groupSync // data and directory syncs, shared by concurrent commits

	stopOnce sync.Once

	// tempMaxAge: a temporary file older than this is an upload that
	// died with its node (a crash, a stop), removed by sweepTemp.
	tempMaxAge time.Duration
	nextSweep  atomic.Int64 // UnixNano after which newUpload sweeps again

	bucketMu sync.Mutex // create/delete of buckets
	// dirObjMu: putDirObject holds it shared, deleteBucket exclusive (a
	// directory object is an empty directory that rmdir would remove).
	dirObjMu sync.RWMutex
}

// openStore opens the namespace at root; this node's temporary files go
// to .engine-s3/tmp/NODE. The bytes of objects go through data.
func openStore(root, node string, tempMaxAge time.Duration, data burstbuffer.Data, now func() time.Time) (*store, error) {
	syncs := &groupSync{stop: make(chan struct{})}
	return openStoreFS(nsFS{root: root}, root, node, tempMaxAge, bbData{data: data, syncs: syncs}, syncs, now)
}

// openStoreFS opens the store on the file system fsys (rootName names its
// root in messages).
func openStoreFS(fsys fileSys, rootName, node string, tempMaxAge time.Duration, data objectData, syncs *groupSync, now func() time.Time) (*store, error) {
	fi, err := fsys.Stat(".")
	if err != nil {
		return nil, fmt.Errorf("s3: namespace root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("s3: namespace root %s is not a directory", rootName)
	}
	tmps := internalDir + "/tmp"
	st := &store{fs: fsys, tmps: tmps, tmp: tmps + "/" + node,
		uploads: internalDir + "/uploads", data: data, now: now, syncs: syncs,
		tempMaxAge: tempMaxAge}
	made := false
	for _, d := range []string{internalDir, tmps, st.tmp, st.uploads} {
		err := fsys.Mkdir(d, internalMode)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("s3: %w", err)
		}
		made = made || err == nil
		// Made 0755 by earlier versions: close them to the mount's users.
		if err := fsys.Chmod(d, internalMode); err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
	}
	if made {
		// The multipart uploads live here: their directory must not
		// vanish in a power cut.
		for _, d := range []string{".", internalDir, tmps} {
			if err := fsys.SyncDir(d); err != nil {
				return nil, fmt.Errorf("s3: %w", err)
			}
		}
	}
	st.sweepTemp()
	return st, nil
}

// sweepTemp removes the temporary files of uploads that died (a crash, a
// stop) from every node's temporary directory: those older than
// tempMaxAge. A younger file may be an upload some node is still
// writing, so it stays, whoever's it is. It runs when the store opens and
// then at most every tempMaxAge/4, from newUpload.
func (st *store) sweepTemp() {
	now := st.now()
	st.nextSweep.Store(now.Add(st.tempMaxAge / 4).UnixNano())
	old := func(e fs.DirEntry) bool {
		fi, err := e.Info()
		return err == nil && now.Sub(fi.ModTime()) > st.tempMaxAge
	}
	ents, _ := st.fs.ReadDir(st.tmps)
	for _, e := range ents {
		p := st.tmps + "/" + e.Name()
		if !e.IsDir() {
			// A file of the single-directory layout of earlier versions.
			if old(e) {
				st.fs.Remove(p)
			}
			continue
		}
		files, _ := st.fs.ReadDir(p)
		for _, f := range files {
			if !f.IsDir() && old(f) {
				st.fs.Remove(p + "/" + f.Name())
			}
		}
		if p != st.tmp && len(files) == 0 && old(e) {
			st.fs.Remove(p) // a node that is gone; only if still empty
		}
	}
}

// close makes commits still waiting for a sync fail.
func (st *store) close() {
	st.stopOnce.Do(func() { close(st.syncs.stop) })
}

// storeError maps a file system error to an S3 error.
func storeError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errorf("InternalError", "the namespace is out of space: %v", err)
	case errors.Is(err, context.Canceled):
		return errorf("IncompleteBody", "the request ended early: %v", err)
	}
	return errorf("InternalError", "%v", err)
}

func (st *store) bucketDir(bucket string) string { return bucket }

// checkBucket returns the bucket's directory, or NoSuchBucket. The
// bucket must be a directory itself, not a symlink to one.
func (st *store) checkBucket(bucket string) (string, error) {
	noBucket := &Error{Code: "NoSuchBucket", Status: 404, Message: fmt.Sprintf("bucket %q does not exist", bucket), Resource: "/" + bucket}
	if bucket == "" || strings.HasPrefix(bucket, ".") || strings.ContainsAny(bucket, "/\x00") {
		return "", noBucket
	}
	dir := st.bucketDir(bucket)
	fi, err := st.fs.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return "", noBucket
	}
	return dir, nil
}

func (st *store) bucketMeta(bucket string) (bucketMeta, time.Time) {
	dir := st.bucketDir(bucket)
	var m bucketMeta
	if b, err := st.fs.GetXattr(dir, bucketXattr); err == nil {
		json.Unmarshal(b, &m)
	}
	if m.Created != 0 {
		return m, time.Unix(0, m.Created)
	}
	fi, err := st.fs.Stat(dir)
	if err != nil {
		return m, time.Time{}
	}
	return m, fi.ModTime()
}

func (st *store) bucketPublic(bucket string) bool {
	if _, err := st.checkBucket(bucket); err != nil {
		return false
	}
	m, _ := st.bucketMeta(bucket)
	return m.PublicRead
}

// createBucket makes bucket's directory.
func (st *store) createBucket(bucket string, public bool) error {
	if err := checkBucketName(bucket); err != nil {
		return err
	}
	st.bucketMu.Lock()
	defer st.bucketMu.Unlock()
	dir := st.bucketDir(bucket)
	if err := st.fs.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errorf("BucketAlreadyOwnedByYou", "bucket %q exists already and is yours", bucket)
		}
		return err
	}
	b, _ := json.Marshal(bucketMeta{Created: st.now().UnixNano(), PublicRead: public})
	if err := st.fs.SetXattr(dir, bucketXattr, b); err != nil {
		st.fs.Remove(dir)
		return fmt.Errorf("s3: bucket metadata (the namespace must support user xattrs): %w", err)
	}
	// The bucket's metadata (its own fsync), then its name.
	if err := st.fs.SyncDir(dir); err != nil {
		return err
	}
	return st.fs.SyncDir(".")
}

func (st *store) setBucketPublic(bucket string, public bool) error {
	if _, err := st.checkBucket(bucket); err != nil {
		return err
	}
	m, created := st.bucketMeta(bucket)
	m.PublicRead = public
	if m.Created == 0 {
		m.Created = created.UnixNano()
	}
	b, _ := json.Marshal(m)
	if err := st.fs.SetXattr(st.bucketDir(bucket), bucketXattr, b); err != nil {
		return err
	}
	return st.fs.SyncDir(st.bucketDir(bucket))
}

// deleteBucket removes an empty bucket. Empty directories left in it are
// not objects and go with it, bottom-up, each by rmdir: a directory that
// is not empty (an object renamed into it meanwhile) stays, and so does
// the bucket (BucketNotEmpty). No file is ever removed, so an object
// whose PUT was answered is never lost to a concurrent DeleteBucket.
func (st *store) deleteBucket(bucket string) error {
	dir, err := st.checkBucket(bucket)
	if err != nil {
		return err
	}
	st.bucketMu.Lock()
	defer st.bucketMu.Unlock()
	st.dirObjMu.Lock() // no directory object made while the directories go
	defer st.dirObjMu.Unlock()
	notEmpty := errorf("BucketNotEmpty", "bucket %q is not empty: delete its objects first", bucket)
	// Looked at first, so that a bucket with objects keeps its empty
	// directories too.
	has, err := st.hasObject(dir)
	if err != nil {
		return err
	}
	if has {
		return notEmpty
	}
	d, err := st.fs.OpenDir(".", bucket)
	if err != nil {
		return err
	}
	err = removeEmptyDirs(d, "", bucket)
	d.Close()
	if err != nil {
		return err
	}
	r, err := st.fs.OpenDir(".", ".")
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Rmdir(bucket); err != nil {
		switch {
		case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
			return notEmpty
		case errors.Is(err, unix.ENOENT):
			return &Error{Code: "NoSuchBucket", Status: 404, Message: fmt.Sprintf("bucket %q does not exist", bucket), Resource: "/" + bucket}
		}
		return err
	}
	for _, u := range st.uploadsOf(bucket) {
		st.fs.RemoveAll(st.uploads + "/" + u)
	}
	return r.Sync()
}

// removeEmptyDirs removes the directories under d (a directory of the
// bucket's, at rel below it, open for reading) bottom-up, each by rmdir.
// It stops with BucketNotEmpty at a file, a directory object or a
// directory that is not empty when removed; what is no object (a symlink,
// a FIFO made through the mount) is not removed either: the error names
// it.
func removeEmptyDirs(d dirFile, rel, bucket string) error {
	names, err := d.Names()
	if err != nil {
		return err
	}
	notEmpty := errorf("BucketNotEmpty", "bucket %q is not empty: delete its objects first", bucket)
	for _, name := range names {
		typ, err := d.Type(name)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		switch {
		case typ.IsDir():
		case typ.IsRegular():
			return notEmpty
		default:
			return errorf("BucketNotEmpty", "bucket %q holds %q, which is no object (a symbolic link, FIFO or device made through the mount): remove it through the mount first",
				bucket, path.Join(rel, name))
		}
		sub, err := d.OpenDir(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return notEmpty // replaced meanwhile
		}
		if _, err := sub.GetXattr(metaXattr); err == nil {
			sub.Close()
			return notEmpty // a directory object
		}
		err = removeEmptyDirs(sub, path.Join(rel, name), bucket)
		sub.Close()
		if err != nil {
			return err
		}
		switch err := d.Rmdir(name); {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
			return notEmpty
		default:
			return err
		}
	}
	return nil
}

// hasObject reports whether dir holds a regular file or a directory
// object anywhere below it (what a listing would show).
func (st *store) hasObject(dir string) (bool, error) {
	ents, err := st.fs.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		p := dir + "/" + e.Name()
		if e.Type().IsRegular() {
			return true, nil
		}
		if !e.IsDir() {
			continue // symlinks, devices…: not objects
		}
		if st.isDirObject(p) {
			return true, nil
		}
		if ok, err := st.hasObject(p); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (st *store) isDirObject(dir string) bool {
	_, err := st.fs.GetXattr(dir, metaXattr)
	return err == nil
}

// listBuckets returns the top-level directories whose names are bucket
// names, sorted.
func (st *store) listBuckets() ([]string, error) {
	ents, err := st.fs.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && checkBucketName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// upload is an object being written: a temporary file in .engine-s3/tmp
// whose bytes go through the burst buffer, renamed into place by commit.
type upload struct {
	ctx  context.Context // the request's
	st   *store
	f    file
	name string // f's path
	size int64
	md5  hash.Hash
	done bool
}

// newUpload creates an upload: a file of this node's temporary
// directory, 0600 until it becomes an object. ctx is the request's.
func (st *store) newUpload(ctx context.Context) (*upload, error) {
	if st.now().UnixNano() > st.nextSweep.Load() {
		st.sweepTemp()
	}
	var b [12]byte
	rand.Read(b[:])
	name := st.tmp + "/" + hex.EncodeToString(b[:])
	f, err := st.fs.Create(name, privateMode)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed under us (by hand, or as empty by an old sweeper).
		if err = st.fs.Mkdir(st.tmp, internalMode); err == nil || errors.Is(err, fs.ErrExist) {
			f, err = st.fs.Create(name, privateMode)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := st.data.Check(f); err != nil {
		f.Close()
		st.fs.Remove(name)
		return nil, err
	}
	return &upload{ctx: ctx, st: st, f: f, name: name, md5: md5.New()}, nil
}

// Write appends p.
func (u *upload) Write(p []byte) (int, error) {
	if err := u.st.data.WriteAt(u.ctx, u.f, p, u.size); err != nil {
		return 0, err
	}
	u.md5.Write(p)
	u.size += int64(len(p))
	return len(p), nil
}

// copyFrom appends everything r gives, in chunks of ioChunk, also into
// the extra hashes.
func (u *upload) copyFrom(r io.Reader, extra ...hash.Hash) error {
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	for {
		n, err := io.ReadFull(r, *buf)
		if n > 0 {
			if _, werr := u.Write((*buf)[:n]); werr != nil {
				return werr
			}
			for _, h := range extra {
				h.Write((*buf)[:n])
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, ioChunk); return &b }}

// abort drops the upload: the file is removed, so its buffered bytes are
// dropped too.
func (u *upload) abort() {
	if u.done {
		return
	}
	u.done = true
	u.f.Close()
	u.st.fs.Remove(u.name)
}

// commit makes the upload durable (its bytes on k+m shards, its metadata
// and name on the backing file system) and renames it to rel under the
// bucket directory dir, replacing what was there atomically: a reader sees
// the old object or the new one.
//
// Three flushes, two of them at once: the bytes' (the burst buffer's shard
// syncs) and the temp file's metadata (its fsync) while nobody can see it
// yet, then the name's (the directory's fsync after the rename). The rename
// comes only after both, so a crash never leaves a name pointing at bytes
// or metadata that were not durable.
func (u *upload) commit(ctx context.Context, dir, rel string, meta *objectMeta) error {
	defer u.abort()
	fi, err := u.f.Stat()
	if err != nil {
		return err
	}
	meta.Size, meta.MTime, meta.Src = u.size, fi.ModTime().UnixNano(), "s3"
	if meta.ETag == "" {
		meta.ETag = hex.EncodeToString(u.md5.Sum(nil))
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if err := u.f.SetXattr(metaXattr, b); err != nil {
		return fmt.Errorf("s3: object metadata (the namespace must support user xattrs): %w", err)
	}
	if err := u.f.Chmod(objectMode); err != nil {
		return err
	}
	synced := make(chan error, 1)
	go func() { synced <- u.f.Sync() }()
	err = u.st.data.Sync(ctx, u.f)
	if serr := <-synced; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	parentRel, base := splitRel(rel)
	parent, err := u.st.fs.MkdirAll(dir, parentRel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bucketGone(dir)
		}
		return keyConflict(err)
	}
	defer parent.Close()
	if err := u.st.fs.RenameInto(u.name, parent, base); err != nil {
		switch {
		case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
			return errorf("InvalidRequest", "the key names a directory of the namespace (other keys begin with it and a slash): delete those first")
		case errors.Is(err, syscall.ENOENT):
			if u.f.Unlinked() {
				return fmt.Errorf("s3: the temporary file %s of this upload was removed while it was written", u.f.Name())
			}
			// The directory was removed meanwhile (the bucket deleted):
			// the object was not stored.
			return bucketGone(dir)
		}
		return err
	}
	u.done = true // renamed: nothing to remove any more
	u.f.Close()
	// By path: the shared fsync may outlive this commit's descriptor.
	pdir := path.Join(dir, parentRel)
	return u.st.syncs.do(ctx, pdir, func() error { return u.st.fs.SyncDir(pdir) })
}

// bucketGone is the error of a write whose bucket directory dir (or a
// directory in it) was removed while it was being written.
func bucketGone(dir string) error {
	b := path.Base(dir)
	return &Error{Code: "NoSuchBucket", Status: 404, Resource: "/" + b,
		Message: fmt.Sprintf("bucket %q was deleted while the object was being written: it was not stored", b)}
}

func keyConflict(err error) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, fs.ErrExist):
		return errorf("InvalidRequest", "a part of the key before a slash is an object already: in this namespace (a file system) an object cannot also be a prefix of other keys")
	case errors.Is(err, errSymlink):
		return errorf("InvalidRequest", "a part of the key is a symbolic link in the namespace: objects are not written through links")
	}
	return err
}

// object is an open object: its file, metadata and logical size.
type object struct {
	f       file
	size    int64
	mtime   time.Time
	meta    objectMeta
	dirObj  bool
	dataSrc objectData
}

func (o *object) Close() error {
	if o.f != nil {
		return o.f.Close()
	}
	return nil
}

// openObject opens bucket/key for reading: NoSuchKey if there is none.
func (st *store) openObject(ctx context.Context, bucket, key string) (*object, error) {
	dir, err := st.checkBucket(bucket)
	if err != nil {
		return nil, err
	}
	noKey := noSuchKey(bucket, key)
	rel, err := keyPath(key)
	if err != nil {
		return nil, err // no object can have this key: say why
	}
	if strings.HasSuffix(key, dirObjSuffix) {
		d, err := st.fs.OpenDir(dir, rel)
		if err != nil {
			return nil, noKey
		}
		defer d.Close()
		b, err := d.GetXattr(metaXattr)
		if err != nil {
			return nil, noKey
		}
		fi, err := d.Stat()
		if err != nil {
			return nil, err
		}
		o := &object{dirObj: true, mtime: fi.ModTime(), dataSrc: st.data}
		json.Unmarshal(b, &o.meta)
		o.meta.ETag = emptyMD5
		return o, nil
	}
	o, err := st.openFile(ctx, dir, rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errNotFile) || errors.Is(err, errSymlink) {
		return nil, noKey
	}
	return o, err
}

var errNotFile = errors.New("s3: not a regular file")

// openFile opens the object file rel under the bucket directory dir,
// with its metadata.
func (st *store) openFile(ctx context.Context, dir, rel string) (*object, error) {
	o, fi, err := st.openRaw(dir, rel)
	if err != nil {
		return nil, err
	}
	if b, err := o.f.GetXattr(metaXattr); err == nil {
		json.Unmarshal(b, &o.meta)
	}
	if !o.meta.fresh(o.size, fi.ModTime()) {
		// Written or changed through the mount: its MD5 is computed now
		// and kept until the file changes again.
		if err := st.refreshETag(ctx, o, fi); err != nil {
			o.Close()
			return nil, err
		}
	}
	return o, nil
}

// openRaw opens the file rel under dir for reading its bytes.
func (st *store) openRaw(dir, rel string) (*object, os.FileInfo, error) {
	f, fi, err := st.fs.OpenRegular(dir, rel)
	if err != nil {
		return nil, nil, err
	}
	if err := st.data.Check(f); err != nil {
		f.Close()
		return nil, nil, err
	}
	o := &object{f: f, mtime: fi.ModTime(), dataSrc: st.data}
	o.size = st.data.Size(f, fi.Size())
	return o, fi, nil
}

// openRegular opens rel under dir for reading if it is a regular file,
// else fails with errNotFile. It opens nothing else, not even for a
// moment: rel is opened O_PATH (which waits on no FIFO and opens no
// device), checked with fstat, and only a regular file is then reopened
// for reading through that descriptor. (A FIFO opened for reading would
// block the request, and Close with it, until a writer came.)
func openRegular(dir, rel string) (*os.File, os.FileInfo, error) {
	p, err := openBeneath(dir, rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	var pst unix.Stat_t
	if err := unix.Fstat(int(p.Fd()), &pst); err != nil {
		return nil, nil, &os.PathError{Op: "fstat", Path: p.Name(), Err: err}
	}
	if pst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, errNotFile
	}
	f, err := reopen(p, dir, rel)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || st.Dev != pst.Dev || st.Ino != pst.Ino {
		f.Close()
		return nil, nil, errNotFile // replaced meanwhile: by something that is no object
	}
	return f, fi, nil
}

// reopen opens the file p (open O_PATH) for reading: through
// /proc/self/fd, which opens exactly p's inode; where /proc is not
// mounted, by its path again, O_NONBLOCK (openRegular checks the inode).
func reopen(p *os.File, dir, rel string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", p.Fd()), flags&^unix.O_NOFOLLOW, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", p.Fd()), flags&^unix.O_NOFOLLOW, 0)
	}
	var f *os.File
	switch {
	case err == nil:
		f = os.NewFile(uintptr(fd), p.Name())
	case errors.Is(err, unix.ENOENT):
		if f, err = openBeneath(dir, rel, flags, 0); err != nil {
			return nil, err
		}
	default:
		return nil, &os.PathError{Op: "reopen", Path: p.Name(), Err: err}
	}
	// O_NONBLOCK only guarded the open.
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func noSuchKey(bucket, key string) *Error {
	return &Error{Code: "NoSuchKey", Status: 404, Message: "the object does not exist", Resource: "/" + bucket + "/" + key}
}

// refreshETag computes o's MD5 from its bytes and stores it with the
// file's current size and mtime (a stale multipart layout is dropped).
func (st *store) refreshETag(ctx context.Context, o *object, fi os.FileInfo) error {
	h := md5.New()
	if _, err := io.Copy(h, o.reader(ctx, 0, o.size)); err != nil {
		return err
	}
	o.meta.ETag = hex.EncodeToString(h.Sum(nil))
	o.meta.Parts = nil
	o.meta.Checksums = nil
	o.meta.Size, o.meta.MTime, o.meta.Src = o.size, fi.ModTime().UnixNano(), ""
	if b, err := json.Marshal(&o.meta); err == nil {
		o.f.SetXattr(metaXattr, b) // a cache: failing to keep it costs a recomputation
	}
	return nil
}

// reader returns a reader of n bytes of o from off.
func (o *object) reader(ctx context.Context, off, n int64) io.Reader {
	return &objectReader{ctx: ctx, o: o, off: off, end: off + n}
}

type objectReader struct {
	ctx      context.Context
	o        *object
	off, end int64
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.o.dataSrc.ReadAt(r.ctx, r.o.f, p, r.off)
	r.off += int64(n)
	if n == 0 && err == nil {
		// The object ended early: it was truncated through the mount
		// while being read. Never pad with zeros.
		return 0, fmt.Errorf("s3: object shrank while being read: %w", io.ErrUnexpectedEOF)
	}
	if err == io.EOF && r.off < r.end {
		return n, fmt.Errorf("s3: object shrank while being read: %w", io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// deleteObject removes bucket/key (a missing key is no error, as in S3)
// and the empty directories above it.
func (st *store) deleteObject(bucket, key string) error {
	dir, err := st.checkBucket(bucket)
	if err != nil {
		return err
	}
	rel, err := keyPath(key)
	if err != nil {
		return err
	}
	parentRel, base := splitRel(rel)
	parent, err := st.fs.OpenDir(dir, orDot(parentRel))
	if err != nil {
		return nil // no parent, no object
	}
	defer parent.Close()
	typ, err := parent.Type(base)
	if err != nil {
		return nil
	}
	if strings.HasSuffix(key, dirObjSuffix) {
		if !typ.IsDir() {
			return nil
		}
		if d, err := parent.OpenDir(base); err == nil {
			err := d.RemoveXattr(metaXattr)
			if err == nil {
				// Durable even if the directory stays (it is not
				// empty): else the object comes back after a power cut.
				err = d.Sync()
			}
			d.Close()
			if err != nil && !errors.Is(err, unix.ENODATA) {
				return err
			}
		}
		parent.Rmdir(base) // only if empty
	} else {
		if !typ.IsRegular() {
			return nil // not an object
		}
		if err := parent.Unlink(base); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	if err := parent.Sync(); err != nil {
		return err
	}
	st.pruneEmpty(dir, parentRel)
	return nil
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// pruneEmpty removes the empty directories rel, its parent and so on up
// to (not including) the bucket directory dir, stopping at a directory
// object or a directory that is not empty.
func (st *store) pruneEmpty(dir, rel string) {
	for rel != "" {
		parentRel, base := splitRel(rel)
		parent, err := st.fs.OpenDir(dir, orDot(parentRel))
		if err != nil {
			return
		}
		d, err := parent.OpenDir(base)
		if err == nil {
			_, xerr := d.GetXattr(metaXattr)
			d.Close()
			if xerr == nil {
				parent.Close()
				return // a directory object
			}
		}
		err = parent.Rmdir(base)
		parent.Close()
		if err != nil {
			return
		}
		rel = parentRel
	}
}

// putDirObject makes the directory object bucket/key (key ends in '/').
func (st *store) putDirObject(bucket, key string, meta *objectMeta) error {
	dir, err := st.checkBucket(bucket)
	if err != nil {
		return err
	}
	rel, err := keyPath(key)
	if err != nil {
		return err
	}
	st.dirObjMu.RLock()
	defer st.dirObjMu.RUnlock()
	d, err := st.fs.MkdirAll(dir, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bucketGone(dir)
		}
		return keyConflict(err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return err
	}
	meta.ETag = emptyMD5
	meta.MTime = fi.ModTime().UnixNano()
	b, _ := json.Marshal(meta)
	if err := d.SetXattr(metaXattr, b); err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	// Removed meanwhile (the bucket deleted from another node): not
	// stored.
	if d.Unlinked() {
		return bucketGone(dir)
	}
	return nil
}

func getXattr(path, name string) ([]byte, error) {
	return readXattr(func(buf []byte) (int, error) { return unix.Getxattr(path, name, buf) })
}

func fgetXattr(f *os.File, name string) ([]byte, error) {
	return readXattr(func(buf []byte) (int, error) { return unix.Fgetxattr(int(f.Fd()), name, buf) })
}

// readXattr calls get with a buffer that grows until the value fits.
func readXattr(get func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		n, err := get(buf)
		if errors.Is(err, syscall.ERANGE) && len(buf) < 1<<20 {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// checkObject returns nil if bucket/key exists, else why not.
func (st *store) checkObject(ctx context.Context, bucket, key string) error {
	o, err := st.openObject(ctx, bucket, key)
	if err != nil {
		return err
	}
	return o.Close()
}
