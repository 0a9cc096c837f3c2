package sortbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"engine/internal/units"
)

// buildEnginectl builds the real enginectl binary for the test.
func buildEnginectl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enginectl")
	cmd := exec.Command("go", "build", "-o", bin, "engine/cmd/enginectl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build engine/cmd/enginectl: %v\n%s", err, out)
	}
	return bin
}

func finitePositive(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

func find(res *Result, round int, sys string) *Measurement {
	for _, m := range res.Runs {
		if m.Round == round && m.System == sys {
			return m
		}
	}
	return nil
}

// TestSmoke runs the whole benchmark at 20 MB with the real engine binary.
func TestSmoke(t *testing.T) {
	bin := buildEnginectl(t)
	dir := filepath.Join(t.TempDir(), "work")
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	var out, log bytes.Buffer
	res, err := Run(context.Background(), Options{
		Records: 200_000, ASCII: true, Rounds: 1, Memory: 256e6, GNUMem: "64M",
		Dir: dir, Enginectl: bin, JSONFile: jsonFile, Log: &log,
	}, &out)
	t.Logf("table:\n%s\nlog:\n%s", out.String(), log.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	text := out.String()
	_, sortErr := exec.LookPath("sort")
	haveSort := sortErr == nil

	// The engine, always.
	e := find(res, 1, Engine)
	if e == nil || !e.OK {
		t.Fatalf("engine run missing or failed: %+v", e)
	}
	if e.Check == nil || !e.Check.Passed || e.Check.Records != 200_000 || e.Check.Checksum != res.InputChecksum {
		t.Errorf("engine check: %+v (input checksum %s)", e.Check, res.InputChecksum)
	}
	if !finitePositive(e.MBps) || !finitePositive(e.Seconds) || e.PeakRSS <= 0 {
		t.Errorf("engine measurement: %+v", e)
	}
	if e.Report == nil || !finitePositive(e.Report.MBps) || !e.Report.Check.Passed {
		t.Errorf("engine report: %+v", e.Report)
	}
	d := find(res, 1, Disk)
	if d == nil || !d.OK || !finitePositive(d.MBps) {
		t.Fatalf("disk run: %+v", d)
	}
	if !finitePositive(res.Median.EngineOverDisk) || !finitePositive(res.Ratios[0].EngineOverDisk) {
		t.Errorf("engine/disk ratio: %+v %+v", res.Median, res.Ratios)
	}
	for _, s := range []string{
		"engine MB/s (wall clock of the process)", "engine's own sort rate MB/s", "disk ceiling MB/s",
		"engine peak RSS", "engine/disk (wall clock)",
		"targets", "engine ≥ 2.0× GNU sort on 1 GB", "engine ≥ 1.5× GNU sort on 10 GB", "engine peak RSS ≤ 1.25 × memory budget",
		"nproc", "load average before", "commands", "submit sort --input",
		"validation: all", "page cache dropped before each run: no",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("table lacks %q", s)
		}
	}
	rss := res.Targets[2]
	if !rss.Known || rss.Want != 1.25*256e6 {
		t.Errorf("RSS target: %+v", rss)
	}

	// GNU sort, when there is one.
	if haveSort {
		g := find(res, 1, GNU)
		if g == nil || !g.OK || g.Check == nil || !g.Check.Passed || !finitePositive(g.MBps) || g.PeakRSS <= 0 {
			t.Fatalf("GNU sort run: %+v", g)
		}
		if !finitePositive(res.Median.EngineOverGNU) || !finitePositive(res.Median.EngineOwnOverGNU) {
			t.Errorf("engine/GNU ratios: %+v", res.Median)
		}
		for _, s := range []string{"GNU sort MB/s", "GNU sort peak RSS", "engine/GNU sort (wall clock)", "LC_ALL=C"} {
			if !strings.Contains(text, s) {
				t.Errorf("table lacks %q", s)
			}
		}
		for _, tg := range res.Targets[:2] {
			if !tg.Known || tg.Applies {
				t.Errorf("ratio target at 20 MB should be known and informational: %+v", tg)
			}
		}
	} else {
		t.Logf("GNU sort is not installed (%v): its asserts are skipped, the engine's and the disk's were made", sortErr)
		if !strings.Contains(text, "GNU sort not found") {
			t.Errorf("the output does not say GNU sort is missing")
		}
	}

	// The work directory is gone; the JSON has everything.
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory %s left behind (%v)", dir, err)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if len(back.Runs) != len(res.Runs) || back.InputChecksum != res.InputChecksum || back.Runs[0].Report == nil {
		t.Errorf("JSON round trip: %d runs, checksum %s", len(back.Runs), back.InputChecksum)
	}
}

