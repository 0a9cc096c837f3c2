package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"engine/coordinator"
	"engine/gensort"
	"engine/sortjob"
)

// Job states as the API shows them.
const (
	StateRunning   = coordinator.JobRunning
	StateSucceeded = coordinator.JobSucceeded
	StateFailed    = coordinator.JobFailed
	StateCancelled = coordinator.JobCancelled
)

// JobStatus is a job as the API shows it.
type JobStatus struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	State     string            `json:"state"`
	Stage     string            `json:"stage"`
	Spec      sortjob.Spec      `json:"spec"`
	Submitted time.Time         `json:"submitted"`
	Finished  time.Time         `json:"finished,omitzero"`
	Progress  *sortjob.Progress `json:"progress,omitempty"`
	Report    *sortjob.Report   `json:"report,omitempty"`
	Error     string            `json:"error,omitempty"`
	Retries   int               `json:"retries"`
}

// Done reports whether the job has ended.
func (s JobStatus) Done() bool {
	return s.State == StateSucceeded || s.State == StateFailed || s.State == StateCancelled
}

// ErrNoJob reports an unknown job id.
var ErrNoJob = errors.New("jobs: no such job")

func newJobID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Submit plans a sort for the live members, checks its input, output and
// this node's free disk, samples the partition boundaries, and replicates
// the job. Its tasks then run wherever the scheduler puts them.
func (n *Manager) Submit(ctx context.Context, spec sortjob.Spec) (JobStatus, error) {
	if spec.Memory == 0 {
		spec.Memory = n.cfg.Memory
	}
	nodes := 0
	n.fsm.Read(func(s *coordinator.State) {
		for _, m := range s.Members {
			if m.Alive {
				nodes++
			}
		}
	})
	if nodes == 0 {
		return JobStatus{}, fmt.Errorf("node %s: %w: the cluster has no live members yet (is a majority of the Raft voters up?)", n.id, coordinator.ErrNoQuorum)
	}
	if err := n.checkSpec(spec); err != nil {
		return JobStatus{}, err
	}
	plan, err := sortjob.Precheck(sortjob.Config{DataDir: n.cfg.DataDir, Workers: n.cfg.Workers}, spec, sortjob.Cluster{Nodes: nodes, CoresPerNode: n.cfg.Workers})
	if err != nil {
		return JobStatus{}, err
	}
	part, err := sortjob.Sample(plan)
	if err != nil {
		return JobStatus{}, err
	}
	splits, _ := part.MarshalBinary()
	id := newJobID()
	created := false
	if out := plan.Spec.Output; out != "" {
		if _, err := os.Stat(out); os.IsNotExist(err) {
			created = true
		}
		// The output for its users; the job's temporary directory in it
		// for the daemon alone.
		err := os.MkdirAll(out, 0o755)
		if err == nil {
			err = os.Mkdir(sortjob.TempDir(out, id), 0o700)
		}
		if err != nil {
			return JobStatus{}, fmt.Errorf("sort: output %w", err)
		}
	}
	c := coordinator.Command{Type: coordinator.CmdJobSubmit, Time: time.Now(), Job: id, Spec: &plan.Spec, Plan: plan, Splits: splits, OutputCreated: created}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = n.propose(pctx, c)
	if _, ok := n.Job(id); err != nil && (ok || errors.Is(err, coordinator.ErrRejected) && strings.Contains(err.Error(), "exists")) {
		// A retry after a lost answer was refused because the first
		// proposal had committed: the job is in.
		err = nil
	}
	if err != nil {
		if out := plan.Spec.Output; out != "" {
			os.RemoveAll(sortjob.TempDir(out, id))
			if created {
				os.Remove(out)
			}
		}
		return JobStatus{}, fmt.Errorf("node %s: submit: %w", n.id, err)
	}
	n.log.Info("job submitted", "job", id, "bytes", plan.Bytes, "maps", plan.MapCount, "partitions", plan.Partitions, "nodes", nodes)
	// On a follower the job is known here once the leader's commit reaches
	// this node's state; wait briefly for it.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for {
		ch := n.changes()
		if st, ok := n.Job(id); ok {
			return st, nil
		}
		select {
		case <-ch:
		case <-wctx.Done():
			return JobStatus{ID: id, Kind: "sort", State: StateRunning, Stage: coordinator.StageMap, Spec: plan.Spec, Submitted: c.Time}, nil
		}
	}
}

// Job returns a job's status with its progress.
func (n *Manager) Job(id string) (JobStatus, bool) {
	var st JobStatus
	ok := false
	n.fsm.Read(func(s *coordinator.State) {
		if j := s.Jobs[id]; j != nil {
			st, ok = status(j), true
		}
	})
	return st, ok
}

