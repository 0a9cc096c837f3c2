package burstbuffer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writeSynced writes n pieces of 32 KiB (two full 4+2 stripes each with
// 4 KiB shards: stored as k+m shards, not as copies) at random 4 KiB
// offsets of ref through s, each followed by Sync, so that later metas
// list the earlier stripes as Done. It returns want updated.
func writeSynced(t *testing.T, s *Service, ref FileRef, want []byte, r *rand.Rand, n int) []byte {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		p := make([]byte, 32<<10)
		r.Read(p)
		off := r.Intn(16) * 4096
		if err := s.WriteAt(ctx, ref, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if off+len(p) > len(want) {
			want = append(want, make([]byte, off+len(p)-len(want))...)
		}
		copy(want[off:], p)
	}
	return want
}

// passes waits until s's member loop has run n more passes.
func passes(t *testing.T, s *Service, n int64) {
	t.Helper()
	from := s.memberPasses.Load()
	waitFor(t, func() bool { return s.memberPasses.Load() >= from+n }, "member loop passes")
}

// TestRestartTransientViewLosesNothing: a node restarts while the cluster
// goes on; it first sees only itself (its view of the members not settled
// yet, then settled but with the others not live yet, for longer than
// DownGrace), then everyone. Meanwhile the others healed the shards it
// held elsewhere and drained one of its files. No stripe may be declared
// lost, and every fsynced byte reads back on the restarted node: the
// drained file from the backing file system (its stripes, which the
// restarted node applied from its own shards before it heard they were
// dead, must not answer EIO for good).
func TestRestartTransientViewLosesNothing(t *testing.T) {
	for _, c := range []struct {
		name         string
		settledFirst bool
		alsoDown     string // a node that stays down when n0 is back
	}{
		{"unsettled-view", false, ""},
		{"settled-view-peers-not-live", true, ""},
		{"settled-view-n3-down-too", true, "n3"},
	} {
		settledFirst := c.settledFirst
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCluster(t, 4, 4, 2) // 6 shards on 4 nodes: at most 2 a node
			ctx := context.Background()
			r := rand.New(rand.NewSource(14))
			f1, ref1 := tc.file("drained")
			f2, ref2 := tc.file("buffered")
			w := tc.svc("n0")
			want1 := writeSynced(t, w, ref1, nil, r, 6)
			want2 := writeSynced(t, w, ref2, nil, r, 6)
			tc.crash("n0")
			// The others heal n0's shards away and drain the first file.
			for _, n := range []string{"n1", "n2", "n3"} {
				s := tc.svc(n)
				waitFor(t, func() bool { return s.Status().Health == "ok (3 nodes for 4+2: shards share nodes)" }, n+" healed the stripes n0 held shards of")
			}
			if err := tc.svc(owner(ref1.ID, []string{"n1", "n2", "n3"})).drainFile(ctx, ref1.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(f1.Name()); !bytes.Equal(got, want1) {
				t.Fatal("the drained file differs on the backing file system")
			}
			if c.alsoDown != "" {
				tc.crash(c.alsoDown)
			}
			// n0 comes back seeing only itself.
			tc.net.mu.Lock()
			tc.net.view["n0"] = []string{"n0"}
			tc.net.unsettled["n0"] = !settledFirst
			tc.net.mu.Unlock()
			s := tc.start("n0")
			passes(t, s, 5)
			if settledFirst {
				// Settled, the others down for longer than DownGrace: it
				// decides, but declares nothing lost.
				waitFor(t, s.Synced, "n0 settled in its view of itself alone")
			} else if s.Synced() {
				t.Fatal("n0 says it is synced from a view of the members not settled yet")
			}
			if st := s.Status(); st.LostStripes != 0 || s.stats.lostStripes.Load() != 0 {
				t.Fatalf("n0 declared %d stripes lost from a transient view (health %q)", s.stats.lostStripes.Load(), st.Health)
			}
			// The view settles with everyone live.
			tc.net.mu.Lock()
			delete(tc.net.view, "n0")
			tc.net.unsettled["n0"] = false
			tc.net.mu.Unlock()
			waitFor(t, func() bool {
				if !s.Synced() {
					return false
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				return len(s.mu.lost) == 0
			}, "n0 resynced with everyone, no stripe short of shards")
			for _, x := range []struct {
				f    *os.File
				ref  FileRef
				want []byte
			}{{f1, ref1, want1}, {f2, ref2, want2}} {
				for _, n := range tc.names {
					if n == c.alsoDown {
						continue
					}
					if got := readAll(t, tc.svc(n), x.ref, x.f); !bytes.Equal(got, x.want) {
						t.Fatalf("%s: %s reads %d bytes that differ from the %d fsynced", n, x.f.Name(), len(got), len(x.want))
					}
				}
			}
			if st := s.Status(); st.LostStripes != 0 || s.stats.lostStripes.Load() != 0 || strings.Contains(st.Health, "LOST") {
				t.Fatalf("n0: %d stripes declared lost; health %q", s.stats.lostStripes.Load(), st.Health)
			}
		})
	}
}

// TestLossOnlyWhenHoldersGone: 4+2 stripes on 3 nodes (2 shards each).
// All three stop; one comes back alone. While the other two are members
// that are down, its stripes are unavailable (EIO), not lost, and they
// read again once the two are back. When the two have left the cluster for
// good, the stripes are declared lost.
func TestLossOnlyWhenHoldersGone(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	ctx := context.Background()
	r := rand.New(rand.NewSource(15))
	f, ref := tc.file("f")
	want := writeSynced(t, tc.svc("n0"), ref, nil, r, 6)
	for _, n := range tc.names {
		tc.stop(n)
	}
	s := tc.start("n0")
	passes(t, s, 3)
	waitFor(t, s.Synced, "n0 settled alone") // n1, n2 down for DownGrace
	buf := make([]byte, len(want))
	if _, err := s.ReadAt(ctx, ref, f, buf, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with 4 of 6 shards on nodes down: %v, want EIO", err)
	}
	st := s.Status()
	if st.LostStripes != 0 || st.UnavailableStripes == 0 || !strings.Contains(st.Health, "unavailable") {
		t.Fatalf("with the holders down (members): lost %d, unavailable %d, health %q; want none lost, some unavailable", st.LostStripes, st.UnavailableStripes, st.Health)
	}
	if st.NodeLossesTolerated != -1 {
		t.Errorf("node losses tolerated with unreadable stripes: %d, want -1", st.NodeLossesTolerated)
	}
	tc.start("n1")
	tc.start("n2")
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.mu.lost) == 0
	}, "the unavailable stripes revived")
	if got := readAll(t, s, ref, f); !bytes.Equal(got, want) {
		t.Fatal("n0 reads other bytes than were fsynced once the holders are back")
	}
	// Now the two leave for good.
	for _, n := range []string{"n0", "n1", "n2"} {
		tc.stop(n)
	}
	tc.net.mu.Lock()
	tc.net.removed["n1"], tc.net.removed["n2"] = true, true
	tc.net.mu.Unlock()
	s = tc.start("n0")
	waitFor(t, func() bool { return s.Status().LostStripes > 0 }, "the stripes declared lost")
	if _, err := s.ReadAt(ctx, ref, f, buf, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a lost stripe: %v, want EIO", err)
	}
	if h := s.Status().Health; !strings.Contains(h, "DATA LOST") {
		t.Errorf("health: %q", h)
	}
}