// fakeEnginectl writes a script that answers "submit sort" like enginectl
// (a JSON report whose own check passed) but writes the output body.
func fakeEnginectl(t *testing.T, body string) string {
	t.Helper()
	script := `#!/bin/sh
in= out=
while [ $# -gt 0 ]; do
	case "$1" in
	--input) in=$2; shift ;;
	--output) out=$2; shift ;;
	esac
	shift
done
mkdir -p "$out"
` + body + `
echo '{"job":"fake","records":1000,"bytes":100000,"memory":268435456,"mb_per_s":100,"total":1000000,"phases":[{"name":"map","duration":500000}],"check":{"passed":true}}'
`
	p := filepath.Join(t.TempDir(), "enginectl")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCorruptEngineOutput: an engine whose report claims success but whose
// output is wrong must be caught by the benchmark's own validation.
func TestCorruptEngineOutput(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unsorted", `cat "$in"/* > "$out/part-00000"`, "unordered records"},
		{"missing records", `head -c 50000 "$in"/input.dat > "$out/part-00000"; tail -c 40000 "$in"/input.dat > "$out/part-00001"`, "records, want 1000"},
		{"no parts", `:`, "no output files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			jsonFile := filepath.Join(t.TempDir(), "bench.json")
			res, err := Run(context.Background(), Options{
				Records: 1000, ASCII: true, Rounds: 1, Memory: 256 << 20, Systems: []string{Engine},
				Dir: filepath.Join(t.TempDir(), "work"), Enginectl: fakeEnginectl(t, tc.body), JSONFile: jsonFile,
			}, &out)
			t.Logf("error: %v\ntable:\n%s", err, out.String())
			if err == nil {
				t.Fatal("a corrupt engine output was not reported as an error")
			}
			if !errors.Is(err, ErrValidation) || !strings.Contains(err.Error(), "VALIDATION FAILED") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want a validation failure mentioning %q", err, tc.want)
			}
			m := find(res, 1, Engine)
			if m == nil || m.OK || m.Check == nil || m.Check.Passed {
				t.Errorf("engine measurement: %+v", m)
			}
			if !strings.Contains(out.String(), "!!!") || !strings.Contains(out.String(), "FAILED") {
				t.Errorf("the table does not report the failure loudly")
			}
			if _, err := os.Stat(jsonFile); err != nil {
				t.Errorf("no JSON written on failure: %v", err)
			}
		})
	}
}

// TestInterrupt: cancelling stops the child and removes the work directory.
func TestInterrupt(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "enginectl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "work")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	t0 := time.Now()
	_, err := Run(ctx, Options{Records: 1000, ASCII: true, Rounds: 1, Systems: []string{Engine}, Dir: dir, Enginectl: fake}, new(bytes.Buffer))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory %s left behind (%v)", dir, err)
	}
}

func TestRefusals(t *testing.T) {
	// Not enough disk: ask for more than any test machine has.
	_, err := Run(context.Background(), Options{Records: 1e15, ASCII: true, Systems: []string{Disk}, Dir: filepath.Join(t.TempDir(), "w")}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "not enough free disk") || !strings.Contains(err.Error(), "bytes free") {
		t.Errorf("huge size: %v", err)
	}
	// A non-empty --dir is not ours to clean.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
	_, err = Run(context.Background(), Options{Records: 10, ASCII: true, Systems: []string{Disk}, Dir: dir}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("a file in --dir was removed: %v", err)
	}
	// Binary records: GNU sort is skipped with a note, the rest runs.
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Records: 1000, Rounds: 1, Systems: []string{GNU, Disk}, Dir: filepath.Join(t.TempDir(), "w")}, &out)
	if err != nil || len(res.Systems) != 1 || res.Systems[0] != Disk || !strings.Contains(out.String(), "GNU sort skipped") {
		t.Errorf("binary records: err %v, systems %v\n%s", err, res.Systems, out.String())
	}
}

func TestFormatExact(t *testing.T) {
	for _, n := range []int64{4e9, 2e9, 256e6, 256 << 20, 1 << 30, 12345, 1500e6, 1} {
		s := units.FormatExact(n)
		back, err := units.ParseBytes(s)
		if err != nil || back != n {
			t.Errorf("units.FormatExact(%d) = %q, parses back as %d, %v", n, s, back, err)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
