package httpx

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 10000
	type R = Range
	many := func(n int, spec string) string {
		return "bytes=" + strings.TrimSuffix(strings.Repeat(spec+",", n), ",")
	}
	distinct := func(n int) string { // n disjoint, non-adjacent 1-byte ranges
		var b strings.Builder
		b.WriteString("bytes=")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", 2*i, 2*i)
		}
		return b.String()
	}
	tests := []struct {
		h    string
		size int64
		want []Range
		err  error
	}{
		// RFC 9110 §14.1.2 examples (size 10000).
		{"bytes=0-499", size, []R{{0, 500}}, nil},
		{"bytes=500-999", size, []R{{500, 500}}, nil},
		{"bytes=-500", size, []R{{9500, 500}}, nil},
		{"bytes=9500-", size, []R{{9500, 500}}, nil},
		{"bytes=0-0,-1", size, []R{{0, 1}, {9999, 1}}, nil},
		{"bytes=500-600,601-999", size, []R{{500, 500}}, nil}, // adjacent: coalesced
		{"bytes=500-700,601-999", size, []R{{500, 500}}, nil}, // overlapping: coalesced
		// RFC 9110 §14.6 multipart example.
		{"bytes=500-999,7000-7999", 8000, []R{{500, 500}, {7000, 1000}}, nil},

		// Clamping and huge numbers.
		{"bytes=9000-20000", size, []R{{9000, 1000}}, nil},
		{"bytes=-20000", size, []R{{0, size}}, nil}, // suffix larger than size
		{"bytes=0-99999999999999999999999", size, []R{{0, size}}, nil},
		{"bytes=-99999999999999999999999", size, []R{{0, size}}, nil},
		{"bytes=9999-9999", size, []R{{9999, 1}}, nil},
		{"bytes=0-", 1, []R{{0, 1}}, nil},

		// Unsatisfiable -> 416.
		{"bytes=10000-", size, nil, ErrUnsatisfiable},
		{"bytes=10000-20000", size, nil, ErrUnsatisfiable},
		{"bytes=-0", size, nil, ErrUnsatisfiable},
		{"bytes=20000-,-0", size, nil, ErrUnsatisfiable},
		{"bytes=99999999999999999999-", size, nil, ErrUnsatisfiable},
		{"bytes=20000-,0-0", size, []R{{0, 1}}, nil}, // one satisfiable spec is enough

		// Zero-size representation.
		{"bytes=0-", 0, nil, ErrUnsatisfiable},
		{"bytes=0-0", 0, nil, ErrUnsatisfiable},
		{"bytes=-0", 0, nil, ErrUnsatisfiable},
		{"bytes=-5", 0, nil, nil}, // satisfiable but empty: serve the (empty) 200
		{"bytes=0-,-5", 0, nil, nil},

		// Ignored: not bytes, invalid syntax, unknown size.
		{"", size, nil, nil},
		{"bytes", size, nil, nil},
		{"bytes=", size, nil, nil},
		{"bytes=,", size, nil, nil},
		{"bytes=,, ,", size, nil, nil},
		{"items=0-1", size, nil, nil},
		{"bytes 0-1", size, nil, nil},
		{"bytes=a-b", size, nil, nil},
		{"bytes=5-1", size, nil, nil}, // last-pos < first-pos is invalid
		{"bytes=1", size, nil, nil},
		{"bytes=-", size, nil, nil},
		{"bytes=--1", size, nil, nil},
		{"bytes=-1-2", size, nil, nil},
		{"bytes=+1-2", size, nil, nil},
		{"bytes=0 -1", size, nil, nil},
		{"bytes=0-1;x", size, nil, nil},
		{"bytes=0-1,garbage", size, nil, nil}, // one bad spec voids the header
		{"bytes=0x10-", size, nil, nil},
		{"bytes=0-1", -1, nil, nil},

		// Case, whitespace, empty list elements.
		{"BYTES=0-1", size, []R{{0, 2}}, nil},
		{"Bytes=0-1", size, []R{{0, 2}}, nil},
		{"  bytes=0-1\t", size, []R{{0, 2}}, nil},
		{"bytes= 0-999, 4500-5499, -1000", size, []R{{0, 1000}, {4500, 1000}, {9000, 1000}}, nil},
		{"bytes=,0-1,,", size, []R{{0, 2}}, nil},

		// Order and overlap.
		{"bytes=500-599,0-99", size, []R{{500, 100}, {0, 100}}, nil}, // disjoint: request order
		{"bytes=500-599,0-99,50-520", size, []R{{0, 600}}, nil},
		{"bytes=0-10,5-", size, []R{{0, size}}, nil},
		{"bytes=-100,0-9,9950-", size, []R{{0, 10}, {9900, 100}}, nil},
		{"bytes=0-0,2-2,1-1", size, []R{{0, 3}}, nil},

		// Abuse limits.
		{many(MaxRanges, "0-"), size, []R{{0, size}}, nil},
		{many(MaxRanges+1, "0-"), size, nil, nil},
		{many(MaxRanges+1, "-0"), size, nil, nil},
		{distinct(MaxRanges), 1000, nil, nil}, // checked below
		{distinct(MaxRanges + 1), 1000, nil, nil},
		{"bytes=" + strings.Repeat(",", 10000) + "0-0", size, []R{{0, 1}}, nil},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.h, tt.size)
		if tt.h == distinct(MaxRanges) {
			if err != nil || len(got) != MaxRanges || got[MaxRanges-1] != (Range{126, 1}) {
				t.Errorf("ParseRange(%d distinct) = %d ranges, %v", MaxRanges, len(got), err)
			}
			continue
		}
		if !errors.Is(err, tt.err) || !slices.Equal(got, tt.want) {
			t.Errorf("ParseRange(%.60q, %d) = %v, %v; want %v, %v", tt.h, tt.size, got, err, tt.want, tt.err)
		}
		// AppendRange agrees and keeps dst.
		dst := []Range{{7, 7}}
		app, aerr := AppendRange(dst, tt.h, tt.size)
		if !errors.Is(aerr, tt.err) || !slices.Equal(app[1:], tt.want) || app[0] != (Range{7, 7}) {
			t.Errorf("AppendRange(%.60q, %d) = %v, %v", tt.h, tt.size, app, aerr)
		}
	}
}

