package burstbuffer

import (
	"bytes"
	"context"
	"testing"
)

// TestDrainedShadowedWriteStaysGone is what TestCrashHarness found (seeds
// 13 and 14 with -crash.ops=100): a write shadowed by a newer one, in a
// stripe kept live by another file's bytes, comes back after a restart
// once the newer write was drained, and reads (and would drain) its old
// bytes over the newer ones. The drop of the drained piece tombstones only
// the newer stripe's visible range; at the restart the newer stripe is
// dead, nothing shadows the older write any more, and it has no tombstone.
// A truncate loses the same way (the harness's seeds 4, 7, 10, 11, 15).
func TestDrainedShadowedWriteStaysGone(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	ctx := context.Background()
	fa, a := tc.file("a")
	_, b := tc.file("b")
	s := tc.svc("n0")
	old := bytes.Repeat([]byte{'o'}, 3000)
	nw := bytes.Repeat([]byte{'n'}, 3000)
	// One stripe with a's old bytes and some of b's.
	if err := s.WriteAt(ctx, a, old, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAt(ctx, b, []byte("keeps the stripe live"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, a); err != nil {
		t.Fatal(err)
	}
	// A newer stripe over a's bytes.
	if err := s.WriteAt(ctx, a, nw, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Drain a only: its newer bytes go to the backing file and the newer
	// stripe dies; the older stripe lives on for b.
	if err := s.drainFile(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, a, fa); !bytes.Equal(got, nw) {
		t.Fatalf("before the restart a reads %q..., want the newer bytes", got[:8])
	}
	tc.stop("n0")
	s = tc.start("n0")
	waitFor(t, s.Synced, "n0 resynced")
	if got := readAll(t, s, a, fa); !bytes.Equal(got, nw) {
		t.Fatalf("after a restart a reads %q..., not the newer bytes it was drained with: the shadowed older write came back", got[:8])
	}
}

// TestTruncatedShadowedWriteStaysGone: the same through a truncate (the
// harness's seeds 4 and 10 with -crash.ops=100): bytes truncated away come
// back after a restart.
func TestTruncatedShadowedWriteStaysGone(t *testing.T) {
	tc := newTestCluster(t, 1, 4, 2)
	ctx := context.Background()
	fa, a := tc.file("a")
	_, b := tc.file("b")
	s := tc.svc("n0")
	if err := s.WriteAt(ctx, a, bytes.Repeat([]byte{'o'}, 3000), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAt(ctx, b, []byte("keeps the stripe live"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAt(ctx, a, bytes.Repeat([]byte{'n'}, 3000), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(ctx, a, fa, 100); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{'n'}, 100)
	if got := readAll(t, s, a, fa); !bytes.Equal(got, want) {
		t.Fatalf("before the restart a reads %d bytes, want the 100 left by the truncate", len(got))
	}
	tc.stop("n0")
	s = tc.start("n0")
	waitFor(t, s.Synced, "n0 resynced")
	if got := readAll(t, s, a, fa); !bytes.Equal(got, want) {
		t.Fatalf("after a restart a reads %d bytes (%q...), want the 100 left by the truncate: truncated bytes came back", len(got), got[:min(8, len(got))])
	}
}
