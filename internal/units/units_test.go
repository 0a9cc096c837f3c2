package units

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"2GiB": 2 << 30, "2GB": 2e9, "512mib": 512 << 20, "1_000kB": 1e6, "1e9B": 1e9, " 3 MB ": 3e6, "7b": 7,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"2", "", "GB", "-1GB", "x1GB", "1e30PB", "NaNGB"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.00 kB", 1_340: "1.34 kB", 12_500_000: "12.5 MB", 100e12: "100 TB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatExactRoundTrips(t *testing.T) {
	for _, n := range []int64{1, 100, 1000, 1024, 3 << 30, 5e9, 1e12 + 100, 7 << 40} {
		s := FormatExact(n)
		if got, err := ParseBytes(s); err != nil || got != n {
			t.Errorf("ParseBytes(FormatExact(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}
