package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"engine/node"
	"engine/shuffle"
)

// The consolidated shuffle and speculation under faults, with real
// processes: a 3-node cluster of one-worker nodes sorting 300 MB in 90 maps
// of 3.33 MB and 20 partitions, so that map segments are 167 kB and every
// node merges its outputs in groups of 8 while its maps run (the plan's
// shuffle merge line says so; TestMergeJobPlan checks it).
const mergeRecords = 3_000_000

var mergeJobFlags = []string{"--size=300MB", "--memory=256MB", "--maps=90", "--partitions=20"}

// TestMergeJobPlan: the fault tests below rely on this plan merging while
// the maps run.
func TestMergeJobPlan(t *testing.T) {
	r := ctl(t, nil, append([]string{"submit", "sort", "--dry-run", "--nodes=3", "--cores=1", "--data", t.TempDir()}, mergeJobFlags...)...)
	mustOK(t, r, "dry run")
	if !strings.Contains(r.stdout, "every 8 map outputs on a node merge into one: 4 merge(s) per node") {
		t.Fatalf("the fault tests' job does not merge in groups of 8:\n%s", r.stdout)
	}
}

// mergeFiles lists a node's merge outputs of a job: the finished ones
// (their index renamed into place last) and those being written (a data
// file without its index).
func mergeFiles(c *node.LocalCluster, i int, job string) (done, running []string) {
	dir := filepath.Join(c.NodeDir(i), "data", "jobs", job, "map")
	data, _ := filepath.Glob(filepath.Join(dir, "merge-*.data"))
	for _, d := range data {
		if _, err := os.Stat(strings.TrimSuffix(d, ".data") + ".index"); err == nil {
			done = append(done, d)
		} else {
			running = append(running, d)
		}
	}
	return done, running
}

// 1. SIGKILL of a node while it merges: its maps and merges are lost and
// re-run elsewhere (only they), and the output validates.
func TestClusterNodeLostMidMerge(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	leader := leaderIndex(t, c, 0)
	via, victim := (leader+1)%3, (leader+2)%3
	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[via].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, mergeJobFlags...)...)
	defer b.kill()
	id := b.jobID(t, 30*time.Second)
	var caught string
	pollEvery(t, "a merge running on "+c.Nodes[victim].Name, 60*time.Second, 2*time.Millisecond, func() (bool, string) {
		_, running := mergeFiles(c, victim, id)
		if len(running) > 0 {
			caught = filepath.Base(running[0])
			return true, ""
		}
		return false, "no merge running"
	})
	killNode(t, c, victim, syscall.SIGKILL, 5*time.Second)
	t.Logf("killed %s while it wrote %s", c.Nodes[victim].Name, caught)
	if code := b.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("enginectl submit sort: exit %d after a node died mid-merge\nstderr:\n%s", code, b.stderr.String())
	}
	rep := b.report(t)
	checkReport(t, rep, mergeRecords)
	validateOutput(t, out, mergeRecords)
	if rep.Retries == 0 || rep.Merges == 0 {
		t.Errorf("report: %d retries, %d merges; want the lost node's maps re-run and merges consolidating", rep.Retries, rep.Merges)
	}
	// Only what the dead node held was re-run: at most its share of the
	// maps (with its merges) came back, not all 90.
	if rep.Retries >= 90 {
		t.Errorf("%d re-run attempts for a job of 90 maps: more than the dead node's share", rep.Retries)
	}
	t.Logf("retries %d, merges %d of %d maps, a reduce read %d segments", rep.Retries, rep.Merges, rep.MergedMaps, rep.SegmentsPerReduce)
	waitNoScratch(t, c, id, leader, via)
}

