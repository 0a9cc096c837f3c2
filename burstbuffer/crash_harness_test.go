package burstbuffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The crash-consistency harness (crash_test.go runs it): a burst buffer of
// in-process Services, each on its own crashable MemFS (vfs.NewCrashableMem)
// for its flash stores and index, sharing a real backing directory (the
// drainer opens backing files by handle). A seeded sequence of operations
// runs against it while a model keeps what every file must read; at sync
// points the harness crashes one node, or all at once, by cloning their
// file systems as a crash would leave them (CrashClone: what was synced,
// and sometimes part of what was not), restarts the Services from the
// clones and checks every file on every node against the model.

// crashNode is one node of the harness.
type crashNode struct {
	name string
	fs   *vfs.MemFS
	svc  *Service
	gen  int // bumped by every crash: the old Service's calls then fail
}

// crashCluster is the harness's cluster.
type crashCluster struct {
	t       testing.TB
	net     *memNet
	backing string
	k, m    int
	log     *slog.Logger
	// together: restarted nodes are all members before any Service opens
	// (else they join one by one as they open).
	together bool

	mu    sync.Mutex
	nodes map[string]*crashNode
	names []string
}

// crashTransport is memTransport with a sender: once the sender has
// crashed (its generation is past), its calls fail, as a dead process
// sends nothing.
type crashTransport struct {
	c    *crashCluster
	from string
	gen  int
	memTransport
}

func (t crashTransport) alive() error {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if n := t.c.nodes[t.from]; n == nil || n.gen != t.gen {
		return fmt.Errorf("%s (sender) crashed: %w", t.from, errDown)
	}
	return nil
}

func (t crashTransport) PutShard(ctx context.Context, node string, store int, stripe uint64, idx int, payload []byte, durable bool) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.PutShard(ctx, node, store, stripe, idx, payload, durable)
}
func (t crashTransport) ReadShard(ctx context.Context, node string, store int, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, error) {
	if err := t.alive(); err != nil {
		return nil, err
	}
	return t.memTransport.ReadShard(ctx, node, store, stripe, idx, k, m, shardSize, off, n)
}
func (t crashTransport) SyncStores(ctx context.Context, node string, stores []int) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.SyncStores(ctx, node, stores)
}
func (t crashTransport) GetShard(ctx context.Context, node string, store int, stripe uint64, idx int) ([]byte, error) {
	if err := t.alive(); err != nil {
		return nil, err
	}
	return t.memTransport.GetShard(ctx, node, store, stripe, idx)
}
func (t crashTransport) Publish(ctx context.Context, node string, metas []*Meta) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.Publish(ctx, node, metas)
}
func (t crashTransport) Drop(ctx context.Context, node string, ps []Piece) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.Drop(ctx, node, ps)
}
func (t crashTransport) Dump(ctx context.Context, node string) (*Dump, error) {
	if err := t.alive(); err != nil {
		return nil, err
	}
	return t.memTransport.Dump(ctx, node)
}
func (t crashTransport) Truncate(ctx context.Context, node string, ref FileRef, size int64) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.Truncate(ctx, node, ref, size)
}
func (t crashTransport) Call(ctx context.Context, node, op, path string) error {
	if err := t.alive(); err != nil {
		return err
	}
	return t.memTransport.Call(ctx, node, op, path)
}

func newCrashCluster(t testing.TB, nodes, k, m int) *crashCluster {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the drainer opens backing files by handle (open_by_handle_at), which needs root")
	}
	c := &crashCluster{t: t, net: &memNet{svcs: map[string]*Service{}, live: map[string]bool{}},
		backing: filepath.Join(t.TempDir(), "backing"), k: k, m: m,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), nodes: map[string]*crashNode{}}
	if os.Getenv("CRASH_LOG") != "" {
		c.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := os.MkdirAll(c.backing, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		c.names = append(c.names, name)
		c.nodes[name] = &crashNode{name: name, fs: vfs.NewCrashableMem()}
		c.net.live[name] = true
	}
	for _, name := range c.names {
		if err := c.start(name); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, name := range c.names {
			c.kill(name)
		}
	})
	return c
}

