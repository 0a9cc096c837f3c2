package burstbuffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// memNet is an in-process cluster: services by name, a live set, and a
// Transport that calls the services directly (failing for dead nodes).
type memNet struct {
	mu   sync.Mutex
	svcs map[string]*Service
	live map[string]bool
	// syncGate, if set, holds every SyncStores until it is closed.
	syncGate chan struct{}
	// view, per node, overrides what Live returns to that node (a node
	// that restarts sees only itself until gossip has run).
	view map[string][]string
	// unsettled: nodes whose view of the members is not settled yet
	// (Membership answers settled=false to them).
	unsettled map[string]bool
	// removed: nodes that left the cluster for good.
	removed map[string]bool
	// fail: calls to fail, by "op:node" (op publish or drop): how many
	// more times (-1: always).
	fail map[string]int
	// lose: calls answered as done but never carried out, by "op:node"
	// (a drop that crossed the receiver's restart), as fail counts.
	lose map[string]int
}

// losing reports whether the call op to node is lost now, counting it.
func (n *memNet) losing(op, node string) bool { return n.take(n.lose, op, node) }

// failing reports whether the call op to node fails now, counting it.
func (n *memNet) failing(op, node string) bool { return n.take(n.fail, op, node) }

// take counts one call op to node against m ("op:node": how many more
// calls, -1 for all) and reports whether it is one of them.
func (n *memNet) take(m map[string]int, op, node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := op + ":" + node
	switch c := m[k]; {
	case c < 0:
		return true
	case c > 0:
		m[k] = c - 1
		return true
	}
	return false
}

// viewCluster is one node's view of a memNet: its Live (the node's
// override, else every live node) and its Membership.
type viewCluster struct {
	n    *memNet
	self string
}

func (c viewCluster) Live() []string {
	c.n.mu.Lock()
	v, ok := c.n.view[c.self]
	c.n.mu.Unlock()
	if ok {
		return append([]string(nil), v...)
	}
	return memCluster{c.n}.Live()
}

