package coordinator

import (
	"sort"
	"time"

	"engine/shuffle"
	"engine/sortjob"
)

// Member is one node of the cluster.
type Member struct {
	ID string `json:"id"`
	// RaftID is the member's Raft server id: its node id plus a suffix made
	// with its data directory, so that a node back with an empty data
	// directory is a new Raft server (a voter that lost its log must not
	// vote as if it still had it).
	RaftID      string `json:"raft_id"`
	APIAddr     string `json:"api_addr"`
	RaftAddr    string `json:"raft_addr"`
	GossipAddr  string `json:"gossip_addr"`
	ShuffleAddr string `json:"shuffle_addr"`
	DataDir     string `json:"data_dir"`
	Cores       int    `json:"cores"`
	Voter       bool   `json:"voter"`
	Alive       bool   `json:"alive"`
	// Incarnation counts the member's (re)joins; a node that comes back
	// with an empty data directory has lost its map outputs.
	Incarnation int `json:"incarnation"`
}

// Job states.
const (
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Job stages, in order.
const (
	StageMap    = "map"
	StageReduce = "reduce"
	StageCommit = "commit"
	StageDone   = "done"
)

// Task kinds and states.
const (
	KindMap    = "map"
	KindReduce = "reduce"

	TaskPending = "pending"
	TaskRunning = "running"
	TaskDone    = "done"
)

// MaxAttempts bounds the failed attempts of one task (its Failures); after
// that the job fails.
const MaxAttempts = 4

// maxTotalAttempts bounds all attempts of one task, whoever's fault their
// failures were, so that no job retries forever.
const maxTotalAttempts = 4 * MaxAttempts

// TaskResult is what a finished attempt reports: a TaskDone command carries
// it and the task keeps it.
type TaskResult struct {
	// Map output: one segment per partition, in the data file on Node.
	Segments []shuffle.SegmentInfo `json:"segments,omitempty"`
	Records  int64                 `json:"records,omitempty"`
	// InputSum is the map's input checksum (gensort.Sum as hex).
	InputSum string `json:"input_sum,omitempty"`
	// Summary is a reduce output's valsort summary (binary encoding).
	Summary []byte `json:"summary,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	// Remote is the bytes a reduce fetched from other nodes.
	Remote int64 `json:"remote,omitempty"`
	// Seconds the attempt that finished took.
	Seconds float64 `json:"seconds,omitempty"`
	// RSS is the node's peak resident set size when it finished, in bytes.
	RSS int64 `json:"rss,omitempty"`
}

// Task is one map or reduce task of a job.
type Task struct {
	Kind    string `json:"kind"`
	Index   int    `json:"index"`
	State   string `json:"state"`
	Node    string `json:"node,omitempty"` // assigned (running) or holding the output (done)
	Attempt int    `json:"attempt"`        // attempts started so far
	// NodeIncarnation is the assigned node's incarnation when assigned.
	NodeIncarnation int    `json:"node_incarnation,omitempty"`
	LastError       string `json:"last_error,omitempty"`
	// FailedOn is the node of the last failed attempt: a retry goes
	// elsewhere when another node has a free slot.
	FailedOn string `json:"failed_on,omitempty"`
	// Failures counts attempts that failed through the task's own fault;
	// attempts lost with a node, abandoned because an input was lost, or
	// failed fetching another node's output do not count.
	Failures int `json:"failures,omitempty"`
	// Lost counts how often this map's finished output was lost.
	Lost int `json:"lost,omitempty"`
	// The finished attempt's result.
	TaskResult
}

// Job is one sort job and its tasks.
type Job struct {
	ID   string       `json:"id"`
	Spec sortjob.Spec `json:"spec"`
	Plan sortjob.Plan `json:"plan"`
	// Splits is the range partitioner (shuffle.Partitioner binary encoding).
	Splits []byte `json:"splits"`
	// OutputCreated: the submitting node created Spec.Output, so a failed
	// job removes it (when empty).
	OutputCreated bool      `json:"output_created,omitempty"`
	State         string    `json:"state"`
	Stage         string    `json:"stage"`
	Error         string    `json:"error,omitempty"`
	Maps          []Task    `json:"maps"`
	Reduces       []Task    `json:"reduces"`
	Submitted     time.Time `json:"submitted"`
	// Stage start times, for the report.
	MapStarted    time.Time `json:"map_started,omitzero"`
	ReduceStarted time.Time `json:"reduce_started,omitzero"`
	CommitStarted time.Time `json:"commit_started,omitzero"`
	Finished      time.Time `json:"finished,omitzero"`
	// Retries counts re-run attempts (failed tasks, lost map outputs).
	Retries int             `json:"retries"`
	Report  *sortjob.Report `json:"report,omitempty"`
}

// Done reports whether the job has ended.
func (j *Job) Done() bool { return j.State != JobRunning }

// Tasks returns the job's tasks of a kind.
func (j *Job) Tasks(kind string) []Task {
	if kind == KindMap {
		return j.Maps
	}
	return j.Reduces
}

func (j *Job) task(kind string, i int) *Task {
	ts := j.Tasks(kind)
	if i < 0 || i >= len(ts) {
		return nil
	}
	return &ts[i]
}

// Count returns how many of the job's tasks of a kind are in a state.
func (j *Job) Count(kind, state string) int {
	n := 0
	for _, t := range j.Tasks(kind) {
		if t.State == state {
			n++
		}
	}
	return n
}

// State is the whole replicated state.
type State struct {
	// Index is the Raft index of the last applied command.
	Index   uint64             `json:"index"`
	Members map[string]*Member `json:"members"`
	Jobs    map[string]*Job    `json:"jobs"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Members: map[string]*Member{}, Jobs: map[string]*Job{}}
}

// MemberIDs returns the member ids in order.
func (s *State) MemberIDs() []string {
	ids := make([]string, 0, len(s.Members))
	for id := range s.Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// JobIDs returns the job ids in submission order.
func (s *State) JobIDs() []string {
	ids := make([]string, 0, len(s.Jobs))
	for id := range s.Jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		ja, jb := s.Jobs[ids[a]], s.Jobs[ids[b]]
		if !ja.Submitted.Equal(jb.Submitted) {
			return ja.Submitted.Before(jb.Submitted)
		}
		return ids[a] < ids[b]
	})
	return ids
}
