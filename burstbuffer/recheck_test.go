package burstbuffer

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"
)

// TestLostDropRecheckedWithHolders: a drop that never reached a node
// (answered, then lost: it crossed the node's restart) leaves the node
// with the drained stripes' metas and extents while their holders buried
// them and deleted their shards. A read there finds the holders without
// the shards; it must not answer EIO for good: the node asks the holders
// to resync it, buries the stripes, and reads the drained bytes from the
// backing file.
func TestLostDropRecheckedWithHolders(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	d := drainAroundVictim(t, tc, 21, func(victim string) { tc.net.lose["drop:"+victim] = -1 })
	if tc.svc(d.victim).index.Dead(d.exts[0].Stripe) {
		t.Fatalf("%s knows the drained stripe dead: the lost drop reached it, the test proves nothing", d.victim)
	}
	if got := readAll(t, tc.svc(d.victim), d.ref, d.f); !bytes.Equal(got, d.want) {
		t.Fatalf("%s reads %d bytes that differ from the %d drained", d.victim, len(got), len(d.want))
	}
}

// TestDeadStripeNoCandidateAgain: a peer's dump that still lists a stripe
// as a candidate (it has not heard that the stripe died) does not make it
// a candidate again on a node that buried it from another peer's dump: a
// candidate short of shards would be declared lost, though it was only
// drained or overwritten (the whole-cluster restart of TestDurabilityFsynced).
func TestDeadStripeNoCandidateAgain(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	r := rand.New(rand.NewSource(22))
	_, ref := tc.file("f")
	writeSynced(t, tc.svc("n0"), ref, nil, r, 1)
	s := tc.svc("n1")
	s.mu.Lock()
	var m *Meta
	for _, x := range s.mu.metas {
		m = x
	}
	s.mu.Unlock()
	if m == nil {
		t.Fatal("n1 knows no stripe")
	}
	if err := s.merge(&Dump{DurableState: DurableState{Dead: []uint64{m.Stripe}}, Held: map[uint64][]int{}}); err != nil {
		t.Fatal(err)
	}
	if err := s.merge(&Dump{Cands: []*Meta{m}, Held: map[uint64][]int{m.Stripe: {0}}}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	_, cand := s.mu.cands[m.Stripe]
	s.mu.Unlock()
	if cand {
		t.Fatalf("stripe %016x, buried, is a candidate again after a dump that still lists it", m.Stripe)
	}
}

// TestRestartWaitsForMembersNotSeenYet: a node that restarts knows the
// cluster's members (settled) before gossip shows them live. It must not
// call itself synced (serve S3, mount, place all shards on itself) until
// it has heard from them, or they have been down for DownGrace.
func TestRestartWaitsForMembersNotSeenYet(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2)
	tc.tune = func(c *Config) { c.DownGrace = time.Hour }
	tc.stop("n0")
	tc.net.mu.Lock()
	tc.net.view["n0"] = []string{"n0"}
	tc.net.mu.Unlock()
	s := tc.start("n0")
	passes(t, s, 5)
	if s.Synced() {
		t.Fatal("n0 says it is synced with n1 and n2 live members it has not heard from yet")
	}
	tc.net.mu.Lock()
	delete(tc.net.view, "n0")
	tc.net.mu.Unlock()
	waitFor(t, s.Synced, "n0 synced once it sees n1 and n2")
}

// TestDropWhileOutOfViewResyncs: a node that drops out of the drainer's
// view of the live nodes (and comes back, before the drainer's member
// loop noticed) misses the drop: it must be made to resync, not keep the
// drained stripes for good (EIO once the others reaped their shards).
func TestDropWhileOutOfViewResyncs(t *testing.T) {
	tc := newTestCluster(t, 3, 4, 2) // 2 shards a node: no node reads a stripe alone
	ctx := context.Background()
	r := rand.New(rand.NewSource(17))
	f, ref := tc.file("f")
	want := writeSynced(t, tc.svc("n0"), ref, nil, r, 3)
	own := owner(ref.ID, tc.names)
	victim := "n0"
	for _, n := range tc.names {
		if n != own {
			victim = n
		}
	}
	passes(t, tc.svc(own), 2) // the drainer has seen the victim live
	exts, err := tc.svc(victim).index.FileExtents(ref.ID)
	if err != nil || len(exts) == 0 {
		t.Fatalf("extents on %s: %v %v", victim, exts, err)
	}
	var view []string
	for _, n := range tc.names {
		if n != victim {
			view = append(view, n)
		}
	}
	tc.net.mu.Lock()
	tc.net.view[own] = view
	tc.net.mu.Unlock()
	if err := tc.svc(own).drainFile(ctx, ref.ID); err != nil {
		t.Fatal(err)
	}
	tc.net.mu.Lock()
	delete(tc.net.view, own)
	tc.net.mu.Unlock()
	s := tc.svc(victim)
	waitFor(t, func() bool {
		for _, e := range exts {
			if !s.index.Dead(e.Stripe) {
				return false
			}
		}
		return true
	}, victim+" learned that the drained stripes are dead")
	for _, n := range tc.names {
		if got := readAll(t, tc.svc(n), ref, f); !bytes.Equal(got, want) {
			t.Fatalf("%s reads %d bytes that differ from the %d drained", n, len(got), len(want))
		}
	}
}

// TestReadOfReapedStripeResyncs: the drainer does not see a node live
// (views differ) when it drops, and goes on not seeing it, so it never
// asks it to resync: the node, reading the drained stripes and finding
