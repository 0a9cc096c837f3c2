package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"engine/sortjob"
)

// Config configures a node. Zero fields take defaults.
type Config struct {
	// DataDir holds the node's state and job scratch space. Required.
	DataDir string
	// API is the HTTP API's listen address; default 127.0.0.1:7070.
	API string
	// Workers is the number of tasks run at once; default GOMAXPROCS.
	Workers int
	// Memory is the default per-job memory budget in bytes; default
	// sortjob.DefaultMemory().
	Memory int64
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.DataDir == "" {
		return errors.New("node: no data directory configured (--data DIR)")
	}
	if c.API == "" {
		c.API = "127.0.0.1:7070"
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Memory <= 0 {
		c.Memory = sortjob.DefaultMemory()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Job states.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// JobStatus is a job as the API shows it.
type JobStatus struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	State     string            `json:"state"`
	Spec      sortjob.Spec      `json:"spec"`
	Submitted time.Time         `json:"submitted"`
	Started   time.Time         `json:"started,omitzero"`
	Finished  time.Time         `json:"finished,omitzero"`
	Progress  *sortjob.Progress `json:"progress,omitempty"`
	Report    *sortjob.Report   `json:"report,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// Done reports whether the job has ended.
func (s JobStatus) Done() bool {
	return s.State == StateSucceeded || s.State == StateFailed || s.State == StateCancelled
}

type job struct {
	status  JobStatus // guarded by Node.mu
	tracker sortjob.Tracker
	cancel  context.CancelFunc
	done    chan struct{} // closed when the job has ended
}

func newJob(st JobStatus) *job {
	j := &job{status: st, done: make(chan struct{})}
	if st.Done() {
		close(j.done)
	}
	return j
}

// Node is one running engine node.
type Node struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	ln   net.Listener
	srv  *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	queue  chan *job

	mu struct {
		sync.Mutex
		jobs  map[string]*job
		order []string
	}
}

// Open locks the data directory, loads the job history, starts the job
// runner and the API listener.
func Open(cfg Config) (*Node, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("node: data directory: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, lock: lock, queue: make(chan *job, 1024)}
	n.mu.jobs = map[string]*job{}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.loadHistory(); err != nil {
		lock.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("node: API listen on %s: %w", cfg.API, err)
	}
	n.ln = ln
	n.srv = &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.runJobs()
	}()
	n.log.Info("node started", "data", cfg.DataDir, "api", ln.Addr().String(), "workers", cfg.Workers, "memory", cfg.Memory)
	return n, nil
}

// lockDataDir takes an exclusive lock on DataDir/LOCK so that two processes
// never share a data directory.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		owner := strings.TrimSpace(string(b))
		if owner == "" {
			owner = "unknown"
		}
		return nil, fmt.Errorf("node: data directory %s is in use by another engine process (pid %s); stop it or use another --data directory", dir, owner)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Addr returns the API's address (useful with port 0).
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Close cancels the running job (which cleans up after itself), stops the
// API and releases the data directory.
func (n *Node) Close() error {
	n.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.srv.Shutdown(ctx)
	n.wg.Wait()
	n.lock.Close()
	return err
}

func newJobID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Submit checks a sort spec (input, output, free disk) and queues it.
func (n *Node) Submit(spec sortjob.Spec) (JobStatus, error) {
	if spec.Memory == 0 {
		spec.Memory = n.cfg.Memory
	}
	if _, err := sortjob.Precheck(n.jobConfig(), spec); err != nil {
		return JobStatus{}, err
	}
	j := newJob(JobStatus{ID: newJobID(), Kind: "sort", State: StateQueued, Spec: spec, Submitted: time.Now()})
	n.mu.Lock()
	n.mu.jobs[j.status.ID] = j
	n.mu.order = append(n.mu.order, j.status.ID)
	st := j.status
	n.mu.Unlock()
	n.saveHistory(j) // a queued job is known after a restart too
	select {
	case n.queue <- j:
	default:
		n.finish(j, nil, errors.New("node: job queue is full (1024 jobs); try again later"))
	}
	n.log.Info("job submitted", "job", st.ID)
	return st, nil
}

// Plan returns the plan for spec on a cluster, without running anything.
func (n *Node) Plan(spec sortjob.Spec, cluster sortjob.Cluster) (*sortjob.Plan, error) {
	if spec.Memory == 0 {
		spec.Memory = n.cfg.Memory
	}
	if cluster.CoresPerNode <= 0 {
		cluster.CoresPerNode = n.cfg.Workers
	}
	return sortjob.MakePlan(spec, cluster)
}

// Rate returns the node's measured sort rate, if it has one.
func (n *Node) Rate() (sortjob.Rate, error) { return sortjob.LoadRate(n.cfg.DataDir) }

func (n *Node) jobConfig() sortjob.Config {
	return sortjob.Config{DataDir: n.cfg.DataDir, Workers: n.cfg.Workers, Logger: n.log}
}

// Job returns a job's status with live progress.
func (n *Node) Job(id string) (JobStatus, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	j, ok := n.mu.jobs[id]
	if !ok {
		return JobStatus{}, false
	}
	st := j.status
	if st.State == StateRunning {
		p := j.tracker.Snapshot()
		st.Progress = &p
	}
	return st, true
}

// WaitJob returns a job's status once it has ended or after at most wait,
// whichever comes first (a long poll: followers learn of the end at once).
func (n *Node) WaitJob(ctx context.Context, id string, wait time.Duration) (JobStatus, bool) {
	n.mu.Lock()
	j, ok := n.mu.jobs[id]
	n.mu.Unlock()
	if !ok {
		return JobStatus{}, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-j.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return n.Job(id)
}

// Jobs returns every job, oldest first.
func (n *Node) Jobs() []JobStatus {
	n.mu.Lock()
	ids := append([]string(nil), n.mu.order...)
	n.mu.Unlock()
	out := make([]JobStatus, 0, len(ids))
	for _, id := range ids {
		if st, ok := n.Job(id); ok {
			out = append(out, st)
		}
	}
	return out
}

// ErrNoJob reports an unknown job id.
var ErrNoJob = errors.New("node: no such job")

// Cancel stops a queued or running job. Cancelling an ended job is a no-op;
// a job that is committing its output can no longer be cancelled.
func (n *Node) Cancel(id string) (JobStatus, error) {
	n.mu.Lock()
	j, ok := n.mu.jobs[id]
	if !ok {
		n.mu.Unlock()
		return JobStatus{}, fmt.Errorf("%w: no job %q on this node", ErrNoJob, id)
	}
	cancelled := false
	switch j.status.State {
	case StateQueued:
		j.status.State = StateCancelled
		j.status.Finished = time.Now()
		j.status.Error = "cancelled before it started"
		cancelled = true
		close(j.done)
	case StateRunning:
		if j.tracker.Snapshot().Phase == "commit" {
			n.mu.Unlock()
			return n.jobOrEmpty(id), fmt.Errorf("node: job %s is committing its validated output and can no longer be cancelled", id)
		}
		if j.cancel != nil {
			j.cancel()
		}
	}
	n.mu.Unlock()
	if cancelled {
		n.saveHistory(j)
	}
	return n.jobOrEmpty(id), nil
}

func (n *Node) jobOrEmpty(id string) JobStatus {
	st, _ := n.Job(id)
	return st
}

func (n *Node) runJobs() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case j := <-n.queue:
			if n.ctx.Err() != nil {
				return // stopping: leave it queued in the history
			}
			n.runJob(j)
		}
	}
}

func (n *Node) runJob(j *job) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	n.mu.Lock()
	if j.status.State != StateQueued {
		n.mu.Unlock()
		n.saveHistory(j)
		return
	}
	j.status.State, j.status.Started, j.cancel = StateRunning, time.Now(), cancel
	spec, id := j.status.Spec, j.status.ID
	n.mu.Unlock()
	n.saveHistory(j) // so a job interrupted by a crash is known after restart
	n.log.Info("job started", "job", id)
	rep, err := sortjob.Run(ctx, n.jobConfig(), id, spec, &j.tracker)
	if err != nil && ctx.Err() != nil {
		n.finishState(j, StateCancelled, nil, err)
		return
	}
	n.finish(j, rep, err)
}

func (n *Node) finish(j *job, rep *sortjob.Report, err error) {
	state := StateSucceeded
	if err != nil {
		state = StateFailed
	}
	n.finishState(j, state, rep, err)
}

func (n *Node) finishState(j *job, state string, rep *sortjob.Report, err error) {
	n.mu.Lock()
	j.status.State, j.status.Report, j.status.Finished = state, rep, time.Now()
	if err != nil {
		j.status.Error = err.Error()
	}
	close(j.done)
	n.mu.Unlock()
	if err != nil {
		n.log.Warn("job ended", "job", j.status.ID, "state", state, "err", err)
	} else {
		n.log.Info("job ended", "job", j.status.ID, "state", state)
	}
	n.saveHistory(j)
}

// History: one JSON file per ended job under DataDir/history.
func (n *Node) saveHistory(j *job) {
	n.mu.Lock()
	st := j.status
	n.mu.Unlock()
	dir := filepath.Join(n.cfg.DataDir, "history")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.log.Error("save job history", "err", err)
		return
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(dir, st.ID+".json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		n.log.Error("save job history", "err", err)
		return
	}
	os.Rename(tmp, filepath.Join(dir, st.ID+".json"))
}

func (n *Node) loadHistory() error {
	dir := filepath.Join(n.cfg.DataDir, "history")
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: job history: %w", err)
	}
	var sts []JobStatus
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		var st JobStatus
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			n.log.Warn("skipping unreadable job history", "file", de.Name(), "err", err)
			continue
		}
		sts = append(sts, st)
	}
	sort.Slice(sts, func(i, k int) bool { return sts[i].Submitted.Before(sts[k].Submitted) })
	for _, st := range sts {
		j := newJob(st)
		if !st.Done() {
			// The previous process stopped while this job was queued or
			// running: it ended there, and its temporary output goes.
			j.status.State, j.status.Finished = StateFailed, time.Now()
			j.status.Error = "the node stopped while the job was " + st.State + "; its temporary files were removed"
			close(j.done)
			if st.Spec.Output != "" && st.State == StateRunning {
				sortjob.RemoveUncommitted(st.Spec.Output)
				os.Remove(st.Spec.Output) // only if empty
			}
			defer n.saveHistory(j)
		}
		n.mu.jobs[st.ID] = j
		n.mu.order = append(n.mu.order, st.ID)
	}
	// Scratch of jobs that were running when a previous process died.
	if des, err := os.ReadDir(filepath.Join(n.cfg.DataDir, "jobs")); err == nil {
		for _, de := range des {
			n.log.Warn("removing scratch of an interrupted job", "job", de.Name())
			os.RemoveAll(filepath.Join(n.cfg.DataDir, "jobs", de.Name()))
		}
	}
	return nil
}
