package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The store on a crashable file system (memFS over vfs.NewCrashableMem),
// driven over HTTP by minio-go with seeded random sequences of PUTs,
// overwrites, DELETEs, copies and multipart uploads. Before every sync,
// rename and removal the store does (each a crash point), a crash image
// is taken (keeping none, half or all of what was not synced), a store
// is opened on it and checked against the model: every acknowledged
// operation holds (an object PUT, copied or completed is there with its
// exact bytes, ETag and metadata; one deleted is absent; an upload created
// is there with every part acknowledged; one completed or aborted is
// gone), the operation in flight is either done or not, and the listing
// shows exactly the objects that can be read, whole. Now and then the
// sequence itself goes on from a crash image, on a store reopened there.

const crashBucket = "bkt"

// crashKeys: "d/" is a directory object, over the directory of two keys.
var crashKeys = []string{"k0", "k1", "k2", "k3", "d/k4", "d/e/k5", "d/"}

// s3Ver is an object as the model knows it.
type s3Ver struct {
	data []byte
	etag string
	user string // x-amz-meta-v
}

type upModel struct {
	key   string
	user  string
	parts map[int]upPart
}

type upPart struct {
	etag string
	data []byte
}

// s3Model is what was acknowledged, and what is in flight.
type s3Model struct {
	objs map[string]*s3Ver
	ups  map[string]*upModel // created and neither completed nor aborted
	gone map[string]bool     // completed or aborted

	// In flight: the object op's key and the state it leaves (nil: a
	// delete); a part upload; a completion or abort; a creation.
	fKey      string
	fObj      *s3Ver
	fUpload   string
	fPart     int
	fPartEtag string
	fEnd      bool
	fCreate   bool
}

func (m *s3Model) clearFlight() {
	m.fKey, m.fObj, m.fUpload, m.fPart, m.fPartEtag, m.fEnd, m.fCreate = "", nil, "", 0, "", false, false
}

type crashRun struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	m     *memFS
	model *s3Model
	cpMu  sync.Mutex // crash points come from several goroutines of a commit
	op    string     // the op in flight, for messages
	err   error      // the first violation a crash point found
	// counts
	points, restarts, ops int
	every                 int // check every every-th crash point
}

