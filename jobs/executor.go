package jobs

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
	kind    coordinator.Kind
	index   int
	attempt int
}

// executor runs the tasks the state assigns to this node and reports their
// results through the leader. A task whose assignment goes away (re-run
// elsewhere, job cancelled) is cancelled.
type executor struct {
	n       *Manager
	workers chan struct{} // one token per running attempt, Workers in all
	mu      struct {
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

func newExecutor(n *Manager) *executor {
	e := &executor{n: n, workers: make(chan struct{}, n.cfg.Workers)}
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
		case <-e.n.kick:
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
	if !n.cfg.Ready() {
		return // still replaying old states: their assignments are history
	}
	want := map[taskKey]bool{}
	type start struct {
		key  taskKey
		job  *coordinator.Job
		maps []mergeInput // a merge's maps
	}
	var starts []start
	var ended []string
	n.fsm.Read(func(s *coordinator.State) {
		for id, j := range s.Jobs {
			if j.Done() {
				ended = append(ended, id)
				continue
			}
			// The attempts running here, from the job's index: the
			// task tables hold up to millions of tasks.
			for _, a := range j.RunningOn(n.id) {
				k := taskKey{id, a.Kind, a.Index, a.Attempt}
				want[k] = true
				starts = append(starts, start{key: k})
			}
		}
		// What the new attempts need of their job, under the read lock:
		// its plan and splits (never changed after submission), and a
		// merge its maps; not the task tables.
		for i := range starts {
			j := s.Jobs[starts[i].key.job]
			starts[i].job = jobHeader(j)
			if k := starts[i].key; k.kind == coordinator.KindMerge {
				starts[i].maps = mergeInputs(j, k.index)
			}
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
		go e.runTask(ctx, st.key, st.job, st.maps)
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

func (e *executor) runTask(ctx context.Context, k taskKey, j *coordinator.Job, maps []mergeInput) {
	defer e.wg.Done()
	start := time.Now()
	cmd := coordinator.Command{Job: k.job, Kind: k.kind, Index: k.index, Node: e.n.id, Attempt: k.attempt}
	// The scheduler gives a node more attempts than it has workers
	// (coordinator.SlotsPerCore): the others wait here for a worker.
	var err error
	held := false
	select {
	case e.workers <- struct{}{}:
		held = true
		start = time.Now() // the attempt's time is its worker's, not its wait's
		err = e.n.checkTaskPaths(j, k.kind, k.index)
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err != nil:
	case ctx.Err() != nil:
	case k.kind == coordinator.KindMap:
		err = e.runMap(ctx, j, k.index, k.attempt, &cmd)
	case k.kind == coordinator.KindMerge:
		err = e.runMerge(ctx, j, k.index, k.attempt, maps, &cmd)
	case k.kind == coordinator.KindReduce:
		err = e.runReduce(ctx, j, k.index, k.attempt, &cmd)
	}
	if held {
		<-e.workers // the next attempt may run while this one reports
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
		// The attempt is no longer ours to report (a twin won, the job
		// ended, its input was lost): what it wrote is nobody's. Its
		// job's scratch may wait for it to end (reconcile).
		e.removeOutput(k)
		select {
		case e.n.kick <- struct{}{}:
		default:
		}
		return
	}
	cmd.Time = time.Now()
	cmd.Seconds = time.Since(start).Seconds()
	cmd.RSS = sortjob.PeakRSS()
	if err != nil {
		cmd.Type, cmd.Error = coordinator.CmdTaskFailed, clip(err.Error(), coordinator.MaxErrorLen)
		cmd.LostMaps = e.lostMaps(k.job, err)
		e.n.log.Warn("task failed", "job", k.job, "kind", k.kind, "index", k.index, "attempt", k.attempt, "err", err)
	} else {
		cmd.Type = coordinator.CmdTaskDone
	}
	// Report until the leader takes it (or rejects it as stale): while the
	// cluster has no quorum nothing else can progress either.
	perr := e.n.propose(e.n.ctx, cmd)
	if perr != nil && !errors.Is(perr, coordinator.ErrRejected) && e.n.ctx.Err() == nil {
		e.n.log.Warn("report task", "job", k.job, "kind", k.kind, "index", k.index, "err", perr)
	}
	switch {
	case err != nil || errors.Is(perr, coordinator.ErrRejected):
		// A failed attempt's output, or a finished one the state did
		// not take (its twin was first, or it was given up): remove it.
		e.removeOutput(k)
	case perr == nil && k.kind == coordinator.KindMerge:
		// The merged output now stands for its maps: their own files
		// are no longer read.
		for _, m := range maps {
			e.removeOutput(taskKey{k.job, coordinator.KindMap, m.index, m.attempt})
		}
	}
}

// outputID is the shuffle's name for a map's or a merge's attempt.
func outputID(kind coordinator.Kind, index, attempt int) shuffle.OutputID {
	if kind == coordinator.KindMerge {
		return shuffle.MergeOutputID(index, attempt)
	}
	return shuffle.MapOutputID(index, attempt)
}

// removeOutput removes the files of a map or merge attempt that ran here.
func (e *executor) removeOutput(k taskKey) {
	if k.kind != coordinator.KindMap && k.kind != coordinator.KindMerge {
		return
	}
	id := outputID(k.kind, k.index, k.attempt)
	dir := e.n.mapDir(k.job)
	for _, name := range []string{shuffle.OutputIndexName(id), shuffle.OutputDataName(id)} {
		os.Remove(filepath.Join(dir, name))
	}
}

// lostMaps names the maps whose outputs an attempt's error shows lost: the
// map (or, for a merge's output, one of its maps, which loses them all)
// whose segment could not be fetched or was damaged, a merge input that
// was damaged, or, when a node could not be reached at all, every output it
// holds.
func (e *executor) lostMaps(job string, err error) []int {
	var ce *shuffle.CorruptInputError
	if errors.As(err, &ce) && ce.Input.Kind == shuffle.KindMap {
		return []int{ce.Input.Index}
	}
	var fe *shuffle.FetchError
	if !errors.As(err, &fe) {
		return nil
	}
	var lost []int
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" && fe.Addr != "" {
		// The node is unreachable: every output it holds is as lost as
		// this one. Losing them at once saves a round of reduce attempts
		// per output.
		lost = e.mapsAt(job, fe.Addr)
	}
	if len(lost) > 0 {
		return lost
	}
	switch fe.Output.Kind {
	case shuffle.KindMap:
		return []int{fe.Output.Index}
	case shuffle.KindMerge:
		e.n.fsm.Read(func(s *coordinator.State) {
			if j := s.Jobs[job]; j != nil && fe.Output.Index < len(j.MergeMaps) && len(j.MergeMaps[fe.Output.Index]) > 0 {
				lost = []int{j.MergeMaps[fe.Output.Index][0]}
			}
		})
	}
	return lost
}

// jobHeader copies a job without its task tables. The plan's file splits
// and the partitioner are shared: they never change once submitted.
func jobHeader(j *coordinator.Job) *coordinator.Job {
	h := *j
	h.Maps, h.Reduces, h.Merges, h.MergeMaps, h.Report = nil, nil, nil, nil, nil
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
		for i := range j.Maps {
			m := &j.Maps[i]
			if mem := s.Members[m.Node]; m.State == coordinator.TaskDone && mem != nil && mem.ShuffleAddr == addr {
				out = append(out, i)
			}
		}
	})
	return out
}

func (e *executor) runMap(ctx context.Context, j *coordinator.Job, i, attempt int, cmd *coordinator.Command) error {
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
	res, err := sortjob.RunMap(ctx, m, &j.Plan, i, attempt, &part, dir, nil)
	if err != nil {
		return err
	}
	cmd.Records, cmd.InputSum, cmd.Bytes = res.Records, res.Sum, res.Records*sortjob.RecordSize
	return nil
}

func (e *executor) runReduce(ctx context.Context, j *coordinator.Job, part, attempt int, cmd *coordinator.Command) error {
	n := e.n
	var ins []shuffle.ReduceInput
	var missing error
	n.fsm.Read(func(s *coordinator.State) {
		cur := s.Jobs[j.ID]
		if cur == nil || cur.Compacted {
			missing = fmt.Errorf("reduce %d: job %s is gone", part, j.ID)
			return
		}
		ins, missing = e.reduceInputs(s, cur)
	})
	if missing != nil {
		return fmt.Errorf("reduce %d: %w", part, missing)
	}
	// Local inputs are read straight from their files; their segments come,
	// in one call, from the index cache of this node's shuffle service,
	// which serves the same outputs to other nodes. Remote ones are served
	// by their node's shuffle service, whose index is authoritative.
	var localIDs []shuffle.OutputID
	for _, in := range ins {
		if in.Path != "" {
			localIDs = append(localIDs, in.Output)
		}
	}
	var localSegs []shuffle.SegmentInfo
	if len(localIDs) > 0 {
		var err error
		if localSegs, err = n.cfg.Segments.Segments(j.ID, part, localIDs); err != nil {
			return fmt.Errorf("reduce %d: %w", part, err)
		}
	}
	kept := ins[:0]
	for _, in := range ins {
		if in.Path != "" {
			in.Segment, localSegs = localSegs[0], localSegs[1:]
			if in.Segment.Length == 0 {
				continue // nothing to read
			}
		}
		kept = append(kept, in)
	}
	ins = kept
	var local int64
	for _, in := range ins {
		if in.Addr == "" {
			local += in.Segment.Length
		}
	}
	dir := sortjob.AttemptDir(n.outputDir(j), attempt)
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
	// What was not read here came through the shuffle service.
	cmd.Records, cmd.Bytes, cmd.Remote = records, records*sortjob.RecordSize, max(records*sortjob.RecordSize-local, 0)
	return nil
}

// reduceInputs lists what a reduce of job j reads: the outputs of its
// finished maps that no finished merge holds, and its finished merges,
// each local (a path on this node) or remote (a shuffle address).
func (e *executor) reduceInputs(s *coordinator.State, j *coordinator.Job) ([]shuffle.ReduceInput, error) {
	n := e.n
	var ins []shuffle.ReduceInput
	add := func(id shuffle.OutputID, node string) error {
		in := shuffle.ReduceInput{Output: id, Job: j.ID}
		if node == n.id {
			in.Path = filepath.Join(n.mapDir(j.ID), shuffle.OutputDataName(id))
		} else {
			mem := s.Members[node]
			if mem == nil {
				return fmt.Errorf("%s's node %s is not a member", id, node)
			}
			in.Addr = mem.ShuffleAddr
		}
		ins = append(ins, in)
		return nil
	}
	for i := range j.Maps {
		m := &j.Maps[i]
		if m.State != coordinator.TaskDone {
			return nil, fmt.Errorf("map %d has no output", i)
		}
		if m.Merge > 0 && j.Merges[m.Merge-1].State == coordinator.TaskDone {
			continue // read through its merge
		}
		if err := add(shuffle.MapOutputID(i, int(m.Attempt)), m.Node); err != nil {
			return nil, err
		}
	}
	for i := range j.Merges {
		if m := &j.Merges[i]; m.State == coordinator.TaskDone {
			if err := add(shuffle.MergeOutputID(i, int(m.Attempt)), m.Node); err != nil {
				return nil, err
			}
		}
	}
	return ins, nil
}

// mergeInput is one map output a merge task consolidates.
type mergeInput struct {
	index, attempt int
}

// mergeInputs lists merge i's maps with the attempts that made them.
func mergeInputs(j *coordinator.Job, i int) []mergeInput {
	if i >= len(j.MergeMaps) {
		return nil
	}
	out := make([]mergeInput, 0, len(j.MergeMaps[i]))
	for _, m := range j.MergeMaps[i] {
		out = append(out, mergeInput{m, int(j.Maps[m].Attempt)})
	}
	return out
}

// runMerge consolidates maps' outputs on this node into merge i's output:
// one segment per partition, read by reduces in place of one per map.
func (e *executor) runMerge(ctx context.Context, j *coordinator.Job, i, attempt int, maps []mergeInput, cmd *coordinator.Command) error {
	dir := e.n.mapDir(j.ID)
	t := shuffle.MergeTask{Partitions: j.Plan.Partitions, BlockSize: j.Plan.MergeBlock, WriteBuffer: j.Plan.WriteBuffer}
	for _, m := range maps {
		id := shuffle.MapOutputID(m.index, m.attempt)
		t.Inputs = append(t.Inputs, shuffle.MergeInput{ID: id, DataPath: filepath.Join(dir, shuffle.OutputDataName(id)), IndexPath: filepath.Join(dir, shuffle.OutputIndexName(id))})
	}
	id := shuffle.MergeOutputID(i, attempt)
	t.DataPath, t.IndexPath = filepath.Join(dir, shuffle.OutputDataName(id)), filepath.Join(dir, shuffle.OutputIndexName(id))
	for _, p := range []string{t.DataPath, t.IndexPath} {
		os.Remove(p) // left by a run of this attempt that did not report
	}
	x, err := shuffle.MergeOutputs(ctx, t)
	if err != nil {
		return fmt.Errorf("merge %d of job %s (%d maps): %w", i, j.ID, len(maps), err)
	}
	cmd.Bytes = x.DataBytes()
	cmd.Records = cmd.Bytes / sortjob.RecordSize
	return nil
}

// clip cuts s to at most n bytes (a replicated error message is bounded).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
