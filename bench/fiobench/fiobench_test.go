package fiobench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// needFio skips the test when fio is missing.
func needFio(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skip("fio is not installed (apt-get install fio): skipping the fio runs")
	}
}

// TestSmoke runs every job on the backing directory and on the go-fuse
// loopback, briefly, and checks that every figure came out.
func TestSmoke(t *testing.T) {
	needFio(t)
	if os.Geteuid() != 0 {
		t.Skip("not root: the loopback mount needs root (DirectMount, AllowOther)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, Config{
		Quick:   true,
		Size:    16 << 20,
		Runtime: time.Second,
		Creates: 200,
		Targets: []string{Direct, Loopback},
		Out:     &out,
	})
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, rep, []string{Direct, Loopback})
	for _, r := range rep.Jobs {
		for _, res := range r.Results {
			if res.Target == Loopback && math.Abs(res.VsLoopback-1) > 1e-9 {
				t.Errorf("%s: loopback vs itself %v, want 1", r.Name, res.VsLoopback)
			}
		}
	}
	// Without ours every goal is n/a.
	for _, g := range rep.Goals {
		if g.Verdict != NA {
			t.Errorf("goal %q: %s without ours, want n/a", g.Name, g.Verdict)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
	if !strings.Contains(out.String(), "randwrite-4k-fsync") {
		t.Errorf("the printed report lacks the fsync table")
	}
}

// checkFigures checks that every job has positive figures on every target.
func checkFigures(t *testing.T, rep *Report, targets []string) {
	t.Helper()
	if len(rep.Jobs) != len(jobs) {
		t.Fatalf("report has %d jobs, want %d", len(rep.Jobs), len(jobs))
	}
	directOnly := map[string]bool{}
	for _, j := range jobs {
		directOnly[j.name] = j.directOnly
	}
	for _, j := range rep.Jobs {
		targets := targets
		if directOnly[j.Name] {
			targets = slices.DeleteFunc(slices.Clone(targets), func(s string) bool { return s != Direct })
		}
		if len(j.Results) != len(targets) {
			t.Errorf("%s: %d results, want %d", j.Name, len(j.Results), len(targets))
		}
		for _, want := range targets {
			res := rep.result(j.Name, want)
			if res == nil {
				t.Errorf("%s on %s: no figures", j.Name, want)
				continue
			}
			if res.Value <= 0 || res.P99Micros <= 0 {
				t.Errorf("%s on %s: value %v, p99 %v µs: want both positive", j.Name, want, res.Value, res.P99Micros)
			}
			switch j.Unit {
			case UnitIOPS:
				if res.IOPS <= 0 || res.MBps <= 0 {
					t.Errorf("%s on %s: IOPS %v, MB/s %v", j.Name, want, res.IOPS, res.MBps)
				}
			case UnitMBps:
				if res.MBps <= 0 {
					t.Errorf("%s on %s: MB/s %v", j.Name, want, res.MBps)
				}
			}
			if j.Name == JobFsync && res.SyncP99Micros <= 0 {
				t.Errorf("%s on %s: no fsync latency", j.Name, want)
			}
		}
	}
}

// fakeEnginectl is a stand-in for "enginectl mount" and "bb": the mount
// prints its line and waits for SIGTERM (the mount point stays a plain
// directory); bb status prints fixed counters.
const fakeEnginectl = `#!/bin/sh
if [ "$1" = mount ] && [ "$2" = -h ]; then
  echo "Usage: enginectl mount MOUNTPOINT [flags]"
  echo "  -api HOST:PORT  -backing DIR  -data DIR  -flash DIR"
  exit 2
fi
if [ "$1" = bb ] && [ "$2" = -h ]; then
  echo "bb status [--json]"; echo "bb sync PATH"; exit 0
fi
if [ "$1" = mount ]; then
  [ -n "$ENGINE_ADDR" ] && { echo "ENGINE_ADDR leaked" >&2; exit 3; }
  mnt=$2
  while [ $# -gt 0 ]; do [ "$1" = --data ] && { mkdir -p "$2"; echo faketoken > "$2/token"; }; shift; done
  trap 'echo "unmounting" >&2; exit 0' TERM
  echo "starting" >&2
  echo "mounted $mnt (api 127.0.0.1:45678, node n1)"
  while :; do sleep 0.05; done
fi
if [ "$1" = --addr ] && [ "$2" = 127.0.0.1:45678 ] && [ "$3" = bb ]; then
  [ "$ENGINE_TOKEN" = faketoken ] || { echo "enginectl: no valid client token" >&2; exit 1; }
  case "$4" in
  sync) echo "bb sync /: done in 0.01s"; exit 0;;
  status) cat <<'EOF'
{"nodes":[{"node":"n1","bytes_written":1073741824,"stripes_written":256,"bytes_drained":268435456,
"backing_bytes_written":268435456,"drain_rate_bytes_per_sec":5e11,"drain_chunk_bytes":1048576,
"backing_write_sizes":{"≤1MiB":250,">32MiB":2},"writes_throttled":0}]}
EOF
  exit 0;;
  esac
fi
echo "fake enginectl: unexpected $*" >&2
exit 1
`

// TestOursFake runs the whole ours path (mount subprocess, API address,
// syncs, status, SIGTERM) against a fake enginectl; ours' "mount" is a
// plain directory.
func TestOursFake(t *testing.T) {
	needFio(t)
	bin := filepath.Join(t.TempDir(), "enginectl")
	if err := os.WriteFile(bin, []byte(fakeEnginectl), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ENGINE_ADDR", "10.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, Config{
		Size:      4 << 20,
		Runtime:   time.Second,
		Creates:   50,
		Targets:   []string{Direct, Ours},
		Enginectl: bin,
		Out:       &out,
	})
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, rep, []string{Direct, Ours})
	d := rep.Drain
	if d == nil {
		t.Fatal("no drain report")
	}
	if d.Node != "127.0.0.1:45678" {
		t.Errorf("node %q, want the address the mount printed", d.Node)
	}
	// One sync after each run on ours (the direct-only job has none; the
	// read job's layout one more) and one at the end.
	if len(d.Syncs) != len(jobs)-1+2 {
		t.Errorf("%d syncs, want %d: %+v", len(d.Syncs), len(jobs)-1+2, d.Syncs)
	}
	if d.Writes != 252 || d.FullWrites != 252 || d.SmallWrites != 0 || d.DrainChunk != 1<<20 {
		t.Errorf("histogram read as writes %d, full %d, small %d, chunk %d", d.Writes, d.FullWrites, d.SmallWrites, d.DrainChunk)
	}
	want := map[string]string{ // goal name prefix → verdict
		"4 KiB random writes (O":   NA, // no loopback
		"4 KiB random writes with": NA,
		"drain rate":               Pass,
		"drain writes whole":       Pass,
		"no 4 KiB write":           Pass,
	}
	for _, g := range rep.Goals {
		for p, v := range want {
			if strings.HasPrefix(g.Name, p) && g.Verdict != v {
				t.Errorf("goal %q: %s (%s), want %s", g.Name, g.Verdict, g.Got, v)
			}
		}
	}
}

