package sortbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"engine/gensort"
)

// buildBinaries builds the real enginectl and engined side by side (as
// "cluster up" expects them) and returns enginectl's path.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "engine/cmd/enginectl", "engine/cmd/engined")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build enginectl engined: %v\n%s", err, out)
	}
	return filepath.Join(dir, "enginectl")
}

// assertClusterGone checks that no process of the cluster in workDir is
// left: every pid cluster up printed is gone (kill -0 fails, or only a
// zombie waiting for its reaper is left), and no engined has its data
// under workDir.
func assertClusterGone(t *testing.T, res *ClusterResult, workDir string) {
	t.Helper()
	for _, n := range res.ClusterNodes {
		if n.PID <= 0 {
			t.Errorf("node %s: no pid recorded", n.Name)
			continue
		}
		if syscall.Kill(n.PID, 0) == nil && procAlive(n.PID) {
			t.Errorf("node %s (pid %d) is still running after the benchmark", n.Name, n.PID)
		}
	}
	if pids := ourEngined(workDir); len(pids) > 0 {
		t.Errorf("engined processes with data under %s still running: %v", workDir, pids)
	}
	if _, err := os.Stat(workDir); !os.IsNotExist(err) {
		t.Errorf("work directory %s left behind (%v)", workDir, err)
	}
}

// TestClusterSmoke runs the cluster benchmark at 20 MB on a real 3-node
// local cluster and the embedded single node.
func TestClusterSmoke(t *testing.T) {
	bin := buildBinaries(t)
	work := filepath.Join(t.TempDir(), "work")
	jsonFile := filepath.Join(t.TempDir(), "cluster.json")
	var out, log bytes.Buffer
	const records = 200_000
	t0 := time.Now()
	res, err := RunCluster(context.Background(), ClusterOptions{
		Records: records, Nodes: 3, Rounds: 1, Dir: work, Enginectl: bin, JSONFile: jsonFile, Log: &log,
	}, &out)
	t.Logf("%.1fs; table:\n%s\nlog:\n%s", time.Since(t0).Seconds(), out.String(), log.String())
	if err != nil {
		t.Fatalf("RunCluster: %v", err)
	}
	want := gensort.ChecksumRecords(0, records, gensort.Options{}).String()
	if res.WantChecksum != want {
		t.Errorf("want checksum %s, gensort -c says %s", res.WantChecksum, want)
	}
	if len(res.ClusterNodes) != 3 || res.ClusterAddr == "" {
		t.Errorf("cluster: addr %q, nodes %+v", res.ClusterAddr, res.ClusterNodes)
	}
	for _, sys := range []string{ClusterSystem, SingleSystem} {
		var m *ClusterRun
		for _, r := range res.Runs {
			if r.Round == 1 && r.System == sys {
				m = r
			}
		}
		if m == nil || !m.OK {
			t.Fatalf("%s run missing or failed: %+v", sys, m)
		}
		if !finitePositive(m.Seconds) || !finitePositive(m.MBps) || !finitePositive(m.OwnMBps()) {
			t.Errorf("%s not measured: %+v", sys, m)
		}
		if m.Check == nil || !m.Check.Passed || m.Check.Records != records || m.Check.Checksum != want || m.Check.Unordered != 0 {
			t.Errorf("%s validation: %+v", sys, m.Check)
		}
		if m.Report == nil || !m.Report.Check.Passed || m.Report.Records != records {
			t.Errorf("%s report: %+v", sys, m.Report)
		}
		if !strings.Contains(m.Command, "submit sort --size=20MB --json --progress none --output "+filepath.Join(work, sys+"-out")) {
			t.Errorf("%s command: %s", sys, m.Command)
		}
	}
	c := res.Runs[0]
	if c.System != ClusterSystem {
		t.Fatalf("round 1 did not start with the cluster: %+v", c)
	}
	if c.Report.ShuffleBytes <= 0 || !finitePositive(c.Report.ShuffleMBps) || len(c.Report.Nodes) == 0 {
		t.Errorf("cluster shuffle: %d bytes, %.1f MB/s, nodes %+v", c.Report.ShuffleBytes, c.Report.ShuffleMBps, c.Report.Nodes)
	}
	if c.Report.Retries != 0 {
		t.Logf("note: the cluster run needed %d re-run attempts", c.Report.Retries)
	}
	if !strings.Contains(c.Command, "--addr "+res.ClusterAddr) || !strings.Contains(res.Runs[1].Command, "--data "+filepath.Join(work, "embedded")) {
		t.Errorf("commands: %s / %s", c.Command, res.Runs[1].Command)
	}
	for _, v := range []float64{res.Ratios[0].Wall, res.Ratios[0].Own, res.Median.Wall, res.Median.Own} {
		if !finitePositive(v) {
			t.Errorf("ratio not finite and positive: %+v %+v", res.Ratios, res.Median)
		}
	}
	if res.Median.ShuffleBytes <= 0 {
		t.Errorf("median shuffle bytes %d", res.Median.ShuffleBytes)
	}
	if !res.Target.Known || res.Target.Name != ClusterTarget || res.Target.Applies {
		t.Errorf("target at 20 MB should be known and informational: %+v", res.Target)
	}

	text := out.String()
	for _, s := range []string{
		"cluster (3 nodes) MB/s (wall clock of the submit)", "cluster seconds (wall clock)", "cluster's own sort rate MB/s",
		"shuffle bytes (fetched from other nodes)", "shuffle MB/s", "re-run attempts (retries; should be 0)",
		"node-0 tasks (maps/reduces)", "node-1 tasks (maps/reduces)", "node-2 tasks (maps/reduces)",
		"single node MB/s (wall clock of the process)", "single seconds (wall clock)", "single's own sort rate MB/s",
		"cluster/single (wall clock)", "cluster/single (engine's own rate)", "load average (1 min) at the round's start",
		"round 1", "median", ClusterTarget, "nproc", "load average before", "commands", "cluster up --nodes 3 --dir",
		"cluster down --dir", "validation: all 2 sorted outputs", "cluster down: no engined process of it is left",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("table lacks %q", s)
		}
	}
	if !strings.Contains(text, "PASS") && !strings.Contains(text, "MISS") {
		t.Errorf("the target has no verdict")
	}

	// The cluster is down and the work directory gone.
	if !res.ClusterDown || res.ClusterDownMsg != "" {
		t.Errorf("cluster down: %v %q", res.ClusterDown, res.ClusterDownMsg)
	}
	assertClusterGone(t, res, work)

	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var back ClusterResult
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if len(back.Runs) != 2 || back.Runs[0].Report == nil || back.Median.Wall != res.Median.Wall || back.WantChecksum != want {
		t.Errorf("JSON round trip: %+v", back)
	}
}

