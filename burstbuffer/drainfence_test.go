package burstbuffer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// heldTransport is memTransport, except that while armed every Publish to
// the node to holds until release is closed: a publish still in flight to
// that node (or one it missed), so its index lags the others'.
type heldTransport struct {
	memTransport
	to string

	mu      sync.Mutex
	armed   bool
	arrived chan struct{} // closed when an armed Publish to `to` arrives
	release chan struct{}
	once    sync.Once
}

func (t *heldTransport) arm() {
	t.mu.Lock()
	t.armed, t.arrived, t.release = true, make(chan struct{}), make(chan struct{})
	t.once = sync.Once{}
	t.mu.Unlock()
}

// unhold releases the held publish (once; also at cleanup, so that a
// failed test does not leave it held).
func (t *heldTransport) unhold() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.release != nil {
		t.once.Do(func() { close(t.release) })
	}
}

func (t *heldTransport) Publish(ctx context.Context, node string, metas []*Meta) error {
	t.mu.Lock()
	armed, arrived, release := t.armed && node == t.to, t.arrived, t.release
	if armed {
		t.armed = false
	}
	t.mu.Unlock()
	if armed {
		close(arrived)
		<-release
	}
	return t.memTransport.Publish(ctx, node, metas)
}

// fenceCluster is a two-node cluster (n0, n1; 2+1 stripes) whose
// publishes to n0 can be held.
func fenceCluster(t *testing.T) (*testCluster, *heldTransport) {
	tc := newTestCluster(t, 0, 2, 1)
	tr := &heldTransport{memTransport: memTransport{tc.net}, to: "n0"}
	t.Cleanup(tr.unhold) // runs before the cluster's cleanup stops the nodes
	for _, name := range []string{"n0", "n1"} {
		tc.names = append(tc.names, name)
		s, err := Open(Config{Node: name, FlashDir: filepath.Join(tc.root, name), BackingDir: tc.backing,
			K: tc.k, M: tc.m, ShardSize: 4096, DrainChunk: 64 << 10, DrainDelay: time.Hour,
			Cluster: memCluster{tc.net}, Transport: tr,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		tc.net.mu.Lock()
		tc.net.svcs[name], tc.net.live[name] = s, true
		tc.net.mu.Unlock()
	}
	return tc, tr
}

// TestDrainFenceOlderDrainKeepsNewer: two nodes drain one file, the way
// they can during a join or leave (each believes it owns it). n0 holds
// the file's old bytes; n1 holds new bytes over them, whose publish to n0
// is still in flight. Whichever order the drains run in (n1's first, then
// n0's; or n0's first, delayed by a hook inside its drain while n1's
// tries), the backing file ends with the new bytes (and the old ones
// around them: n0's window keeps the landed bytes in its middle), and
// every node reads them. Before the fence, n0's drain wrote the old bytes over the new ones
// after n1 had dropped them everywhere: the acknowledged new write was
// lost.
func TestDrainFenceOlderDrainKeepsNewer(t *testing.T) {
	for _, order := range []string{"newer first", "older delayed"} {
		t.Run(order, func(t *testing.T) {
			tc, tr := fenceCluster(t)
			n0, n1 := tc.svc("n0"), tc.svc("n1")
			f, ref := tc.file("f")
			ctx := context.Background()
			// One stripe each (2 x 4096 data bytes), so that exactly one
			// publish is held: the new bytes lie inside the old ones.
			old := bytes.Repeat([]byte("old!"), 2000)
			neu := bytes.Repeat([]byte("NEW."), 1000)
			const at = 2000
			want := append([]byte(nil), old...)
			copy(want[at:], neu)
			if err := n0.WriteAt(ctx, ref, old, 0); err != nil {
				t.Fatal(err)
			}
			if err := n0.Sync(ctx, ref); err != nil {
				t.Fatal(err)
			}

			// n1 writes the new bytes; its publish to n0 is held.
			tr.arm()
			synced := make(chan error, 1)
			go func() {
				err := n1.WriteAt(ctx, ref, neu, at)
				if err == nil {
					err = n1.Sync(ctx, ref)
				}
				synced <- err
			}()
			<-tr.arrived // n1 has applied the new stripe; n0 has not

			switch order {
			case "newer first":
				if err := n1.drainFile(ctx, ref.ID); err != nil {
					t.Fatalf("n1's drain: %v", err)
				}
				if err := n0.drainFile(ctx, ref.ID); err != nil {
					t.Fatalf("n0's drain: %v", err)
				}
			case "older delayed":
				// n0's drain stops before its first window until n1's
				// drain has run (or, fenced, has found the file locked).
				held, resume := make(chan struct{}), make(chan struct{})
				var once sync.Once
				n0.hooks.drainWindow = func(file, off uint64) {
					once.Do(func() { close(held); <-resume })
				}
				var wake sync.Once
				n1.hooks.drainBusy = func(uint64) { wake.Do(func() { close(resume) }) }
				older := make(chan error, 1)
				go func() { older <- n0.drainFile(ctx, ref.ID) }()
				<-held
				if err := n1.drainFile(ctx, ref.ID); err != nil {
					t.Fatalf("n1's drain: %v", err)
				}
				wake.Do(func() { close(resume) })
				if err := <-older; err != nil {
					t.Fatalf("n0's drain: %v", err)
				}
				// A drain that found the lock held drains what is left.
				if err := n1.drainFile(ctx, ref.ID); err != nil {
					t.Fatalf("n1's second drain: %v", err)
				}
			}
			tr.unhold()
			if err := <-synced; err != nil {
				t.Fatalf("n1's sync: %v", err)
			}
			for _, s := range []*Service{n0, n1} {
				if err := s.drainFile(ctx, ref.ID); err != nil {
					t.Fatalf("%s: last drain: %v", s.cfg.Node, err)
				}
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("backing file after both drains: %d bytes, %q at %d; want the newer %q", len(got), got[at:min(len(got), at+8)], at, neu[:8])
			}
			for _, s := range []*Service{n0, n1} {
				if b := readAll(t, s, ref, f); !bytes.Equal(b, want) {
					t.Fatalf("%s reads %d bytes, %q at %d; want the newer bytes", s.cfg.Node, len(b), b[at:min(len(b), at+8)], at)
				}
				if exts, _ := s.index.FileExtents(ref.ID); hasDirty(exts) {
					t.Fatalf("%s still holds dirty extents of the drained file: %v", s.cfg.Node, exts)
				}
			}
		})
	}
}

// TestDrainFenceModel checks the fence against a byte-by-byte model over
// random drains: after each, no byte's fence version exceeds the highest
// version landed there (the fence must never make a drain skip bytes that
// are the newest); while the fence fits, it equals the model; split
// answers by it; and it survives its encoding.
func TestDrainFenceModel(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewSource(seed))
		const size = 512
		var model [size]uint64 // highest version landed per byte
		var fc drainFence
		exact := true
		for step := 0; step < 20; step++ {
			// A drain: sorted, non-overlapping extents of random versions.
			var exts []Extent
			for off := uint64(r.Intn(8)); off < size; {
				l := uint64(1 + r.Intn(40))
				if off+l > size {
					l = size - off
				}
				if r.Intn(3) > 0 {
					exts = append(exts, Extent{FileOff: off, Length: l, Stripe: uint64(step), Pos: uint32(off), Version: uint64(1 + r.Intn(100))})
				}
				off += l + uint64(r.Intn(10))
			}
			land, stale := fc.split(exts)
			// split: a part is stale exactly where the fence is newer.
			for _, e := range stale {
				for b := e.FileOff; b < e.FileOff+e.Length; b++ {
					if fenceAt(fc, b) <= e.Version {
						t.Fatalf("seed %d: byte %d split stale at version %d, fence %d", seed, b, e.Version, fenceAt(fc, b))
					}
				}
			}
			for _, e := range land {
				if e.Pos != uint32(e.FileOff) {
					t.Fatalf("seed %d: part at %d has stripe position %d", seed, e.FileOff, e.Pos)
				}
				for b := e.FileOff; b < e.FileOff+e.Length; b++ {
					if fenceAt(fc, b) > e.Version {
						t.Fatalf("seed %d: byte %d lands at version %d under fence %d", seed, b, e.Version, fenceAt(fc, b))
					}
					model[b] = max(model[b], e.Version)
				}
			}
			before := len(fc)
			fc = fc.raise(land)
			if len(fc) > maxFenceRanges {
				t.Fatalf("seed %d: fence of %d ranges", seed, len(fc))
			}
			_ = before
			for b := uint64(0); b < size; b++ {
				got := fenceAt(fc, b)
				if got > model[b] {
					t.Fatalf("seed %d step %d: byte %d fenced at %d, but only %d landed", seed, step, b, got, model[b])
				}
				if exact && got != model[b] {
					exact = false // coarsened: it may now say less
				}
			}
			dec, err := decodeFence(fc.encode())
			if err != nil || len(dec) != len(fc) {
				t.Fatalf("seed %d: decode: %v (%d ranges, want %d)", seed, err, len(dec), len(fc))
			}
			for i := range dec {
				if dec[i] != fc[i] {
					t.Fatalf("seed %d: range %d decodes as %v, want %v", seed, i, dec[i], fc[i])
				}
			}
		}
	}
	// Coarsening to a tiny limit still never says more than it did.
	fc := drainFence{{0, 10, 5}, {10, 20, 3}, {20, 30, 9}, {40, 50, 7}, {60, 70, 1}}
	c := fc.coarsen(2)
	if len(c) > 2 {
		t.Fatalf("coarsened to %d ranges", len(c))
	}
	for b := uint64(0); b < 80; b++ {
		if fenceAt(c, b) > fenceAt(fc, b) {
			t.Fatalf("coarsened fence says %d at byte %d, the fence said %d", fenceAt(c, b), b, fenceAt(fc, b))
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 1}, {1, 1, 0, 0, 5}, {1, 1, 0, 4, 0}, {1, 0, 7}} {
		if _, err := decodeFence(bad); err == nil {
			t.Fatalf("decodeFence(%v) accepted", bad)
		}
	}
}