// start opens name's Service on its current file system.
func (c *crashCluster) start(name string) error {
	c.mu.Lock()
	n := c.nodes[name]
	fs, gen := n.fs, n.gen
	c.mu.Unlock()
	s, err := Open(Config{Node: name, FlashDir: "/flash", BackingDir: c.backing, FS: fs,
		K: c.k, M: c.m, ShardSize: 4096, DrainChunk: 64 << 10, DrainDelay: time.Hour,
		FlashLimit: 48 << 20, // 1 MiB segments
		Cluster:    memCluster{c.net}, Transport: crashTransport{c: c, from: name, gen: gen, memTransport: memTransport{c.net}},
		Log: c.log.With("node", name)})
	if err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	c.mu.Lock()
	n.svc = s
	c.mu.Unlock()
	c.net.mu.Lock()
	c.net.svcs[name] = s
	c.net.live[name] = true
	c.net.mu.Unlock()
	return nil
}

// kill stops name's Service as a crash does: it leaves the cluster, its
// calls fail from now on, its buffered writes are forgotten and whatever
// it does on its way down lands on a file system about to be discarded.
func (c *crashCluster) kill(name string) {
	c.net.mu.Lock()
	c.net.live[name] = false
	delete(c.net.svcs, name)
	c.net.mu.Unlock()
	c.mu.Lock()
	n := c.nodes[name]
	n.gen++
	s := n.svc
	n.svc = nil
	c.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.mu.open = nil
		s.mu.Unlock()
		s.Close()
	}
}

// stopAll stops every node.
func (c *crashCluster) stopAll() {
	for _, name := range c.names {
		c.kill(name)
	}
}

func (c *crashCluster) svc(name string) *Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name].svc
}

// crash crashes the named nodes at this instant and restarts them from
// what their file systems would hold after the crash: the synced data, and
// with unsyncedPct > 0 that share of the unsynced blocks and names. Every
// node is marked down first, so no message crosses between the clones.
func (c *crashCluster) crash(names []string, unsyncedPct int, rseed uint64) error {
	c.net.mu.Lock()
	for _, n := range names {
		c.net.live[n] = false
	}
	c.net.mu.Unlock()
	clones := map[string]*vfs.MemFS{}
	for i, name := range names {
		c.mu.Lock()
		n := c.nodes[name]
		n.gen++ // its calls fail from now on
		c.mu.Unlock()
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct}
		if unsyncedPct > 0 {
			cfg.RNG = randv2.New(randv2.NewPCG(rseed, uint64(i)))
		}
		clones[name] = n.fs.CrashClone(cfg)
	}
	for _, name := range names {
		c.kill(name)
		c.mu.Lock()
		c.nodes[name].fs = clones[name]
		c.mu.Unlock()
	}
	// The survivors notice that the crashed nodes left, as a membership
	// protocol would, before they come back.
	if err := c.waitUntil(func() bool {
		for _, name := range c.names {
			s := c.svc(name)
			if s == nil {
				continue
			}
			s.mu.Lock()
			stale := false
			for _, d := range names {
				stale = stale || s.mu.synced[d]
			}
			s.mu.Unlock()
			if stale {
				return false
			}
		}
		return true
	}, "the survivors to see the crashed nodes leave"); err != nil {
		return err
	}
	if c.together {
		// Membership first: every crashed node is seen live before any
		// Service is up (calls to it fail until it is).
		c.net.mu.Lock()
		for _, n := range names {
			c.net.live[n] = true
		}
		c.net.mu.Unlock()
	}
	for _, name := range names {
		if err := c.start(name); err != nil {
			return err
		}
	}
	return c.waitUntil(func() bool {
		for _, name := range c.names {
			if !c.svc(name).Synced() {
				return false
			}
		}
		return true
	}, "every node to resync after the restart")
}

