package edgebench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"engine/bench/internal/proc"
)

// needTools skips the test, saying why, unless wrk and varnishd are
// installed.
func needTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the smoke test runs wrk and varnishd")
	}
	for _, tool := range []struct{ name, fallback, pkg string }{{"wrk", "/usr/bin/wrk", "wrk"}, {"varnishd", "/usr/sbin/varnishd", "varnish"}} {
		if _, err := exec.LookPath(tool.name); err != nil && !proc.IsExecutable(tool.fallback) {
			t.Skipf("SKIPPED: no %s in PATH or at %s: install the Debian package %s (scripts/install-deps.sh does)", tool.name, tool.fallback, tool.pkg)
		}
	}
}

// TestSmoke really runs the harness, briefly (10 objects, 1 s per run),
// against our edge (engined built from this tree) and Varnish.
func TestSmoke(t *testing.T) {
	needTools(t)
	engined := filepath.Join(t.TempDir(), "engined")
	if out, err := exec.Command("go", "build", "-o", engined, "engine/cmd/engined").CombinedOutput(); err != nil {
		t.Fatalf("go build engined: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	jsonFile := filepath.Join(t.TempDir(), "report.json")
	rep, err := Run(ctx, Config{
		Dir:      t.TempDir(),
		Engined:  engined,
		Targets:  []string{Ours, Varnish},
		Objects:  10,
		Duration: time.Second,
		// The checked run after each timed one: every response's status
		// and size checked in wrk's Lua.
		CheckDuration: time.Second,
		Settle:        50 * time.Millisecond,
		JSON:          jsonFile,
		Out:           &out,
	})
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 6 {
		t.Fatalf("%d results, want 6 (hits of 1 KiB and 64 KiB, 304s; ours and Varnish)", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.ReqPerSec <= 0 || r.P50Us <= 0 || r.P99Us < r.P50Us {
			t.Errorf("%s %s: %v req/s, p50 %v µs, p99 %v µs", r.Target, r.Scenario, r.ReqPerSec, r.P50Us, r.P99Us)
		}
		if r.Errors != 0 {
			t.Errorf("%s %s: %d errors: %s", r.Target, r.Scenario, r.Errors, r.Rounds[0].FirstError)
		}
		if r.Checked <= 0 || r.CheckedReqPerSec <= 0 {
			t.Errorf("%s %s: %d responses checked one by one, at %v req/s; want some", r.Target, r.Scenario, r.Checked, r.CheckedReqPerSec)
		}
		// A second of 64 connections keeps a cache busy: varnishd's
		// manager alone would be near 0, its cache process is not.
		if smp := r.Rounds[0]; smp.ServerCPU < 0.1 || smp.WrkCPU <= 0 || r.ServerCPUPerReq <= 0 || r.WrkCPUPerReq <= 0 {
			t.Errorf("%s %s: CPU: server %v s (%v µs per request), wrk %v s (%v µs per request)",
				r.Target, r.Scenario, smp.ServerCPU, r.ServerCPUPerReq, smp.WrkCPU, r.WrkCPUPerReq)
		}
		if r.Fetches != 0 {
			t.Errorf("%s %s: %d origin fetches in the timed run, want 0: %v", r.Target, r.Scenario, r.Fetches, r.Rounds[0].FetchedPaths)
		}
		if want := map[string]int64{"hit-1KiB": 10, "hit-64KiB": 10, "revalidate-304": 0}[r.Scenario]; r.WarmFetches != want {
			t.Errorf("%s %s: %d origin fetches in the warm-up, want %d", r.Target, r.Scenario, r.WarmFetches, want)
		}
	}
	if !strings.Contains(out.String(), "Edge cache benchmark") || len(rep.Comparisons) != 3 {
		t.Errorf("%d comparisons; the report:\n%s", len(rep.Comparisons), out.String())
	}
	var back Report
	if data, err := os.ReadFile(jsonFile); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(data, &back); err != nil || len(back.Results) != 6 {
		t.Errorf("the JSON report: %v, %d results", err, len(back.Results))
	}
	if _, err := os.Stat(rep.Host.WorkDir); !os.IsNotExist(err) {
		t.Errorf("the work directory %s is still there: %v", rep.Host.WorkDir, err)
	}
}
