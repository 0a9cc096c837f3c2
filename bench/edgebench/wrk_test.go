package edgebench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata files are wrk 4.1.0's real output (Debian's wrk, --latency,
// with a script this package generated): against Varnish, and against
// small Python servers that answer 503, slowly, or too slowly (socket
// timeouts).
func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		file                      string
		requests                  int64
		seconds, readBytes        float64
		reqPerSec, bytesPerSec    float64
		avg, stdev, max           float64
		p50, p75, p90, p99        float64
		timeouts, non2xx          int64
		expect                    int
		good, badStatus, firstBad int64
	}{
		{file: "wrk-varnish-hit-1KiB.txt", requests: 69166, seconds: 2.01, readBytes: 91.69 * (1 << 20),
			reqPerSec: 34471.55, bytesPerSec: 45.70 * (1 << 20), avg: 1550, stdev: 2190, max: 40310,
			p50: 1020, p75: 1770, p90: 2960, p99: 10220, expect: 200, good: 69166},
		{file: "wrk-varnish-hit-64KiB.txt", requests: 40202, seconds: 2.02, readBytes: 2.47 * (1 << 30),
			reqPerSec: 19906.29, bytesPerSec: 1.22 * (1 << 30), avg: 1740, stdev: 808.05, max: 19050,
			p50: 1530, p75: 1890, p90: 2420, p99: 4540, expect: 200, good: 40202},
		{file: "wrk-varnish-revalidate-304.txt", requests: 66053, seconds: 2.02, readBytes: 22.32 * (1 << 20),
			reqPerSec: 32741.49, bytesPerSec: 11.07 * (1 << 20), avg: 1350, stdev: 1970, max: 30090,
			p50: 1030, p75: 1500, p90: 2010, p99: 10650, expect: 304, good: 66053},
		{file: "wrk-python-non2xx.txt", requests: 1011, seconds: 2.10, readBytes: 1.12 * (1 << 20),
			reqPerSec: 481.27, bytesPerSec: 545.03 * (1 << 10), avg: 81920, stdev: 134360, max: 845380,
			p50: 44030, p75: 47730, p90: 50690, p99: 834420, non2xx: 908, expect: 200, good: 103, badStatus: 908, firstBad: 503},
		{file: "wrk-slow-seconds.txt", requests: 82, seconds: 4.01, readBytes: 92.32 * (1 << 10),
			reqPerSec: 20.43, bytesPerSec: 23.00 * (1 << 10), avg: 1.28e6, stdev: 117980, max: 1.61e6,
			p50: 1.24e6, p75: 1.25e6, p90: 1.41e6, p99: 1.61e6, timeouts: 17, non2xx: 72, expect: 200, good: 10, badStatus: 72, firstBad: 503},
		{file: "wrk-timeouts.txt", requests: 10, seconds: 3.02, readBytes: 11.26 * (1 << 10),
			reqPerSec: 3.31, bytesPerSec: 3.73 * (1 << 10), timeouts: 10, non2xx: 9, expect: 200, good: 1, badStatus: 9, firstBad: 503},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseWrk(string(data))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"requests", float64(r.Requests), float64(tc.requests)},
				{"seconds", r.Seconds, tc.seconds},
				{"read bytes", r.ReadBytes, tc.readBytes},
				{"requests/s", r.ReqPerSec, tc.reqPerSec},
				{"bytes/s", r.BytesPerSec, tc.bytesPerSec},
				{"avg", r.AvgUs, tc.avg}, {"stdev", r.StdevUs, tc.stdev}, {"max", r.MaxUs, tc.max},
				{"p50", r.P50Us, tc.p50}, {"p75", r.P75Us, tc.p75}, {"p90", r.P90Us, tc.p90}, {"p99", r.P99Us, tc.p99},
				{"timeouts", float64(r.Timeout), float64(tc.timeouts)},
				{"socket errors", float64(r.SocketErrors()), float64(tc.timeouts)},
				{"non-2xx", float64(r.Non2xx3xx), float64(tc.non2xx)},
				{"expect", float64(r.Expect), float64(tc.expect)},
				{"good", float64(r.Good), float64(tc.good)},
				{"bad status", float64(r.BadStatus), float64(tc.badStatus)},
				{"first bad", float64(r.FirstBadStatus), float64(tc.firstBad)},
				{"bad size", float64(r.BadSize), 0},
			} {
				if math.Abs(f.got-f.want) > 1e-9*math.Max(1, math.Abs(f.want)) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/wrk-varnish-hit-1KiB.txt")
	if err != nil {
		t.Fatal(err)
	}
	refused, err := os.ReadFile("testdata/wrk-refused.txt")
	if err != nil {
		t.Fatal(err)
	}
	drop := func(prefix string) string {
		var out []string
		for _, l := range strings.Split(string(good), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), prefix) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name, out, want string
	}{
		{"connection refused", string(refused), "no Requests/sec"},
		{"empty", "", "no Requests/sec"},
		{"no --latency", drop("99%"), "--latency"},
		{"no script summary", drop("edgebench:"), "done()"},
		{"bad time", strings.Replace(string(good), "10.22ms", "10.22parsecs", 1), "10.22parsecs"},
		{"bad summary", strings.Replace(string(good), "good=69166", "good=lots", 1), "good"},
		{"summary field missing", strings.Replace(string(good), " bad_size=0", "", 1), "bad_size"},
		{"bad size unit", strings.Replace(string(good), "45.70MB", "45.70", 1), "45.70"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWrk(tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseUnits(t *testing.T) {
	for in, want := range map[string]float64{"0.00us": 0, "456.00us": 456, "1.23ms": 1230, "7.5s": 7.5e6, "1.00m": 60e6, "2.00h": 7200e6} {
		if got, err := parseTime(in); err != nil || math.Abs(got-want) > 1e-6 {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ms", "1.2", "-1ms", "NaNs", "Infms", "1.2x"} {
		if got, err := parseTime(in); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, got)
		}
	}
	for in, want := range map[string]float64{"512.00B": 512, "1.50KB": 1536, "2.00MB": 2 << 20, "1.00GB": 1 << 30, "1.00TB": 1 << 40} {
		if got, err := parseBytes(in); err != nil || math.Abs(got-want) > 1e-6 {
			t.Errorf("parseBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "B", "12", "1.2XB", "-1KB", "InfMB"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %v, want an error", in, got)
		}
	}
}

func TestFill(t *testing.T) {
	data, err := os.ReadFile("testdata/wrk-slow-seconds.txt")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseWrk(string(data))
	if err != nil {
		t.Fatal(err)
	}
	var smp Sample
	r.fill(&smp, Scenario{Name: "hit-1KiB", Kind: Hit, Size: 1024})
	if smp.Errors != 72+17 || smp.Unexpected != 72 || smp.SocketErrors != 17 || smp.Non2xx3xx != 72 {
		t.Errorf("errors %d (unexpected %d, socket %d, non-2xx %d), want 89 (72, 17, 72)", smp.Errors, smp.Unexpected, smp.SocketErrors, smp.Non2xx3xx)
	}
	for _, want := range []string{"72 responses with a status other than 200 (the first: 503)", "timeout 17"} {
		if !strings.Contains(smp.FirstError, want) {
			t.Errorf("first error %q, want %q in it", smp.FirstError, want)
		}
	}
	if math.Abs(smp.MBps-23.00*1024/1e6) > 1e-9 || smp.P99Us != 1.61e6 {
		t.Errorf("MB/s %v, p99 %v", smp.MBps, smp.P99Us)
	}
}

// FuzzParseWrk: wrk's output is parsed, never trusted; no input panics,
// and what parses has no negative or NaN figure.
func FuzzParseWrk(f *testing.F) {
	names, _ := filepath.Glob("testdata/wrk-*.txt")
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseWrk(out)
		if err != nil {
			return
		}
		for _, v := range []float64{r.Seconds, r.ReadBytes, r.BytesPerSec, r.AvgUs, r.MaxUs, r.P50Us, r.P99Us} {
			if !finite(v) {
				t.Fatalf("a parsed figure is %v: %+v", v, r)
			}
		}
		if r.Requests < 0 || r.Good < 0 || r.BadStatus < 0 || r.SocketErrors() < 0 {
			t.Fatalf("negative counts: %+v", r)
		}
	})
}
