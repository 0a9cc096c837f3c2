package burstbuffer

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDrainedRangesModel: adding drained ranges keeps, for every byte, the
// newest version any range gave it, in ranges that do not overlap (so a
// write's cut is found in O(log n)); and what Pebble holds reopens to the
// same.
func TestDrainedRangesModel(t *testing.T) {
	const size = 200
	for seed := int64(1); seed <= 50; seed++ {
		r := rand.New(rand.NewSource(seed))
		dir := filepath.Join(t.TempDir(), "index")
		fs := vfs.NewMem()
		x, err := OpenIndex(dir, fs)
		if err != nil {
			t.Fatal(err)
		}
		model := make([]uint64, size)
		for range 40 {
			off := uint64(r.Intn(size - 1))
			end := off + 1 + uint64(r.Intn(size-int(off)))
			v := uint64(1 + r.Intn(30))
			if _, err := x.Drop([]Piece{{Stripe: 0, File: 7, Off: off, End: end, Version: v}}); err != nil {
				t.Fatal(err)
			}
			for i := off; i < end; i++ {
				model[i] = max(model[i], v)
			}
		}
		check := func(x *Index, when string) {
			t.Helper()
			got := make([]uint64, size)
			var prevEnd uint64
			x.drained[7].Ascend(func(d drainedRange) bool {
				if d.off < prevEnd || d.end <= d.off {
					t.Fatalf("seed %d %s: range %d..%d overlaps the one before (ends %d) or is empty", seed, when, d.off, d.end, prevEnd)
				}
				prevEnd = d.end
				for i := d.off; i < d.end; i++ {
					got[i] = d.version
				}
				return true
			})
			for i := range got {
				if got[i] != model[i] {
					t.Fatalf("seed %d %s: byte %d has version %d, want %d", seed, when, i, got[i], model[i])
				}
			}
			// A write is cut exactly where the bytes are drained at its
			// version or newer.
			v := uint64(1 + r.Intn(30))
			cut := make([]bool, size)
			for _, c := range x.drainedCutLocked(7, v, 0, size) {
				for i := c[0]; i < c[1]; i++ {
					cut[i] = true
				}
			}
			for i := range cut {
				if cut[i] != (model[i] >= v) {
					t.Fatalf("seed %d %s: a write of version %d at byte %d cut %v, drained at %d", seed, when, v, i, cut[i], model[i])
				}
			}
		}
		check(x, "live")
		x.Close()
		if x, err = OpenIndex(dir, fs); err != nil {
			t.Fatal(err)
		}
		check(x, "reopened")
		x.Close()
	}
}
