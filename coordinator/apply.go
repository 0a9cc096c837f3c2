package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
)

// Command is one state change. Type says which fields matter; Time is set
// by the proposer so that applying is deterministic.
type Command struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`

	Member *Member `json:"member,omitempty"`
	ID     string  `json:"id,omitempty"` // member id
	Alive  bool    `json:"alive,omitempty"`

	Job    string        `json:"job,omitempty"`
	Spec   *sortjob.Spec `json:"spec,omitempty"`
	Plan   *sortjob.Plan `json:"plan,omitempty"`
	Splits []byte        `json:"splits,omitempty"`

	Kind    string `json:"kind,omitempty"`
	Index   int    `json:"index,omitempty"`
	Node    string `json:"node,omitempty"`
	Attempt int    `json:"attempt,omitempty"`

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

	// JobFinish.
	State  string          `json:"state,omitempty"`
	Report *sortjob.Report `json:"report,omitempty"`
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
	switch c.Type {
	case CmdTaskAssign:
		t := j.task(c.Kind, c.Index)
		if t == nil {
			return reject("job %s has no %s task %d", j.ID, c.Kind, c.Index)
		}
		m, ok := s.Members[c.Node]
		if !ok || !m.Alive {
			return reject("node %q is not a live member", c.Node)
		}
		if t.State != TaskPending || c.Attempt != t.Attempt+1 {
			return reject("%s task %d of job %s is %s at attempt %d, not pending for attempt %d", c.Kind, c.Index, j.ID, t.State, t.Attempt, c.Attempt)
		}
		if c.Kind == KindReduce && j.Stage != StageReduce {
			return reject("job %s is in stage %s: reduces wait for every map", j.ID, j.Stage)
		}
		t.State, t.Node, t.Attempt, t.NodeIncarnation = TaskRunning, c.Node, c.Attempt, m.Incarnation
		if c.Kind == KindMap && j.MapStarted.IsZero() {
			j.MapStarted = c.Time
		}
		return nil
	case CmdTaskDone:
		t, err := runningAttempt(j, c)
		if err != nil {
			return err
		}
		if c.Kind == KindMap && len(c.Segments) != len(j.Reduces) {
			return reject("map %d of job %s reported %d segments for %d partitions", c.Index, j.ID, len(c.Segments), len(j.Reduces))
		}
		t.State, t.LastError = TaskDone, ""
		t.TaskResult = c.TaskResult
		advance(j, c.Time)
		return nil
	case CmdTaskFailed:
		t, err := runningAttempt(j, c)
		if err != nil {
			return err
		}
		for _, m := range c.LostMaps {
			if m >= len(j.Maps) {
				return reject("job %s has no map %d to lose (it has %d)", j.ID, m, len(j.Maps))
			}
		}
		t.State, t.Node, t.LastError, t.FailedOn = TaskPending, "", c.Error, c.Node
		j.Retries++
		for _, m := range c.LostMaps {
			loseMap(j, m)
		}
		if !c.NotOurFault && len(c.LostMaps) == 0 {
			t.Failures++
		}
		switch {
		case t.Failures >= MaxAttempts:
			finish(j, JobFailed, fmt.Sprintf("%s task %d failed %d times; last error: %s", c.Kind, c.Index, t.Failures, c.Error), c.Time)
		case t.Attempt >= maxTotalAttempts:
			finish(j, JobFailed, fmt.Sprintf("%s task %d was attempted %d times without finishing; last error: %s", c.Kind, c.Index, t.Attempt, c.Error), c.Time)
		}
		for _, m := range c.LostMaps {
			if mt := j.task(KindMap, m); mt != nil && mt.Lost >= MaxAttempts && !j.Done() {
				finish(j, JobFailed, fmt.Sprintf("map %d's output was lost %d times (last: %s); the node holding it cannot serve it", m, mt.Lost, c.Error), c.Time)
			}
		}
		return nil
	case CmdMapLost:
		if j.Stage == StageCommit {
			return reject("job %s is committing: its map outputs are no longer needed", j.ID)
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
		j.Maps[i] = Task{Kind: KindMap, Index: i, State: TaskPending}
	}
	for i := range j.Reduces {
		j.Reduces[i] = Task{Kind: KindReduce, Index: i, State: TaskPending}
	}
	s.Jobs[c.Job] = j
	return nil
}

// runningAttempt returns the task a done/failed report is for, if the
// report comes from the attempt that is running now.
func runningAttempt(j *Job, c Command) (*Task, error) {
	t := j.task(c.Kind, c.Index)
	if t == nil {
		return nil, reject("job %s has no %s task %d", j.ID, c.Kind, c.Index)
	}
	if t.State != TaskRunning || t.Node != c.Node || t.Attempt != c.Attempt {
		return nil, reject("stale report for %s task %d of job %s: attempt %d on %q, the task is %s at attempt %d on %q",
			c.Kind, c.Index, j.ID, c.Attempt, c.Node, t.State, t.Attempt, t.Node)
	}
	return t, nil
}

// loseMap sends a finished map back to pending: its output is gone. Reduces
// that were waiting for it, or running with it, go back to pending too.
func loseMap(j *Job, i int) {
	t := j.task(KindMap, i)
	if t == nil || t.State != TaskDone {
		return
	}
	j.Retries++ // the map runs again
	t.Lost++
	t.State, t.Node, t.Segments = TaskPending, "", nil
	if j.Stage == StageReduce {
		j.Stage = StageMap
		for k := range j.Reduces {
			if r := &j.Reduces[k]; r.State == TaskRunning {
				// The running attempt is abandoned; its report will be stale.
				r.State, r.Node = TaskPending, ""
			}
		}
	}
}

// advance moves a job to its next stage when the current one is complete.
func advance(j *Job, now time.Time) {
	if j.Stage == StageMap && j.Count(KindMap, TaskDone) == len(j.Maps) {
		j.Stage = StageReduce
		if j.ReduceStarted.IsZero() {
			j.ReduceStarted = now
		}
	}
	if j.Stage == StageReduce && j.Count(KindReduce, TaskDone) == len(j.Reduces) {
		j.Stage = StageCommit
		j.CommitStarted = now
	}
}

func finish(j *Job, state, msg string, now time.Time) {
	j.State, j.Error, j.Finished = state, msg, now
	j.Stage = StageDone
	for _, ts := range [][]Task{j.Maps, j.Reduces} {
		for i := range ts {
			if ts[i].State == TaskRunning {
				ts[i].State, ts[i].Node = TaskPending, ""
			}
		}
	}
}
