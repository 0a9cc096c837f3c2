package main

// End-to-end fault tests of the Raft-coordinated cluster: real engined
// processes on 127.0.0.1 (node.LocalCluster, or "enginectl cluster up"),
// driven through the real enginectl and the node API, with nodes killed,
// restarted, wiped and partitioned while jobs run. Every test bounds its own
// time, stops its processes in a deferred call even when it fails, and on
// failure logs the tail of every node's engined.log.
//
// Run them with: go test -count=1 -run Cluster -v ./cmd/enginectl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"engine/gensort"
	"engine/node"
	"engine/sortjob"
)

// The job the fault tests kill nodes under: 500 MB in 25 MB map splits (21
// maps on 3 one-worker nodes) and 12 partitions, so that the map and the
// reduce stage each last long enough on a 2-core machine to be hit.
const faultRecords = 5_000_000 // 500 MB

var faultJobFlags = []string{"--size=500MB", "--memory=256MB", "--map-split=25MB", "--partitions=12"}

func enginedBin() string { return filepath.Join(binDir, "engined") }

// startCluster starts an n-node local cluster (one worker per node) in a
// new directory. The caller defers stopCluster.
func startCluster(t *testing.T, n int) *node.LocalCluster {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	c, err := node.StartLocal(ctx, node.LocalConfig{Nodes: n, Dir: dir, Engined: enginedBin(), ClientToken: testToken,
		Args: []string{"--workers", "1"}, Timeout: 45 * time.Second})
	if err != nil {
		logTails(t, dir)
		t.Fatalf("start a %d-node cluster in %s: %v", n, dir, err)
	}
	t.Logf("%d-node cluster ready in %s (%s)", n, time.Since(start).Round(time.Millisecond), dir)
	return c
}

// stopCluster stops every node (SIGTERM, then SIGKILL) and, if the test
// failed, logs the tail of each node's log.
func stopCluster(t *testing.T, c *node.LocalCluster) {
	t.Helper()
	c.Stop(5 * time.Second)
	if t.Failed() {
		logTails(t, c.Dir)
	}
}

// logTails logs the last lines of every DIR/node-*/engined.log.
func logTails(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "node-*", "engined.log"))
	sort.Strings(logs)
	for _, p := range logs {
		t.Logf("==== %s (tail) ====\n%s", p, logTail(p, 60))
	}
}

// logTail returns the last lines of a node log, leaving out the Raft
// transport's repeated complaints about an unreachable peer (counted
// instead), which would otherwise fill the tail after a kill.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var ls []string
	noise := 0
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, "raft: failed to appendEntries") || strings.Contains(l, "raft: failed to heartbeat") || strings.Contains(l, "raft: failed to contact") {
			noise++
			continue
		}
		ls = append(ls, l)
	}
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	if noise > 0 {
		ls = append(ls, fmt.Sprintf("(%d Raft \"failed to appendEntries/heartbeat/contact\" lines left out)", noise))
	}
	return strings.Join(ls, "\n")
}

// grepLogs returns the lines of the nodes' logs that contain s.
func grepLogs(dir, s string) []string {
	var out []string
	logs, _ := filepath.Glob(filepath.Join(dir, "node-*", "engined.log"))
	sort.Strings(logs)
	for _, p := range logs {
		b, _ := os.ReadFile(p)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, s) {
				out = append(out, filepath.Base(filepath.Dir(p))+": "+l)
			}
		}
	}
	return out
}