// TestFailedPublishNeverServesOld: a publish that fails to a live node is
// retried before the writer's Sync returns (or, failing for longer than
// PeerRetry, the node is made to resync, holding its reads): the node
// never reads the older bytes after the Sync.
func TestFailedPublishNeverServesOld(t *testing.T) {
	for _, always := range []bool{false, true} {
		name := "fails-once"
		if always {
			name = "fails-always"
		}
		t.Run(name, func(t *testing.T) {
			tc := newTestCluster(t, 3, 4, 2)
			tc.tune = func(c *Config) { c.PeerRetry = 300 * time.Millisecond }
			for _, n := range tc.names { // restart with the short PeerRetry
				tc.stop(n)
			}
			for _, n := range tc.names {
				tc.start(n)
			}
			ctx := context.Background()
			f, ref := tc.file("f")
			w := tc.svc("n0")
			old := bytes.Repeat([]byte("old."), 8192)
			if err := w.WriteAt(ctx, ref, old, 0); err != nil {
				t.Fatal(err)
			}
			if err := w.Sync(ctx, ref); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, tc.svc("n1"), ref, f); !bytes.Equal(got, old) {
				t.Fatal("n1 does not read the first version")
			}
			times := 1
			if always {
				times = -1
			}
			tc.net.mu.Lock()
			tc.net.fail["publish:n1"] = times
			tc.net.mu.Unlock()
			for i := 0; i < 3; i++ {
				p := bytes.Repeat([]byte{byte('a' + i)}, 32<<10)
				if err := w.WriteAt(ctx, ref, p, 0); err != nil {
					t.Fatal(err)
				}
				if err := w.Sync(ctx, ref); err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, tc.svc("n1"), ref, f); !bytes.Equal(got, p) {
					at := 0
					for at < min(len(got), len(p)) && got[at] == p[at] {
						at++
					}
					t.Fatalf("write %d: after the writer's Sync returned, n1 (whose publish failed) reads other bytes from %d on: %q…, want %q…", i, at, got[at:min(at+8, len(got))], p[at:min(at+8, len(p))])
				}
			}
		})
	}
}