// cancelOn is a log that cancels, after a delay, once the log contains a
// string.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	s      string
	delay  time.Duration
	cancel context.CancelFunc
	armed  bool
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if !c.armed && strings.Contains(c.buf.String(), c.s) {
		c.armed = true
		time.AfterFunc(c.delay, c.cancel)
	}
	return len(p), nil
}

func (c *cancelOn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// TestClusterInterrupt: cancelling (what Ctrl-C does) during the cluster's
// sort stops the child, brings the cluster down and removes the work
// directory.
func TestClusterInterrupt(t *testing.T) {
	bin := buildBinaries(t)
	work := filepath.Join(t.TempDir(), "work")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 200 MB: the cluster's sort is still running a second after it began.
	log := &cancelOn{s: "round 1/2 3-node cluster: sorting", delay: time.Second, cancel: cancel}
	t0 := time.Now()
	res, err := RunCluster(ctx, ClusterOptions{Records: 2_000_000, Nodes: 3, Rounds: 2, Dir: work, Enginectl: bin, Log: log}, new(bytes.Buffer))
	t.Logf("%.1fs; log:\n%s", time.Since(t0).Seconds(), log.String())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RunCluster after cancel: %v", err)
	}
	if d := time.Since(t0); d > 45*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if len(res.ClusterNodes) != 3 || !res.ClusterDown {
		t.Errorf("cluster: nodes %+v, down %v %q", res.ClusterNodes, res.ClusterDown, res.ClusterDownMsg)
	}
	assertClusterGone(t, res, work)
}

func TestClusterRefusals(t *testing.T) {
	// enginectl without engined beside it or in PATH.
	dir := t.TempDir()
	fake := filepath.Join(dir, "enginectl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := RunCluster(context.Background(), ClusterOptions{Records: 1000, Enginectl: fake, Dir: filepath.Join(t.TempDir(), "w")}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "engined is neither beside") {
		t.Errorf("no engined: %v", err)
	}
	// A non-empty --dir is not ours to clean.
	if err := os.WriteFile(filepath.Join(dir, "engined"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "precious"), []byte("x"), 0o644)
	_, err = RunCluster(context.Background(), ClusterOptions{Records: 1000, Enginectl: fake, Dir: work}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(work, "precious")); err != nil {
		t.Errorf("a file in --dir was removed: %v", err)
	}
	// A cluster up that fails is reported, and the work directory removed.
	w := filepath.Join(t.TempDir(), "w")
	_, err = RunCluster(context.Background(), ClusterOptions{Records: 1000, Enginectl: fake, Dir: w}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "cluster up failed") {
		t.Errorf("failing cluster up: %v", err)
	}
	if _, err := os.Stat(w); !os.IsNotExist(err) {
		t.Errorf("work directory %s left behind (%v)", w, err)
	}
}

func TestSizeArg(t *testing.T) {
	for _, tc := range []struct {
		records int64
		want    string
	}{{10_000_000, "1GB"}, {200_000, "20MB"}, {123, "12300B"}, {1, "100B"}} {
		if got := sizeArg(tc.records); got != tc.want {
			t.Errorf("sizeArg(%d) = %q, want %q", tc.records, got, tc.want)
		}
	}
}