// nodePID reads node i's engined.pid (0 if none).
func nodePID(c *node.LocalCluster, i int) int {
	b, err := os.ReadFile(filepath.Join(c.NodeDir(i), "engined.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// procAlive reports whether pid runs (and is not a zombie).
func procAlive(pid int) bool { return pid > 0 && node.ProcessAlive(pid) }

// killNode signals node i and waits until its process is gone. The pid file
// is removed afterwards so that no later Stop signals a recycled pid.
func killNode(t *testing.T, c *node.LocalCluster, i int, sig syscall.Signal, within time.Duration) {
	t.Helper()
	pid := nodePID(c, i)
	if err := c.Kill(i, sig); err != nil {
		t.Fatalf("kill %s: %v", c.Nodes[i].Name, err)
	}
	deadline := time.Now().Add(within)
	for procAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs %s after %v", c.Nodes[i].Name, pid, within, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(filepath.Join(c.NodeDir(i), "engined.pid"))
}

func nodeStatus(addr string) (node.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return testClient(addr).Status(ctx)
}

func nodeIndex(c *node.LocalCluster, name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// leaderIndex asks node `from` who leads and returns the leader's index.
func leaderIndex(t *testing.T, c *node.LocalCluster, from int) int {
	t.Helper()
	st, err := nodeStatus(c.Nodes[from].API)
	if err != nil {
		t.Fatalf("status of %s: %v", c.Nodes[from].Name, err)
	}
	i := nodeIndex(c, st.Leader)
	if i < 0 {
		t.Fatalf("%s reports leader %q, not one of the cluster's nodes (%s)", c.Nodes[from].Name, st.Leader, describeStatus(st))
	}
	return i
}

func describeStatus(st node.NodeStatus) string {
	var ms []string
	for _, m := range st.Members {
		ms = append(ms, fmt.Sprintf("%s(alive=%v voter=%v inc=%d)", m.ID, m.Alive, m.Voter, m.Incarnation))
	}
	return fmt.Sprintf("node %s: raft %s term %s applied %d ready %v leader %q members [%s]",
		st.ID, st.RaftState, st.Term, st.Applied, st.Ready, st.Leader, strings.Join(ms, " "))
}

// pollUntil polls cond every 20ms until it returns true or timeout passes;
// then it fails the test with what and cond's last description.
func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for {
		ok, desc := cond()
		if ok {
			return time.Since(start)
		}
		last = desc
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitJobEnd waits for a job to end, asking node addr.
func waitJobEnd(t *testing.T, addr, id string, timeout time.Duration) node.JobStatus {
	t.Helper()
	c := testClient(addr)
	deadline := time.Now().Add(timeout)
	var last node.JobStatus
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.WaitJob(ctx, id, 2*time.Second)
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		last = st
		if st.Done() {
			return st
		}
	}
	t.Fatalf("job %s did not end within %s; last status %+v (progress %+v), last error %v", id, timeout, last, last.Progress, lastErr)
	return last
}

// bgCtl is an enginectl process running in the background.
type bgCtl struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr lockedBuf
	done   chan struct{}
	err    error
	id     chan string
}

type lockedBuf struct {
	mu     sync.Mutex
	b      bytes.Buffer
	onLine func(string)
	part   string
}

func (w *lockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	w.part += string(p)
	for {
		i := strings.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		if w.onLine != nil {
			w.onLine(w.part[:i])
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

func (w *lockedBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

var jobLine = regexp.MustCompile(`^job (\S+): sorting`)

// startCtl runs enginectl in the background; its job id (from the "job ID:
// sorting ..." line) arrives on id.
func startCtl(t *testing.T, args ...string) *bgCtl {
	t.Helper()
	b := &bgCtl{done: make(chan struct{}), id: make(chan string, 1)}
	b.cmd = exec.Command(filepath.Join(binDir, "enginectl"), args...)
	b.cmd.Env = cleanEnv()
	b.cmd.Stdout = &b.stdout
	b.stderr.onLine = func(l string) {
		if m := jobLine.FindStringSubmatch(l); m != nil {
			select {
			case b.id <- m[1]:
			default:
			}
		}
	}
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start enginectl %v: %v", args, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	return b
}

func (b *bgCtl) kill() {
	select {
	case <-b.done:
	default:
		b.cmd.Process.Kill()
		<-b.done
	}
}

// jobID waits for the job id enginectl prints once the job is accepted.
func (b *bgCtl) jobID(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case id := <-b.id:
		return id
	case <-b.done:
		t.Fatalf("enginectl ended before printing a job id: %v\nstdout:\n%s\nstderr:\n%s", b.err, b.stdout.String(), b.stderr.String())
	case <-time.After(timeout):
		t.Fatalf("enginectl printed no job id within %s\nstderr:\n%s", timeout, b.stderr.String())
	}
	return ""
}

// wait waits for enginectl to exit and returns its exit code.
func (b *bgCtl) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		b.kill()
		t.Fatalf("enginectl did not finish within %s\nstderr:\n%s", timeout, b.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(b.err, &ee) {
		return ee.ExitCode()
	}
	if b.err != nil {
		t.Fatalf("enginectl: %v", b.err)
	}
	return 0
}

// report parses the --json report enginectl printed.
func (b *bgCtl) report(t *testing.T) sortjob.Report {
	t.Helper()
	var r sortjob.Report
	if err := json.Unmarshal(b.stdout.Bytes(), &r); err != nil {
		t.Fatalf("enginectl --json printed no report (%v):\n%s\nstderr:\n%s", err, b.stdout.String(), b.stderr.String())
	}
	return r
}

// ctlWithin runs enginectl with a time bound and reports how long it took.
func ctlWithin(t *testing.T, timeout time.Duration, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "enginectl"), args...)
	cmd.Env = cleanEnv()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("enginectl %v did not answer within %s (it hangs)\nstdout:\n%s\nstderr:\n%s", args, timeout, so.String(), se.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("enginectl %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}, took
}

// mapOutputs lists the finished map outputs (index files, renamed into
// place last) a node holds for a job.
func mapOutputs(c *node.LocalCluster, i int, job string) []string {
	m, _ := filepath.Glob(filepath.Join(c.NodeDir(i), "data", "jobs", job, "map", "map-*.index"))
	return m
}

// checkReport checks a finished job's report against the records asked for.
func checkReport(t *testing.T, r sortjob.Report, records int64) {
	t.Helper()
	want := gensort.ChecksumRecords(0, uint64(records), gensort.Options{}).String()
	ck := r.Check
	if !ck.Passed || ck.InputRecords != records || ck.OutputRecords != records || ck.InputChecksum != want || ck.OutputChecksum != want || ck.Unordered != 0 {
		t.Errorf("report check: %+v; want passed, %d records, checksum %s (gensort -c %d)", ck, records, want, records)
	}
	if r.Records != records {
		t.Errorf("report: %d records, want %d", r.Records, records)
	}
}

// validateOutput checks an output directory from outside the engine: only
// part-*, summary-* and _SUCCESS, each part valsorted on its own (its
// summary must equal the engine's), and the concatenated summaries checked
// with valsort -s against the generated input's count and checksum.
func validateOutput(t *testing.T, out string, records int64) {
	t.Helper()
	var parts, sums []string
	success := false
	for _, name := range dirEntries(t, out) {
		switch {
		case name == "_SUCCESS":
			success = true
		case strings.HasPrefix(name, "part-") && !strings.Contains(name, string(filepath.Separator)):
			parts = append(parts, name)
		case strings.HasPrefix(name, "summary-") && !strings.Contains(name, string(filepath.Separator)):
			sums = append(sums, name)
		default:
			t.Errorf("output %s holds %q: only part-*, summary-* and _SUCCESS belong there (a leftover of a killed attempt?)", out, name)
		}
	}
	sort.Strings(parts)
	sort.Strings(sums)
	if !success || len(parts) == 0 || len(parts) != len(sums) {
		t.Fatalf("output %s: _SUCCESS %v, %d parts, %d summaries: %v", out, success, len(parts), len(sums), dirEntries(t, out))
	}
	scratch := t.TempDir()
	var all []byte
	for i, p := range parts {
		s := filepath.Join(scratch, fmt.Sprintf("s%d", i))
		r := ctl(t, nil, "valsort", "-q", "-o", s, filepath.Join(out, p))
		mustOK(t, r, "valsort "+p)
		mine, _ := os.ReadFile(s)
		ours, _ := os.ReadFile(filepath.Join(out, sums[i]))
		if !bytes.Equal(mine, ours) {
			t.Errorf("%s differs from valsort -o of %s: the engine's summary does not describe its part", sums[i], p)
		}
		all = append(all, ours...)
	}
	allPath := filepath.Join(scratch, "all.sum")
	if err := os.WriteFile(allPath, all, 0o644); err != nil {
		t.Fatal(err)
	}
	r := ctl(t, nil, "valsort", "-s", allPath)
	mustOK(t, r, "valsort -s over the concatenated summaries")
	want := gensort.ChecksumRecords(0, uint64(records), gensort.Options{}).String()
	for _, s := range []string{fmt.Sprintf("Records: %d", records), "Checksum: " + want, "SUCCESS - all records are in order"} {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("valsort -s lacks %q:\n%s%s", s, r.stdout, r.stderr)
		}
	}
}

// submitSmall submits a small sort through addr and waits for it.
func submitSmall(t *testing.T, addr string, records int64) node.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := testClient(addr).SubmitSort(ctx, sortjob.Spec{Records: records, Memory: 128 << 20})
	if err != nil {
		t.Fatalf("submit a %d-record sort through %s: %v", records, addr, err)
	}
	st = waitJobEnd(t, addr, st.ID, 60*time.Second)
	if st.State != node.StateSucceeded || st.Report == nil {
		t.Fatalf("job %s through %s: %s: %s", st.ID, addr, st.State, st.Error)
	}
	checkReport(t, *st.Report, records)
	return st
}

// 1. kill -9 of a non-leader during the map stage, once it holds finished
// map outputs: its running map fails, its finished outputs are lost and
// re-run, and the job still succeeds with a valid output.
func TestClusterKillFollowerDuringMap(t *testing.T) {
	killFollowerDuringJob(t, "map", func(st node.JobStatus, victimOutputs int) bool {
		p := st.Progress
		return st.Stage == "map" && p != nil && p.TasksDone >= 1 && (victimOutputs >= 2 || p.TasksDone >= p.Tasks/2)
	}, false)
}

// 1b. kill -9 of a non-leader during the map stage, and an immediate
// restart with an empty data directory, before the failure detector has
// noticed: the node comes back as a new incarnation, its old running
// attempt and finished outputs must be written off (they are gone), and
// the job succeeds.
func TestClusterWipedNodeRestartsDuringMap(t *testing.T) {
	killFollowerDuringJob(t, "map", func(st node.JobStatus, victimOutputs int) bool {
		p := st.Progress
		return st.Stage == "map" && p != nil && p.TasksDone >= 1 && (victimOutputs >= 2 || p.TasksDone >= p.Tasks/2)
	}, true)
}

// 1c. kill -9 of a non-leader just as the reduce stage starts: it holds
// several finished map outputs that every reduce is about to fetch. The
// reduces' fetches fail until the failure detector declares it dead; the
// job must still succeed (its lost outputs re-run elsewhere).
func TestClusterKillFollowerAtReduceStart(t *testing.T) {
	killFollowerDuringJob(t, "reduce", func(st node.JobStatus, victimOutputs int) bool {
		return st.Stage == "reduce"
	}, false)
}

// killFollowerDuringJob runs the fault job on 3 nodes, SIGKILLs a
// non-leader once ready(job, finished map outputs on the victim) holds
// during stage (with wipe: then restarts it at once with an empty data
// directory), and checks that the job succeeds and its output validates.
func killFollowerDuringJob(t *testing.T, stage string, ready func(st node.JobStatus, victimOutputs int) bool, wipe bool) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	leader := leaderIndex(t, c, 0)
	victim, via := (leader+1)%3, (leader+2)%3
	vname := c.Nodes[victim].Name
	t.Logf("leader %s; killing %s during the %s stage; submitting through %s", c.Nodes[leader].Name, vname, stage, c.Nodes[via].Name)

	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[via].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, faultJobFlags...)...)
	defer b.kill()
	id := b.jobID(t, 30*time.Second)

	client := testClient(c.Nodes[via].API)
	var atKill node.JobStatus
	order := map[string]int{"map": 0, "reduce": 1, "commit": 2, "done": 3}
	pollUntil(t, "the moment to kill "+vname, 45*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := client.Job(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		if st.Done() || order[st.Stage] > order[stage] {
			t.Fatalf("job %s reached %s/%s before the test could kill %s during the %s stage: the job is too small to hit it on this machine", id, st.State, st.Stage, vname, stage)
		}
		atKill = st
		if st.Progress == nil {
			return false, "stage " + st.Stage
		}
		return ready(st, len(mapOutputs(c, victim, id))), fmt.Sprintf("stage %s, %d/%d tasks done", st.Stage, st.Progress.TasksDone, st.Progress.Tasks)
	})
	killNode(t, c, victim, syscall.SIGKILL, 5*time.Second)
	killed := time.Now()
	lost := len(mapOutputs(c, victim, id))
	t.Logf("killed %s in stage %s at %d/%d tasks; it held %d finished map outputs", vname, atKill.Stage, atKill.Progress.TasksDone, atKill.Progress.Tasks, lost)
	if wipe {
		if err := os.RemoveAll(filepath.Join(c.NodeDir(victim), "data")); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(victim, enginedBin(), "--workers", "1"); err != nil {
			t.Fatalf("restart %s: %v", vname, err)
		}
		t.Logf("restarted %s with an empty data directory %s after the kill", vname, time.Since(killed).Round(time.Millisecond))
	}

	code := b.wait(t, 90*time.Second)
	t.Logf("job ended %s after the kill; %s was declared dead: %v", time.Since(killed).Round(time.Millisecond), vname,
		grepLogs(c.Dir, "member="+vname+" alive=false"))
	if code != 0 {
		st, _ := client.Job(context.Background(), id)
		t.Fatalf("enginectl submit sort: exit %d after %s was killed (job %s, %d retries: %s)\nstderr:\n%s\ntask failures:\n%s",
			code, vname, st.State, st.Retries, st.Error, b.stderr.String(), strings.Join(grepLogs(c.Dir, "task failed"), "\n"))
	}
	rep := b.report(t)
	checkReport(t, rep, faultRecords)
	st := waitJobEnd(t, c.Nodes[via].API, id, 10*time.Second)
	if st.State != node.StateSucceeded {
		t.Fatalf("job %s: %s (%s)", id, st.State, st.Error)
	}
	// Its attempts ran again elsewhere: re-run once it was declared dead,
	// or as speculative twins that finished first (which can happen
	// before the leader calls it dead).
	if st.Retries+rep.SpeculativeWins == 0 || rep.Retries+rep.SpeculativeWins == 0 {
		t.Errorf("job retries %d, report retries %d, speculative wins %d: a node died during the %s stage, its attempts must have been re-run", st.Retries, rep.Retries, rep.SpeculativeWins, stage)
	}
	repairs := grepLogs(c.Dir, "type=map_lost")
	t.Logf("retries %d; map_lost repairs logged:\n%s", st.Retries, strings.Join(repairs, "\n"))
	// With one worker, at most one of the victim's finished outputs can be
	// unreported when it died; the others were done in the state and must
	// have been declared lost (by the scheduler, or by a failed fetch).
	if lost >= 2 && len(repairs) == 0 && len(grepLogs(c.Dir, "fetch map")) == 0 {
		t.Errorf("%s held %d finished map outputs when it died, but no map_lost repair or failed fetch was logged", vname, lost)
	}
	if st.Retries < lost-1 {
		t.Errorf("retries %d, but %d map outputs were lost with %s", st.Retries, lost, vname)
	}
	validateOutput(t, out, faultRecords)
	if !wipe {
		for _, f := range rep.Nodes {
			if f.Node == vname && f.Maps > 0 {
				t.Errorf("report credits dead %s with %d maps: its outputs were lost, the maps must have been re-run elsewhere", f.Node, f.Maps)
			}
		}
		waitNoScratch(t, c, id, leader, via)
		return
	}
	// The wiped node is back as a new incarnation, a live member.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("after the wiped %s restarted: %v", vname, err)
	}
	ls, err := nodeStatus(c.Nodes[leader].API)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ls.Members {
		if m.ID == vname && m.Incarnation != 1 {
			t.Errorf("the wiped %s is at incarnation %d, want 1: %s", vname, m.Incarnation, describeStatus(ls))
		}
	}
	waitNoScratch(t, c, id, 0, 1, 2)
}

