package burstbuffer

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"

	"github.com/google/btree"

	"engine/erasure"
)

// memIndex is an Index without its Pebble store: enough for Apply of
// stripes with no tombstones, FileExtents and Lookup.
func memIndex() *Index {
	return &Index{files: map[uint64]*btree.BTreeG[Extent]{}, live: map[uint64]int64{}, dead: map[uint64]bool{},
		newest: map[uint64]uint64{}, dirty: map[uint64]int64{}, tombed: map[uint64]int{}}
}

// seedMetas are metas as writeStripe makes them, encoded as a publish
// body: a full 4+2 stripe of 4 KiB writes to two files, a small 1+2
// stripe sealed by an fsync, and a repaired one.
func seedMetas() [][]byte {
	a, b := MakeRef(1, []byte{1, 2, 3, 4, 5, 6, 7, 8}), MakeRef(1, []byte{9, 10, 11, 12, 13, 14, 15, 16})
	stores := func(n int) []StoreRef {
		var out []StoreRef
		for i := 0; i < n; i++ {
			out = append(out, StoreRef{Node: []string{"n0", "n1", "n2"}[i%3], Store: i / 3})
		}
		return out
	}
	code, _ := erasure.New(4, 2)
	full := &Meta{Stripe: 0x1234567890abcdef | 1, Writer: "n0", K: 4, M: 2, ShardSize: 64 << 10, DataLen: 256 << 10,
		Stores: stores(6), Files: []FileRef{a, b}, Done: []uint64{3, 5}}
	for i := 0; i < 64; i++ {
		f := a
		if i%3 == 0 {
			f = b
		}
		full.Writes = append(full.Writes, Write{File: f.ID, Off: uint64(i*7919%97) << 12, Len: 4096, Pos: uint32(i << 12), Version: 1_700_000_000_000_000_000 + uint64(i)})
	}
	_ = code
	small := &Meta{Stripe: 77, Writer: "n1", K: 1, M: 2, ShardSize: 512, DataLen: 100, Stores: stores(3),
		Files: []FileRef{a}, Writes: []Write{{File: a.ID, Off: 1 << 40, Len: 100, Version: 1_700_000_000_000_000_001, Clean: true}}}
	repaired := *small
	repaired.Gen = 3
	repaired.Stores = []StoreRef{{"n2", 0}, {"n2", 1}, {"n0", 0}}
	var out [][]byte
	for _, ms := range [][]*Meta{{full}, {small, &repaired}} {
		j, _ := json.Marshal(ms)
		out = append(out, j)
	}
	out = append(out, []byte(`[{"id":1,"k":2,"m":1,"ss":0,"dl":4096,"st":[{"n":"a","s":0},{"n":"a","s":1},{"n":"a","s":2}],"f":[],"wr":[]}]`))
	out = append(out, []byte(`[null]`), []byte(`[{"k":300,"m":-1,"ss":-5,"dl":9e18}]`))
	return out
}

// FuzzMeta decodes a publish body as the peer handler does and validates
// each meta: it must never panic, and a meta Validate accepts must be safe
// for the read and drain arithmetic: every write's bytes lie in the data
// shards, range reads of them pass checkShardRange, and the drain's
// windows over the file's extents are ordered, inside the file, and
// bounded.
func FuzzMeta(f *testing.F) {
	for _, s := range seedMetas() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var metas []*Meta
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&metas); err != nil {
			return
		}
		x := memIndex()
		for _, m := range metas {
			if m.Validate() != nil {
				continue
			}
			for _, w := range m.Writes {
				// readStripe's walk over the shards of the write's bytes.
				pos, n := int(w.Pos), int(w.Len)
				for n > 0 {
					idx, at := pos/m.ShardSize, pos%m.ShardSize
					k := min(n, m.ShardSize-at)
					if idx >= m.K || idx >= len(m.Stores) || k <= 0 {
						t.Fatalf("write %+v of a valid meta reads shard %d (k %d) at %d", w, idx, m.K, at)
					}
					if err := checkShardRange(idx, m.K, m.M, m.ShardSize, at, k); err != nil {
						t.Fatalf("write %+v of a valid meta: %v", w, err)
					}
					pos, n = pos+k, n-k
				}
			}
			if _, err := x.Apply(m.Stripe, m.Writes); err != nil {
				t.Fatal(err)
			}
		}
		for file := range x.files {
			exts, _ := x.FileExtents(file)
			var end uint64
			for _, e := range exts {
				if e.Length == 0 || e.FileOff+e.Length < e.FileOff || e.FileOff+e.Length > 1<<63-1 {
					t.Fatalf("extent %+v", e)
				}
				end = max(end, e.FileOff+e.Length)
			}
			for _, chunk := range []uint64{4096, 1 << 20} {
				wins := planDrain(exts, chunk, end)
				var last uint64
				for _, w := range wins {
					if w.end <= w.off || w.off < last || w.end > end || w.end-w.off > maxDrainWrite {
						t.Fatalf("drain window %+v (after %d) of a %d-byte file", w, last, end)
					}
					last = w.end
				}
				if len(exts) > 0 && len(wins) == 0 {
					t.Fatal("extents but no drain windows")
				}
			}
		}
	})
}

// TestWriteSpans checks writeSpans.covers against a scan of the writes.
func TestWriteSpans(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		var ws []Write
		for i := r.Intn(8); i > 0; i-- {
			ws = append(ws, Write{File: uint64(r.Intn(2)), Off: uint64(r.Intn(100)), Len: uint32(1 + r.Intn(30))})
		}
		sp := newWriteSpans(ws, 0)
		for q := 0; q < 50; q++ {
			off := uint64(r.Intn(130))
			end := off + 1 + uint64(r.Intn(30))
			want := false
			for _, w := range ws {
				if w.File == 0 && w.Off <= off && end <= w.Off+uint64(w.Len) {
					want = true
				}
			}
			if got := sp.covers(off, end); got != want {
				t.Fatalf("writes %+v: covers(%d, %d) = %v, want %v", ws, off, end, got, want)
			}
		}
	}
}
