package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"engine/coordinator"
	"engine/shuffle"
	"engine/sortjob"
)

// taskKey names one attempt of one task.
type taskKey struct {
	job     string
	kind    string
	index   int
	attempt int
}

// executor runs the tasks the state assigns to this node and reports their
// results through the leader. A task whose assignment goes away (re-run
// elsewhere, job cancelled) is cancelled.
type executor struct {
	n  *Node
	mu struct {
		sync.Mutex
		running map[taskKey]context.CancelFunc
		// finished holds attempts that ran here: the state may still show
		// one as running until this node applies its report, and it must
		// not start again (a second run would replace the first's output).
		finished map[taskKey]bool
		mappers  []idleMapper    // idle, for reuse
		cleaned  map[string]bool // ended jobs whose local scratch is gone
		lastBusy time.Time       // when a task last ran
	}
	wg sync.WaitGroup
}

func newExecutor(n *Node) *executor {
	e := &executor{n: n}
	e.mu.running = map[taskKey]context.CancelFunc{}
	e.mu.finished = map[taskKey]bool{}
	e.mu.cleaned = map[string]bool{}
	return e
}

// run reacts to state changes until the node stops.
func (e *executor) run() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-e.n.ctx.Done():
			e.stopAll()
			e.wg.Wait()
			// The attempts are over: the scratch of jobs that ended
			// while they wound down can go now.
			var ended []string
			e.n.fsm.Read(func(s *coordinator.State) {
				for id, j := range s.Jobs {
					if j.Done() {
						ended = append(ended, id)
					}
				}
			})
			e.removeScratch(ended)
			return
		case <-e.n.execKick:
		case <-tick.C:
			e.releaseIdle()
		}
		e.reconcile()
	}
}

// releaseIdle frees the kept sort buffers once no task has run for a while,
// so an idle daemon does not hold its peak memory.
func (e *executor) releaseIdle() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.mu.running) > 0 {
		e.mu.lastBusy = time.Now()
		return
	}
	if time.Since(e.mu.lastBusy) < 10*time.Second {
		return
	}
	for _, m := range e.mu.mappers {
		m.m.Close()
	}
	e.mu.mappers = nil
}

// reconcile starts assigned attempts that are not running here, cancels
// running ones that are no longer assigned here, and removes the scratch of
// ended jobs.
func (e *executor) reconcile() {
	n := e.n
	if !n.caughtUp() {
		return // still replaying old states: their assignments are history
	}
	want := map[taskKey]bool{}
	type start struct {
		key  taskKey
		job  *coordinator.Job
		task coordinator.Task
	}
	var starts []start
	var ended []string
	n.fsm.Read(func(s *coordinator.State) {
		for id, j := range s.Jobs {
			if j.Done() {
				ended = append(ended, id)
				continue
			}
			for _, ts := range [][]coordinator.Task{j.Maps, j.Reduces} {
				for _, t := range ts {
					if t.State != coordinator.TaskRunning || t.Node != n.id {
						continue
					}
					k := taskKey{id, t.Kind, t.Index, t.Attempt}
					want[k] = true
					starts = append(starts, start{k, nil, t})
				}
			}
		}
		// What the new attempts need of their job, under the read lock:
		// its plan and splits (never changed after submission), not its
		// task tables, which grow with maps × partitions.
		for i := range starts {
			starts[i].job = jobHeader(s.Jobs[starts[i].key.job])
		}
	})
	e.mu.Lock()
	for k, cancel := range e.mu.running {
		if !want[k] {
			cancel()
		}
	}
	for _, st := range starts {
		if _, ok := e.mu.running[st.key]; ok || e.mu.finished[st.key] || e.earlierRunningLocked(st.key) {
			continue
		}
		ctx, cancel := context.WithCancel(n.ctx)
		e.mu.running[st.key] = cancel
		e.wg.Add(1)
		go e.runTask(ctx, st.key, st.job, st.task)
	}
	e.mu.Unlock()
	e.removeScratch(ended)
}

// removeScratch removes the scratch directories of the ended jobs, but not
// while an attempt of the job winds down here: cancelled by reconcile, it
// may still write into the job's directory and would make it again after
// the removal. runTask kicks the next reconcile when it ends.
func (e *executor) removeScratch(ended []string) {
	e.mu.Lock()
	var clean []string
	for _, id := range ended {
		if !e.mu.cleaned[id] && !e.runningLocked(id) {
			e.mu.cleaned[id] = true
			clean = append(clean, id)
			for k := range e.mu.finished {
				if k.job == id {
					delete(e.mu.finished, k)
				}
			}
		}
	}
	e.mu.Unlock()
	for _, id := range clean {
		os.RemoveAll(e.n.jobDir(id))
	}
}