// waitNoScratch waits until the given (live) nodes have removed an ended
// job's scratch directory.
func waitNoScratch(t *testing.T, c *node.LocalCluster, job string, nodes ...int) {
	t.Helper()
	pollUntil(t, "job scratch removed on the live nodes", 10*time.Second, func() (bool, string) {
		var left []string
		for _, i := range nodes {
			d := filepath.Join(c.NodeDir(i), "data", "jobs", job)
			if _, err := os.Stat(d); err == nil {
				left = append(left, fmt.Sprintf("%s: %v", d, dirEntries(t, d)))
			}
		}
		return len(left) == 0, strings.Join(left, "; ")
	})
}

// 2. kill -9 of the leader during the reduce stage: a new leader is elected,
// the lost map outputs are re-run, and the job completes with a valid output.
func TestClusterKillLeaderDuringReduce(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	leader := leaderIndex(t, c, 0)
	via, other := (leader+1)%3, (leader+2)%3
	oldLeader := c.Nodes[leader].Name
	t.Logf("leader %s; submitting and following through %s", oldLeader, c.Nodes[via].Name)

	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[via].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, faultJobFlags...)...)
	defer b.kill()
	id := b.jobID(t, 30*time.Second)

	client := testClient(c.Nodes[via].API)
	var atKill node.JobStatus
	pollUntil(t, "reduce stage", 45*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := client.Job(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		if st.Done() || st.Stage == "commit" {
			t.Fatalf("job %s reached %s/%s before the test saw its reduce stage", id, st.State, st.Stage)
		}
		atKill = st
		if st.Stage != "reduce" || st.Progress == nil {
			return false, "stage " + st.Stage
		}
		// Some reduces done: their outputs must survive the leader change.
		return st.Progress.TasksDone >= 1, fmt.Sprintf("stage reduce, %d/%d done", st.Progress.TasksDone, st.Progress.Tasks)
	})
	killNode(t, c, leader, syscall.SIGKILL, 5*time.Second)
	killed := time.Now()
	t.Logf("killed leader %s at reduce %d/%d", oldLeader, atKill.Progress.TasksDone, atKill.Progress.Tasks)

	var newLeader string
	took := pollUntil(t, "a new leader", 15*time.Second, func() (bool, string) {
		st, err := nodeStatus(c.Nodes[via].API)
		if err != nil {
			return false, err.Error()
		}
		newLeader = st.Leader
		return st.Leader != "" && st.Leader != oldLeader, describeStatus(st)
	})
	t.Logf("%s sees new leader %s %s after the kill", c.Nodes[via].Name, newLeader, took.Round(time.Millisecond))
	pollUntil(t, "both survivors agree on the leader", 10*time.Second, func() (bool, string) {
		st, err := nodeStatus(c.Nodes[other].API)
		if err != nil {
			return false, err.Error()
		}
		return st.Leader == newLeader, describeStatus(st)
	})

	if code := b.wait(t, 90*time.Second); code != 0 {
		st, _ := client.Job(context.Background(), id)
		t.Fatalf("enginectl submit sort: exit %d after the leader was killed (job %s, %d retries: %s)\nstderr:\n%s\ntask failures:\n%s",
			code, st.State, st.Retries, st.Error, b.stderr.String(), strings.Join(grepLogs(c.Dir, "task failed"), "\n"))
	}
	t.Logf("job ended %s after the kill", time.Since(killed).Round(time.Millisecond))
	rep := b.report(t)
	checkReport(t, rep, faultRecords)
	st := waitJobEnd(t, c.Nodes[other].API, id, 10*time.Second)
	if st.State != node.StateSucceeded {
		t.Fatalf("job %s as %s sees it: %s (%s)", id, c.Nodes[other].Name, st.State, st.Error)
	}
	if st.Retries == 0 {
		t.Errorf("retries 0: the dead leader held map outputs needed by the reduces; they must have been re-run")
	}
	t.Logf("retries %d; repairs:\n%s", st.Retries, strings.Join(grepLogs(c.Dir, "msg=repair"), "\n"))
	validateOutput(t, out, faultRecords)
	waitNoScratch(t, c, id, via, other)
	// The members as the new leader sees them: the old one dead. The job
	// may end before the new leader calls anyone dead (its gossip settles
	// first, and speculative twins can finish the dead node's tasks), so
	// this is a wait, not a check of the moment.
	pollUntil(t, "the killed leader shown dead", 20*time.Second, func() (bool, string) {
		ls, err := nodeStatus(c.Nodes[via].API)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range ls.Members {
			if m.ID == oldLeader && m.Alive {
				return false, describeStatus(ls)
			}
		}
		return true, ""
	})
}

