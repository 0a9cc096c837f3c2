package gensort

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// naiveSummary is a straightforward, independent implementation of the
// valsort rules used to check the fast paths.
func naiveSummary(b []byte) Summary {
	var s Summary
	for i := 0; i+RecordSize <= len(b); i += RecordSize {
		r := b[i : i+RecordSize]
		s.Checksum.AddCRC(crc32.ChecksumIEEE(r))
		if s.Records == 0 {
			copy(s.First[:], r)
		} else {
			switch c := bytes.Compare(s.Last[:KeySize], r[:KeySize]); {
			case c == 0:
				s.Duplicates++
			case c > 0:
				if s.Unordered == 0 {
					s.FirstUnordered = s.Records
				}
				s.Unordered++
			}
		}
		copy(s.Last[:], r)
		s.Records++
	}
	return s
}

// sortRecords returns the records of b sorted by key (stable).
func sortRecords(b []byte) []byte {
	n := len(b) / RecordSize
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = b[i*RecordSize : (i+1)*RecordSize]
	}
	slices.SortStableFunc(recs, func(x, y []byte) int { return bytes.Compare(x[:KeySize], y[:KeySize]) })
	out := make([]byte, 0, len(b))
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

func validate(t testing.TB, b []byte) Summary {
	t.Helper()
	v := NewValidator()
	v.Write(b)
	s, err := v.Summary()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// smallKeyRecords returns n records whose keys come from a tiny alphabet,
// so duplicates and order changes are frequent.
func smallKeyRecords(rng *rand.Rand, n int) []byte {
	b := genRecords(rng.Uint64N(1<<40), n, Options{})
	for i := 0; i < n; i++ {
		r := b[i*RecordSize:]
		clear(r[:KeySize])
		r[rng.IntN(KeySize)] = byte(rng.IntN(3))
	}
	return b
}

func TestValidatorCases(t *testing.T) {
	gen := genRecords(0, 1000, Options{})
	sorted := sortRecords(gen)
	rec := func(key string) []byte {
		r := make([]byte, RecordSize)
		copy(r, key)
		return r
	}
	cat := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	tests := []struct {
		name                 string
		data                 []byte
		records, dups, unord uint64
		firstUnordered       uint64
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one record", rec("a"), 1, 0, 0, 0},
		{"sorted generated", sorted, 1000, 0, 0, 0},
		{"ascending", cat(rec("a"), rec("b"), rec("c")), 3, 0, 0, 0},
		{"duplicates", cat(rec("a"), rec("a"), rec("b"), rec("b"), rec("b")), 5, 3, 0, 0},
		{"key byte 9 decides", cat(rec("aaaaaaaaab"), rec("aaaaaaaaaa")), 2, 0, 1, 1},
		{"bytes after key ignored", cat(rec("aaaaaaaaaaZ"), rec("aaaaaaaaaaA")), 2, 1, 0, 0},
		{"unordered", cat(rec("b"), rec("c"), rec("a"), rec("d"), rec("a")), 5, 0, 2, 2},
		{"descending", cat(rec("c"), rec("b"), rec("a")), 3, 0, 2, 1},
		{"high bit bytes unsigned", cat(rec("\x7f"), rec("\x80"), rec("\xff")), 3, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validate(t, tc.data)
			if s.Records != tc.records || s.Duplicates != tc.dups || s.Unordered != tc.unord {
				t.Fatalf("records/dups/unordered = %d/%d/%d, want %d/%d/%d",
					s.Records, s.Duplicates, s.Unordered, tc.records, tc.dups, tc.unord)
			}
			if tc.unord > 0 && s.FirstUnordered != tc.firstUnordered {
				t.Fatalf("FirstUnordered = %d, want %d", s.FirstUnordered, tc.firstUnordered)
			}
			if s.Ordered() != (tc.unord == 0) {
				t.Fatalf("Ordered() = %v with %d unordered", s.Ordered(), s.Unordered)
			}
			if s != naiveSummary(tc.data) {
				t.Fatalf("summary differs from naive implementation")
			}
			if tc.records > 0 {
				if !bytes.Equal(s.First[:], tc.data[:RecordSize]) || !bytes.Equal(s.Last[:], tc.data[len(tc.data)-RecordSize:]) {
					t.Fatal("First/Last are not the first and last records")
				}
			}
		})
	}
	// Unsorted generated data: compare with the naive implementation and
	// check the checksum does not depend on order.
	s, ss := validate(t, gen), validate(t, sorted)
	if s != naiveSummary(gen) || s.Ordered() || s.FirstUnordered == 0 {
		t.Fatalf("unsorted generated data: %+v", s)
	}
	if s.Checksum != ss.Checksum || s.Checksum != SumRecords(gen) {
		t.Fatalf("checksum of sorted %s != unsorted %s", ss.Checksum, s.Checksum)
	}
}

func TestValidatorPartialRecord(t *testing.T) {
	v := NewValidator()
	v.Write(genRecords(0, 10, Options{}))
	v.Write(make([]byte, 37))
	s, err := v.Summary()
	if err == nil || !strings.Contains(err.Error(), "37 bytes left over") || !strings.Contains(err.Error(), "10 whole records") {
		t.Fatalf("err = %v, want a partial-record error naming 37 bytes", err)
	}
	if s.Records != 10 {
		t.Fatalf("records = %d, want 10", s.Records)
	}
	// Completing the record clears the error.
	v.Write(make([]byte, 63))
	if s, err := v.Summary(); err != nil || s.Records != 11 {
		t.Fatalf("after completing: %d records, err %v", s.Records, err)
	}
}