// TestParseRangeReference checks ParseRange against a byte-set reference
// on random sets of specs: the returned ranges must select exactly the
// bytes the satisfiable specs select, and never a byte twice.
func TestParseRangeReference(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := 0; iter < 5000; iter++ {
		size := rng.Int64N(40)
		n := 1 + rng.IntN(6)
		want := make([]bool, size)
		specs := make([]string, n)
		satisfiable, emptySuffix := false, false
		for i := range specs {
			switch rng.IntN(3) {
			case 0: // a-b
				a := rng.Int64N(50)
				b := a + rng.Int64N(20)
				specs[i] = fmt.Sprintf("%d-%d", a, b)
				for x := a; x <= b && x < size; x++ {
					want[x], satisfiable = true, true
				}
			case 1: // a-
				a := rng.Int64N(50)
				specs[i] = fmt.Sprintf("%d-", a)
				for x := a; x < size; x++ {
					want[x], satisfiable = true, true
				}
			default: // -n
				l := rng.Int64N(50)
				specs[i] = fmt.Sprintf("-%d", l)
				if l > 0 && size == 0 {
					emptySuffix = true
				}
				for x := max(0, size-l); x < size; x++ {
					want[x], satisfiable = true, true
				}
			}
		}
		h := "bytes=" + strings.Join(specs, ", ")
		got, err := ParseRange(h, size)
		switch {
		case !satisfiable && emptySuffix:
			if got != nil || err != nil {
				t.Fatalf("seed %d: ParseRange(%q, %d) = %v, %v; want ignore", seed, h, size, got, err)
			}
			continue
		case !satisfiable:
			if err != ErrUnsatisfiable {
				t.Fatalf("seed %d: ParseRange(%q, %d) = %v, %v; want 416", seed, h, size, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: ParseRange(%q, %d): %v", seed, h, size, err)
		}
		seen := make([]bool, size)
		for _, r := range got {
			for x := r.Start; x < r.Start+r.Length; x++ {
				if seen[x] {
					t.Fatalf("seed %d: ParseRange(%q, %d) = %v sends byte %d twice", seed, h, size, got, x)
				}
				seen[x] = true
			}
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("seed %d: ParseRange(%q, %d) = %v; selects %v want %v", seed, h, size, got, seen, want)
		}
	}
}

func TestContentRange(t *testing.T) {
	tests := []struct {
		r    Range
		size int64
		want string
	}{
		{Range{0, 500}, 10000, "bytes 0-499/10000"},
		{Range{9999, 1}, 10000, "bytes 9999-9999/10000"},
		{Range{21010, 26000}, 47022, "bytes 21010-47009/47022"},
	}
	for _, tt := range tests {
		if got := ContentRange(tt.r, tt.size); got != tt.want {
			t.Errorf("ContentRange(%v, %d) = %q, want %q", tt.r, tt.size, got, tt.want)
		}
	}
	if got := UnsatisfiedContentRange(1234); got != "bytes */1234" {
		t.Errorf("UnsatisfiedContentRange = %q", got)
	}
}