// TestFailedDropNeverAnswersEIO: a drop that fails once to a live node is
// retried: once the drained stripes are reaped everywhere else, the node
// still reads the drained bytes (from the backing file system), not EIO.
func TestFailedDropNeverAnswersEIO(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	d := drainAroundVictim(t, tc, 16, func(victim string) { tc.net.fail["drop:"+victim] = 1 })
	for _, n := range tc.names {
		if got := readAll(t, tc.svc(n), d.ref, d.f); !bytes.Equal(got, d.want) {
			t.Fatalf("%s reads %d bytes that differ from the %d drained", n, len(got), len(d.want))
		}
	}
}

// drained is a file drainAroundVictim wrote, fsynced and drained.
type drained struct {
	f      *os.File
	ref    FileRef
	want   []byte
	exts   []Extent // its extents before the drain
	victim string   // a node that does not own the file
}

// drainAroundVictim writes a file from n0 (seed), picks a node that does
// not own it, lets inject (called with tc.net locked) arrange what the
// owner's drop does to that node, drains the file on its owner and waits
// until every other node has reaped the drained stripes.
func drainAroundVictim(t *testing.T, tc *testCluster, seed int64, inject func(victim string)) drained {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	var d drained
	d.f, d.ref = tc.file("f")
	d.want = writeSynced(t, tc.svc("n0"), d.ref, nil, r, 4)
	var err error
	if d.exts, err = tc.svc("n0").index.FileExtents(d.ref.ID); err != nil || len(d.exts) == 0 {
		t.Fatalf("extents: %v %v", d.exts, err)
	}
	own := owner(d.ref.ID, tc.names)
	for _, n := range tc.names {
		if n != own {
			d.victim = n
		}
	}
	tc.net.mu.Lock()
	inject(d.victim)
	tc.net.mu.Unlock()
	if err := tc.svc(own).drainFile(context.Background(), d.ref.ID); err != nil {
		t.Fatal(err)
	}
	waitReaped(t, tc, d.exts, d.victim)
	return d
}

// TestTolerance: how many node losses a stripe survives, from where its
// shards are.
func TestTolerance(t *testing.T) {
	stores := func(nodes ...string) []StoreRef {
		var out []StoreRef
		for i, n := range nodes {
			out = append(out, StoreRef{Node: n, Store: i})
		}
		return out
	}
	all := map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": true}
	for _, c := range []struct {
		k      int
		stores []StoreRef
		alive  map[string]bool
		want   int
	}{
		{4, stores("a", "b", "c", "d", "e", "f"), all, 2},
		{4, stores("a", "b", "c", "d", "a", "b"), all, 1}, // 4 nodes: 2,2,1,1
		{4, stores("a", "b", "c", "a", "b", "c"), all, 1}, // 3 nodes: 2 each
		{4, stores("a", "b", "a", "b", "a", "b"), all, 0}, // 2 nodes: 3 each
		{4, stores("a", "a", "a", "a", "a", "a"), all, 0}, // 1 node
		{1, stores("a", "b", "c"), all, 2},                // 1+2 copies
		{4, stores("a", "b", "c", "d", "e", "f"), map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true}, 1},
		{4, stores("a", "b", "c", "d", "e", "f"), map[string]bool{"a": true, "b": true, "c": true}, -1},
		{8, stores("a", "b", "c", "d", "e", "f", "g", "h", "a", "b", "c"), map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": true, "g": true, "h": true}, 1},
	} {
		m := &Meta{K: c.k, M: len(c.stores) - c.k, Stores: c.stores}
		if got := tolerance(m, c.alive); got != c.want {
			t.Errorf("%d+%d on %v (alive %v): tolerates %d node losses, want %d", m.K, m.M, c.stores, c.alive, got, c.want)
		}
	}
	s := &Service{cfg: Config{K: 4, M: 2}}
	for n, want := range map[int]string{6: "", 7: "", 3: "3 live node(s) for 4+2 stripes: up to 2 shards of a stripe share a node, so buffered data survives the loss of 1 node(s)", 1: "survives the loss of 0 node(s)"} {
		got := s.placementWarning(n)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("warning for %d nodes: %q, want one with %q", n, got, want)
		}
	}
}

