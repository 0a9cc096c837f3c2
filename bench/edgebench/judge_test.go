package edgebench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"engine/bench/internal/benchrun"
)

// result makes up one target's figures for a scenario, one per round.
func result(target string, s Scenario, rates []float64, p99 float64) Result {
	r := Result{Target: target, Scenario: s.Name, Size: s.Size, P99Us: p99}
	var v []float64
	for i, x := range rates {
		smp := Sample{Round: i + 1, ReqPerSec: x, P99Us: p99}
		if x > 0 {
			smp.Requests = int64(x * 10)
			v = append(v, x)
		}
		r.Rounds = append(r.Rounds, smp)
	}
	r.ReqPerSec = benchrun.Median(v)
	return r
}

func TestVerdicts(t *testing.T) {
	hit := Scenario{Name: "hit-1KiB", Kind: Hit, Size: 1 << 10}
	for _, tc := range []struct {
		name             string
		ours, peer       float64
		oursP99, peerP99 float64
		errors, fetches  int64
		want, why        string
	}{
		{"at the goal", 1300, 1000, 900, 1000, 0, 0, Pass, ""},
		{"well above", 3000, 1000, 1000, 1000, 0, 0, Pass, ""},
		{"just below", 1299, 1000, 900, 1000, 0, 0, Fail, "requests/s 1.30× < 1.30×"},
		{"p99 worse", 2000, 1000, 1001, 1000, 0, 0, Fail, "p99"},
		{"errors", 2000, 1000, 900, 1000, 3, 0, Fail, "3 errors"},
		{"origin fetches", 2000, 1000, 900, 1000, 0, 5, Fail, "fetched 5 times"},
		{"ours nothing", 0, 1000, 0, 1000, 0, 0, Fail, "no request"},
		{"varnish nothing", 1000, 0, 900, 0, 0, 0, NA, "varnish completed no request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, peer := result(Ours, hit, []float64{tc.ours}, tc.oursP99), result(Varnish, hit, []float64{tc.peer}, tc.peerP99)
			ours.Errors, ours.Fetches = tc.errors, tc.fetches
			c := compare(hit, &ours, &peer)
			if c.Verdict != tc.want || !strings.Contains(c.Why, tc.why) {
				t.Errorf("%s (%s), want %s (%s)", c.Verdict, c.Why, tc.want, tc.why)
			}
		})
	}
}

// TestRevalidationHasNoGoal: the 304 ratio is reported, never judged.
func TestRevalidationHasNoGoal(t *testing.T) {
	s := Scenario{Name: "revalidate-304", Kind: Revalidate, Size: 1 << 10}
	ours, peer := result(Ours, s, []float64{500}, 10), result(Varnish, s, []float64{1000}, 5)
	c := compare(s, &ours, &peer)
	if c.HasGoal || c.Verdict != NA || c.Ratio != 0.5 {
		t.Errorf("304: %+v, want ratio 0.5 and no goal", c)
	}
}

// TestRoundRatios: the ratio is the median of the per-round ratios.
func TestRoundRatios(t *testing.T) {
	hit := Scenario{Name: "hit-64KiB", Kind: Hit, Size: 64 << 10}
	ours, peer := result(Ours, hit, []float64{100, 300, 90}, 1), result(Varnish, hit, []float64{100, 100, 100}, 1)
	if c := compare(hit, &ours, &peer); c.Ratio != 1 || c.Verdict != Fail || len(c.RoundRatios) != 3 {
		t.Errorf("%+v: want the median round's 1.00×, FAIL", c)
	}
	peer = result(Varnish, hit, []float64{50, 0, 50}, 1) // round 2 failed: left out
	if c := compare(hit, &ours, &peer); c.Ratio != 1.9 || c.Verdict != Pass {
		t.Errorf("%+v: want (2+1.8)/2 = 1.90×, PASS", c)
	}
}

// TestPrintOursNotMeasured: what the report says while engined has no
// --edge, and that it survives JSON.
func TestPrintOursNotMeasured(t *testing.T) {
	r := &Report{Rounds: 1, Objects: 10, Sizes: DefaultSizes, Scenarios: Scenarios(DefaultSizes), Load: "wrk -t2 -c64 -d1s --latency",
		Targets: []TargetInfo{{Name: Ours, Skipped: "not measured (engined has no --edge)"}, {Name: Varnish, Endpoint: "http://127.0.0.1:1"}}}
	for _, s := range r.Scenarios {
		res := result(Varnish, s, []float64{20000}, 3000)
		res.WarmFetches = 10
		r.Results = append(r.Results, res)
	}
	r.judge()
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{
		"ours: not measured (engined has no --edge)",
		"hit-1KiB: GET of 10 cached objects of 1 KiB",
		"revalidate-304: GET with If-None-Match",
		"goals: 0 of 0 met (2 not measured)",
		"got ours: not measured (engined has no --edge)",
		"10 / 0",
		"srv CPU/req wrk CPU/req",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if len(r.Goals) != 2 || len(r.Comparisons) != 3 {
		t.Errorf("%d goals, %d comparisons; want 2 and 3", len(r.Goals), len(r.Comparisons))
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || len(back.Results) != 3 || back.Targets[0].Skipped == "" {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
}

// TestSummarizeCPU: the CPU per request is the median over the rounds
// that completed requests, and the table shows it as s3bench does.
func TestSummarizeCPU(t *testing.T) {
	s := Scenario{Name: "hit-64KiB", Kind: Hit, Size: 64 << 10}
	samples := []Sample{
		{Round: 1, Requests: 1000, ReqPerSec: 100, ServerCPUPerReq: 30, WrkCPUPerReq: 4},
		{Round: 2, Requests: 0, Errors: 1, FirstError: "warm-up: refused"},
		{Round: 3, Requests: 1000, ReqPerSec: 100, ServerCPUPerReq: 10, WrkCPUPerReq: 8},
		{Round: 4, Requests: 1000, ReqPerSec: 100, ServerCPUPerReq: 1500, WrkCPUPerReq: 6},
	}
	res := summarize(Varnish, s, samples)
	if res.ServerCPUPerReq != 30 || res.WrkCPUPerReq != 6 {
		t.Errorf("srv %v µs, wrk %v µs per request; want the medians of the 3 rounds with requests, 30 and 6", res.ServerCPUPerReq, res.WrkCPUPerReq)
	}
	r := &Report{Rounds: 4}
	res.ServerCPUPerReq = 1234
	if row := r.row(res); !strings.Contains(row, "  1.23 ms        6 µs ") {
		t.Errorf("row %q: want srv CPU/req 1.23 ms, wrk CPU/req 6 µs", row)
	}
}