func md5Hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// check opens a store on the crash image c and checks the model.
func (r *crashRun) check(c *memFS, when string) error {
	st, err := openMemStore(c, time.Now)
	if err != nil {
		return fmt.Errorf("%s: the store does not open on the crash image: %v", when, err)
	}
	defer st.close()
	ctx := context.Background()
	m := r.model
	present := map[string]*s3Ver{}
	keys := append([]string(nil), crashKeys...)
	if m.fKey != "" && !slices.Contains(keys, m.fKey) {
		keys = append(keys, m.fKey)
	}
	for k := range m.objs {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		allowed := []*s3Ver{m.objs[k]}
		if m.fKey == k {
			allowed = append(allowed, m.fObj)
		}
		var got *s3Ver
		o, err := st.openObject(ctx, crashBucket, k)
		if err == nil {
			b, rerr := io.ReadAll(o.reader(ctx, 0, o.size))
			got = &s3Ver{data: b, etag: o.meta.ETag, user: o.meta.User["v"]}
			o.Close()
			if rerr != nil {
				return fmt.Errorf("%s: key %s: reading: %v", when, k, rerr)
			}
			present[k] = got
		} else if e, ok := err.(*Error); !ok || e.Code != "NoSuchKey" {
			return fmt.Errorf("%s: key %s: %v", when, k, err)
		}
		ok := false
		for _, a := range allowed {
			if a == nil && got == nil || a != nil && got != nil && bytes.Equal(a.data, got.data) && a.etag == got.etag && a.user == got.user {
				ok = true
			}
		}
		if !ok {
			desc := func(v *s3Ver) string {
				if v == nil {
					return "absent"
				}
				return fmt.Sprintf("%d bytes, ETag %s, meta %q", len(v.data), v.etag, v.user)
			}
			var want []string
			for _, a := range allowed {
				want = append(want, desc(a))
			}
			return fmt.Errorf("%s: key %s is %s; acknowledged (or in flight): %s", when, k, desc(got), strings.Join(want, " or "))
		}
	}
	if _, err := st.checkBucket(crashBucket); err != nil {
		return fmt.Errorf("%s: the bucket: %v", when, err)
	}
	if bm, _ := st.bucketMeta(crashBucket); bm.Created == 0 {
		return fmt.Errorf("%s: the bucket's metadata was lost", when)
	}
	l, err := st.list(ctx, crashBucket, "", "", "", 1000)
	if err != nil {
		return fmt.Errorf("%s: listing: %v", when, err)
	}
	listed := map[string]bool{}
	for _, e := range l.Objects {
		listed[e.Key] = true
		v := present[e.Key]
		if v == nil {
			return fmt.Errorf("%s: the listing shows %s, which cannot be read", when, e.Key)
		}
		if e.Size != int64(len(v.data)) || e.ETag != v.etag {
			return fmt.Errorf("%s: the listing shows %s with %d bytes, ETag %s; it reads %d bytes, ETag %s", when, e.Key, e.Size, e.ETag, len(v.data), v.etag)
		}
	}
	for k := range present {
		if !listed[k] {
			return fmt.Errorf("%s: %s can be read but is not listed", when, k)
		}
	}
	ids := map[string]bool{}
	for _, id := range st.uploadsOf(crashBucket) {
		ids[id] = true
		if m.ups[id] == nil && !m.fCreate && !(m.fEnd && m.fUpload == id) {
			if m.gone[id] {
				return fmt.Errorf("%s: upload %s is listed after it was completed or aborted", when, id)
			}
			return fmt.Errorf("%s: an unknown upload %s is listed", when, id)
		}
	}
	for id, u := range m.ups {
		if m.fEnd && m.fUpload == id {
			continue
		}
		if !ids[id] {
			return fmt.Errorf("%s: the acknowledged upload %s (of %s) is gone", when, id, u.key)
		}
		ps, err := st.parts(st.uploads + "/" + id)
		if err != nil {
			return fmt.Errorf("%s: upload %s: parts: %v", when, id, err)
		}
		have := map[int]string{}
		for _, p := range ps {
			have[p.Number] = p.ETag
		}
		for n, p := range u.parts {
			if have[n] != p.etag && !(m.fUpload == id && m.fPart == n && have[n] == m.fPartEtag) {
				return fmt.Errorf("%s: upload %s part %d has ETag %q, acknowledged %q", when, id, n, have[n], p.etag)
			}
		}
	}
	return nil
}

// crashPoint is memFS.onSync: a crash image now, checked.
func (r *crashRun) crashPoint() {
	r.cpMu.Lock()
	defer r.cpMu.Unlock()
	r.points++
	if r.err != nil || r.points%r.every != 0 {
		return
	}
	pct := []int{0, 50, 100}[r.points%3]
	cfg := vfs.CrashCloneCfg{}
	if pct > 0 {
		cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(r.seed, uint64(r.points)))}
	}
	c := r.m.crashClone(cfg)
	if err := r.check(c, fmt.Sprintf("seed %d, crash point %d (%d%% of unsynced state kept), during %s", r.seed, r.points, pct, r.op)); err != nil {
		r.err = err
	}
}

// memServer serves S3 over a store on m.
type memServer struct {
	s    *Server
	done chan error
	c    *minio.Client
	core minio.Core
}