// TestTransientBlipMovesNothing: a node that, for a moment, does not see
// a live peer (a gossip blip, shorter than DownGrace) neither heals nor
// repairs the peer's shards elsewhere: no placement moves away from a live
// holder, and reads during the blip reconstruct and return the bytes.
func TestTransientBlipMovesNothing(t *testing.T) {
	tc := newTestCluster(t, 4, 4, 2)
	tc.tune = func(c *Config) { c.DownGrace = time.Hour }
	for _, n := range tc.names {
		tc.stop(n)
	}
	for _, n := range tc.names {
		tc.start(n)
	}
	r := rand.New(rand.NewSource(17))
	f, ref := tc.file("f")
	want := writeSynced(t, tc.svc("n0"), ref, nil, r, 6)
	tc.net.mu.Lock()
	tc.net.view["n1"] = []string{"n0", "n1", "n3"} // n1 does not see n2 for a while
	tc.net.mu.Unlock()
	s := tc.svc("n1")
	passes(t, s, 3)
	s.shards = newShardCache(256)
	if got := readAll(t, s, ref, f); !bytes.Equal(got, want) {
		t.Fatal("n1 reads other bytes while it does not see n2")
	}
	passes(t, s, 2)
	tc.net.mu.Lock()
	delete(tc.net.view, "n1")
	tc.net.mu.Unlock()
	for _, n := range tc.names {
		x := tc.svc(n)
		x.mu.Lock()
		for id, m := range x.mu.metas {
			if m.Gen != 0 {
				x.mu.Unlock()
				t.Fatalf("%s: stripe %016x moved (generation %d) while every node was up", n, id, m.Gen)
			}
		}
		x.mu.Unlock()
	}
}

// TestNoServiceIsNotAFailure: a member that runs no burst buffer answers
// peer calls 503 with NoServiceHeader; the transport says so (ErrNoService)
// and a publish does not retry it (nothing to tell it).
func TestNoServiceIsNotAFailure(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set(NoServiceHeader, "1")
		http.Error(w, "node: this node runs no burst buffer", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tr := NewHTTPTransport(func(string) (string, error) { return strings.TrimPrefix(srv.URL, "http://"), nil })
	if err := tr.Publish(context.Background(), "x", nil); !errors.Is(err, ErrNoService) {
		t.Fatalf("publish to a node without a burst buffer: %v, want ErrNoService", err)
	}
	s := &Service{cfg: Config{Node: "me", PeerRetry: time.Hour, Cluster: memCluster{&memNet{live: map[string]bool{"x": true}}}, Transport: tr},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.mu.owed = map[string]bool{}
	calls.Store(0)
	s.publishPeers(&Meta{})
	if calls.Load() != 1 || len(s.mu.owed) != 0 {
		t.Fatalf("publish to a node without a burst buffer: %d calls, owed %v; want 1 call, nothing owed", calls.Load(), s.mu.owed)
	}
}

// waitReaped waits until every node but except has deleted every shard of
// the stripes of exts.
func waitReaped(t *testing.T, tc *testCluster, exts []Extent, except string) {
	t.Helper()
	for _, n := range tc.names {
		if n == except {
			continue
		}
		s := tc.svc(n)
		waitFor(t, func() bool {
			for _, e := range exts {
				for _, st := range s.stores {
					for i := 0; i < tc.k+tc.m; i++ {
						if st.Has(e.Stripe, i) {
							return false
						}
					}
				}
			}
			return true
		}, n+" reaped the drained stripes")
	}
}
