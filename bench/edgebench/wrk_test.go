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
		checked                   bool
		expect                    int
		responses, bytes          int64
		good, badStatus, firstBad int64
	}{
		{file: "wrk-varnish-hit-1KiB.txt", requests: 53115, seconds: 2.03, readBytes: 70.46 * (1 << 20),
			reqPerSec: 26224.63, bytesPerSec: 34.79 * (1 << 20), avg: 1900, stdev: 1830, max: 26070,
			p50: 1310, p75: 2520, p90: 4090, p99: 8870, expect: 200, responses: 53115, bytes: 73880818},
		{file: "wrk-varnish-hit-64KiB.txt", requests: 37766, seconds: 2.01, readBytes: 2.32 * (1 << 30),
			reqPerSec: 18769.86, bytesPerSec: 1.15 * (1 << 30), avg: 1820, stdev: 755.08, max: 17780,
			p50: 1660, p75: 2090, p90: 2500, p99: 4240, expect: 200, responses: 37766, bytes: 2489070684},
		{file: "wrk-varnish-hit-64KiB-checked.txt", requests: 32062, seconds: 2.01, readBytes: 1.97 * (1 << 30),
			reqPerSec: 15925.50, bytesPerSec: 0.98 * (1 << 30), avg: 2140, stdev: 940, max: 21170,
			p50: 1960, p75: 2530, p90: 2940, p99: 5020, checked: true, expect: 200, responses: 32062, bytes: 2113128616, good: 32062},
		{file: "wrk-varnish-revalidate-304.txt", requests: 73581, seconds: 2.01, readBytes: 24.94 * (1 << 20),
			reqPerSec: 36554.81, bytesPerSec: 12.39 * (1 << 20), avg: 1060, stdev: 790.20, max: 18020,
			p50: 930, p75: 1320, p90: 1770, p99: 3810, expect: 304, responses: 73581, bytes: 26155113},
		{file: "wrk-python-non2xx.txt", requests: 1011, seconds: 2.10, readBytes: 1.12 * (1 << 20),
			reqPerSec: 481.27, bytesPerSec: 545.03 * (1 << 10), avg: 81920, stdev: 134360, max: 845380,
			p50: 44030, p75: 47730, p90: 50690, p99: 834420, non2xx: 908, checked: true, expect: 200, responses: 1011, bytes: 1174405,
			good: 103, badStatus: 908, firstBad: 503},
		{file: "wrk-slow-seconds.txt", requests: 82, seconds: 4.01, readBytes: 92.32 * (1 << 10),
			reqPerSec: 20.43, bytesPerSec: 23.00 * (1 << 10), avg: 1.28e6, stdev: 117980, max: 1.61e6,
			p50: 1.24e6, p75: 1.25e6, p90: 1.41e6, p99: 1.61e6, timeouts: 17, non2xx: 72, checked: true, expect: 200, responses: 82, bytes: 94536,
			good: 10, badStatus: 72, firstBad: 503},
		{file: "wrk-timeouts.txt", requests: 10, seconds: 3.02, readBytes: 11.26 * (1 << 10),
			reqPerSec: 3.31, bytesPerSec: 3.73 * (1 << 10), timeouts: 10, non2xx: 9, checked: true, expect: 200, responses: 10, bytes: 11530,
			good: 1, badStatus: 9, firstBad: 503},
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
			if r.Checked != tc.checked {
				t.Errorf("checked = %v, want %v", r.Checked, tc.checked)
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
				{"responses", float64(r.Responses), float64(tc.responses)},
				{"bytes", float64(r.Bytes), float64(tc.bytes)},
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
		{"bad time", strings.Replace(string(good), "8.87ms", "8.87parsecs", 1), "8.87parsecs"},
		{"bad summary", strings.Replace(string(good), "bytes=73880818", "bytes=lots", 1), "bytes"},
		{"summary field missing", strings.Replace(string(good), " bad_size=0", "", 1), "bad_size"},
		{"summary without the bytes", strings.Replace(string(good), " bytes=73880818", "", 1), "bytes"},
		{"summary of another run", strings.Replace(string(good), "requests=53115", "requests=53114", 1), "counts 53114 requests, wrk's line 53115"},
		{"bad size unit", strings.Replace(string(good), "34.79MB", "34.79", 1), "34.79"},
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
	r.fill(&smp, Scenario{Name: "hit-1KiB", Kind: Hit, Size: 1024}, 64)
	// A checked run's statuses ≥ 400 are among its unexpected responses,
	// not counted twice.
	if smp.Errors != 72+17 || smp.Unexpected != 72 || smp.SocketErrors != 17 || smp.Non2xx3xx != 72 || smp.Checked != 82 {
		t.Errorf("errors %d (unexpected %d, socket %d, non-2xx %d), checked %d, want 89 (72, 17, 72), 82",
			smp.Errors, smp.Unexpected, smp.SocketErrors, smp.Non2xx3xx, smp.Checked)
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

// TestFillUnchecked: a timed run without the per-response check is
// judged by wrk's counts: its statuses ≥ 400, its socket errors and the
// bytes per response, which must be the scenario's body and a header.
func TestFillUnchecked(t *testing.T) {
	parse := func(file string) WrkResult {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseWrk(string(data))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hit64 := Scenario{Name: "hit-64KiB", Kind: Hit, Size: 64 << 10}
	hit1 := Scenario{Name: "hit-1KiB", Kind: Hit, Size: 1 << 10}
	reval := Scenario{Name: "revalidate-304", Kind: Revalidate, Size: 1 << 10}
	for _, tc := range []struct {
		file string
		s    Scenario
		want string // in FirstError; "": no error
	}{
		{"wrk-varnish-hit-64KiB.txt", hit64, ""},
		{"wrk-varnish-hit-1KiB.txt", hit1, ""},
		{"wrk-varnish-revalidate-304.txt", reval, ""},
		// 64 KiB bodies where 1 KiB ones or 304s were due, and 304s where
		// 1 KiB bodies were.
		{"wrk-varnish-hit-64KiB.txt", hit1, "65908 bytes per response, not 1024 (the body)"},
		{"wrk-varnish-hit-64KiB.txt", reval, "bytes per response, not 0 (the body)"},
		{"wrk-varnish-revalidate-304.txt", hit1, "355 bytes per response, not 1024 (the body)"},
	} {
		var smp Sample
		r := parse(tc.file)
		r.Expect = tc.s.Status() // a right script, wrong answers
		r.fill(&smp, tc.s, 64)
		if tc.want == "" {
			if smp.Errors != 0 || smp.Checked != 0 || smp.Requests == 0 {
				t.Errorf("%s as %s: %d errors (%s), %d checked, %d requests; want 0 errors and 0 checked",
					tc.file, tc.s.Name, smp.Errors, smp.FirstError, smp.Checked, smp.Requests)
			}
			continue
		}
		if smp.Errors != 1 || !strings.Contains(smp.FirstError, tc.want) {
			t.Errorf("%s as %s: %d errors (%q), want 1 saying %q", tc.file, tc.s.Name, smp.Errors, smp.FirstError, tc.want)
		}
	}

	// The checked run after a timed one adds its own findings.
	var smp Sample
	parse("wrk-varnish-hit-64KiB.txt").fill(&smp, hit64, 64)
	parse("wrk-varnish-hit-64KiB-checked.txt").fillChecked(&smp, hit64, 64)
	if smp.Errors != 0 || smp.Checked != 32062 || smp.CheckedReqPerSec != 15925.50 || smp.ReqPerSec != 18769.86 {
		t.Errorf("timed + checked: %d errors (%s), %d checked at %v req/s, timed %v req/s; want 0, 32062 at 15925.50, 18769.86",
			smp.Errors, smp.FirstError, smp.Checked, smp.CheckedReqPerSec, smp.ReqPerSec)
	}
	parse("wrk-slow-seconds.txt").fillChecked(&smp, Scenario{Name: "hit-1KiB", Kind: Hit, Size: 1024}, 64)
	// Its 72 bad statuses, 17 timeouts, and bytes per response far from
	// the timed run's.
	if smp.Errors != 72+17+1 || smp.Unexpected != 72 || smp.Checked != 32062+82 ||
		!strings.HasPrefix(smp.FirstError, "checked run: 72 responses with a status other than 200 (the first: 503)") ||
		!strings.Contains(smp.FirstError, "the timed run read 65908 bytes per response, the checked run 1153") {
		t.Errorf("a checked run with bad responses: %d errors (%q), %d unexpected, %d checked; want 90, 72, %d",
			smp.Errors, smp.FirstError, smp.Unexpected, smp.Checked, 32062+82)
	}
}

// TestTimedAgainstChecked: what the bounds on a timed run's bytes per
// response let pass — here every revalidation answered 200 with the body
// — the checked run that follows shows: its responses, all checked, took
// other bytes. Responses the end of a run cuts short are allowed for.
func TestTimedAgainstChecked(t *testing.T) {
	reval := Scenario{Name: "revalidate-304", Kind: Revalidate, Size: 1 << 10}
	run := func(checked bool, expect int, responses, perResponse int64) WrkResult {
		r := WrkResult{Requests: responses, Responses: responses, Bytes: responses * perResponse, Summary: true, Checked: checked, Expect: expect}
		if checked {
			r.Good = responses
		}
		return r
	}
	for _, tc := range []struct {
		name          string
		timed, chk    WrkResult
		s             Scenario
		errors        int64
		want, wantNot string
	}{
		{"200s for 304s", run(false, 304, 300_000, 1400), run(true, 304, 60_000, 355), reval, 1,
			"the timed run read 1400 bytes per response, the checked run 355", ""},
		{"the same headers, one more digit", run(false, 304, 300_000, 357), run(true, 304, 60_000, 355), reval, 0, "", ""},
		{"a script for 200s", run(false, 200, 300_000, 355), run(true, 200, 60_000, 355), reval, 2,
			"the script expected status 200, the scenario 304; checked run: the script expected status 200", ""},
		{"a checked run that checked nothing", run(false, 304, 300_000, 355), run(false, 304, 60_000, 355), reval, 1,
			"checked run: its script did not check the responses", ""},
		// 16 MiB objects: 64 responses cut short add up to 64 × 16 MiB
		// to 100 completed ones.
		{"big objects cut short", WrkResult{Requests: 100, Responses: 100, Bytes: 100*(16<<20+300) + 64*(8<<20), Summary: true, Expect: 200},
			WrkResult{Requests: 20, Responses: 20, Bytes: 20*(16<<20+300) + 64*(4<<20), Summary: true, Checked: true, Expect: 200, Good: 20},
			Scenario{Name: "hit-16MiB", Kind: Hit, Size: 16 << 20}, 0, "", ""},
	} {
		var smp Sample
		tc.timed.fill(&smp, tc.s, 64)
		tc.chk.fillChecked(&smp, tc.s, 64)
		if smp.Errors != tc.errors || !strings.Contains(smp.FirstError, tc.want) {
			t.Errorf("%s: %d errors (%q), want %d saying %q", tc.name, smp.Errors, smp.FirstError, tc.errors, tc.want)
		}
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
