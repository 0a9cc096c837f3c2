package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"engine/gensort"
	"engine/shuffle"
	"engine/sortjob"
)

// Command types.
const (
	CmdMemberUpsert = "member_upsert"
	CmdMemberAlive  = "member_alive"
	CmdMemberRemove = "member_remove"
	CmdJobSubmit    = "job_submit"
	CmdTaskAssign   = "task_assign"
	CmdTaskDone     = "task_done"
	CmdTaskFailed   = "task_failed"
	CmdMapLost      = "map_lost"
	CmdJobCancel    = "job_cancel"
	CmdJobFinish    = "job_finish"
	// CmdBatch applies its Batch of task and liveness commands in order,
	// each on its own: the scheduler assigns a wave in one entry, and a
	// node reports the tasks it finished together.
	CmdBatch = "batch"
)

// MaxBatch bounds the commands of one batch.
const MaxBatch = 20_000

// Command is one state change. Type says which fields matter; Time is set
// by the proposer so that applying is deterministic.
type Command struct {
	Type string    `json:"type"`
	Time time.Time `json:"time,omitzero"`

	Member *Member `json:"member,omitempty"`
	ID     string  `json:"id,omitempty"` // member id
	Alive  bool    `json:"alive,omitempty"`

	Job    string        `json:"job,omitempty"`
	Spec   *sortjob.Spec `json:"spec,omitempty"`
	Plan   *sortjob.Plan `json:"plan,omitempty"`
	Splits []byte        `json:"splits,omitempty"`

	Kind    Kind   `json:"kind,omitempty"`
	Index   int    `json:"index,omitempty"`
	Node    string `json:"node,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// TaskAssign: Speculative starts a twin of a running task; Maps are
	// the finished maps (on Node) that a new merge task consolidates.
	Speculative bool  `json:"speculative,omitempty"`
	Maps        []int `json:"maps,omitempty"`

	// TaskDone: the attempt's result.
	TaskResult
	// JobSubmit: the submitting node created the output directory.
	OutputCreated bool `json:"output_created,omitempty"`

	// Failures.
	Error    string `json:"error,omitempty"`
	LostMaps []int  `json:"lost_maps,omitempty"`
	// NotOurFault marks a failed attempt that does not count against the
	// task: its node died, or an input it fetched was lost.
	NotOurFault bool `json:"not_our_fault,omitempty"`
	// GiveUp (the leader's task_failed of a straggling merge once every
	// map is done): the job stops waiting for it and makes no more merges;
	// reduces read its maps' own outputs (Job.MergesCut).
	GiveUp bool `json:"give_up,omitempty"`

	// JobFinish.
	State  string          `json:"state,omitempty"`
	Report *sortjob.Report `json:"report,omitempty"`

	// Batch: the commands of a CmdBatch; one without a Time takes the
	// batch's.
	Batch []Command `json:"batch,omitempty"`
}

// Encode serialises a command for the Raft log.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("coordinator: encode %s: %v", c.Type, err))
	}
	return b
}

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	err := json.Unmarshal(b, &c)
	return c, err
}

// ErrRejected wraps the reason a command did not change the state.
var ErrRejected = errors.New("coordinator: command rejected")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRejected}, args...)...)
}

// BatchError is the outcome of a batch some of whose commands were
// rejected: Errs[i] is command i's error, nil where it applied. It wraps
// every error, so errors.Is(err, ErrRejected) holds.
type BatchError struct{ Errs []error }

func (e *BatchError) Error() string {
	var msgs []string
	n := 0
	for i, err := range e.Errs {
		if err == nil {
			continue
		}
		if n++; n <= 3 {
			msgs = append(msgs, fmt.Sprintf("command %d: %v", i, err))
		}
	}
	if n > 3 {
		msgs = append(msgs, fmt.Sprintf("and %d more", n-3))
	}
	return fmt.Sprintf("coordinator: %d of %d batched commands rejected: %s", n, len(e.Errs), strings.Join(msgs, "; "))
}

func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Apply applies one command to s in place. It does no I/O and reads no
// clock: the same commands give the same state on every node. A command
// that is invalid on its own (Validate) or does not fit the state (a report
// from a stale attempt, an unknown job) leaves s unchanged and returns an
// error wrapping ErrRejected.
//
// Every check comes before the first change to s, and the changes index
// only what the checks found in range, so no command panics half-applied.
func Apply(s *State, c Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return apply(s, c)
}

// apply is Apply for a command that passed Validate.
func apply(s *State, c Command) error {
	if c.Type == CmdBatch {
		errs := make([]error, len(c.Batch))
		failed := false
		for i, e := range c.Batch {
			if e.Time.IsZero() {
				e.Time = c.Time
			}
			if errs[i] = applyOne(s, e); errs[i] != nil {
				failed = true
			}
		}
		if failed {
			return &BatchError{Errs: errs}
		}
		return nil
	}
	return applyOne(s, c)
}

func applyOne(s *State, c Command) error {
	switch c.Type {
	case CmdMemberUpsert:
		m := *c.Member
		if old, ok := s.Members[m.ID]; ok {
			m.Incarnation = max(m.Incarnation, old.Incarnation)
		}
		m.Alive = true
		s.Members[m.ID] = &m
		return nil
	case CmdMemberAlive:
		m, ok := s.Members[c.ID]
		if !ok {
			return reject("no member %q", c.ID)
		}
		m.Alive = c.Alive
		return nil
	case CmdMemberRemove:
		if _, ok := s.Members[c.ID]; !ok {
			return reject("no member %q", c.ID)
		}
		delete(s.Members, c.ID)
		return nil
	case CmdJobSubmit:
		return applySubmit(s, c)
	}

	j, ok := s.Jobs[c.Job]
	if !ok {
		return reject("no job %q", c.Job)
	}
	if j.Done() {
		return reject("job %s has ended (%s)", j.ID, j.State)
	}
	err := applyJob(s, j, c)
	if j.Done() && !j.Compacted {
		compact(j)
	}
	return err
}

func applyJob(s *State, j *Job, c Command) error {
	switch c.Type {
	case CmdTaskAssign:
		m, ok := s.Members[c.Node]
		if !ok || !m.Alive {
			return reject("node %q is not a live member", c.Node)
		}
		switch {
		case c.Kind == KindMerge:
			return assignMerge(s, j, c, m)
		case c.Speculative:
			return assignTwin(s, j, c, m)
		}
		t := j.task(c.Kind, c.Index)
		if t == nil {
			return reject("job %s has no %s task %d", j.ID, c.Kind, c.Index)
		}
		if t.State != TaskPending || int32(c.Attempt) != t.Attempts+1 {
			return reject("%s task %d of job %s is %s after %d attempts, not pending for attempt %d", c.Kind, c.Index, j.ID, t.State, t.Attempts, c.Attempt)
		}
		if want := stageOf(c.Kind); j.Stage != want {
			return reject("job %s is in stage %s: %s tasks run in stage %s", j.ID, j.Stage, c.Kind, want)
		}
		t.Node, t.Attempt, t.Attempts, t.NodeIncarnation, t.Started = s.intern(c.Node), int32(c.Attempt), int32(c.Attempt), int32(m.Incarnation), c.Time.UnixNano()
		j.setState(c.Kind, c.Index, TaskRunning)
		if c.Kind == KindMap && j.MapStarted.IsZero() {
			j.MapStarted = c.Time
		}
		return nil
	case CmdTaskDone:
		t, twin, err := runningAttempt(j, c)
		if err != nil {
			return err
		}
		if twin {
			j.promoteTwin(c.Kind, c.Index)
			j.SpeculativeWins++
		}
		j.setTwin(c.Kind, c.Index, nil)
		t.Failed = nil
		t.Records, t.InputSum = c.Records, c.InputSum
		if c.Kind == KindReduce {
			t.Reduce = &ReduceResult{Summary: c.Summary, Remote: c.Remote}
		}
		t.Took = max(c.Time.UnixNano()-t.Started, 0)
		j.addFigures(t.Node, c.Seconds, c.RSS)
		j.setState(c.Kind, c.Index, TaskDone)
		advance(j, c.Time)
		return nil
	case CmdTaskFailed:
		return applyFailed(s, j, c)
	case CmdMapLost:
		if j.Stage == StageCommit {
			return reject("job %s is committing: its map outputs are no longer needed", j.ID)
		}
		if c.Kind == KindMerge {
			t := j.task(KindMerge, c.Index)
			if t == nil || t.State != TaskDone || t.Node != c.Node {
				return reject("merge %d of job %s is not a finished output on %q", c.Index, j.ID, c.Node)
			}
			loseMap(j, j.MergeMaps[c.Index][0])
			return nil
		}
		t := j.task(KindMap, c.Index)
		if t == nil || t.State != TaskDone || t.Node != c.Node {
			return reject("map %d of job %s is not a finished output on %q", c.Index, j.ID, c.Node)
		}
		loseMap(j, c.Index)
		return nil
	case CmdJobCancel:
		if j.Stage == StageCommit {
			return reject("job %s is committing its validated output and can no longer be cancelled", j.ID)
		}
		finish(j, JobCancelled, c.Error, c.Time)
		return nil
	case CmdJobFinish:
		switch c.State {
		case JobSucceeded:
			if j.Stage != StageCommit {
				return reject("job %s cannot succeed in stage %s", j.ID, j.Stage)
			}
		case JobFailed, JobCancelled:
		default:
			return reject("job %s cannot finish as %q", j.ID, c.State)
		}
		finish(j, c.State, c.Error, c.Time)
		j.Report = c.Report
		return nil
	}
	return reject("unknown command type %q", c.Type)
}

// stageOf is the stage in which tasks of a kind are assigned.
func stageOf(k Kind) string {
	if k == KindReduce {
		return StageReduce
	}
	return StageMap
}

// assignMerge creates merge task c.Index (the next one) on c.Node over the
// finished, unclaimed maps c.Maps held there.
func assignMerge(s *State, j *Job, c Command, m *Member) error {
	if j.Plan.MergeGroup <= 0 {
		return reject("job %s does not merge map outputs (its plan has no merge group)", j.ID)
	}
	if j.Stage != StageMap {
		return reject("job %s is in stage %s: merges run in stage %s", j.ID, j.Stage, StageMap)
	}
	if c.Index != len(j.Merges) || c.Attempt != 1 {
		return reject("merge %d attempt %d of job %s: the next merge is %d, attempt 1", c.Index, c.Attempt, j.ID, len(j.Merges))
	}
	if len(c.Maps) < 2 || len(c.Maps) > max(j.Plan.MergeGroup, 2) {
		return reject("merge %d of job %s over %d maps: want 2 to %d", c.Index, j.ID, len(c.Maps), max(j.Plan.MergeGroup, 2))
	}
	seen := make(map[int]bool, len(c.Maps))
	for _, i := range c.Maps {
		t := j.task(KindMap, i)
		if t == nil || t.State != TaskDone || t.Node != c.Node || t.Merge != 0 || seen[i] {
			return reject("merge %d of job %s: map %d is not a finished, unmerged output on %q (or is named twice)", c.Index, j.ID, i, c.Node)
		}
		seen[i] = true
	}
	node := s.intern(c.Node)
	j.Merges = append(j.Merges, Task{Kind: KindMerge, Index: int32(c.Index), State: TaskPending})
	j.MergeMaps = append(j.MergeMaps, append([]int(nil), c.Maps...))
	x := j.index()
	x.count[KindMerge][TaskPending]++
	t := &j.Merges[c.Index]
	t.Node, t.Attempt, t.Attempts, t.NodeIncarnation, t.Started = node, 1, 1, int32(m.Incarnation), c.Time.UnixNano()
	j.setState(KindMerge, c.Index, TaskRunning)
	for _, i := range c.Maps {
		j.Maps[i].Merge = int32(c.Index + 1)
		x.dropUnmerged(node, i)
	}
	return nil
}

// assignTwin starts a speculative second attempt of a running task.
func assignTwin(s *State, j *Job, c Command, m *Member) error {
	if c.Kind != KindMap && c.Kind != KindReduce {
		return reject("only map and reduce tasks run speculatively, not %s tasks", c.Kind)
	}
	t := j.task(c.Kind, c.Index)
	if t == nil {
		return reject("job %s has no %s task %d", j.ID, c.Kind, c.Index)
	}
	if t.State != TaskRunning || t.Twin != nil || t.Node == c.Node || int32(c.Attempt) != t.Attempts+1 || j.Stage != stageOf(c.Kind) {
		return reject("%s task %d of job %s cannot take a speculative attempt %d on %q: it is %s on %q after %d attempts (twin: %v) in stage %s",
			c.Kind, c.Index, j.ID, c.Attempt, c.Node, t.State, t.Node, t.Attempts, t.Twin != nil, j.Stage)
	}
	t.Attempts = int32(c.Attempt)
	j.setTwin(c.Kind, c.Index, &Twin{Node: s.intern(c.Node), Attempt: int32(c.Attempt), NodeIncarnation: int32(m.Incarnation), Started: c.Time.UnixNano()})
	j.Speculative++
	return nil
}

func applyFailed(s *State, j *Job, c Command) error {
	t, twin, err := runningAttempt(j, c)
	if err != nil {
		return err
	}
	for _, m := range c.LostMaps {
		if m >= len(j.Maps) {
			return reject("job %s has no map %d to lose (it has %d)", j.ID, m, len(j.Maps))
		}
	}
	t.Failed = &Failure{Node: c.Node, Error: c.Error}
	j.Retries++
	switch {
	case twin:
		j.setTwin(c.Kind, c.Index, nil)
	case t.Twin != nil:
		// The twin carries on as the task's attempt.
		j.promoteTwin(c.Kind, c.Index)
	case c.Kind == KindMerge:
		dropMerge(j, c.Index)
		j.Retries-- // the maps merge again, in a new merge task
		if c.GiveUp {
			// Or not at all: the reduces read the maps' own outputs.
			j.MergesCut = true
			advance(j, c.Time)
		}
	default:
		j.setState(c.Kind, c.Index, TaskPending)
		t.Node = ""
	}
	for _, m := range c.LostMaps {
		loseMap(j, m)
	}
	if !c.NotOurFault && len(c.LostMaps) == 0 && t.Failures < 255 {
		t.Failures++
	}
	switch {
	case c.Kind == KindMerge && mergeFailures(j) >= MaxAttempts*2:
		finish(j, JobFailed, fmt.Sprintf("merges of job %s failed %d times; last error: %s", j.ID, mergeFailures(j), c.Error), c.Time)
	case t.Failures >= MaxAttempts:
		finish(j, JobFailed, fmt.Sprintf("%s task %d failed %d times; last error: %s", c.Kind, c.Index, t.Failures, c.Error), c.Time)
	case t.Attempts >= maxTotalAttempts && t.State == TaskPending:
		finish(j, JobFailed, fmt.Sprintf("%s task %d was attempted %d times without finishing; last error: %s", c.Kind, c.Index, t.Attempts, c.Error), c.Time)
	}
	for _, m := range c.LostMaps {
		if mt := j.task(KindMap, m); mt != nil && mt.Lost >= MaxAttempts && !j.Done() {
			finish(j, JobFailed, fmt.Sprintf("map %d's output was lost %d times (last: %s); the node holding it cannot serve it", m, mt.Lost, c.Error), c.Time)
		}
	}
	return nil
}

// mergeFailures counts the job's merges that failed by their own fault.
func mergeFailures(j *Job) int {
	n := 0
	for _, t := range j.Merges {
		n += int(t.Failures)
	}
	return n
}

func applySubmit(s *State, c Command) error {
	if _, ok := s.Jobs[c.Job]; ok {
		return reject("job %s exists", c.Job)
	}
	var p shuffle.Partitioner
	if err := p.UnmarshalBinary(c.Splits); err != nil || p.Partitions() != c.Plan.Partitions {
		return reject("job %s: splits do not give %d partitions", c.Job, c.Plan.Partitions)
	}
	j := &Job{
		ID: c.Job, Spec: *c.Spec, Plan: *c.Plan, Splits: c.Splits, OutputCreated: c.OutputCreated,
		State: JobRunning, Stage: StageMap, Submitted: c.Time,
		Maps: make([]Task, c.Plan.MapCount), Reduces: make([]Task, c.Plan.Partitions),
	}
	for i := range j.Maps {
		j.Maps[i] = Task{Kind: KindMap, Index: int32(i), State: TaskPending}
	}
	for i := range j.Reduces {
		j.Reduces[i] = Task{Kind: KindReduce, Index: int32(i), State: TaskPending}
	}
	j.reindex()
	s.Jobs[c.Job] = j
	return nil
}

// runningAttempt returns the task a done/failed report is for, if the
// report comes from an attempt that is running now, and whether that
// attempt is the task's twin.
func runningAttempt(j *Job, c Command) (*Task, bool, error) {
	t := j.task(c.Kind, c.Index)
	if t == nil {
		return nil, false, reject("job %s has no %s task %d", j.ID, c.Kind, c.Index)
	}
	if t.State == TaskRunning && t.Node == c.Node && int(t.Attempt) == c.Attempt {
		return t, false, nil
	}
	if tw := t.Twin; t.State == TaskRunning && tw != nil && tw.Node == c.Node && int(tw.Attempt) == c.Attempt {
		return t, true, nil
	}
	return nil, false, reject("stale report for %s task %d of job %s: attempt %d on %q, the task is %s at attempt %d on %q",
		c.Kind, c.Index, j.ID, c.Attempt, c.Node, t.State, t.Attempt, t.Node)
}

// dropMerge gives up merge i: running, its attempt is abandoned and its maps
// are unclaimed again (their own outputs are still there); finished, its
// maps' outputs are gone with it and they run again.
func dropMerge(j *Job, i int) {
	t := &j.Merges[i]
	wasDone := t.State == TaskDone
	j.setState(KindMerge, i, TaskDropped)
	x := j.index()
	for _, m := range j.MergeMaps[i] {
		mt := &j.Maps[m]
		if int(mt.Merge) != i+1 {
			continue
		}
		mt.Merge = 0
		if mt.State != TaskDone {
			continue
		}
		if wasDone {
			loseOne(j, m)
		} else {
			x.addUnmerged(mt.Node, m)
		}
	}
}

// loseMap sends a finished map back to pending: its output is gone. A map
// whose output a merge holds loses it with the merge's other maps (the
// merge replaced their files). Reduces that were waiting for it, or running
// with it, go back to pending too.
func loseMap(j *Job, i int) {
	t := j.task(KindMap, i)
	if t == nil || t.State != TaskDone {
		return
	}
	if t.Merge > 0 && j.Merges[int(t.Merge)-1].State == TaskDone {
		dropMerge(j, int(t.Merge)-1)
		return
	}
	if t.Merge > 0 {
		dropMerge(j, int(t.Merge)-1) // running: its other maps keep their outputs
	}
	loseOne(j, i)
}

func loseOne(j *Job, i int) {
	t := &j.Maps[i]
	if t.State != TaskDone {
		return
	}
	j.Retries++ // the map runs again
	if t.Lost < 255 {
		t.Lost++
	}
	t.Merge = 0
	j.setState(KindMap, i, TaskPending)
	t.Node, t.Records, t.InputSum, t.Reduce, t.Took = "", 0, gensort.Sum{}, nil, 0
	if j.Stage == StageReduce {
		j.Stage = StageMap
		for k := range j.Reduces {
			if r := &j.Reduces[k]; r.State == TaskRunning {
				// The running attempts are abandoned; their reports
				// will be stale.
				j.setTwin(KindReduce, k, nil)
				j.setState(KindReduce, k, TaskPending)
				r.Node = ""
			}
		}
	}
}

// advance moves a job to its next stage when the current one is complete:
// the map stage when every map is done, no merge runs, and (when the plan
// merges) no node holds two or more unmerged outputs.
func advance(j *Job, now time.Time) {
	x := j.index()
	if j.Stage == StageMap && x.count[KindMap][TaskDone] == len(j.Maps) && x.count[KindMerge][TaskRunning] == 0 && !mergesLeft(j) {
		j.Stage = StageReduce
		if j.ReduceStarted.IsZero() {
			j.ReduceStarted = now
		}
	}
	if j.Stage == StageReduce && x.count[KindReduce][TaskDone] == len(j.Reduces) {
		j.Stage = StageCommit
		j.CommitStarted = now
	}
}

// mergesLeft reports whether a node still holds unmerged map outputs that
// the plan wants merged.
func mergesLeft(j *Job) bool {
	if j.Plan.MergeGroup <= 0 || j.MergesCut {
		return false
	}
	for _, u := range j.index().unmerged {
		if len(u) >= 2 {
			return true
		}
	}
	return false
}

func finish(j *Job, state, msg string, now time.Time) {
	j.State, j.Error, j.Finished = state, msg, now
	j.Stage = StageDone
}

// compact drops an ended job's task tables: what is left of it is its
// header, its report and its error, whatever its size was.
func compact(j *Job) {
	j.Maps, j.Reduces, j.Merges, j.MergeMaps = nil, nil, nil, nil
	j.Compacted = true
	j.x = nil
}

// addFigures adds a finished attempt's seconds and RSS to its node's.
func (j *Job) addFigures(node string, seconds float64, rss int64) {
	if j.Nodes == nil {
		j.Nodes = map[string]*NodeFigures{}
	}
	f := j.Nodes[node]
	if f == nil {
		f = &NodeFigures{}
		j.Nodes[node] = f
	}
	f.TaskSeconds += seconds
	f.PeakRSS = max(f.PeakRSS, rss)
}
