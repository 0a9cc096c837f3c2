package benchfmt

import "testing"

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Ratio(0), "-"}, {Ratio(-1), "-"}, {Ratio(1.234), "1.23×"},
		{Micros(0), "-"}, {Micros(512), "512 µs"}, {Micros(1500), "1.50 ms"}, {Micros(2.5e6), "2.50 s"},
		{Bytes(100), "100 B"}, {Bytes(64 << 10), "64 KiB"}, {Bytes(1536), "1.5 KiB"}, {Bytes(3 << 19), "1.5 MiB"},
		{Bytes(1 << 20), "1 MiB"}, {Bytes(2 << 30), "2 GiB"}, {Bytes(5 << 29), "2.50 GiB"},
		{RoundRatios([]float64{1.234, 0.5}), " (median of 2 rounds' ratios: 1.23×, 0.50×)"}, {RoundRatios([]float64{2}), ""}, {RoundRatios(nil), ""},
		{Rate(0), "-"}, {Rate(99.94), "99.9"}, {Rate(123.4), "123"},
		{SizeLabel(1000), "1000B"}, {SizeLabel(1 << 10), "1KiB"}, {SizeLabel(64 << 10), "64KiB"}, {SizeLabel(1536), "1536B"},
		{SizeLabel(1 << 20), "1MiB"}, {SizeLabel(3 << 19), "1536KiB"}, {SizeLabel(1 << 30), "1024MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