func fenceAt(fc drainFence, b uint64) uint64 {
	for _, r := range fc {
		if r.off <= b && b < r.end {
			return r.ver
		}
	}
	return 0
}

// TestDrainConcurrentDrainersMatchModel: two nodes drain one file over
// and over at the same time (both believe they own it) while writes from
// both land on it, each fsynced before the next; a drain may fail (a
// stripe the other node has buried since) and is retried. At the end the
// backing file holds exactly the writes in order. 40 writes, a few hundred
// drains. (The race the fence closes is too narrow to hit this way, and
// this test passes without it too: it checks that the lock and the fence
// neither stall concurrent drains nor ever skip bytes that are the
// newest.)
func TestDrainConcurrentDrainersMatchModel(t *testing.T) {
	tc, _ := fenceCluster(t)
	svcs := []*Service{tc.svc("n0"), tc.svc("n1")}
	f, ref := tc.file("f")
	ctx := context.Background()
	r := rand.New(rand.NewSource(14))
	const size = 200 << 10 // a few drain chunks
	want := make([]byte, 0, size)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.drainFile(ctx, ref.ID) // errors: retried
			}
		}()
	}
	for i := 0; i < 40; i++ {
		s := svcs[i%2]
		l := 1 + r.Intn(20000)
		off := r.Intn(size - l)
		b := make([]byte, l)
		r.Read(b)
		if err := s.WriteAt(ctx, ref, b, int64(off)); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if off+l > len(want) {
			want = append(want, make([]byte, off+l-len(want))...)
		}
		copy(want[off:], b)
	}
	close(stop)
	wg.Wait()
	for _, s := range svcs {
		if err := s.drainFile(ctx, ref.ID); err != nil {
			t.Fatalf("%s: last drain: %v", s.cfg.Node, err)
		}
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		t.Fatalf("backing file: %d bytes, first difference at %d; want the %d bytes written", len(got), n, len(want))
	}
}
