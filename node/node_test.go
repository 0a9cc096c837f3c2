package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"engine/sortjob"
)

func open(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(Config{DataDir: dir, API: "127.0.0.1:0", Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wait(t *testing.T, c *Client, id string) JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Follow(ctx, c, id, nilWriter{}, FollowOptions{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestSubmitThroughAPIAndHistory(t *testing.T) {
	dir := t.TempDir()
	n := open(t, dir)
	c := NewClient(n.Addr())
	ctx := context.Background()
	st, err := c.SubmitSort(ctx, sortjob.Spec{Records: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, c, st.ID)
	if st.State != StateSucceeded || st.Report == nil || !st.Report.Check.Passed {
		t.Fatalf("job: %+v", st)
	}
	// A bad spec is refused at submission with the reason.
	_, err = c.SubmitSort(ctx, sortjob.Spec{Input: filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("bad spec: %v", err)
	}
	if _, err := c.Job(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no job "nope"`) {
		t.Fatalf("unknown job: %v", err)
	}
	// The data directory is locked while the node runs.
	if _, err := Open(Config{DataDir: dir, API: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on one data dir: %v", err)
	}
	n.Close()

	// History survives a restart.
	n = open(t, dir)
	defer n.Close()
	jobs, err := NewClient(n.Addr()).Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].ID != st.ID || jobs[0].State != StateSucceeded || jobs[0].Report == nil {
		t.Fatalf("history after restart: %v %+v", err, jobs)
	}
}

func TestCancelRunningJobCleansUp(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	n := open(t, dir)
	defer n.Close()
	c := NewClient(n.Addr())
	ctx := context.Background()
	st, err := c.SubmitSort(ctx, sortjob.Spec{Records: 20_000_000, Output: out}) // 2 GB: long enough to cancel
	if err != nil {
		t.Fatal(err)
	}
	// A second job waits in the queue; cancelling it never runs it.
	queued, err := c.SubmitSort(ctx, sortjob.Spec{Records: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if st2, err := c.Cancel(ctx, queued.ID); err != nil || st2.State != StateCancelled {
		t.Fatalf("cancel queued: %v %+v", err, st2)
	}
	for {
		s, _ := c.Job(ctx, st.ID)
		if s.Progress != nil && s.Progress.Phase == "map" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Cancel(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	st = wait(t, c, st.ID)
	if st.State != StateCancelled || !strings.Contains(st.Error, "cancelled") {
		t.Fatalf("cancelled job: %+v", st)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "jobs")); len(des) != 0 {
		t.Errorf("scratch left behind: %v", des)
	}
}

// A job that was running when its node died is marked failed on restart
// and its temporary output is removed.
func TestInterruptedJobAfterRestart(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	n := open(t, dir)
	// Fake the state a kill -9 leaves: history says running, scratch exists.
	j := newJob(JobStatus{ID: "dead", Kind: "sort", State: StateRunning, Spec: sortjob.Spec{Records: 10, Output: out}, Submitted: time.Now()})
	n.saveHistory(j)
	n.Close()
	os.MkdirAll(filepath.Join(out, ".engine-dead"), 0o755)
	// A crash in the middle of commit: some parts moved, no _SUCCESS.
	os.WriteFile(filepath.Join(out, "part-00000"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(out, "summary-00000"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "jobs", "dead", "map"), 0o755)
	// A committed output of another interrupted job is left alone.
	done := filepath.Join(t.TempDir(), "done")
	os.MkdirAll(done, 0o755)
	for _, f := range []string{"part-00000", "summary-00000", "_SUCCESS"} {
		os.WriteFile(filepath.Join(done, f), []byte("x"), 0o644)
	}
	n2 := open(t, dir)
	n2.saveHistory(newJob(JobStatus{ID: "dead2", Kind: "sort", State: StateRunning, Spec: sortjob.Spec{Records: 10, Output: done}, Submitted: time.Now()}))
	n2.Close()

	n = open(t, dir)
	defer n.Close()
	st, ok := n.Job("dead")
	if !ok || st.State != StateFailed || !strings.Contains(st.Error, "node stopped") {
		t.Fatalf("interrupted job after restart: %+v", st)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("temporary output left: %v", err)
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "jobs")); len(des) != 0 {
		t.Errorf("scratch left: %v", des)
	}
	if des, _ := os.ReadDir(done); len(des) != 3 {
		t.Errorf("a committed output was touched: %v", des)
	}
}

func TestProgressRendering(t *testing.T) {
	p := sortjob.Progress{Phase: "map", Step: 2, Steps: 5, Done: 500e6, Total: 1e9, TasksDone: 3, Tasks: 8, PhaseElapsed: 2 * time.Second, Elapsed: 3 * time.Second}
	bar := progressBar(p, 20)
	for _, s := range []string{"[2/5] map", "50%", "500 MB / 1.00 GB", "250 MB/s", "ETA 2s", "tasks 3/8", "=========>"} {
		if !strings.Contains(bar, s) {
			t.Errorf("bar %q lacks %q", bar, s)
		}
	}
	line := progressLine(p)
	for _, s := range []string{"map (2/5)", "50%", "500 MB of 1.00 GB", "ETA 2s"} {
		if !strings.Contains(line, s) {
			t.Errorf("line %q lacks %q", line, s)
		}
	}
}
