package sortjob

import (
	"fmt"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1GB", 10_000_000, true},
		{"100TB", 1_000_000_000_000, true},
		{"50MB", 500_000, true},
		{"1 gb", 10_000_000, true},
		{"10000000rec", 10_000_000, true},
		{"10Mrec", 10_000_000, true},
		{"1.5kB", 15, true},
		{"1000B", 10, true},
		{"1KiB", 0, false}, // 1024 bytes: not whole records
		{"1000", 0, false}, // no unit
		{"", 0, false},
		{"-1GB", 0, false},
		{"lots", 0, false},
		{"1.5rec", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// FuzzParseSize: any string is either refused or gives a non-negative record
// count whose byte size the same parser accepts back.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1GB", "100TB", "10Mrec", "1KiB", "1e3B", " 2 gb ", "-1", "1.5rec", "9e99PB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		back, err := ParseSize(fmt.Sprintf("%dB", n*RecordSize))
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but %dB parses to %d, %v", s, n, n*RecordSize, back, err)
		}
	})
}
