package gensort

import (
	"bytes"
	"testing"
)

// FuzzValidator: any bytes, written in any chunking, give the same summary
// as one write and as the naive implementation, and never panic.
func FuzzValidator(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, 250), []byte{1, 99, 100})
	f.Add(genRecords(0, 5, Options{}), []byte{3, 200, 7})
	f.Add(sortRecords(genRecords(0, 8, Options{ASCII: true})), []byte{0, 0, 150})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole := NewValidator()
		whole.Write(data)
		want, werr := whole.Summary()

		v := NewValidator()
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i]))
			}
			v.Write(rest[:n])
			rest = rest[n:]
		}
		got, gerr := v.Summary()
		if got != want || (gerr == nil) != (werr == nil) {
			t.Fatalf("chunked summary %+v (err %v) != whole %+v (err %v)", brief(got), gerr, brief(want), werr)
		}
		if (werr != nil) != (len(data)%RecordSize != 0) {
			t.Fatalf("error %v for %d bytes", werr, len(data))
		}
		whole_ := data[:len(data)/RecordSize*RecordSize]
		if ns := naiveSummary(whole_); ns != want {
			t.Fatalf("summary %+v != naive %+v", brief(want), brief(ns))
		}
		// Every real summary encodes and decodes.
		b, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Summary
		if err := back.UnmarshalBinary(b); err != nil || back != want {
			t.Fatalf("round trip: %v", err)
		}
		// Merge of a two-way split equals the whole.
		if len(cuts) > 0 && len(whole_) > 0 {
			k := int(cuts[0]) % (len(whole_)/RecordSize + 1) * RecordSize
			m := Merge([]Summary{naiveSummary(whole_[:k]), naiveSummary(whole_[k:])})
			if m != want {
				t.Fatalf("Merge of split at %d: %+v != %+v", k, brief(m), brief(want))
			}
		}
	})
}

// FuzzSummaryUnmarshal: any bytes either fail to decode or decode to a
// summary that re-encodes to the same bytes.
func FuzzSummaryUnmarshal(f *testing.F) {
	good, _ := validate(f, genRecords(0, 10, Options{})).MarshalBinary()
	f.Add(good)
	f.Add(good[:100])
	f.Add([]byte("GSUM"))
	f.Add(make([]byte, SummarySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Summary
		if err := s.UnmarshalBinary(b); err != nil {
			if s != (Summary{}) {
				t.Fatal("summary modified on error")
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encode: %v, equal %v", err, bytes.Equal(again, b))
		}
		if _, err := ReadSummaries(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	})
}