// runningLocked reports whether an attempt of job id runs here.
func (e *executor) runningLocked(id string) bool {
	for r := range e.mu.running {
		if r.job == id {
			return true
		}
	}
	return false
}

// earlierRunningLocked reports whether another attempt of k's task is still
// winding down here: the new one waits for it, since they share file names.
func (e *executor) earlierRunningLocked(k taskKey) bool {
	for r := range e.mu.running {
		if r.job == k.job && r.kind == k.kind && r.index == k.index && r.attempt != k.attempt {
			return true
		}
	}
	return false
}

func (e *executor) stopAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, cancel := range e.mu.running {
		cancel()
	}
}

func (e *executor) close() {
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.mu.mappers {
		m.m.Close()
	}
	e.mu.mappers = nil
}

type idleMapper struct {
	cfg shuffle.MapperConfig
	m   *shuffle.Mapper
}

// mapper returns an idle mapper sized for cfg, or a new one.
func (e *executor) mapper(cfg shuffle.MapperConfig) *shuffle.Mapper {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, m := range e.mu.mappers {
		if m.cfg == cfg {
			e.mu.mappers = append(e.mu.mappers[:i], e.mu.mappers[i+1:]...)
			return m.m
		}
	}
	return shuffle.NewMapper(cfg)
}