func TestValidatorChecksumDetectsFlip(t *testing.T) {
	data := genRecords(0, 100, Options{ASCII: true})
	base := validate(t, data).Checksum
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 200 {
		i := rng.IntN(len(data))
		bit := byte(1) << rng.IntN(8)
		data[i] ^= bit
		if validate(t, data).Checksum == base {
			t.Fatalf("flipping bit %#x of byte %d left checksum %s unchanged", bit, i, base)
		}
		data[i] ^= bit
	}
}

func TestValidatorChunkingInvariance(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := range 20 {
		var data []byte
		switch iter % 3 {
		case 0:
			data = sortRecords(genRecords(rng.Uint64N(1e9), 500, Options{}))
		case 1:
			data = smallKeyRecords(rng, 700)
		default:
			data = genRecords(rng.Uint64N(1e9), 300, Options{ASCII: true, Skew: true})
		}
		want := validate(t, data)
		if want != naiveSummary(data) {
			t.Fatalf("iteration %d: one-write summary differs from naive", iter)
		}
		v := NewValidator()
		for rest := data; len(rest) > 0; {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = rng.IntN(3)
			case 1:
				n = rng.IntN(RecordSize + 1)
			default:
				n = rng.IntN(5 * RecordSize)
			}
			n = min(n, len(rest))
			v.Write(rest[:n])
			rest = rest[n:]
		}
		got, err := v.Summary()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("iteration %d (seed %d): chunked summary differs from one write", iter, seed)
		}
	}
}

func TestMergeMatchesConcatenation(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := range 200 {
		var data []byte
		if iter%2 == 0 {
			data = smallKeyRecords(rng, rng.IntN(60))
		} else {
			data = sortRecords(genRecords(rng.Uint64N(1e9), rng.IntN(60), Options{}))
		}
		n := len(data) / RecordSize
		// Random cut points; repeats make empty partitions.
		cuts := []int{0, n}
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(n+1))
		}
		slices.Sort(cuts)
		var parts []Summary
		for i := 0; i+1 < len(cuts); i++ {
			parts = append(parts, validate(t, data[cuts[i]*RecordSize:cuts[i+1]*RecordSize]))
		}
		if got, want := Merge(parts), validate(t, data); got != want {
			t.Fatalf("iteration %d (seed %d), cuts %v: Merge = %+v\nwant %+v", iter, seed, cuts, brief(got), brief(want))
		}
	}
}

type briefSummary struct {
	Records, Duplicates, Unordered, FirstUnordered uint64
	Checksum                                       string
}

func brief(s Summary) briefSummary {
	return briefSummary{s.Records, s.Duplicates, s.Unordered, s.FirstUnordered, s.Checksum.String()}
}

func TestMergeBoundaries(t *testing.T) {
	rec := func(key string) []byte {
		r := make([]byte, RecordSize)
		copy(r, key)
		return r
	}
	cat := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	a := validate(t, cat(rec("a"), rec("b"), rec("c")))
	b := validate(t, cat(rec("b"), rec("d"))) // starts below a's last key
	c := validate(t, cat(rec("d"), rec("e"))) // starts equal to b's last key
	d := validate(t, cat(rec("f"), rec("e"))) // unordered inside
	var empty Summary

	m := Merge([]Summary{a, empty, b, empty, c, d, empty})
	if m.Records != 9 || m.Unordered != 2 || m.FirstUnordered != 3 || m.Duplicates != 1 {
		t.Fatalf("Merge = %+v, want 9 records, 2 unordered (first at 3), 1 duplicate", brief(m))
	}
	if m.First != a.First || m.Last != d.Last {
		t.Fatal("merged First/Last wrong")
	}
	// Unordered only inside a later partition: index is global.
	m = Merge([]Summary{a, empty, d})
	if m.Unordered != 1 || m.FirstUnordered != 4 {
		t.Fatalf("Merge(a, d) = %+v, want first unordered at 4", brief(m))
	}
	if m := Merge(nil); m != (Summary{}) {
		t.Fatalf("Merge(nil) = %+v", brief(m))
	}
	if m := Merge([]Summary{empty, empty}); m != (Summary{}) {
		t.Fatalf("Merge(empties) = %+v", brief(m))
	}
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateFile(t *testing.T) {
	ctx := context.Background()
	// Several ioChunk pieces so the parallel path and its merge are used;
	// keys from a tiny alphabet put duplicates and disorder on chunk
	// boundaries too.
	rng := rand.New(rand.NewPCG(7, 7))
	data := smallKeyRecords(rng, 2*chunkRecs+1234)
	p := writeTemp(t, "recs.dat", data)
	got, err := ValidateFile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := naiveSummary(data); got != want {
		t.Fatalf("ValidateFile = %+v\nwant %+v", brief(got), brief(want))
	}

	sorted := sortRecords(genRecords(0, 3000, Options{}))
	got, err = ValidateFile(ctx, writeTemp(t, "sorted.dat", sorted))
	if err != nil || !got.Ordered() || got.Records != 3000 || got != naiveSummary(sorted) {
		t.Fatalf("sorted file: %+v, %v", brief(got), err)
	}

	got, err = ValidateFile(ctx, writeTemp(t, "empty.dat", nil))
	if err != nil || got != (Summary{}) {
		t.Fatalf("empty file: %+v, %v", brief(got), err)
	}

	partial := writeTemp(t, "partial.dat", append(genRecords(0, 10, Options{}), 1, 2, 3))
	_, err = ValidateFile(ctx, partial)
	for _, want := range []string{partial, "3 bytes left over", "offset 1000", "file size 1003"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("partial file: err %v, want it to mention %q", err, want)
		}
	}

	if _, err := ValidateFile(ctx, filepath.Join(t.TempDir(), "missing.dat")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.dat") {
		t.Fatalf("missing file: err %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ValidateFile(cctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err %v", err)
	}
}
