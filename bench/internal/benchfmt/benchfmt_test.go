package benchfmt

import "testing"

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Ratio(0), "-"}, {Ratio(-1), "-"}, {Ratio(1.234), "1.23×"},
		{Micros(0), "-"}, {Micros(512), "512 µs"}, {Micros(1500), "1.50 ms"}, {Micros(2.5e6), "2.50 s"},
		{Bytes(100), "100 B"}, {Bytes(64 << 10), "64 KiB"}, {Bytes(1536), "1.5 KiB"}, {Bytes(3 << 19), "1.5 MiB"},
		{Bytes(1 << 20), "1 MiB"}, {Bytes(2 << 30), "2 GiB"}, {Bytes(5 << 29), "2.50 GiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
