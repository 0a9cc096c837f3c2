package gensort

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSumStringParse(t *testing.T) {
	for _, tc := range []struct {
		s    Sum
		want string
	}{
		{Sum{}, "0"},
		{Sum{0, 0x55fea8a1a}, "55fea8a1a"},
		{Sum{0, ^uint64(0)}, "ffffffffffffffff"},
		{Sum{1, 0}, "10000000000000000"},
		{Sum{0xabc, 0x12}, "abc0000000000000012"},
		{Sum{^uint64(0), ^uint64(0)}, strings.Repeat("f", 32)},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.s, got, tc.want)
		}
		if got, err := ParseSum(strings.ToUpper(tc.want)); err != nil || got != tc.s {
			t.Errorf("ParseSum(%q) = %#v, %v", tc.want, got, err)
		}
	}
	for _, bad := range []string{"", "x", "12 3", "-1", strings.Repeat("1", 33)} {
		if _, err := ParseSum(bad); err == nil {
			t.Errorf("ParseSum(%q) succeeded", bad)
		}
	}
	var s Sum
	s.AddCRC(0xffffffff)
	s.Add(Sum{0, ^uint64(0)})
	if s != (Sum{1, 0xfffffffe}) {
		t.Errorf("carry: got %#v", s)
	}
}

func TestRecordCRC(t *testing.T) {
	recs := genRecords(0, 10, Options{})
	var s Sum
	for i := range 10 {
		s.AddCRC(RecordCRC(recs[i*RecordSize : (i+1)*RecordSize]))
	}
	if s.String() != "55fea8a1a" || SumRecords(recs) != s {
		t.Fatalf("sum of RecordCRC = %s, SumRecords = %s, want 55fea8a1a", s, SumRecords(recs))
	}
}

func sampleSummaries(t testing.TB) []Summary {
	rng := rand.New(rand.NewPCG(3, 4))
	out := []Summary{
		validate(t, genRecords(0, 1, Options{})),
		validate(t, genRecords(0, 1000, Options{})),
		validate(t, sortRecords(genRecords(5, 1000, Options{ASCII: true}))),
		validate(t, smallKeyRecords(rng, 500)),
		{Records: 1 << 40, Checksum: Sum{0x1234, 0x5678}, Duplicates: 7, Unordered: 3, FirstUnordered: 1<<40 - 1},
	}
	return out
}

func TestSummaryRoundTrip(t *testing.T) {
	for i, s := range append(sampleSummaries(t), Summary{}) {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("summary %d: %v", i, err)
		}
		if len(b) != SummarySize {
			t.Fatalf("encoded size %d, want %d", len(b), SummarySize)
		}
		var got Summary
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("summary %d: %v", i, err)
		}
		if got != s {
			t.Fatalf("summary %d: round trip changed it", i)
		}
	}
}

func TestSummaryCorrupt(t *testing.T) {
	s := sampleSummaries(t)[1]
	good, _ := s.MarshalBinary()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", good[:SummarySize-1], "259 bytes"},
		{"too long", append(bytes.Clone(good), 0), "261 bytes"},
		{"empty", nil, "0 bytes"},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), "bad magic"},
		{"bad version", mod(func(b []byte) []byte { b[4] = 9; return b }), "version 9"},
		{"flipped count", mod(func(b []byte) []byte { b[8] ^= 1; return b }), "corrupt"},
		{"flipped record", mod(func(b []byte) []byte { b[200] ^= 0x80; return b }), "corrupt"},
		{"flipped crc", mod(func(b []byte) []byte { b[SummarySize-1] ^= 1; return b }), "corrupt"},
	} {
		var got Summary
		err := got.UnmarshalBinary(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
		if got != (Summary{}) {
			t.Errorf("%s: target modified on error", tc.name)
		}
	}
	// Inconsistent contents are refused on both sides.
	for _, bad := range []Summary{
		{Records: 0, Duplicates: 1},
		{Records: 2, Duplicates: 1, Unordered: 1},
		{Records: 5, Unordered: 1, FirstUnordered: 0},
		{Records: 5, Unordered: 1, FirstUnordered: 5},
		{Records: 5, FirstUnordered: 2},
	} {
		if _, err := bad.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "inconsistent") {
			t.Errorf("MarshalBinary(%+v): err %v", brief(bad), err)
		}
	}
}

func TestReadSummaries(t *testing.T) {
	sums := sampleSummaries(t)
	var buf bytes.Buffer
	for _, s := range sums {
		b, _ := s.MarshalBinary()
		buf.Write(b)
	}
	all := buf.Bytes()
	got, err := ReadSummaries(bytes.NewReader(all))
	if err != nil || len(got) != len(sums) {
		t.Fatalf("ReadSummaries: %d summaries, %v", len(got), err)
	}
	for i := range got {
		if got[i] != sums[i] {
			t.Fatalf("summary %d differs", i)
		}
	}
	if got, err := ReadSummaries(bytes.NewReader(nil)); err != nil || len(got) != 0 {
		t.Fatalf("empty input: %v, %v", got, err)
	}
	_, err = ReadSummaries(bytes.NewReader(all[:len(all)-10]))
	if err == nil || !strings.Contains(err.Error(), "truncated summary 4") || !strings.Contains(err.Error(), "250 of 260") {
		t.Fatalf("truncated: err %v", err)
	}
	bad := bytes.Clone(all)
	bad[SummarySize+20] ^= 1
	if _, err := ReadSummaries(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "summary 1 at offset 260") {
		t.Fatalf("corrupt second summary: err %v", err)
	}
}