func TestMountMissing(t *testing.T) {
	needFio(t)
	bin := filepath.Join(t.TempDir(), "enginectl")
	script := "#!/bin/sh\necho \"enginectl: unknown command \\\"$1\\\"\" >&2\nexit 2\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if why := probeMount(context.Background(), bin); !strings.Contains(why, "no mount command") {
		t.Errorf("probeMount = %q, want it to say there is no mount command", why)
	}
	rep, err := Run(context.Background(), Config{Targets: []string{Ours}, Enginectl: bin, Size: 1 << 20, Runtime: time.Second})
	if err == nil || !strings.Contains(err.Error(), "every target was skipped") {
		t.Errorf("Run with only a skipped ours: %v", err)
	}
	if rep == nil || len(rep.Targets) != 1 || rep.Targets[0].Skipped == "" {
		t.Errorf("report %+v: want ours listed as skipped", rep)
	}
}

func TestParseFio(t *testing.T) {
	for _, tc := range []struct {
		file           string
		read           bool
		iops, mbps     float64
		p99, syncP99   float64
		ops            int64
		wantErrContain string
	}{
		{file: "fio-fsync.json", iops: 2165.834166, mbps: 8.871256, p99: 44.8, syncP99: 1073.152, ops: 2168},
		{file: "fio-randread.json", read: true, iops: 64556.886228, mbps: 264.425005, p99: 4489.216, ops: 64686},
		{file: "fio-randread.json", read: false, wantErrContain: "no I/O"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		// fio sometimes prints a warning before the JSON.
		data = append([]byte("fio: some warning\n"), data...)
		s, version, err := parseFio(data, tc.read)
		if tc.wantErrContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContain) {
				t.Errorf("%s read=%v: err %v, want %q", tc.file, tc.read, err, tc.wantErrContain)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if version != "fio-3.33" {
			t.Errorf("%s: version %q", tc.file, version)
		}
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, b) }
		if !near(s.IOPS, tc.iops) || !near(s.MBps, tc.mbps) || !near(s.P99Micros, tc.p99) ||
			!near(s.SyncP99Micros, tc.syncP99) || s.Ops != tc.ops {
			t.Errorf("%s: got %+v, want iops %v MB/s %v p99 %v sync p99 %v ops %d", tc.file, s, tc.iops, tc.mbps, tc.p99, tc.syncP99, tc.ops)
		}
	}
	if _, _, err := parseFio([]byte(`{"jobs":[{"jobname":"x","error":5}]}`), false); err == nil ||
		!strings.Contains(err.Error(), "input/output error") {
		t.Errorf("job error: %v", err)
	}
}