func (c *crashCluster) waitUntil(ok func() bool, what string) error {
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// read reads the whole of a file through s.
func crashRead(ctx context.Context, s *Service, ref FileRef, f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := s.Size(ref, fi.Size())
	buf := make([]byte, size)
	n, err := s.ReadAt(ctx, ref, f, buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// crashFile is the model of one file.
type crashFile struct {
	name   string
	f      *os.File
	ref    FileRef
	writer string    // the node its writes go through
	acked  []byte    // its content when its last fsync (or truncate) returned
	since  []crashOp // its writes since then, not acknowledged
	cur    []byte    // its content with those writes: what its writer reads
}

// crashOp is one operation of a sequence.
type crashOp struct {
	kind string // write, sync, truncate, drain, handoff
	file int
	off  int64
	data []byte // write
	size int64  // truncate
	node string // handoff: the new writer
}

func (o crashOp) String() string {
	switch o.kind {
	case "write":
		return fmt.Sprintf("write f%d [%d,%d)", o.file, o.off, o.off+int64(len(o.data)))
	case "truncate":
		return fmt.Sprintf("truncate f%d to %d", o.file, o.size)
	case "handoff":
		return fmt.Sprintf("handoff f%d to %s", o.file, o.node)
	case "drain":
		if o.node != "" {
			return "drain on " + o.node
		}
		return "drain"
	}
	return fmt.Sprintf("%s f%d", o.kind, o.file)
}

func applyWrite(b []byte, off int64, p []byte) []byte {
	if end := int(off) + len(p); end > len(b) {
		b = append(b, make([]byte, end-len(b))...)
	}
	copy(b[off:], p)
	return b
}

// checkAllowed checks got, a file's content read after a crash (or from a
// node other than its writer), against the model: every byte is the
// acknowledged one, or one that a write since the last acknowledgement put
// there. A byte no unacknowledged write touched must be the acknowledged
// one; the size is at least the acknowledged size and at most the end of
// the furthest write. It returns nil or what is wrong.
func (f *crashFile) checkAllowed(got []byte) error {
	maxEnd := int64(len(f.acked))
	for _, w := range f.since {
		maxEnd = max(maxEnd, w.off+int64(len(w.data)))
	}
	if len(got) < len(f.acked) || int64(len(got)) > maxEnd {
		return fmt.Errorf("%s reads %d bytes; acknowledged %d, at most %d with the unacknowledged writes", f.name, len(got), len(f.acked), maxEnd)
	}
	for i, b := range got {
		want := byte(0)
		if i < len(f.acked) {
			want = f.acked[i]
		}
		if b == want {
			continue
		}
		ok := false
		for _, w := range f.since {
			if int64(i) >= w.off && int64(i) < w.off+int64(len(w.data)) && w.data[int64(i)-w.off] == b {
				ok = true
				break
			}
		}
		if !ok {
			var cover []string
			for _, w := range f.since {
				if int64(i) >= w.off && int64(i) < w.off+int64(len(w.data)) {
					cover = append(cover, w.String())
				}
			}
			return fmt.Errorf("%s byte %d reads %#02x, acknowledged %#02x (unacknowledged writes over it: %s)",
				f.name, i, b, want, strings.Join(cover, ", "))
		}
	}
	return nil
}

// crashRun is one seeded run of the harness.
type crashRun struct {
	t       testing.TB
	seed    int64
	ops     int     // operations to run
	crashP  float64 // chance of a crash at each sync point
	c       *crashCluster
	files   []*crashFile
	r       *rand.Rand // the operations
	cr      *rand.Rand // the crashes
	history []string   // what ran, for the failure report
	crashes int
	syncPts int
	acks    int
	opErrs  int
	// noTruncate turns truncates into fsyncs (same random draws).
	noTruncate bool
}

func newCrashRun(t testing.TB, seed int64, ops int, crashP float64, together bool) *crashRun {
	run := &crashRun{t: t, seed: seed, ops: ops, crashP: crashP,
		r: rand.New(rand.NewSource(seed)), cr: rand.New(rand.NewSource(seed ^ 0x5eed))}
	run.c = newCrashCluster(t, 3, 4, 2)
	run.c.together = together
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("f%d", i)
		f, err := os.OpenFile(filepath.Join(run.c.backing, name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		ref, err := RefOf(f)
		if err != nil {
			t.Fatal(err)
		}
		run.files = append(run.files, &crashFile{name: name, f: f, ref: ref, writer: run.c.names[run.r.Intn(len(run.c.names))]})
	}
	return run
}

func (run *crashRun) note(format string, args ...any) {
	run.history = append(run.history, fmt.Sprintf(format, args...))
}

// fail reports a failure with what replays it.
func (run *crashRun) fail(format string, args ...any) {
	run.t.Helper()
	tail := run.history
	if len(tail) > 60 {
		tail = tail[len(tail)-60:]
	}
	var ext []string
	for _, f := range run.files {
		for _, name := range run.c.names {
			s := run.c.svc(name)
			if s == nil {
				continue
			}
			es, _ := s.index.FileExtents(f.ref.ID)
			var b strings.Builder
			for _, e := range es {
				fmt.Fprintf(&b, " [%d,%d)@%016x", e.FileOff, e.FileOff+e.Length, e.Stripe)
			}
			ext = append(ext, fmt.Sprintf("%s on %s:%s", f.name, name, b.String()))
		}
	}
	run.t.Fatalf("crash harness, seed %d: %s\nbuffered extents now:\n  %s\nreplay: go test ./burstbuffer -run 'TestCrashHarness$' -crash.seed=%d -crash.ops=%d -crash.p=%g -crash.together=%v -crash.truncate=%v -v\nlast steps (of %d):\n  %s",
		run.seed, fmt.Sprintf(format, args...), strings.Join(ext, "\n  "), run.seed, run.ops, run.crashP, run.c.together, !run.noTruncate, len(run.history), strings.Join(tail, "\n  "))
}

// genOp draws the next operation.
func (run *crashRun) genOp() crashOp {
	r := run.r
	fi := r.Intn(len(run.files))
	switch x := r.Intn(100); {
	case x < 60:
		n := 1 + r.Intn(9000)
		if r.Intn(4) == 0 {
			n = 1 + r.Intn(64)
		}
		p := make([]byte, n)
		r.Read(p)
		return crashOp{kind: "write", file: fi, off: int64(r.Intn(48 << 10)), data: p}
	case x < 80:
		return crashOp{kind: "sync", file: fi}
	case x < 86:
		size := int64(r.Intn(40 << 10))
		if run.noTruncate {
			return crashOp{kind: "sync", file: fi}
		}
		return crashOp{kind: "truncate", file: fi, size: size}
	case x < 94:
		// A drain on every node drains every file; on one node, the
		// files it owns.
		if r.Intn(2) == 0 {
			return crashOp{kind: "drain"}
		}
		return crashOp{kind: "drain", node: run.c.names[r.Intn(len(run.c.names))]}
	default:
		return crashOp{kind: "handoff", file: fi, node: run.c.names[r.Intn(len(run.c.names))]}
	}
}

// Run runs the sequence, crashing at sync points.
func (run *crashRun) Run() {
	for i := 0; i < run.ops; i++ {
		// An operation that hangs fails the run (with its seed) instead of
		// the test binary's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		run.step(ctx, i)
		cancel()
	}
}

// opTimeout bounds one operation of a run, and the checks after it.
const opTimeout = 2 * time.Minute

func (run *crashRun) step(ctx context.Context, i int) {
	{
		op := run.genOp()
		if op.kind != "drain" {
			run.note("op %d: %s (writer %s)", i, op, run.files[op.file].writer)
		} else {
			run.note("op %d: %s", i, op)
		}
		f := &crashFile{}
		if op.kind != "drain" {
			f = run.files[op.file]
		}
		syncPoint := false
		switch op.kind {
		case "write":
			if err := run.c.svc(f.writer).WriteAt(ctx, f.ref, op.data, op.off); err != nil {
				run.fail("op %d: %s on %s: %v", i, op, f.writer, err)
			}
			f.since = append(f.since, op)
			f.cur = applyWrite(f.cur, op.off, op.data)
		case "sync", "handoff":
			if err := run.c.svc(f.writer).Sync(ctx, f.ref); err != nil {
				run.fail("op %d: %s on %s: %v", i, op, f.writer, err)
			}
			f.acked, f.since = bytes.Clone(f.cur), nil
			run.acks++
			if op.kind == "handoff" {
				f.writer = op.node
			}
			syncPoint = true
		case "truncate":
			if err := run.c.svc(f.writer).Truncate(ctx, f.ref, f.f, op.size); err != nil {
				run.fail("op %d: %s on %s: %v", i, op, f.writer, err)
			}
			if int64(len(f.cur)) > op.size {
				f.cur = f.cur[:op.size]
			} else {
				f.cur = append(f.cur, make([]byte, op.size-int64(len(f.cur)))...)
			}
			f.acked, f.since = bytes.Clone(f.cur), nil
			run.acks++
			syncPoint = true
		case "drain":
			for _, name := range run.c.names {
				if op.node == "" || op.node == name {
					run.c.svc(name).drainPass(ctx, true)
				}
			}
			syncPoint = true
		}
		if !syncPoint {
			return
		}
		run.syncPts++
		run.checkLive(ctx, fmt.Sprintf("after op %d (%s)", i, op))
		if run.cr.Float64() >= run.crashP {
			return
		}
		var who []string
		if run.cr.Intn(3) == 0 {
			who = append(who, run.c.names...)
		} else {
			who = []string{run.c.names[run.cr.Intn(len(run.c.names))]}
		}
		pct := []int{0, 0, 30, 100}[run.cr.Intn(4)]
		run.crashes++
		run.note("crash %d after op %d: %v, keeping %d%% of unsynced data", run.crashes, i, who, pct)
		lostBefore := map[string]int64{}
		for _, name := range run.c.names {
			lostBefore[name] = run.c.svc(name).stats.lostStripes.Load()
		}
		if err := run.c.crash(who, pct, uint64(run.seed)*1000+uint64(i)); err != nil {
			run.fail("crash %d after op %d (%v): %v", run.crashes, i, who, err)
		}
		when := fmt.Sprintf("crash %d after op %d (%v, %d%% unsynced kept)", run.crashes, i, who, pct)
		if pct == 100 {
			// Nothing was lost (as after SIGKILL: every write reached the
			// file systems), so no node may declare a stripe lost.
			for _, name := range run.c.names {
				s := run.c.svc(name)
				if s == nil {
					continue
				}
				n := s.stats.lostStripes.Load() // a restarted node counts from 0
				if !slices.Contains(who, name) {
					n -= lostBefore[name]
				}
				if n > 0 {
					run.fail("%s: %s declared %d stripe(s) lost though every byte written survived the crash", when, name, n)
				}
			}
		}
		run.checkAfterCrash(ctx, when, who)
	}
}

// checkLive checks every file on every node with no crash: the writer
// reads its content with every write; the others at least what was
// acknowledged (close-to-open), perhaps with some unacknowledged writes.
func (run *crashRun) checkLive(ctx context.Context, when string) {
	for _, f := range run.files {
		for _, name := range run.c.names {
			got, err := crashRead(ctx, run.c.svc(name), f.ref, f.f)
			if err != nil {
				run.fail("%s: %s reading %s: %v", when, name, f.name, err)
			}
			if name == f.writer {
				if !bytes.Equal(got, f.cur) {
					run.fail("%s: the writer %s reads %s (%d bytes) unlike what it wrote (%d bytes): %v", when, name, f.name, len(got), len(f.cur), f.checkAllowed(got))
				}
				continue
			}
			if err := f.checkAllowed(got); err != nil {
				run.fail("%s: %s: %v", when, name, err)
			}
		}
	}
}

// checkAfterCrash checks every file after a crash and restart: on every
// node, each byte is the acknowledged one or an unacknowledged write's
// (a writer that did not crash reads all its writes); then the writer
// fsyncs, and every node must read the same bytes, which become the model.
func (run *crashRun) checkAfterCrash(ctx context.Context, when string, crashed []string) {
	down := map[string]bool{}
	for _, n := range crashed {
		down[n] = true
	}
	for _, f := range run.files {
		w := run.c.svc(f.writer)
		got, err := crashRead(ctx, w, f.ref, f.f)
		if err != nil {
			run.fail("%s: the writer %s reading %s: %v", when, f.writer, f.name, err)
		}
		if !down[f.writer] && !bytes.Equal(got, f.cur) {
			run.fail("%s: the writer %s did not crash but reads %s (%d bytes) unlike what it wrote (%d bytes): %v", when, f.writer, f.name, len(got), len(f.cur), f.checkAllowed(got))
		}
		if err := f.checkAllowed(got); err != nil {
			run.fail("%s: the writer %s: %v", when, f.writer, err)
		}
		for _, name := range run.c.names {
			other, err := crashRead(ctx, run.c.svc(name), f.ref, f.f)
			if err != nil {
				run.fail("%s: %s reading %s: %v", when, name, f.name, err)
			}
			if err := f.checkAllowed(other); err != nil {
				run.fail("%s: %s: %v", when, name, err)
			}
		}
		if err := w.Sync(ctx, f.ref); err != nil {
			run.fail("%s: fsync of %s on %s after the restart: %v", when, f.name, f.writer, err)
		}
		f.cur, f.acked, f.since = got, bytes.Clone(got), nil
		for _, name := range run.c.names {
			other, err := crashRead(ctx, run.c.svc(name), f.ref, f.f)
			if err != nil {
				run.fail("%s: %s reading %s after its writer's fsync: %v", when, name, f.name, err)
			}
			if !bytes.Equal(other, got) {
				run.fail("%s: after %s's fsync %s reads %s unlike it: %v", when, f.writer, name, f.name, f.checkAllowed(other))
			}
		}
	}
}