// Jobs returns every job, oldest first.
func (n *Manager) Jobs() []JobStatus {
	var out []JobStatus
	n.fsm.Read(func(s *coordinator.State) {
		for _, id := range s.JobIDs() {
			out = append(out, status(s.Jobs[id]))
		}
	})
	return out
}

// WaitJob returns a job's status once it has ended or after at most wait.
func (n *Manager) WaitJob(ctx context.Context, id string, wait time.Duration) (JobStatus, bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		ch := n.changes()
		st, ok := n.Job(id)
		if !ok || st.Done() {
			return st, ok
		}
		select {
		case <-ch:
		case <-t.C:
			return n.Job(id)
		case <-ctx.Done():
			return n.Job(id)
		}
	}
}

// Cancel cancels a running job. Cancelling an ended job is a no-op; a job
// that is committing its validated output can no longer be cancelled.
func (n *Manager) Cancel(ctx context.Context, id string) (JobStatus, error) {
	st, ok := n.Job(id)
	if !ok {
		return st, fmt.Errorf("%w: no job %q in the cluster", ErrNoJob, id)
	}
	if st.Done() {
		return st, nil
	}
	if st.Stage == coordinator.StageCommit {
		return st, fmt.Errorf("node: job %s is committing its validated output and can no longer be cancelled", id)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := n.propose(pctx, coordinator.Command{Type: coordinator.CmdJobCancel, Time: time.Now(), Job: id,
		Error: fmt.Sprintf("sort: job %s cancelled during %s; its temporary files are removed and the input is untouched", id, st.Stage)})
	if errors.Is(err, coordinator.ErrRejected) && strings.Contains(err.Error(), "committing") {
		return st, fmt.Errorf("node: job %s is committing its validated output and can no longer be cancelled", id)
	}
	if err != nil && !errors.Is(err, coordinator.ErrRejected) {
		return st, err
	}
	st, _ = n.Job(id)
	return st, nil
}

// status converts a job for the API, with progress derived from its tasks.
func status(j *coordinator.Job) JobStatus {
	st := JobStatus{ID: j.ID, Kind: "sort", State: j.State, Stage: j.Stage, Spec: j.Spec, Submitted: j.Submitted,
		Finished: j.Finished, Report: j.Report, Error: j.Error, Retries: j.Retries}
	if j.Done() {
		return st
	}
	p := &sortjob.Progress{Phase: j.Stage, Steps: len(sortjob.Phases), Total: j.Plan.Bytes, Elapsed: time.Since(j.Submitted)}
	var started time.Time
	var ts []coordinator.Task
	switch j.Stage {
	case coordinator.StageMap:
		p.Step, started, ts = 2, j.MapStarted, j.Maps
	case coordinator.StageReduce:
		p.Step, started, ts = 3, j.ReduceStarted, j.Reduces
	default:
		p.Step, started = 5, j.CommitStarted
	}
	for i := range ts {
		if t := &ts[i]; t.State == coordinator.TaskDone {
			p.TasksDone++
			p.Done += t.Bytes()
		}
	}
	p.Tasks = len(ts)
	if !started.IsZero() {
		p.PhaseElapsed = time.Since(started)
	}
	st.Progress = p
	return st
}

// commitJob runs on the leader when every reduce is done: it checks the
// output against the input (records, checksum, order across partitions),
// moves the validated files into the output directory, and records the
// result. A new leader repeats it after a crash; it is idempotent.
func (n *Manager) commitJob(j *coordinator.Job) {
	var inSum gensort.Sum
	var inRecords int64
	for i := range j.Maps {
		inSum.Add(j.Maps[i].InputSum)
		inRecords += j.Maps[i].Records
	}
	sums := make([]gensort.Summary, len(j.Reduces))
	for i := range j.Reduces {
		var summary []byte
		if r := j.Reduces[i].Reduce; r != nil {
			summary = r.Summary
		}
		if err := sums[i].UnmarshalBinary(summary); err != nil {
			n.finishJob(j, coordinator.JobFailed, fmt.Sprintf("sort: reduce %d reported a bad summary: %v", i, err), nil)
			return
		}
	}
	rep := n.report(j)
	rep.Check = sortjob.MakeCheck(&j.Plan, inRecords, inSum, sums)
	if !rep.Check.Passed {
		n.finishJob(j, coordinator.JobFailed, "sort: validation failed, output discarded: "+rep.Check.String(), nil)
		return
	}
	if out := j.Spec.Output; out != "" {
		if err := n.checkSpec(j.Spec); err != nil {
			n.finishJob(j, coordinator.JobFailed, err.Error(), nil)
			return
		}
		rep.Output = out
		// Every reduce wrote into the shared output directory, its
		// finished attempt's subdirectory; a part missing here means the
		// directory is not shared by all nodes. The winning attempts'
		// parts move up to where the commit takes them from; a losing
		// twin's are removed with the temporary directory.
		tmp := n.outputDir(j)
		for i := range j.Reduces {
			name := sortjob.PartName(i, len(j.Reduces))
			_, errOut := os.Stat(filepath.Join(out, name))
			if errOut == nil {
				continue // moved by an earlier commit
			}
			if err := sortjob.PromoteAttempt(tmp, i, len(j.Reduces), int(j.Reduces[i].Attempt)); err != nil {
				n.finishJob(j, coordinator.JobFailed, fmt.Sprintf("sort: output partition %s, written by node %s, is not in %s as seen from node %s (%v): --output must be a directory every node shares", name, j.Reduces[i].Node, out, n.id, err), nil)
				return
			}
		}
		if err := sortjob.CommitOutput(n.outputDir(j), out, rep); err != nil {
			n.log.Error("commit", "job", j.ID, "err", err)
			n.finishJob(j, coordinator.JobFailed, err.Error(), nil)
			return
		}
	}
	// The commit phase ends now; _SUCCESS holds the report as it was just
	// before.
	rep.Phases[len(rep.Phases)-1].Duration = time.Since(j.CommitStarted)
	rep.Total = time.Since(j.Submitted)
	sortjob.SaveRate(n.cfg.DataDir, rep)
	n.finishJob(j, coordinator.JobSucceeded, "", rep)
}

func (n *Manager) finishJob(j *coordinator.Job, state, msg string, rep *sortjob.Report) {
	err := n.propose(n.ctx, coordinator.Command{Type: coordinator.CmdJobFinish, Time: time.Now(), Job: j.ID, State: state, Error: clip(msg, coordinator.MaxErrorLen), Report: rep})
	if err != nil {
		n.log.Warn("finish job", "job", j.ID, "state", state, "err", err)
		return
	}
	n.log.Info("job ended", "job", j.ID, "state", state, "error", msg)
}

// report builds a finished job's report from its tasks.
func (n *Manager) report(j *coordinator.Job) *sortjob.Report {
	now := time.Now()
	rep := &sortjob.Report{
		Job: j.ID, Spec: j.Spec, Records: j.Plan.Records, Bytes: j.Plan.Bytes, Maps: len(j.Maps), Partitions: len(j.Reduces),
		Memory: j.Plan.Memory, SortBuffer: j.Plan.SortBuffer, Started: j.Submitted, Finished: now, Total: now.Sub(j.Submitted),
		Retries: j.Retries,
	}
	per := map[string]*sortjob.NodeFigures{}
	fig := func(id string) *sortjob.NodeFigures {
		if per[id] == nil {
			per[id] = &sortjob.NodeFigures{Node: id}
		}
		return per[id]
	}
	for i := range j.Maps {
		m := &j.Maps[i]
		f := fig(m.Node)
		f.Maps++
		f.MapBytes += m.Bytes()
	}
	for i := range j.Merges {
		if m := &j.Merges[i]; m.State == coordinator.TaskDone {
			rep.Merges++
			rep.MergedMaps += len(j.MergeMaps[i])
		}
	}
	// Seconds and peak RSS of every finished attempt, lost ones included:
	// the time the nodes spent.
	for id, nf := range j.Nodes {
		f := fig(id)
		f.TaskSeconds += nf.TaskSeconds
		f.PeakRSS = max(f.PeakRSS, nf.PeakRSS)
	}
	rep.SegmentsPerReduce = len(j.Maps) - rep.MergedMaps + rep.Merges
	rep.Speculative, rep.SpeculativeWins = j.Speculative, j.SpeculativeWins
	for i := range j.Reduces {
		r := &j.Reduces[i]
		f := fig(r.Node)
		f.Reduces++
		f.ReduceBytes += r.Bytes()
		if r.Reduce != nil {
			f.FetchedBytes += r.Reduce.Remote
			rep.ShuffleBytes += r.Reduce.Remote
		}
	}
	workers := 0
	n.fsm.Read(func(s *coordinator.State) {
		for id := range per {
			if m := s.Members[id]; m != nil {
				workers += m.Cores
			}
		}
	})
	rep.Workers = max(workers, 1)
	for _, id := range slices.Sorted(maps.Keys(per)) {
		rep.Nodes = append(rep.Nodes, *per[id])
		rep.PeakRSS = max(rep.PeakRSS, per[id].PeakRSS)
	}
	rep.PeakRSSNote = "largest per-node peak"
	mapEnd := j.ReduceStarted
	rep.AddPhase("map", mapEnd.Sub(j.MapStarted), j.Plan.Bytes)
	rep.AddPhase("reduce", j.CommitStarted.Sub(j.ReduceStarted), j.Plan.Bytes)
	rep.AddPhase("commit", now.Sub(j.CommitStarted), 0)
	if d := j.CommitStarted.Sub(j.ReduceStarted).Seconds(); d > 0 {
		rep.ShuffleMBps = float64(rep.ShuffleBytes) / 1e6 / d
	}
	rep.Finish()
	return rep
}
