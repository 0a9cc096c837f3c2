package burstbuffer

import (
	"math/rand"
	"testing"
	"time"
)

// refByte is what the reference model holds for one byte.
type refByte struct {
	stripe  uint64
	pos     uint32
	version uint64
}

// TestIndexMatchesModel applies random writes (random versions, so out of
// order) and drops, and checks Lookup and the live counts against a
// byte-by-byte model.
func TestIndexMatchesModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	x, err := OpenIndex(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const size = 2000
	model := make([]refByte, size)
	const file = 42
	for step := 0; step < 400; step++ {
		stripe := uint64(1 + r.Intn(20))
		if r.Intn(5) == 0 {
			// Drop a random range of one stripe.
			off := uint64(r.Intn(size))
			end := min(size, off+uint64(1+r.Intn(300)))
			if _, err := x.Drop([]Piece{{Stripe: stripe, File: file, Off: off, End: end}}); err != nil {
				t.Fatal(err)
			}
			for i := off; i < end; i++ {
				if model[i].stripe == stripe {
					model[i] = refByte{}
				}
			}
			// A later write of a dropped stripe range must not come back:
			// mark tombstoned bytes.
			continue
		}
		var ws []Write
		for n := 1 + r.Intn(4); n > 0; n-- {
			off := uint64(r.Intn(size - 1))
			l := uint32(1 + r.Intn(min(300, size-int(off))))
			ws = append(ws, Write{File: file, Off: off, Len: l, Pos: uint32(r.Intn(1000)), Version: uint64(1 + r.Intn(1000))})
		}
		if x.Dead(stripe) {
			continue
		}
		tombs, _ := tombstones(x.db, stripe, file)
		if _, err := x.Apply(stripe, ws); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			for i := w.Off; i < w.Off+uint64(w.Len); i++ {
				dropped := false
				for _, tb := range tombs {
					if i >= tb[0] && i < tb[1] {
						dropped = true
					}
				}
				if dropped {
					continue
				}
				old := model[i]
				if old.stripe == 0 || old.version < w.Version || (old.version == w.Version && old.stripe < stripe) {
					model[i] = refByte{stripe: stripe, pos: w.Pos + uint32(i-w.Off), version: w.Version}
				}
			}
		}
		check(t, x, model, step)
	}
}

func check(t *testing.T, x *Index, model []refByte, step int) {
	t.Helper()
	exts, err := x.Lookup(42, 0, uint64(len(model)))
	if err != nil {
		t.Fatal(err)
	}
	live := map[uint64]int64{}
	for _, e := range exts {
		for i := e.FileOff; i < e.FileOff+e.Length; i++ {
			m := model[i]
			if e.Hole {
				if m.stripe != 0 {
					t.Fatalf("step %d: byte %d: hole, model has stripe %d", step, i, m.stripe)
				}
				continue
			}
			p := e.Pos + uint32(i-e.FileOff)
			if m.stripe != e.Stripe || m.pos != p || m.version != e.Version {
				t.Fatalf("step %d: byte %d: index (stripe %d pos %d v %d), model (stripe %d pos %d v %d)", step, i, e.Stripe, p, e.Version, m.stripe, m.pos, m.version)
			}
			live[e.Stripe]++
		}
	}
	var total int64
	for _, n := range live {
		total += n
	}
	if files, _ := x.Files(); files[42] != total {
		t.Fatalf("step %d: dirty bytes %d, extents hold %d", step, files[42], total)
	}
	for s, n := range live {
		if got := x.Live(s); got != n {
			t.Fatalf("step %d: stripe %d: live %d, extents hold %d", step, s, got, n)
		}
	}
}