// 2. A merged segment whose bytes no longer match its CRC: the reduce that
// reads it fails naming the merge, the merge's maps are re-run and merged
// again, and the output validates.
func TestClusterCorruptMergedSegment(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[0].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, mergeJobFlags...)...)
	defer b.kill()
	id := b.jobID(t, 30*time.Second)
	client := testClient(c.Nodes[0].API)
	var victim string
	pollEvery(t, "a finished merge during the map stage", 60*time.Second, 5*time.Millisecond, func() (bool, string) {
		for i := range c.Nodes {
			done, _ := mergeFiles(c, i, id)
			if len(done) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := client.Job(ctx, id)
			cancel()
			if err != nil {
				return false, err.Error()
			}
			if st.Stage != "map" {
				t.Fatalf("job %s is in stage %s before the test saw a finished merge", id, st.Stage)
			}
			victim = done[0]
			return true, ""
		}
		return false, "no merge finished"
	})
	// Flip a byte in the middle of the first non-empty segment.
	x, err := shuffle.ReadIndex(strings.TrimSuffix(victim, ".data") + ".index")
	if err != nil {
		t.Fatal(err)
	}
	var seg shuffle.SegmentInfo
	part := -1
	for p, s := range x.Segments {
		if s.Length > 0 {
			seg, part = s, p
			break
		}
	}
	if part < 0 {
		t.Fatalf("merged output %s is empty", victim)
	}
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := seg.Offset + seg.Length/2
	var bb [1]byte
	if _, err := f.ReadAt(bb[:], off); err != nil {
		t.Fatal(err)
	}
	bb[0] ^= 0xff
	if _, err := f.WriteAt(bb[:], off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Logf("flipped byte %d of %s (partition %d's segment)", off, victim, part)
	if code := b.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("enginectl submit sort: exit %d after a corrupt merged segment\nstderr:\n%s", code, b.stderr.String())
	}
	rep := b.report(t)
	checkReport(t, rep, mergeRecords)
	validateOutput(t, out, mergeRecords)
	name := strings.TrimSuffix(filepath.Base(victim), ".data") // merge-NNNNN.aA
	idx, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(name, ".")[0], "merge-"))
	failed := grepLogs(c.Dir, "task failed")
	found := false
	for _, l := range failed {
		if strings.Contains(l, fmt.Sprintf("merge %d", idx)) && strings.Contains(l, "kind=reduce") {
			found = true
		}
	}
	if !found || rep.Retries == 0 {
		t.Fatalf("no reduce failed on merge %d's damaged segment (retries %d); task failures:\n%s", idx, rep.Retries, strings.Join(failed, "\n"))
	}
}

// 3. A straggler: one node is reniced to 19 while the other two (and the
// test) keep the machine's cores busy, so its attempts run far longer than
// the median; they get speculative twins on the other nodes, the twins
// finish first, the stragglers' late reports are refused as stale and what
// they wrote is removed: the output holds every partition once.
func TestClusterSpeculativeTwinWins(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	leader := leaderIndex(t, c, 0)
	slow := (leader + 1) % 3
	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[leader].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, mergeJobFlags...)...)
	defer b.kill()
	b.jobID(t, 30*time.Second)
	pid := c.Nodes[slow].PID
	if err := reniceAll(pid, 19); err != nil {
		t.Fatalf("renice %s (pid %d): %v", c.Nodes[slow].Name, pid, err)
	}
	// Two spinning goroutines keep both cores contended, so that nice
	// 19 makes the node slow rather than merely lower in line.
	stop := make(chan struct{})
	defer close(stop)
	for range 2 {
		go func() {
			for x := 0; ; x++ {
				if x%1_000_000 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
	}
	if code := b.wait(t, 180*time.Second); code != 0 {
		t.Fatalf("enginectl submit sort: exit %d with a straggler\nstderr:\n%s", code, b.stderr.String())
	}
	rep := b.report(t)
	checkReport(t, rep, mergeRecords)
	validateOutput(t, out, mergeRecords)
	for _, n := range rep.Nodes {
		t.Logf("%s: %d maps, %d reduces, %.1fs of tasks", n.Node, n.Maps, n.Reduces, n.TaskSeconds)
	}
	if rep.Speculative == 0 || rep.SpeculativeWins == 0 {
		t.Fatalf("report: %d speculative attempts, %d won; want a twin of the straggler's tasks to finish first\n%s", rep.Speculative, rep.SpeculativeWins, strings.Join(grepLogs(c.Dir, "speculative"), "\n"))
	}
	t.Logf("%d speculative attempts, %d finished first", rep.Speculative, rep.SpeculativeWins)
}

// reniceAll sets the nice value of every thread of a process (setpriority
// on a pid changes only its main thread) and of its scheduler autogroup
// (with autogroups, a session started apart, as engined is, competes as a
// group: its threads' nice values only order them among themselves).
func reniceAll(pid, nice int) error {
	ag := fmt.Sprintf("/proc/%d/autogroup", pid)
	if _, err := os.Stat(ag); err == nil {
		if err := os.WriteFile(ag, []byte(strconv.Itoa(nice)), 0); err != nil {
			return err
		}
	}
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, d := range tids {
		tid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return err
		}
	}
	return nil
}

// pollEvery is pollUntil with its own polling interval.
func pollEvery(t *testing.T, what string, timeout, every time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(every)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, timeout, last)
}