// putMapper keeps a mapper for the next map task (sort buffers are costly
// to fault in), up to one per worker, while some job still has maps to run;
// otherwise it frees the buffers before the reduces need the memory.
func (e *executor) putMapper(cfg shuffle.MapperConfig, m *shuffle.Mapper) {
	mapsLeft := false
	e.n.fsm.Read(func(s *coordinator.State) {
		for _, j := range s.Jobs {
			if !j.Done() && j.Stage == coordinator.StageMap && j.Count(coordinator.KindMap, coordinator.TaskDone) < len(j.Maps) {
				mapsLeft = true
			}
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if mapsLeft && len(e.mu.mappers) < e.n.cfg.Workers {
		e.mu.mappers = append(e.mu.mappers, idleMapper{cfg, m})
		return
	}
	m.Close()
}

func (e *executor) runTask(ctx context.Context, k taskKey, j *coordinator.Job, t coordinator.Task) {
	defer e.wg.Done()
	start := time.Now()
	cmd := coordinator.Command{Job: k.job, Kind: k.kind, Index: k.index, Node: e.n.id, Attempt: k.attempt}
	err := e.n.checkTaskPaths(j, k.kind, k.index)
	switch {
	case err != nil:
	case k.kind == coordinator.KindMap:
		err = e.runMap(ctx, j, k.index, &cmd)
	case k.kind == coordinator.KindReduce:
		err = e.runReduce(ctx, j, k.index, &cmd)
	}
	cancelled := ctx.Err() != nil
	// The attempt has run: it must not start again here, and reconcile
	// must not cancel its report.
	e.mu.Lock()
	if cancel, ok := e.mu.running[k]; ok {
		cancel()
		delete(e.mu.running, k)
	}
	e.mu.finished[k] = true
	e.mu.Unlock()
	if cancelled {
		// The attempt is no longer ours to report; its job's scratch
		// may wait for it to end (reconcile).
		select {
		case e.n.execKick <- struct{}{}:
		default:
		}
		return
	}
	cmd.Time = time.Now()
	cmd.Seconds = time.Since(start).Seconds()
	cmd.RSS = sortjob.PeakRSS()
	if err != nil {
		cmd.Type, cmd.Error = coordinator.CmdTaskFailed, clip(err.Error(), coordinator.MaxErrorLen)
		var fe *shuffle.FetchError
		if errors.As(err, &fe) && fe.Output.Kind == shuffle.KindMap {
			cmd.LostMaps = []int{fe.Output.Index}
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				// The node is unreachable: every output it holds is as
				// lost as this one. Losing them at once saves a round of
				// reduce attempts per output.
				if lost := e.mapsAt(k.job, fe.Addr); len(lost) > 0 {
					cmd.LostMaps = lost
				}
			}
		}
		e.n.log.Warn("task failed", "job", k.job, "kind", k.kind, "index", k.index, "attempt", k.attempt, "err", err)
	} else {
		cmd.Type = coordinator.CmdTaskDone
	}
	// Report until the leader takes it (or rejects it as stale): while the
	// cluster has no quorum nothing else can progress either.
	if err := e.n.propose(e.n.ctx, cmd); err != nil && !errors.Is(err, coordinator.ErrRejected) && e.n.ctx.Err() == nil {
		e.n.log.Warn("report task", "job", k.job, "kind", k.kind, "index", k.index, "err", err)
	}
}

// jobHeader copies a job without its task tables. The plan's file splits
// and the partitioner are shared: they never change once submitted.
func jobHeader(j *coordinator.Job) *coordinator.Job {
	h := *j
	h.Maps, h.Reduces, h.Report = nil, nil, nil
	return &h
}

// mapsAt lists the finished maps of a job whose output is on the node with
// shuffle address addr.
func (e *executor) mapsAt(job, addr string) []int {
	var out []int
	e.n.fsm.Read(func(s *coordinator.State) {
		j := s.Jobs[job]
		if j == nil {
			return
		}
		for _, m := range j.Maps {
			if mem := s.Members[m.Node]; m.State == coordinator.TaskDone && mem != nil && mem.ShuffleAddr == addr {
				out = append(out, m.Index)
			}
		}
	})
	return out
}

func (e *executor) runMap(ctx context.Context, j *coordinator.Job, i int, cmd *coordinator.Command) error {
	var part shuffle.Partitioner
	if err := part.UnmarshalBinary(j.Splits); err != nil {
		return err
	}
	dir := e.n.mapDir(j.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("map %d: %w", i, err)
	}
	cfg := j.Plan.MapperConfig()
	m := e.mapper(cfg)
	defer e.putMapper(cfg, m)
	res, err := sortjob.RunMap(ctx, m, &j.Plan, i, &part, dir, nil)
	if err != nil {
		return err
	}
	cmd.Segments = res.Output.Index.Segments
	cmd.Records, cmd.InputSum, cmd.Bytes = res.Records, res.Sum.String(), res.Records*sortjob.RecordSize
	return nil
}

// outputDir is where reduces of job j write before the commit: a temporary
// directory inside the shared output, or this node's scratch.
func (n *Node) outputDir(j *coordinator.Job) string {
	if j.Spec.Output != "" {
		return sortjob.TempDir(j.Spec.Output, j.ID)
	}
	return filepath.Join(n.jobDir(j.ID), "output")
}

func (e *executor) runReduce(ctx context.Context, j *coordinator.Job, part int, cmd *coordinator.Command) error {
	n := e.n
	var ins []shuffle.ReduceInput
	var remote int64
	var missing error
	n.fsm.Read(func(s *coordinator.State) {
		cur := s.Jobs[j.ID]
		if cur == nil {
			missing = fmt.Errorf("reduce %d: job %s is gone", part, j.ID)
			return
		}
		for _, m := range cur.Maps {
			if m.State != coordinator.TaskDone || part >= len(m.Segments) {
				missing = fmt.Errorf("reduce %d: map %d has no output", part, m.Index)
				return
			}
			in := shuffle.ReduceInput{Output: shuffle.MapOutputID(m.Index, sortjob.MapAttempt), Job: j.ID, Segment: m.Segments[part]}
			if in.Segment.Length == 0 {
				continue // known empty: nothing to fetch
			}
			if m.Node == n.id {
				in.Path = filepath.Join(n.mapDir(j.ID), shuffle.OutputDataName(in.Output))
			} else {
				mem := s.Members[m.Node]
				if mem == nil {
					missing = fmt.Errorf("reduce %d: map %d's node %s is not a member", part, m.Index, m.Node)
					return
				}
				in.Addr = mem.ShuffleAddr
				remote += in.Segment.Length
			}
			ins = append(ins, in)
		}
	})
	if missing != nil {
		return missing
	}
	dir := n.outputDir(j)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("reduce %d: %w", part, err)
	}
	records, err := sortjob.RunReduce(ctx, &j.Plan, part, ins, dir, n.fetcher, nil)
	if err != nil {
		return err
	}
	sum, err := sortjob.ValidatePart(ctx, &j.Plan, part, dir, make([]byte, 4<<20), nil)
	if err != nil {
		return err
	}
	cmd.Summary, _ = sum.MarshalBinary()
	cmd.Records, cmd.Bytes, cmd.Remote = records, records*sortjob.RecordSize, remote
	return nil
}

// clip cuts s to at most n bytes (a replicated error message is bounded).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