func TestAnalyze(t *testing.T) {
	for _, tc := range []struct {
		hist                map[string]int64
		chunk               int64
		writes, full, small int64
		unparsed            int
	}{
		{map[string]int64{"≤1MiB": 10, "≤2MiB": 2, ">32MiB": 1}, 1 << 20, 13, 13, 0, 0},
		{map[string]int64{"≤512B": 1, "≤4KiB": 2, "≤8KiB": 4, "≤1MiB": 10}, 1 << 20, 17, 10, 3, 0},
		{map[string]int64{"≤512KiB": 3, "≤1MiB": 10}, 1 << 20, 13, 10, 0, 0},
		{map[string]int64{"≤4MiB": 5, "≤2MiB": 1}, 4 << 20, 6, 5, 0, 0},
		{map[string]int64{"<=4KiB": 1, "weird": 2}, 1 << 20, 3, 0, 1, 1},
		{nil, 1 << 20, 0, 0, 0, 0},
	} {
		w, f, s, u := analyze(tc.hist, tc.chunk)
		if w != tc.writes || f != tc.full || s != tc.small || len(u) != tc.unparsed {
			t.Errorf("analyze(%v, %d) = %d, %d, %d, %q; want %d, %d, %d, %d unparsed",
				tc.hist, tc.chunk, w, f, s, u, tc.writes, tc.full, tc.small, tc.unparsed)
		}
	}
}

func TestAPIAddr(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"mounted /mnt/x (api 127.0.0.1:40123, node n1)", "127.0.0.1:40123"},
		{"mounted /mnt/x api=127.0.0.1:9", "127.0.0.1:9"},
		{"mounted /mnt/x at http://[::1]:8080", "[::1]:8080"},
		{"mounted /mnt/x peer 10.0.0.1:7000 api: 127.0.0.1:7001", "127.0.0.1:7001"},
		{"mounted /mnt/x", ""},
		{"mounted /mnt/x (api 127.0.0.1:0)", ""},
	} {
		got, ok := apiAddr(tc.line)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("apiAddr(%q) = %q, %v; want %q", tc.line, got, ok, tc.want)
		}
	}
}

func TestLineWatcher(t *testing.T) {
	var buf bytes.Buffer
	found := make(chan string, 1)
	w := &lineWatcher{w: &buf, prefix: "mounted ", found: found}
	for _, p := range []string{"start", "ing\nmoun", "ted /m (api 1.2.3.4:5)\nmore\n", "mounted again\n"} {
		w.Write([]byte(p))
	}
	if got := <-found; got != "mounted /m (api 1.2.3.4:5)" {
		t.Errorf("found %q", got)
	}
	if buf.String() != "starting\nmounted /m (api 1.2.3.4:5)\nmore\nmounted again\n" {
		t.Errorf("copied %q", buf.String())
	}
}