func startMemServer(t *testing.T, m *memFS) *memServer {
	t.Helper()
	st, err := openMemStore(m, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: "memfs", Creds: Credentials{testAK: testSK}, Now: time.Now, Log: slog.New(slog.DiscardHandler),
		NodeID: defaultNodeID, TempMaxAge: 24 * time.Hour}
	s := newServerOn(cfg, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := &memServer{s: s, done: make(chan error, 1)}
	go func() { ms.done <- s.Serve(ln) }()
	c, err := minio.New(ln.Addr().String(), &minio.Options{Creds: credentials.NewStaticV4(testAK, testSK, ""),
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ms.c, ms.core = c, minio.Core{Client: c}
	return ms
}

func (ms *memServer) stop(t *testing.T) {
	ms.s.Close()
	if err := <-ms.done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestCrashConsistency: see the top of this file. ENGINE_LONG=1 runs more
// seeds and longer sequences.
func TestCrashConsistency(t *testing.T) {
	seeds, ops, every := 12, 60, 1
	if os.Getenv("ENGINE_LONG") == "1" {
		seeds, ops = 150, 150
	}
	var points, checked, restarts, total int
	for seed := range seeds {
		r := &crashRun{t: t, seed: uint64(seed), rng: rand.New(rand.NewPCG(uint64(seed), 14)), every: every}
		r.run(ops)
		points += r.points
		checked += r.points / r.every
		restarts += r.restarts
		total += r.ops
		if t.Failed() {
			return
		}
	}
	t.Logf("%d seeds, %d acknowledged operations, %d crash points checked (each a crash image reopened), %d restarts from a crash image, 0 violations",
		seeds, total, checked, restarts)
}

func (r *crashRun) run(ops int) {
	t := r.t
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	r.m = newMemFS(mem, mem)
	r.model = &s3Model{objs: map[string]*s3Ver{}, ups: map[string]*upModel{}, gone: map[string]bool{}}
	ms := startMemServer(t, r.m)
	defer func() { ms.stop(t) }()
	if err := ms.c.MakeBucket(ctx, crashBucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	r.m.onSync = r.crashPoint
	m := r.model
	rng := r.rng
	key := func() string { return crashKeys[rng.IntN(len(crashKeys))] }
	fileKey := func() string { return crashKeys[rng.IntN(len(crashKeys)-1)] }
	body := func() []byte {
		b := make([]byte, []int{0, 1, 100, 4096, 5000, 40 << 10}[rng.IntN(6)])
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var upOrder []string
	openUpload := func() (string, *upModel) {
		var ids []string // in the order they were made: ids are random
		for _, id := range upOrder {
			if m.ups[id] != nil {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return "", nil
		}
		id := ids[rng.IntN(len(ids))]
		return id, m.ups[id]
	}
	fail := func(i int, what string, err error) {
		t.Fatalf("seed %d op %d: %s: %v", r.seed, i, what, err)
	}
	for i := range ops {
		r.op = fmt.Sprintf("op %d", i)
		switch x := rng.IntN(100); {
		case x < 35: // PUT, new or overwrite
			k, b := key(), body()
			if strings.HasSuffix(k, "/") {
				b = nil // a directory object is empty
			}
			v := &s3Ver{data: b, etag: md5Hex(b), user: fmt.Sprintf("%d/%d", r.seed, i)}
			r.op += " PUT " + k
			m.fKey, m.fObj = k, v
			if _, err := ms.c.PutObject(ctx, crashBucket, k, bytes.NewReader(b), int64(len(b)),
				minio.PutObjectOptions{UserMetadata: map[string]string{"v": v.user}}); err != nil {
				fail(i, r.op, err)
			}
			m.objs[k] = v
		case x < 50:
			k := key()
			r.op += " DELETE " + k
			m.fKey, m.fObj = k, nil
			if err := ms.c.RemoveObject(ctx, crashBucket, k, minio.RemoveObjectOptions{}); err != nil {
				fail(i, r.op, err)
			}
			delete(m.objs, k)
		case x < 58:
			src, dst := fileKey(), fileKey()
			if m.objs[src] == nil || src == dst {
				continue
			}
			r.op += " COPY " + src + " to " + dst
			v := *m.objs[src]
			m.fKey, m.fObj = dst, &v
			if _, err := ms.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: crashBucket, Object: dst},
				minio.CopySrcOptions{Bucket: crashBucket, Object: src}); err != nil {
				fail(i, r.op, err)
			}
			m.objs[dst] = &v
		case x < 65:
			k := fileKey()
			u := &upModel{key: k, user: fmt.Sprintf("mp %d/%d", r.seed, i), parts: map[int]upPart{}}
			r.op += " CreateMultipartUpload " + k
			m.fCreate = true
			id, err := ms.core.NewMultipartUpload(ctx, crashBucket, k, minio.PutObjectOptions{UserMetadata: map[string]string{"v": u.user}})
			if err != nil {
				fail(i, r.op, err)
			}
			m.ups[id] = u
			upOrder = append(upOrder, id)
		case x < 80:
			id, u := openUpload()
			if u == nil {
				continue
			}
			n, b := 1+rng.IntN(3), body()
			r.op += fmt.Sprintf(" UploadPart %d of %s", n, id)
			m.fUpload, m.fPart, m.fPartEtag = id, n, md5Hex(b)
			p, err := ms.core.PutObjectPart(ctx, crashBucket, u.key, id, n, bytes.NewReader(b), int64(len(b)), minio.PutObjectPartOptions{})
			if err != nil {
				fail(i, r.op, err)
			}
			if p.ETag != md5Hex(b) {
				t.Fatalf("seed %d op %d: part ETag %s, want %s", r.seed, i, p.ETag, md5Hex(b))
			}
			u.parts[n] = upPart{etag: p.ETag, data: b}
		case x < 90:
			id, u := openUpload()
			if u == nil || len(u.parts) == 0 {
				continue
			}
			var ns []int
			for n := range u.parts {
				ns = append(ns, n)
			}
			sort.Ints(ns)
			n := ns[rng.IntN(len(ns))] // one part: the last may be small
			p := u.parts[n]
			sum, _ := hex.DecodeString(p.etag)
			v := &s3Ver{data: p.data, etag: md5Hex(sum) + "-1", user: u.user}
			r.op += fmt.Sprintf(" CompleteMultipartUpload %s (part %d) to %s", id, n, u.key)
			m.fKey, m.fObj, m.fUpload, m.fEnd = u.key, v, id, true
			if _, err := ms.core.CompleteMultipartUpload(ctx, crashBucket, u.key, id,
				[]minio.CompletePart{{PartNumber: n, ETag: p.etag}}, minio.PutObjectOptions{}); err != nil {
				fail(i, r.op, err)
			}
			m.objs[u.key] = v
			delete(m.ups, id)
			m.gone[id] = true
		case x < 95:
			id, u := openUpload()
			if u == nil {
				continue
			}
			r.op += " AbortMultipartUpload " + id
			m.fUpload, m.fEnd = id, true
			if err := ms.core.AbortMultipartUpload(ctx, crashBucket, u.key, id); err != nil {
				fail(i, r.op, err)
			}
			delete(m.ups, id)
			m.gone[id] = true
		default: // a power cut now: go on from the crash image
			r.cpMu.Lock()
			ms.stop(t)
			pct := []int{0, 50, 100}[rng.IntN(3)]
			cfg := vfs.CrashCloneCfg{}
			if pct > 0 {
				cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(r.seed, uint64(i)))}
			}
			r.m = r.m.crashClone(cfg)
			r.restarts++
			when := fmt.Sprintf("seed %d op %d: restart on a crash image (%d%% of unsynced state kept)", r.seed, i, pct)
			if err := r.check(r.m, when); err != nil {
				r.cpMu.Unlock()
				t.Fatal(err)
			}
			ms = startMemServer(t, r.m)
			r.m.onSync = r.crashPoint
			r.cpMu.Unlock()
			continue
		}
		r.ops++
		m.clearFlight()
		r.cpMu.Lock()
		err := r.err
		r.cpMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	r.cpMu.Lock()
	defer r.cpMu.Unlock()
	if err := r.check(r.m.crashClone(vfs.CrashCloneCfg{}), fmt.Sprintf("seed %d: at the end", r.seed)); err != nil {
		t.Fatal(err)
	}
}

// TestWriteErrors: EIO or ENOSPC on a create, write, sync, rename or
// directory sync of a PUT or a CompleteMultipartUpload (errorfs over
// vfs.NewCrashableMem): the request answers 500 (InternalError; "out of
// space" for ENOSPC), no temporary file is left behind, and the key reads
// as before or, if only the last directory sync failed, as the whole new
// object: nothing partial is served or listed, now or after a power cut.
func TestWriteErrors(t *testing.T) {
	ctx := context.Background()
	kinds := map[string]errorfs.OpKind{"create": errorfs.OpCreate, "write": errorfs.OpFileWriteAt, "sync": errorfs.OpFileSync,
		"rename": errorfs.OpRename, "opendir": errorfs.OpOpenDir}
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC} {
		for name, kind := range kinds {
			for _, multipart := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/multipart=%v", errno, name, multipart), func(t *testing.T) {
					var on atomic.Bool
					inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
						if on.Load() && op.Kind == kind {
							return &os.PathError{Op: "injected", Path: op.Path, Err: errno}
						}
						return nil
					})
					mem := vfs.NewCrashableMem()
					m := newMemFS(mem, errorfs.Wrap(mem, inj))
					ms := startMemServer(t, m)
					defer ms.stop(t)
					if err := ms.c.MakeBucket(ctx, crashBucket, minio.MakeBucketOptions{}); err != nil {
						t.Fatal(err)
					}
					old := []byte("the old object")
					if _, err := ms.c.PutObject(ctx, crashBucket, "k", bytes.NewReader(old), int64(len(old)),
						minio.PutObjectOptions{UserMetadata: map[string]string{"v": "old"}}); err != nil {
						t.Fatal(err)
					}
					nb := bytes.Repeat([]byte("new "), 5000)
					model := &s3Model{objs: map[string]*s3Ver{"k": {data: old, etag: md5Hex(old), user: "old"}},
						ups: map[string]*upModel{}, gone: map[string]bool{}, fKey: "k"}
					var err error
					if !multipart {
						model.fObj = &s3Ver{data: nb, etag: md5Hex(nb), user: "new"}
						on.Store(true)
						_, err = ms.c.PutObject(ctx, crashBucket, "k", bytes.NewReader(nb), int64(len(nb)),
							minio.PutObjectOptions{UserMetadata: map[string]string{"v": "new"}})
					} else {
						id, cerr := ms.core.NewMultipartUpload(ctx, crashBucket, "k", minio.PutObjectOptions{UserMetadata: map[string]string{"v": "new"}})
						if cerr != nil {
							t.Fatal(cerr)
						}
						p, perr := ms.core.PutObjectPart(ctx, crashBucket, "k", id, 1, bytes.NewReader(nb), int64(len(nb)), minio.PutObjectPartOptions{})
						if perr != nil {
							t.Fatal(perr)
						}
						sum, _ := hex.DecodeString(p.ETag)
						model.fObj = &s3Ver{data: nb, etag: md5Hex(sum) + "-1", user: "new"}
						model.ups[id] = &upModel{key: "k", parts: map[int]upPart{1: {etag: p.ETag, data: nb}}}
						model.fUpload, model.fEnd = id, true
						on.Store(true)
						_, err = ms.core.CompleteMultipartUpload(ctx, crashBucket, "k", id, []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}, minio.PutObjectOptions{})
					}
					on.Store(false)
					if err == nil {
						t.Fatalf("the write succeeded under injected %v", errno)
					}
					resp := minio.ToErrorResponse(err)
					if resp.StatusCode != 500 || resp.Code != "InternalError" {
						t.Fatalf("the write answered %d %s (%v), want 500 InternalError", resp.StatusCode, resp.Code, err)
					}
					if errno == syscall.ENOSPC && !strings.Contains(resp.Message, "out of space") {
						t.Errorf("ENOSPC answered %q, which does not say the namespace is out of space", resp.Message)
					}
					if left, _ := m.ReadDir(ms.s.st.tmp); len(left) != 0 {
						t.Errorf("left %d temporary files", len(left))
					}
					r := &crashRun{model: model}
					if err := r.check(m, "after the failed write"); err != nil {
						t.Fatal(err)
					}
					for _, pct := range []int{0, 100} {
						c := m.crashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(1, 1))})
						if err := r.check(c, fmt.Sprintf("after the failed write and a power cut (%d%% of unsynced state kept)", pct)); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// TestBucketACLSurvivesCrash: a bucket's ACL set (PutBucketAcl answered)
// holds after a power cut. (Failed before setBucketPublic synced the
// bucket's directory.)
func TestBucketACLSurvivesCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	m := newMemFS(mem, mem)
	st, err := openMemStore(m, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if err := st.createBucket("pub", false); err != nil {
		t.Fatal(err)
	}
	if err := st.setBucketPublic("pub", true); err != nil {
		t.Fatal(err)
	}
	st2, err := openMemStore(m.crashClone(vfs.CrashCloneCfg{}), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.close()
	if !st2.bucketPublic("pub") {
		t.Fatal("the bucket's public-read ACL was lost in a power cut")
	}
}
