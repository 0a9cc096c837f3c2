package s3bench

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

// TestSmoke really runs ours (engined built from this tree), briefly, at
// 1 and 4 clients with small objects, and versitygw too when a binary is
// in PATH or the cache directory (it never builds one: that takes
// minutes).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke test builds and runs engined")
	}
	bin := t.TempDir()
	engined := filepath.Join(bin, "engined")
	if out, err := exec.Command("go", "build", "-o", engined, "engine/cmd/engined").CombinedOutput(); err != nil {
		t.Fatalf("go build engined: %v\n%s", err, out)
	}
	vgw, err := exec.LookPath("versitygw")
	if err != nil {
		vgw = filepath.Join(CacheBin(""), "versitygw")
		if !proc.IsExecutable(vgw) {
			vgw = ""
		}
	}
	if vgw != "" {
		t.Logf("versitygw: %s", vgw)
	} else {
		t.Logf("the peer is SKIPPED: no versitygw in PATH or %s, and this test does not build it (minutes); "+
			"to include it: GOBIN=%s go install %s@%s", CacheBin(""), CacheBin(""), VersitygwPackage, VersitygwVersion)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	jsonFile := filepath.Join(t.TempDir(), "report.json")
	rep, err := Run(ctx, Config{
		Dir:         os.TempDir(),
		Engined:     engined,
		Versitygw:   vgw,
		NoBuild:     true,
		Sizes:       []int64{4 << 10, 16 << 10},
		Concurrency: []int{1, 4},
		Duration:    time.Second,
		Objects:     16,
		Settle:      50 * time.Millisecond,
		JSON:        jsonFile,
		Out:         &out,
	})
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	measured := 1
	if vgw != "" {
		measured = 2
	}
	if want := 2 * 2 * 2 * measured; len(rep.Results) != want {
		t.Fatalf("%d results, want %d", len(rep.Results), want)
	}
	for _, r := range rep.Results {
		if r.OpsPerSec <= 0 || r.MBps <= 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
			t.Errorf("%s %s %d ×%d: %v ops/s, %v MB/s, p50 %v, p99 %v", r.Target, r.Op, r.Size, r.Concurrency, r.OpsPerSec, r.MBps, r.P50Ms, r.P99Ms)
		}
		if r.Errors != 0 {
			t.Errorf("%s %s %d ×%d: %d errors: %s", r.Target, r.Op, r.Size, r.Concurrency, r.Errors, r.Rounds[0].FirstError)
		}
		if r.ServerCPUPerOp <= 0 {
			t.Errorf("%s %s %d ×%d: no server CPU measured", r.Target, r.Op, r.Size, r.Concurrency)
		}
	}
	if len(rep.Comparisons) != 8 || len(rep.Goals) != 8 {
		t.Errorf("%d comparisons, %d goals; want 8", len(rep.Comparisons), len(rep.Goals))
	}
	for _, c := range rep.Comparisons {
		if vgw == "" && c.Verdict != NA {
			t.Errorf("%s ×%d without the peer: %s, want n/a", c.Op, c.Concurrency, c.Verdict)
		}
		if vgw != "" && (c.Verdict == NA || c.Ratio <= 0) {
			t.Errorf("%s ×%d: %s, ratio %v, want a verdict", c.Op, c.Concurrency, c.Verdict, c.Ratio)
		}
	}
	if len(rep.Targets) != 2 {
		t.Fatalf("%d targets in the report, want both", len(rep.Targets))
	}
	for _, ti := range rep.Targets {
		if ti.Name == Versitygw && vgw == "" {
			if !strings.Contains(ti.Skipped, "not built") {
				t.Errorf("versitygw skipped because %q, want a note that it was not built", ti.Skipped)
			}
			continue
		}
		if ti.Skipped != "" || !strings.Contains(ti.Command, "127.0.0.1:") {
			t.Errorf("target %s: skipped %q, command %q", ti.Name, ti.Skipped, ti.Command)
		}
	}
	var back Report
	if data, err := os.ReadFile(jsonFile); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(data, &back); err != nil || len(back.Results) != len(rep.Results) {
		t.Errorf("the JSON report: %v, %d results", err, len(back.Results))
	}
	if _, err := os.Stat(rep.Host.WorkDir); !os.IsNotExist(err) {
		t.Errorf("the work directory %s is still there: %v", rep.Host.WorkDir, err)
	}
}