// 3. The whole cluster stopped with "cluster down" and restarted with
// "cluster up" on the same directory keeps its job history and members,
// and runs new jobs.
func TestClusterDownUpKeepsHistory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	defer func() {
		ctl(t, nil, "cluster", "down", "--dir", dir)
		if c, err := node.LoadLocal(dir); err == nil {
			c.Stop(5 * time.Second)
		}
		if t.Failed() {
			logTails(t, dir)
		}
	}()
	r := ctl(t, nil, "cluster", "up", "--nodes", "3", "--dir", dir, "--workers", "1")
	mustOK(t, r, "cluster up")
	m := regexp.MustCompile(`ENGINE_ADDR=(\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("cluster up printed no ENGINE_ADDR line:\n%s", r.stdout)
	}
	addr := m[1]
	env := []string{"ENGINE_ADDR=" + addr}

	r = ctl(t, env, "submit", "sort", "--size=50MB", "--memory=128MB", "--progress=none", "--json")
	mustOK(t, r, "submit sort before the restart")
	var first sortjob.Report
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatalf("report: %v\n%s", err, r.stdout)
	}
	checkReport(t, first, 500_000)

	r = ctl(t, nil, "cluster", "down", "--dir", dir)
	mustOK(t, r, "cluster down")
	if _, err := nodeStatus(addr); err == nil {
		t.Fatalf("a node still answers at %s after cluster down", addr)
	}
	r = ctl(t, nil, "cluster", "up", "--dir", dir, "--workers", "1")
	mustOK(t, r, "cluster up again")
	if !strings.Contains(r.stdout, "ENGINE_ADDR="+addr) {
		t.Errorf("restarted cluster is not at the same address %s:\n%s", addr, r.stdout)
	}

	checkStatus := func(wantJobs ...string) {
		t.Helper()
		r := ctl(t, env, "status")
		mustOK(t, r, "status")
		for _, id := range wantJobs {
			found := false
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, id) {
					found = true
					if f := strings.Fields(l); len(f) < 2 || f[1] != "succeeded" {
						t.Errorf("job %s after the restart: %q, want succeeded", id, l)
					}
				}
			}
			if !found {
				t.Errorf("status after the restart does not list job %s:\n%s", id, r.stdout)
			}
		}
		for i := 0; i < 3; i++ {
			if !regexp.MustCompile(fmt.Sprintf(`(?m)^node-%d\s+true\s`, i)).MatchString(r.stdout) {
				t.Errorf("status does not show node-%d as a live member:\n%s", i, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "(none: no quorum?)") {
			t.Errorf("no leader after the restart:\n%s", r.stdout)
		}
	}
	checkStatus(first.Job)

	r = ctl(t, env, "submit", "sort", "--size=30MB", "--memory=128MB", "--progress=none", "--json")
	mustOK(t, r, "submit sort after the restart")
	var second sortjob.Report
	if err := json.Unmarshal([]byte(r.stdout), &second); err != nil {
		t.Fatalf("report: %v\n%s", err, r.stdout)
	}
	checkReport(t, second, 300_000)
	checkStatus(first.Job, second.Job)
}

// 4. A node restarted with an empty data directory rejoins the same
// cluster (as a new incarnation), for a joining node and for node-0, the
// one that bootstrapped the cluster.
func TestClusterRejoinWithEmptyDataDir(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	first := submitSmall(t, c.Nodes[0].API, 300_000)

	rejoin := func(i int) {
		t.Helper()
		name := c.Nodes[i].Name
		before, err := nodeStatus(c.Nodes[(i+1)%3].API)
		if err != nil {
			t.Fatal(err)
		}
		inc := -1
		for _, m := range before.Members {
			if m.ID == name {
				inc = m.Incarnation
			}
		}
		killNode(t, c, i, syscall.SIGTERM, 15*time.Second)
		data := filepath.Join(c.NodeDir(i), "data")
		if err := os.RemoveAll(data); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(i, enginedBin(), "--workers", "1"); err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("%s restarted with an empty data directory does not rejoin: %v", name, err)
		}
		for j := range c.Nodes {
			st, err := nodeStatus(c.Nodes[j].API)
			if err != nil {
				t.Fatal(err)
			}
			live := 0
			for _, m := range st.Members {
				if m.Alive {
					live++
				}
				if m.ID == name && m.Incarnation != inc+1 {
					t.Errorf("%s sees %s at incarnation %d, want %d (it came back without its data)", c.Nodes[j].Name, name, m.Incarnation, inc+1)
				}
			}
			if len(st.Members) != 3 || live != 3 {
				t.Errorf("after %s rejoined, %s sees %d members, %d live; want 3: %s", name, c.Nodes[j].Name, len(st.Members), live, describeStatus(st))
			}
		}
		// The rejoined node has the cluster's history: it joined the same
		// cluster instead of bootstrapping its own.
		ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		jobs, err := testClient(c.Nodes[i].API).Jobs(ctx2)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, j := range jobs {
			found = found || (j.ID == first.ID && j.State == node.StateSucceeded)
		}
		if !found {
			t.Errorf("rejoined %s does not know the cluster's earlier job %s (a second cluster?): %d jobs", name, first.ID, len(jobs))
		}
		self, _ := nodeStatus(c.Nodes[i].API)
		peer, _ := nodeStatus(c.Nodes[(i+1)%3].API)
		if self.Leader == "" || self.Leader != peer.Leader {
			t.Errorf("rejoined %s follows leader %q, %s follows %q: not one cluster", name, self.Leader, peer.ID, peer.Leader)
		}
	}

	rejoin(2)
	submitSmall(t, c.Nodes[2].API, 300_000)

	// node-0 bootstrapped the cluster; with an empty data directory it
	// must join through node-1, not bootstrap a second cluster.
	rejoin(0)
	st, err := nodeStatus(c.Nodes[0].API)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || nodeIndex(c, st.Leader) < 0 {
		t.Fatalf("node-0 after rejoining: %s", describeStatus(st))
	}
	submitSmall(t, c.Nodes[0].API, 300_000)
}

// 5. Bad input: a wrong --join address, two processes on one data
// directory, and a job submitted without a quorum.
func TestClusterBadInput(t *testing.T) {
	t.Run("wrong join address", func(t *testing.T) {
		data := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tok := filepath.Join(t.TempDir(), "join-token")
		os.WriteFile(tok, []byte("engine1."+strings.Repeat("ab", 32)+".secret\n"), 0o600)
		cmd := exec.CommandContext(ctx, enginedBin(), "--data", data, "--api", "127.0.0.1:0", "--join", "127.0.0.1:1", "--token", tok, "--ready-timeout", "3s")
		start := time.Now()
		b, err := cmd.CombinedOutput()
		took := time.Since(start)
		if ctx.Err() != nil {
			t.Fatalf("engined --join 127.0.0.1:1 still runs after 20s:\n%s", b)
		}
		if err == nil {
			t.Fatalf("engined --join 127.0.0.1:1 exited 0:\n%s", b)
		}
		if took > 6*time.Second {
			t.Errorf("engined took %s to give up with --ready-timeout 3s", took.Round(time.Millisecond))
		}
		for _, s := range []string{"127.0.0.1:1", "check --join"} {
			if !strings.Contains(string(b), s) {
				t.Errorf("engined's error does not say %q:\n%s", s, b)
			}
		}
		t.Logf("exit after %s: %v\n%s", took.Round(time.Millisecond), err, b)
	})

	t.Run("join without a token", func(t *testing.T) {
		cmd := exec.Command(enginedBin(), "--data", t.TempDir(), "--api", "127.0.0.1:0", "--join", "127.0.0.1:1")
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "--token FILE") || !strings.Contains(string(b), "join-token") {
			t.Fatalf("engined --join without --token: %v, want an error naming --token FILE and join-token:\n%s", err, b)
		}
	})

	c := startCluster(t, 3)
	defer stopCluster(t, c)

	t.Run("same data directory", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		data := filepath.Join(c.NodeDir(1), "data")
		cmd := exec.CommandContext(ctx, enginedBin(), "--data", data, "--api", "127.0.0.1:0")
		b, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("a second engined on %s still runs after 20s:\n%s", data, b)
		}
		if err == nil || !strings.Contains(string(b), "in use by another engine process") {
			t.Fatalf("second engined on a running node's data directory: %v\n%s", err, b)
		}
		if pid := nodePID(c, 1); !strings.Contains(string(b), strconv.Itoa(pid)) {
			t.Errorf("the error does not name the owner's pid %d:\n%s", pid, b)
		}
		if _, err := nodeStatus(c.Nodes[1].API); err != nil {
			t.Errorf("node-1 no longer answers after the refused second process: %v", err)
		}
	})

	t.Run("no quorum", func(t *testing.T) {
		leader := leaderIndex(t, c, 0)
		survivor := (leader + 1) % 3
		for _, i := range []int{leader, (leader + 2) % 3} {
			killNode(t, c, i, syscall.SIGKILL, 5*time.Second)
		}
		addr := c.Nodes[survivor].API
		t.Logf("killed %s (leader) and %s; %s survives", c.Nodes[leader].Name, c.Nodes[(leader+2)%3].Name, c.Nodes[survivor].Name)
		r, took := ctlWithin(t, 20*time.Second, "--addr", addr, "submit", "sort", "--size=10MB", "--progress=none")
		t.Logf("submit without quorum: exit %d after %s: %s", r.code, took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
		if r.code == 0 {
			t.Fatalf("a job ran without a quorum:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "quorum") && !strings.Contains(r.stderr, "majority") {
			t.Errorf("the error does not mention the missing quorum/majority:\n%s", r.stderr)
		}
		r, took = ctlWithin(t, 5*time.Second, "--addr", addr, "status")
		mustOK(t, r, "status on the survivor without quorum")
		if !strings.Contains(r.stdout, "Raft: this node is") {
			t.Errorf("status:\n%s", r.stdout)
		}
		t.Logf("status answered in %s:\n%s", took.Round(time.Millisecond), r.stdout)
		st, err := nodeStatus(addr)
		if err != nil {
			t.Fatal(err)
		}
		if st.RaftState == "Leader" {
			t.Errorf("the lone survivor of 3 voters claims to lead: %s", describeStatus(st))
		}
	})
}

// netnsCluster is engined processes each in its own network namespace,
// linked by a bridge in the test's namespace: taking a node's link down
// partitions it from the others (and from the test, which then reaches it
// with "ip netns exec").
type netnsCluster struct {
	t      *testing.T
	dir    string
	prefix string // namespace, link and bridge name prefix
	subnet string // "10.213.X"
	bridge string
	nodes  []*netnsNode
}

type netnsNode struct {
	name, ns, hostIf, ip, api string
	cmd                       *exec.Cmd
	done                      chan struct{}
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNetnsCluster creates the namespaces and links, or skips the test when
// this machine cannot (not root, no ip, no netns support). The caller
// defers close.
func newNetnsCluster(t *testing.T, n int) *netnsCluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces")
	}
	pid := os.Getpid()
	nc := &netnsCluster{t: t, dir: t.TempDir(), prefix: fmt.Sprintf("eng%d", pid%100000), subnet: fmt.Sprintf("10.213.%d", 10+pid%240)}
	nc.bridge = nc.prefix + "br"
	probe := nc.prefix + "n0"
	if err := ipCmd("netns", "add", probe); err != nil {
		t.Skipf("cannot create a network namespace, so no partition test here: %v", err)
	}
	ipCmd("netns", "del", probe)
	if err := ipCmd("link", "add", nc.bridge, "type", "bridge"); err != nil {
		t.Skipf("cannot create a bridge, so no partition test here: %v", err)
	}
	steps := [][]string{
		{"addr", "add", nc.subnet + ".254/24", "dev", nc.bridge},
		{"link", "set", nc.bridge, "up"},
	}
	for i := 0; i < n; i++ {
		nd := &netnsNode{name: fmt.Sprintf("node-%d", i), ns: fmt.Sprintf("%sn%d", nc.prefix, i), hostIf: fmt.Sprintf("%sh%d", nc.prefix, i),
			ip: fmt.Sprintf("%s.%d", nc.subnet, i+1)}
		nd.api = nd.ip + ":7070"
		nc.nodes = append(nc.nodes, nd)
		in := fmt.Sprintf("%sc%d", nc.prefix, i)
		steps = append(steps,
			[]string{"netns", "add", nd.ns},
			[]string{"link", "add", nd.hostIf, "type", "veth", "peer", "name", in, "netns", nd.ns},
			[]string{"link", "set", nd.hostIf, "master", nc.bridge, "up"},
			[]string{"-n", nd.ns, "addr", "add", nd.ip + "/24", "dev", in},
			[]string{"-n", nd.ns, "link", "set", in, "up"},
			[]string{"-n", nd.ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			nc.close()
			t.Skipf("cannot set up the namespaces' network, so no partition test here: %v", err)
		}
	}
	return nc
}

// start starts node i in its namespace (node 0 bootstraps, the others join
// through it).
func (nc *netnsCluster) start(i int) {
	t := nc.t
	t.Helper()
	nd := nc.nodes[i]
	dir := filepath.Join(nc.dir, nd.name)
	os.MkdirAll(dir, 0o755)
	args := []string{"netns", "exec", nd.ns, enginedBin(), "--data", filepath.Join(dir, "data"), "--name", nd.name,
		"--api", nd.api, "--raft", nd.ip + ":7071", "--gossip", nd.ip + ":7072", "--internal", nd.ip + ":7073", "--workers", "1"}
	if i > 0 {
		// Node 0 made the cluster (the caller waited for it): join with
		// its join token.
		args = append(args, "--join", nc.nodes[0].api, "--token", filepath.Join(nc.dir, nc.nodes[0].name, "data", "join-token"))
	}
	logf, err := os.OpenFile(filepath.Join(dir, "engined.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	nd.cmd = exec.Command("ip", args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	// Killed with the test binary if it dies (a timeout), not left behind.
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := nd.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", nd.name, nd.ns, err)
	}
	nd.done = make(chan struct{})
	go func() { nd.cmd.Wait(); close(nd.done) }()
}

// waitReady waits until every node sees all n members alive under one
// leader.
func (nc *netnsCluster) waitReady(what string, timeout time.Duration) {
	nc.t.Helper()
	pollUntil(nc.t, what, timeout, func() (bool, string) {
		leaders := map[string]bool{}
		for _, nd := range nc.nodes {
			st, err := nodeStatus(nd.api)
			if err != nil {
				return false, nd.name + ": " + err.Error()
			}
			live := 0
			for _, m := range st.Members {
				if m.Alive {
					live++
				}
			}
			if !st.Ready || st.Leader == "" || live != len(nc.nodes) {
				return false, describeStatus(st)
			}
			leaders[st.Leader] = true
		}
		return len(leaders) == 1, fmt.Sprintf("leaders %v", leaders)
	})
}

func (nc *netnsCluster) index(name string) int {
	for i, nd := range nc.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// ctlIn runs enginectl inside node i's namespace, within timeout.
func (nc *netnsCluster) ctlIn(i int, timeout time.Duration, args ...string) (result, time.Duration) {
	t := nc.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nc.nodes[i].ns, filepath.Join(binDir, "enginectl")}, args...)...)
	cmd.Env = cleanEnv()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("enginectl %v in %s did not answer within %s (it hangs)\nstdout:\n%s\nstderr:\n%s", args, nc.nodes[i].ns, timeout, so.String(), se.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("enginectl %v in %s: %v", args, nc.nodes[i].ns, err)
	}
	return result{so.String(), se.String(), code}, took
}

// close stops the processes and removes the namespaces, links and bridge;
// on failure it logs the nodes' log tails first.
func (nc *netnsCluster) close() {
	for _, nd := range nc.nodes {
		if nd.cmd != nil && nd.cmd.Process != nil {
			nd.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, nd := range nc.nodes {
		if nd.cmd == nil || nd.cmd.Process == nil {
			continue
		}
		select {
		case <-nd.done:
		case <-time.After(5 * time.Second):
			nd.cmd.Process.Kill()
			<-nd.done
		}
	}
	for _, nd := range nc.nodes {
		ipCmd("netns", "del", nd.ns) // removes the veth pair too
		ipCmd("link", "del", nd.hostIf)
	}
	ipCmd("link", "del", nc.bridge)
	if nc.t.Failed() {
		logTails(nc.t, nc.dir)
	}
}

// 6. A network partition: the leader's link goes down (for about 12s, the
// time the checks take). The majority elects a leader and runs a job; the
// isolated node refuses one (no quorum) and still answers status; after the
// link comes back the node must rejoin as a follower, be a live member
// again and take tasks.
func TestClusterNetworkPartition(t *testing.T) {
	nc := newNetnsCluster(t, 3)
	defer nc.close()
	for i := range nc.nodes {
		nc.start(i)
		if i == 0 {
			pollUntil(t, "node-0 up", 20*time.Second, func() (bool, string) {
				st, err := nodeStatus(nc.nodes[0].api)
				if err != nil {
					return false, err.Error()
				}
				return st.Ready, describeStatus(st)
			})
		}
	}
	nc.waitReady("3 nodes in namespaces ready", 30*time.Second)
	st, err := nodeStatus(nc.nodes[0].api)
	if err != nil {
		t.Fatal(err)
	}
	L := nc.index(st.Leader)
	a, b := (L+1)%3, (L+2)%3
	old := nc.nodes[L].name
	t.Logf("cluster in namespaces %sn0..2 on %s.0/24; leader %s; partitioning it", nc.prefix, nc.subnet, old)

	if err := ipCmd("link", "set", nc.nodes[L].hostIf, "down"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	var newLeader string
	took := pollUntil(t, "a new leader on the majority side", 15*time.Second, func() (bool, string) {
		sa, err := nodeStatus(nc.nodes[a].api)
		if err != nil {
			return false, err.Error()
		}
		sb, err := nodeStatus(nc.nodes[b].api)
		if err != nil {
			return false, err.Error()
		}
		newLeader = sa.Leader
		return sa.Leader != "" && sa.Leader != old && sa.Leader == sb.Leader, describeStatus(sa) + " / " + describeStatus(sb)
	})
	t.Logf("majority elected %s %s after the cut", newLeader, took.Round(time.Millisecond))
	pollUntil(t, "the majority sees the isolated node dead", 15*time.Second, memberDead(nc.nodes[a].api, old))

	// The isolated node, from inside its namespace: status answers, a job
	// is refused for want of a quorum. Meanwhile the majority runs a job.
	out := filepath.Join(t.TempDir(), "out")
	maj := startCtl(t, "--addr", nc.nodes[a].api, "submit", "sort", "--size=200MB", "--memory=256MB", "--map-split=25MB",
		"--output", out, "--progress=none", "--json")
	defer maj.kill()
	r, took := nc.ctlIn(L, 5*time.Second, "--addr", nc.nodes[L].api, "status")
	mustOK(t, r, "status on the isolated node")
	t.Logf("isolated %s answers status in %s:\n%s", old, took.Round(time.Millisecond), r.stdout)
	r, took = nc.ctlIn(L, 20*time.Second, "--addr", nc.nodes[L].api, "submit", "sort", "--size=10MB", "--progress=none")
	t.Logf("submit on the isolated node: exit %d after %s: %s", r.code, took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.code == 0 {
		t.Errorf("the isolated node ran a job without a quorum:\n%s", r.stdout)
	} else if !strings.Contains(r.stderr, "quorum") && !strings.Contains(r.stderr, "majority") {
		t.Errorf("the isolated node's refusal does not mention the quorum/majority:\n%s", r.stderr)
	}
	if code := maj.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("job on the majority side: exit %d\nstderr:\n%s", code, maj.stderr.String())
	}
	rep := maj.report(t)
	checkReport(t, rep, 2_000_000)
	for _, f := range rep.Nodes {
		if f.Node == old {
			t.Errorf("the isolated %s is credited with tasks: %+v", old, f)
		}
	}
	validateOutput(t, out, 2_000_000)

	if err := ipCmd("link", "set", nc.nodes[L].hostIf, "up"); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	t.Logf("healed after %s", healed.Sub(cut).Round(time.Second))
	pollUntil(t, "the healed node follows the new leader", 15*time.Second, func() (bool, string) {
		s, err := nodeStatus(nc.nodes[L].api)
		if err != nil {
			return false, err.Error()
		}
		return s.Leader == newLeader && s.RaftState == "Follower", describeStatus(s)
	})
	took = pollUntil(t, "every node sees 3 live members after the heal", 20*time.Second, func() (bool, string) {
		for _, nd := range nc.nodes {
			s, err := nodeStatus(nd.api)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range s.Members {
				if !m.Alive {
					return false, describeStatus(s)
				}
			}
		}
		return true, ""
	})
	t.Logf("all members alive %s after the heal", took.Round(time.Millisecond))
	// The healed node's own view said "all alive" before the partition
	// too; what shows it rejoined is the majority's log reaching it (a new
	// election may come first: it returns with a higher term).
	var jobs []node.JobStatus
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		jobs, err = testClient(nc.nodes[L].api).Jobs(ctx)
		cancel()
		if err == nil && len(jobs) == 1 && jobs[0].ID == rep.Job && jobs[0].State == node.StateSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the healed node's jobs 30s after the heal: %+v (err %v); want only the majority's job %s, succeeded (and no job of its own)", jobs, err, rep.Job)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A job after the heal uses the healed node again.
	r, _ = ctlWithin(t, 60*time.Second, "--addr", nc.nodes[L].api, "submit", "sort", "--size=100MB", "--memory=256MB", "--map-split=10MB", "--progress=none", "--json")
	mustOK(t, r, "job after the heal")
	var after sortjob.Report
	if err := json.Unmarshal([]byte(r.stdout), &after); err != nil {
		t.Fatalf("report: %v\n%s", err, r.stdout)
	}
	checkReport(t, after, 1_000_000)
	used := false
	for _, f := range after.Nodes {
		used = used || (f.Node == old && f.Maps+f.Reduces > 0)
	}
	if !used {
		t.Errorf("the healed %s took no task of the job after the heal: %+v", old, after.Nodes)
	}
}

// 7. A paused node (SIGSTOP: alive to the kernel, silent to the cluster)
// during the reduce stage, resumed once the leader has declared it dead:
// its outputs are re-run elsewhere, its stale attempts must not spoil the
// output, the job succeeds, and the node becomes a live member again and
// cleans up its scratch.
func TestClusterPausedNodeDuringReduce(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	leader := leaderIndex(t, c, 0)
	victim, via := (leader+1)%3, (leader+2)%3
	vname := c.Nodes[victim].Name
	pid := nodePID(c, victim)
	paused := false
	defer func() {
		if paused {
			syscall.Kill(pid, syscall.SIGCONT) // so that Stop can end it
		}
	}()

	out := filepath.Join(t.TempDir(), "out")
	b := startCtl(t, append([]string{"--addr", c.Nodes[via].API, "submit", "sort", "--output", out, "--progress=lines", "--json"}, faultJobFlags...)...)
	defer b.kill()
	id := b.jobID(t, 30*time.Second)
	client := testClient(c.Nodes[via].API)
	pollUntil(t, "reduce stage", 45*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := client.Job(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		if st.Done() || st.Stage == "commit" {
			t.Fatalf("job %s reached %s/%s before the test saw its reduce stage", id, st.State, st.Stage)
		}
		return st.Stage == "reduce", "stage " + st.Stage
	})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused = true
	t.Logf("paused %s (pid %d) at the start of the reduce stage; it holds %d map outputs", vname, pid, len(mapOutputs(c, victim, id)))
	took := pollUntil(t, "the leader declares the paused node dead", 20*time.Second, memberDead(c.Nodes[leader].API, vname))
	t.Logf("declared dead %s after the pause", took.Round(time.Millisecond))
	syscall.Kill(pid, syscall.SIGCONT)
	paused = false

	if code := b.wait(t, 90*time.Second); code != 0 {
		st, _ := client.Job(context.Background(), id)
		t.Fatalf("enginectl submit sort: exit %d with %s paused then resumed (job %s, %d retries: %s)\nstderr:\n%s\ntask failures:\n%s",
			code, vname, st.State, st.Retries, st.Error, b.stderr.String(), strings.Join(grepLogs(c.Dir, "task failed"), "\n"))
	}
	rep := b.report(t)
	checkReport(t, rep, faultRecords)
	validateOutput(t, out, faultRecords)
	took = pollUntil(t, "the resumed node is a live member again", 20*time.Second, func() (bool, string) {
		st, err := nodeStatus(c.Nodes[leader].API)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range st.Members {
			if !m.Alive {
				return false, describeStatus(st)
			}
		}
		return true, ""
	})
	t.Logf("%s alive again %s after the job", vname, took.Round(time.Millisecond))
	waitNoScratch(t, c, id, 0, 1, 2)
}

// 4b. A voter that comes back with an empty data directory has lost its
// Raft log and its vote record; it must not help a stale node win an
// election. Here B is paused while a job is committed by A and C alone;
// then A dies, C is wiped and restarted, and B resumes. A leader elected by
// B and the wiped C would not have the committed job: the cluster must
// either stay without a leader (no safe majority) or still know the job.
func TestClusterWipedVoterKeepsCommittedJobs(t *testing.T) {
	c := startCluster(t, 3)
	defer stopCluster(t, c)
	A := leaderIndex(t, c, 0)
	B, C := (A+1)%3, (A+2)%3
	pidB := nodePID(c, B)
	if err := syscall.Kill(pidB, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			syscall.Kill(pidB, syscall.SIGCONT)
		}
	}()
	t.Logf("leader %s; paused %s; the job is committed by %s and %s", c.Nodes[A].Name, c.Nodes[B].Name, c.Nodes[A].Name, c.Nodes[C].Name)
	job := submitSmall(t, c.Nodes[A].API, 100_000)
	t.Logf("job %s succeeded", job.ID)

	killNode(t, c, A, syscall.SIGKILL, 5*time.Second)
	killNode(t, c, C, syscall.SIGKILL, 5*time.Second)
	if err := os.RemoveAll(filepath.Join(c.NodeDir(C), "data")); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(C, enginedBin(), "--workers", "1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the wiped node's Raft is listening
	syscall.Kill(pidB, syscall.SIGCONT)
	paused = false
	t.Logf("killed %s, wiped and restarted %s, resumed %s", c.Nodes[A].Name, c.Nodes[C].Name, c.Nodes[B].Name)

	var st node.NodeStatus
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		// (Right after it resumes, B still names the dead A as leader.)
		s, err := nodeStatus(c.Nodes[B].API)
		if err == nil && s.Leader != "" && s.Leader != c.Nodes[A].Name {
			st = s
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Leader == "" {
		t.Logf("no leader among %s and the wiped %s: safe (the wiped voter did not vote)", c.Nodes[B].Name, c.Nodes[C].Name)
		return
	}
	t.Logf("%s and the wiped %s elected %s: %s", c.Nodes[B].Name, c.Nodes[C].Name, st.Leader, describeStatus(st))
	// Both survivors must agree on a state that has the job.
	li := nodeIndex(c, st.Leader)
	var s2 node.NodeStatus
	pollUntil(t, "the other survivor follows "+st.Leader, 10*time.Second, func() (bool, string) {
		var err error
		s2, err = nodeStatus(c.Nodes[3-A-li].API)
		if err != nil {
			return false, err.Error()
		}
		return s2.Leader == st.Leader && s2.Applied >= st.Applied, describeStatus(s2)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jobs, err := testClient(c.Nodes[li].API).Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.ID == job.ID {
			if j.State != node.StateSucceeded {
				t.Errorf("committed entries lost: job %s had succeeded (acknowledged to the client) and is %s (stage %s) again after %s was elected with the vote of %s, whose Raft log and vote were wiped: %s. A voter that lost its data must rejoin without a vote until it has caught up (or under a new Raft id)",
					j.ID, j.State, j.Stage, st.Leader, c.Nodes[C].Name, describeStatus(st))
			}
			return
		}
	}
	t.Errorf("committed job %s (it succeeded, acknowledged to the client) is gone: %s was elected with the vote of %s, whose Raft log and vote were wiped; the cluster now knows %d jobs. A voter that lost its data must rejoin without a vote until it has caught up (or under a new Raft id)",
		job.ID, st.Leader, c.Nodes[C].Name, len(jobs))
}

// memberDead is a pollUntil condition: the node at api sees member id dead.
func memberDead(api, id string) func() (bool, string) {
	return func() (bool, string) {
		s, err := nodeStatus(api)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range s.Members {
			if m.ID == id {
				return !m.Alive, describeStatus(s)
			}
		}
		return false, describeStatus(s)
	}
}