func (c viewCluster) Members() ([]string, bool) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	var out []string
	for n := range c.n.live {
		if !c.n.removed[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, !c.n.unsettled[c.self]
}

type memCluster struct{ n *memNet }

func (c memCluster) Live() []string {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	var out []string
	for n, ok := range c.n.live {
		if ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

var errDown = errors.New("node down")

func (n *memNet) get(node string) (*Service, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.svcs[node]
	if s == nil || !n.live[node] {
		return nil, fmt.Errorf("%s: %w", node, errDown)
	}
	return s, nil
}

type memTransport struct{ n *memNet }

func (t memTransport) PutShard(ctx context.Context, node string, store int, stripe uint64, idx int, payload []byte, durable bool) error {
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	if err := checkShardPayload(payload, stripe, idx); err != nil {
		return err // what the peer handler refuses
	}
	return s.putLocal(ctx, store, stripe, idx, append([]byte(nil), payload...), durable)
}
func (t memTransport) ReadShard(ctx context.Context, node string, store int, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, error) {
	s, err := t.n.get(node)
	if err != nil {
		return nil, err
	}
	return s.readLocalRange(store, stripe, idx, k, m, shardSize, off, n)
}
func (t memTransport) SyncStores(ctx context.Context, node string, stores []int) error {
	t.n.mu.Lock()
	gate := t.n.syncGate
	t.n.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	return s.syncLocal(ctx, stores)
}
func (t memTransport) GetShard(ctx context.Context, node string, store int, stripe uint64, idx int) ([]byte, error) {
	s, err := t.n.get(node)
	if err != nil {
		return nil, err
	}
	return s.getLocal(store, stripe, idx)
}
func (t memTransport) Publish(ctx context.Context, node string, metas []*Meta) error {
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	if t.n.failing("publish", node) {
		return fmt.Errorf("publish to %s: injected failure", node)
	}
	for _, m := range metas {
		if err := s.applyMeta(m); err != nil {
			return err
		}
	}
	return nil
}
func (t memTransport) Drop(ctx context.Context, node string, ps []Piece) error {
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	if t.n.failing("drop", node) {
		return fmt.Errorf("drop to %s: injected failure", node)
	}
	if t.n.losing("drop", node) {
		return nil
	}
	if err := s.checkDrop(ps); err != nil {
		return err
	}
	return s.applyDrop(ps)
}
func (t memTransport) Dump(ctx context.Context, node string) (*Dump, error) {
	s, err := t.n.get(node)
	if err != nil {
		return nil, err
	}
	return s.dump()
}
func (t memTransport) Truncate(ctx context.Context, node string, ref FileRef, size int64) error {
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	return s.truncatePeer(ctx, ref, size)
}
func (t memTransport) Call(ctx context.Context, node, op, path string) error {
	s, err := t.n.get(node)
	if err != nil {
		return err
	}
	if op == "resync" {
		s.RequestResync(path)
		return nil
	}
	return s.drainOwned(ctx, path)
}

type testCluster struct {
	t       *testing.T
	net     *memNet
	root    string
	backing string
	names   []string
	k, m    int
	tune    func(*Config) // adjusts every node's configuration
}

func newTestCluster(t *testing.T, nodes, k, m int) *testCluster {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the drainer opens backing files by handle (open_by_handle_at), which needs root")
	}
	root := t.TempDir()
	tc := &testCluster{t: t, net: &memNet{svcs: map[string]*Service{}, live: map[string]bool{}, view: map[string][]string{},
		unsettled: map[string]bool{}, removed: map[string]bool{}, fail: map[string]int{}, lose: map[string]int{}}, root: root,
		backing: filepath.Join(root, "backing"), k: k, m: m}
	os.MkdirAll(tc.backing, 0o755)
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		tc.names = append(tc.names, name)
		tc.net.live[name] = true
	}
	for _, name := range tc.names {
		tc.start(name)
	}
	t.Cleanup(func() {
		for _, name := range tc.names {
			tc.stop(name)
		}
	})
	return tc
}

func (tc *testCluster) start(name string) *Service {
	tc.t.Helper()
	cfg := Config{Node: name, FlashDir: filepath.Join(tc.root, name), BackingDir: tc.backing,
		K: tc.k, M: tc.m, ShardSize: 4096, DrainChunk: 64 << 10, DrainDelay: time.Hour, DownGrace: 200 * time.Millisecond,
		Cluster: viewCluster{tc.net, name}, Transport: memTransport{tc.net},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tc.tune != nil {
		tc.tune(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.net.mu.Lock()
	tc.net.svcs[name] = s
	tc.net.live[name] = true
	tc.net.mu.Unlock()
	return s
}

func (tc *testCluster) stop(name string) {
	tc.net.mu.Lock()
	s := tc.net.svcs[name]
	delete(tc.net.svcs, name)
	tc.net.live[name] = false
	tc.net.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// crash takes a node away without flushing anything.
func (tc *testCluster) crash(name string) {
	tc.net.mu.Lock()
	tc.net.live[name] = false
	s := tc.net.svcs[name]
	delete(tc.net.svcs, name)
	tc.net.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.mu.open = nil // unsynced writes are lost
		s.mu.Unlock()
		s.Close()
	}
}

func (tc *testCluster) svc(name string) *Service {
	tc.net.mu.Lock()
	defer tc.net.mu.Unlock()
	return tc.net.svcs[name]
}

func (tc *testCluster) file(name string) (*os.File, FileRef) {
	tc.t.Helper()
	f, err := os.OpenFile(filepath.Join(tc.backing, name), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { f.Close() })
	ref, err := RefOf(f)
	if err != nil {
		tc.t.Fatal(err)
	}
	return f, ref
}

func readAll(t *testing.T, s *Service, ref FileRef, f *os.File) []byte {
	t.Helper()
	fi, _ := f.Stat()
	size := s.Size(ref, fi.Size())
	buf := make([]byte, size)
	n, err := s.ReadAt(context.Background(), ref, f, buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s: read: %v", s.cfg.Node, err)
	}
	return buf[:n]
}

// randomWrites writes n random pieces into ref through s, mirroring them
// in ref (the expected content).
func randomWrites(t *testing.T, s *Service, ref FileRef, want []byte, r *rand.Rand, n, maxLen int) []byte {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		l := 1 + r.Intn(maxLen)
		off := r.Intn(len(want) + maxLen)
		p := make([]byte, l)
		r.Read(p)
		if err := s.WriteAt(ctx, ref, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		if off+l > len(want) {
			want = append(want, make([]byte, off+l-len(want))...)
		}
		copy(want[off:], p)
	}
	return want
}

func TestWriteReadAcrossNodesDrainRestart(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	f, ref := tc.file("a")
	a, b := tc.svc("n0"), tc.svc("n1")
	want := randomWrites(t, a, ref, nil, r, 300, 9000)
	// Read-your-writes on the writer before any sync.
	if got := readAll(t, a, ref, f); !bytes.Equal(got, want) {
		t.Fatalf("writer reads %d bytes that differ from the %d written", len(got), len(want))
	}
	if err := a.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	// Close-to-open: another node sees everything after Sync.
	if got := readAll(t, b, ref, f); !bytes.Equal(got, want) {
		t.Fatalf("other node reads %d bytes that differ from the %d written", len(got), len(want))
	}
	// A whole-cluster restart loses nothing synced.
	for _, n := range tc.names {
		tc.stop(n)
	}
	for _, n := range tc.names {
		tc.start(n)
	}
	for _, n := range tc.names {
		waitFor(t, func() bool { return tc.svc(n).Synced() }, n+" resynced after the restart")
		if got := readAll(t, tc.svc(n), ref, f); !bytes.Equal(got, want) {
			t.Fatalf("%s: read after a whole-cluster restart differs", n)
		}
	}
	// Drain everything and check the backing file and its writes.
	for _, n := range tc.names {
		tc.svc(n).drainPass(ctx, true)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("backing file after drain differs (%d vs %d bytes)", len(got), len(want))
	}
	for _, n := range tc.names {
		s := tc.svc(n)
		if lb := s.index.LiveBytes(); lb != 0 {
			t.Errorf("%s: %d bytes still buffered after the drain", n, lb)
		}
		st := s.Status()
		for label, c := range st.WriteSizes {
			t.Logf("%s: backing writes %s: %d", n, label, c)
		}
	}
	if got := readAll(t, tc.svc("n1"), ref, f); !bytes.Equal(got, want) {
		t.Fatal("read after drain differs")
	}
}

func TestLoseMNodes(t *testing.T) {
	tc := newTestCluster(t, 6, 4, 2)
	r := rand.New(rand.NewSource(7))
	ctx := context.Background()
	f, ref := tc.file("b")
	want := randomWrites(t, tc.svc("n0"), ref, nil, r, 200, 20000)
	if err := tc.svc("n0").Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	tc.crash("n4")
	tc.crash("n5")
	if got := readAll(t, tc.svc("n1"), ref, f); !bytes.Equal(got, want) {
		t.Fatal("degraded read differs")
	}
	if tc.svc("n1").stats.degradedReads.Load() == 0 {
		t.Error("no degraded read counted with 2 of 6 nodes down")
	}
	// Healing moves the lost shards onto live nodes.
	waitFor(t, func() bool {
		for _, n := range []string{"n0", "n1", "n2", "n3"} {
			if h := tc.svc(n).Status().Health; h != "ok (4 nodes for 4+2: shards share nodes)" {
				return false
			}
		}
		return true
	}, "stripes healed onto live nodes")
	// Now two more may go: the healed stripes survive.
	tc.crash("n2")
	tc.crash("n3")
	if got := readAll(t, tc.svc("n0"), ref, f); !bytes.Equal(got, want) {
		t.Fatal("read after healing and losing 2 more nodes differs")
	}
	tc.svc("n0").drainPass(ctx, true)
	tc.svc("n1").drainPass(ctx, true)
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("drained file differs")
	}
}

func TestCorruptShardIsRepaired(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	r := rand.New(rand.NewSource(3))
	ctx := context.Background()
	f, ref := tc.file("c")
	s := tc.svc("n0")
	want := randomWrites(t, s, ref, nil, r, 50, 3000)
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	// Flip a byte in every 2 KiB of every segment of store 0: every shard
	// it holds is corrupt.
	segs, _ := filepath.Glob(filepath.Join(tc.root, "n0", "store-0", "seg-*"))
	if len(segs) == 0 {
		t.Fatal("no segment in store 0")
	}
	for _, seg := range segs {
		b, _ := os.ReadFile(seg)
		for i := 1024; i < len(b); i += 2048 {
			b[i] ^= 0xff
		}
		os.WriteFile(seg, b, 0o644)
	}
	s.shards = newShardCache(256)
	if got := readAll(t, s, ref, f); !bytes.Equal(got, want) {
		t.Fatal("read with a corrupt shard differs")
	}
	waitFor(t, func() bool { return s.stats.repaired.Load() > 0 }, "the corrupt shard repaired")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTruncateAndRewrite(t *testing.T) {
	tc := newTestCluster(t, 3, 2, 1)
	ctx := context.Background()
	r := rand.New(rand.NewSource(11))
	f, ref := tc.file("t")
	for _, n := range tc.names {
		s := tc.svc(n)
		want := randomWrites(t, s, ref, nil, r, 40, 5000)
		if err := s.Sync(ctx, ref); err != nil {
			t.Fatal(err)
		}
		// Truncate down from every node in turn (owner or not), then grow
		// it again sparsely: the cut bytes must read as zeros, never come
		// back, not even after a drain or a restart.
		cut := len(want) / 3
		if err := s.Truncate(ctx, ref, f, int64(cut)); err != nil {
			t.Fatal(err)
		}
		want = want[:cut]
		p := []byte("after the cut")
		if err := s.WriteAt(ctx, ref, p, int64(cut+1000)); err != nil {
			t.Fatal(err)
		}
		want = append(want, make([]byte, 1000)...)
		want = append(want, p...)
		if err := s.Sync(ctx, ref); err != nil {
			t.Fatal(err)
		}
		for _, m := range tc.names {
			if got := readAll(t, tc.svc(m), ref, f); !bytes.Equal(got, want) {
				t.Fatalf("after a truncate on %s, %s reads %d bytes that differ from the %d expected", n, m, len(got), len(want))
			}
		}
		for _, m := range tc.names {
			tc.svc(m).drainPass(ctx, true)
		}
		got, _ := os.ReadFile(f.Name())
		if !bytes.Equal(got, want) {
			t.Fatalf("after a truncate on %s and a drain the backing file differs", n)
		}
		if err := s.Truncate(ctx, ref, f, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackpressure fills a small flash tier many times over: writers wait
// for the drainer, none fails, nothing is lost.
func TestBackpressure(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	tc.stop("n0")
	s, err := Open(Config{Node: "n0", FlashDir: filepath.Join(tc.root, "n0"), BackingDir: tc.backing,
		K: 4, M: 2, ShardSize: 4096, DrainChunk: 64 << 10, DrainDelay: 10 * time.Millisecond, FlashLimit: 8 << 20,
		Cluster: memCluster{tc.net}, Transport: memTransport{tc.net},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tc.net.mu.Lock()
	tc.net.svcs["n0"], tc.net.live["n0"] = s, true
	tc.net.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, ref := tc.file("big")
	r := rand.New(rand.NewSource(5))
	const size = 48 << 20 // six times the flash limit (which counts parity too)
	want := make([]byte, size)
	r.Read(want)
	for off := 0; off < size; off += 64 << 10 {
		if err := s.WriteAt(ctx, ref, want[off:off+64<<10], int64(off)); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if s.stats.throttled.Load() == 0 {
		t.Error("no write waited although the data was six times the flash limit")
	}
	if used := s.flashUsed(); used > 2*s.cfg.FlashLimit {
		t.Errorf("flash holds %d bytes, limit %d", used, s.cfg.FlashLimit)
	}
	s.drainPass(ctx, true)
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("drained file differs from what was written")
	}
	t.Logf("throttled %d times; flash %d bytes at the end", s.stats.throttled.Load(), s.flashUsed())
}

// TestBackingFull: a backing file system that fills up makes the drain
// fail with ENOSPC; buffered data stays readable; writers get ENOSPC once
// flash is full too, with a message that says what is full.
func TestBackingFull(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	tc.stop("n0")
	small := filepath.Join(tc.root, "small")
	os.MkdirAll(small, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a small tmpfs as a full backing file system: %v: %s", err, out)
	}
	defer exec.Command("umount", "-l", small).Run()
	s, err := Open(Config{Node: "n0", FlashDir: filepath.Join(tc.root, "n0"), BackingDir: small,
		K: 4, M: 2, ShardSize: 4096, DrainChunk: 64 << 10, DrainDelay: 10 * time.Millisecond, FlashLimit: 8 << 20,
		Cluster: memCluster{tc.net}, Transport: memTransport{tc.net},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc.net.mu.Lock()
	tc.net.live["n0"] = true
	tc.net.svcs["n0"] = s
	tc.net.mu.Unlock()
	bf, err := os.OpenFile(filepath.Join(small, "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	ref, err := RefOf(bf)
	if err != nil {
		t.Skipf("skipping: tmpfs gives no file handles here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := make([]byte, 64<<10)
	var written int
	var werr error
	for off := 0; off < 64<<20; off += len(data) {
		rand.New(rand.NewSource(int64(off))).Read(data)
		if werr = s.WriteAt(ctx, ref, data, int64(off)); werr != nil {
			break
		}
		written = off + len(data)
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("writing 64 MiB over a 2 MiB backing file system and 8 MiB of flash: got %v, want ENOSPC", werr)
	}
	if !strings.Contains(werr.Error(), "backing file system") {
		t.Errorf("the error does not say what is full: %v", werr)
	}
	if st := s.Status(); st.BackingFull == "" {
		t.Error("bb status does not report the full backing file system")
	}
	// What was acknowledged and synced is all still readable.
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	for off := 0; off < written; off += len(data) {
		rand.New(rand.NewSource(int64(off))).Read(data)
		if _, err := s.ReadAt(ctx, ref, bf, got, int64(off)); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("bytes at %d differ after the backing file system filled up", off)
		}
	}
	t.Logf("accepted %d bytes before ENOSPC: %v", written, werr)
}

// benchService opens a one-node 4+2 buffer that drains only when asked,
// closed when b ends; it returns it and its backing directory.
func benchService(b *testing.B) (*Service, string) {
	root := b.TempDir()
	net := &memNet{svcs: map[string]*Service{}, live: map[string]bool{"n0": true}}
	backing := filepath.Join(root, "backing")
	os.MkdirAll(backing, 0o755)
	s, err := Open(Config{Node: "n0", FlashDir: filepath.Join(root, "n0"), BackingDir: backing,
		Cluster: memCluster{net}, Transport: memTransport{net}, DrainDelay: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	net.mu.Lock()
	net.svcs["n0"] = s
	net.mu.Unlock()
	return s, backing
}

// BenchmarkWriteSync4KiB is a 4 KiB write at a random offset followed by
// Sync (fsync after every write) on a one-node 4+2 buffer: the stripe is
// small, so three shard stores (a 1+2 code) fdatasync per op.
func BenchmarkWriteSync4KiB(b *testing.B) {
	s, backing := benchService(b)
	f, err := os.Create(filepath.Join(backing, "f"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ref, err := RefOf(f)
	if err != nil {
		b.Skip("no file handles:", err)
	}
	p := make([]byte, 4096)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Anywhere in 256 MiB, as fio's job writes.
		if err := s.WriteAt(ctx, ref, p, int64(rng.Intn(65536))*4096); err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLostStripeReadsEIO: when more than m shards of acknowledged stripes
// are gone after a restart, their bytes read as EIO, never as the older
// bytes beneath them.
func TestLostStripeReadsEIO(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	ctx := context.Background()
	f, ref := tc.file("lost")
	s := tc.svc("n0")
	old := bytes.Repeat([]byte("old!"), 16384)
	f.WriteAt(old, 0)                       // the backing file's bytes
	p := bytes.Repeat([]byte("new!"), 8192) // 32 KiB: stored 4+2, not as copies
	for i := 0; i < 8; i++ {                // several stripes, so later metas name earlier ones Done
		if err := s.WriteAt(ctx, ref, p, int64(i)*int64(len(p))); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	tc.stop("n0")
	for _, st := range []string{"store-0", "store-1", "store-2"} {
		segs, _ := filepath.Glob(filepath.Join(tc.root, "n0", st, "seg-*"))
		for _, seg := range segs {
			os.Remove(seg)
		}
	}
	s = tc.start("n0")
	waitFor(t, s.Synced, "the restarted node settled")
	buf := make([]byte, len(p))
	_, err := s.ReadAt(ctx, ref, f, buf, 0)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a lost stripe: %v (bytes %q…), want EIO", err, buf[:8])
	}
	if h := s.Status().Health; !strings.Contains(h, "DATA LOST") {
		t.Errorf("health does not say data was lost: %q", h)
	}
}

// TestSyncAfterFullStripeStored: a full stripe is stored without waiting
// for fdatasync; a Sync after it was stored (nothing pending any more) must
// still make it durable.
func TestSyncAfterFullStripeStored(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	ctx := context.Background()
	_, ref := tc.file("full")
	s := tc.svc("n0")
	if err := s.WriteAt(ctx, ref, make([]byte, 4*4096), 0); err != nil { // one full stripe
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.mu.pending) == 0
	}, "the full stripe stored")
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	n := len(s.mu.dirty)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("after Sync, %d stores still hold shards not made durable", n)
	}
}

// BenchmarkDrain4KiBRandom drains a 256 MiB file written as 4 KiB writes
// in random order (fio's randwrite) on a one-node 4+2 buffer; the peer, in
// the same iteration, writes as many bytes straight to a new file in the
// same backing directory the way the drain writes (drainWorkers O_DIRECT
// writers of maxDrainWrite bytes) and fsyncs it. drain_ratio is the
// drain's rate over the peer's: the part of the backing file system's
// new-file write rate the drain keeps, with reading flash, checking and
// dropping the pieces included.
func BenchmarkDrain4KiBRandom(b *testing.B) {
	const size = 256 << 20
	s, backing := benchService(b)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	p := make([]byte, 4096)
	var drainT, directT time.Duration
	for i := 0; i < b.N; i++ {
		name := filepath.Join(backing, fmt.Sprintf("f%d", i))
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		ref, err := RefOf(f)
		if err != nil {
			b.Skip("no file handles:", err)
		}
		for _, blk := range rng.Perm(size / 4096) {
			rng.Read(p)
			if err := s.WriteAt(ctx, ref, p, int64(blk)*4096); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Sync(ctx, ref); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := s.drainFile(ctx, ref.ID); err != nil {
			b.Fatal(err)
		}
		drainT += time.Since(t0)
		f.Close()
		// The peer: the same bytes written straight to a new file, as the
		// drain writes them (drainWorkers writers of maxDrainWrite bytes,
		// O_DIRECT), then fsynced.
		d, err := os.OpenFile(name+".direct", os.O_CREATE|os.O_WRONLY|syscall.O_DIRECT, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < drainWorkers; w++ {
			buf := s.drainBufs[w]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := next.Add(maxDrainWrite) - maxDrainWrite; off < size; off = next.Add(maxDrainWrite) - maxDrainWrite {
					if _, err := d.WriteAt(buf, off); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		directT += time.Since(t0)
		d.Close()
		os.Remove(name)
		os.Remove(name + ".direct")
	}
	b.ReportMetric(float64(size)*float64(b.N)/drainT.Seconds()/1e6, "drain_MB/s")
	b.ReportMetric(float64(size)*float64(b.N)/directT.Seconds()/1e6, "direct_MB/s")
	b.ReportMetric(directT.Seconds()/drainT.Seconds(), "drain_ratio")
}

// TestOverwriteBuriesAfterDurable: a stripe whose bytes a newer stripe
// stored without fsync overwrote keeps its shards, and is not recorded
// dead, until every node has synced its stores: until then a crash could
// take the newer stripe, and the older, fsynced bytes must still be there.
func TestOverwriteBuriesAfterDurable(t *testing.T) {
	tc := newTestCluster(t, 2, 1, 1) // one shard on each node
	s := tc.svc("n0")
	_, ref := tc.file("f")
	ctx := context.Background()
	if err := s.WriteAt(ctx, ref, bytes.Repeat([]byte{1}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	exts, err := s.index.Lookup(ref.ID, 0, 4096)
	if err != nil || len(exts) != 1 || exts[0].Hole {
		t.Fatalf("extents of the synced write: %+v %v", exts, err)
	}
	old := exts[0].Stripe
	gate := make(chan struct{})
	tc.net.mu.Lock()
	tc.net.syncGate = gate
	tc.net.mu.Unlock()
	// A full stripe (k=1, 4 KiB shards) is stored at once, buffered.
	if err := s.WriteAt(ctx, ref, bytes.Repeat([]byte{2}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		exts, _ := s.index.Lookup(ref.ID, 0, 4096)
		if len(exts) == 1 && exts[0].Stripe != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the overwriting stripe was not published")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the reaper tries every second
	held := 0
	for _, name := range tc.names {
		for _, st := range tc.svc(name).stores {
			for idx := 0; idx < 2; idx++ {
				if st.Has(old, idx) {
					held++
				}
			}
		}
	}
	if s.index.Dead(old) || held != 2 {
		t.Fatalf("before the stores synced: overwritten stripe dead %v, %d of its 2 shards kept", s.index.Dead(old), held)
	}
	close(gate)
	for !s.index.Dead(old) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the overwritten stripe was not buried after the stores synced")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