// TestJudge checks the goals against figures made up around the targets.
func TestJudge(t *testing.T) {
	mk := func(ours, lo, oursFsync, loFsync float64, d *DrainReport) *Report {
		res := func(target string, v float64) Result { return Result{Target: target, Value: v, IOPS: v} }
		return &Report{Size: 256 << 20, Rounds: 1, Drain: d, Jobs: []JobReport{
			{Name: JobRandWrite, Results: []Result{res(Direct, 50000), res(Loopback, lo), res(Ours, ours)}},
			{Name: JobFsync, Results: []Result{res(Direct, 2000), res(Loopback, loFsync), res(Ours, oursFsync)}},
			{Name: JobSeqWrite, Results: []Result{{Target: Direct, Value: 3000, MBps: 3000}}},
			{Name: JobNewFile, Results: []Result{{Target: Direct, Value: 1000, MBps: 1000}}},
		}}
	}
	drain := func(rate float64, hist map[string]int64) *DrainReport {
		d := &DrainReport{DrainRate: rate, DrainChunk: 1 << 20, StripesWritten: 10, BackingWritten: 1 << 30, WriteSizes: hist}
		d.Writes, d.FullWrites, d.SmallWrites, d.Unparsed = analyze(hist, d.DrainChunk)
		return d
	}
	good := map[string]int64{"≤1MiB": 100}
	for _, tc := range []struct {
		name string
		rep  *Report
		want []string // verdicts of the five goals
	}{
		{"all pass", mk(20000, 15000, 600, 1000, drain(800e6, good)), []string{Pass, Pass, Pass, Pass, Pass}},
		{"just at the targets", mk(15000, 15000, 500, 1000, drain(700e6, good)), []string{Pass, Pass, Pass, Pass, Pass}},
		{"all fail", mk(14999, 15000, 499, 1000, drain(699e6, map[string]int64{"≤1MiB": 100, "≤4KiB": 1})), []string{Fail, Fail, Fail, Fail, Fail}},
		{"partial chunk, no small", mk(20000, 15000, 600, 1000, drain(800e6, map[string]int64{"≤1MiB": 100, "≤512KiB": 1})), []string{Pass, Pass, Pass, Fail, Pass}},
		{"not erasure-coded", mk(20000, 15000, 600, 1000, func() *DrainReport { d := drain(800e6, good); d.StripesWritten = 0; return d }()), []string{Fail, Pass, Pass, Pass, Pass}},
		{"no drain", mk(20000, 15000, 600, 1000, nil), []string{Pass, Pass, NA, NA, NA}},
	} {
		b := &bench{rep: tc.rep}
		b.judge()
		var got []string
		for _, g := range tc.rep.Goals {
			got = append(got, g.Verdict)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			for _, g := range tc.rep.Goals {
				t.Logf("%s: %s: %s", g.Verdict, g.Name, g.Got)
			}
			t.Errorf("%s: verdicts %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFioArgs(t *testing.T) {
	byName := map[string]job{}
	for _, j := range jobs {
		byName[j.name] = j
	}
	for _, tc := range []struct {
		job  string
		want []string
	}{
		{JobRandWrite, []string{"--ioengine=libaio", "--rw=randwrite", "--bs=4k", "--direct=1", "--iodepth=32"}},
		{JobFsync, []string{"--ioengine=psync", "--fsync=1", "--iodepth=1", "--direct=0"}},
		{JobSeqWrite, []string{"--ioengine=libaio", "--rw=write", "--bs=1m", "--direct=1", "--iodepth=8"}},
		{JobRandRead, []string{"--ioengine=libaio", "--rw=randread", "--direct=1", "--iodepth=32"}},
	} {
		args := fioArgs(byName[tc.job], "libaio", "/a:b/f.dat", "/o.json", 256<<20, 1500*time.Millisecond)
		want := append(tc.want, `--filename=/a\:b/f.dat`, "--size=268435456", "--runtime=1500ms",
			"--time_based", "--group_reporting", "--output-format=json", "--output=/o.json")
		for _, w := range want {
			if !slices.Contains(args, w) {
				t.Errorf("%s: args %q lack %q", tc.job, args, w)
			}
		}
	}
	// The drain's reference writes a new file once, fsync included.
	args := fioArgs(byName[JobNewFile], "libaio", "/f.dat", "/o.json", 256<<20, 1500*time.Millisecond)
	for _, w := range []string{"--rw=write", "--bs=1m", "--direct=1", "--iodepth=8", "--end_fsync=1", "--size=268435456", "--ioengine=libaio"} {
		if !slices.Contains(args, w) {
			t.Errorf("%s: args %q lack %q", JobNewFile, args, w)
		}
	}
	for _, no := range []string{"--time_based", "--runtime=1500ms"} {
		if slices.Contains(args, no) {
			t.Errorf("%s: args %q have %q: it writes the file once", JobNewFile, args, no)
		}
	}
	if !byName[JobNewFile].directOnly {
		t.Errorf("%s runs on every target; it is the direct target's reference", JobNewFile)
	}
}
