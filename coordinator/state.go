package coordinator

import (
	"fmt"
	"sort"
	"time"

	"engine/gensort"
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

// Job stages, in order. Merges run during the map stage: it ends when every
// map is done and its output is consolidated as far as the plan asks.
const (
	StageMap    = "map"
	StageReduce = "reduce"
	StageCommit = "commit"
	StageDone   = "done"
)

// Kind is a task's kind: a map, a merge (the per-node consolidation of
// finished map outputs) or a reduce. It is one byte in the state and a word
// in commands and the API.
type Kind uint8

// Task kinds.
const (
	KindMap Kind = iota + 1
	KindReduce
	KindMerge
)

var kindNames = [...]string{KindMap: "map", KindReduce: "reduce", KindMerge: "merge"}

func (k Kind) String() string {
	if k >= KindMap && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindMap && k <= KindMerge }

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("coordinator: unknown task kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; an unknown word is an
// error (the command is then undecodable, and rejected).
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("task kind %q: want map, reduce or merge", b)
}

// TaskState is where a task is.
type TaskState uint8

// Task states. A merge that failed or whose node died is Dropped: its maps
// go back to the node's unmerged outputs (or are re-run), and a new merge
// consolidates them.
const (
	TaskPending TaskState = iota
	TaskRunning
	TaskDone
	TaskDropped
)

var stateNames = [...]string{TaskPending: "pending", TaskRunning: "running", TaskDone: "done", TaskDropped: "dropped"}

func (s TaskState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MaxAttempts bounds the failed attempts of one task (its Failures); after
// that the job fails.
const MaxAttempts = 4

// maxTotalAttempts bounds all attempts of one task, whoever's fault their
// failures were, so that no job retries forever. Speculative attempts count.
const maxTotalAttempts = 4 * MaxAttempts

// TaskResult is what a finished attempt reports: a TaskDone command carries
// it and the task keeps what it needs of it. It is small and the same size
// for any number of partitions: a map's per-partition offsets stay in its
// index file on its node, where reduces ask the shuffle service for them.
type TaskResult struct {
	Records int64 `json:"records,omitempty"`
	// InputSum is a map's input checksum.
	InputSum gensort.Sum `json:"input_sum,omitzero"`
	// Summary is a reduce output's valsort summary (binary encoding).
	Summary []byte `json:"summary,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	// Remote is the bytes a reduce fetched from other nodes.
	Remote int64 `json:"remote,omitempty"`
	// Seconds the attempt that finished took, as its node measured.
	Seconds float64 `json:"seconds,omitempty"`
	// RSS is the node's peak resident set size when it finished, in bytes.
	RSS int64 `json:"rss,omitempty"`
}

// Twin is a speculative second attempt of a running task, on another node:
// the first of the two to finish is the task's result, the other is
// cancelled.
type Twin struct {
	Node            string `json:"node"`
	Attempt         int32  `json:"attempt"`
	NodeIncarnation int32  `json:"node_incarnation,omitempty"`
	// Started is when the twin was assigned (Unix nanoseconds of the
	// command's time).
	Started int64 `json:"started"`
}

// Task is one map, merge or reduce task of a job. It is kept small (104
// bytes): a 100 TB job holds about 850,000 of them on 2 cores a node, 1.6
// million on 50. What only some tasks need hangs off pointers (a twin, a
// failure, a reduce's result), and what the report sums per node (seconds,
// peak RSS) is summed per node as tasks finish (Job.Nodes).
type Task struct {
	Kind  Kind      `json:"kind"`
	State TaskState `json:"state"`
	// Failures counts attempts that failed through the task's own fault;
	// attempts lost with a node, abandoned because an input was lost, or
	// failed fetching another node's output do not count.
	Failures uint8 `json:"failures,omitempty"`
	// Lost counts how often this map's finished output was lost.
	Lost  uint8 `json:"lost,omitempty"`
	Index int32 `json:"index"`
	// Attempt is the running (primary) attempt's number, or the finished
	// one's: it names the task's output files. Attempts counts the attempts
	// started so far, twins included; a new attempt is Attempts+1.
	Attempt  int32 `json:"attempt"`
	Attempts int32 `json:"attempts"`
	// NodeIncarnation is the assigned node's incarnation when assigned.
	NodeIncarnation int32 `json:"node_incarnation,omitempty"`
	// Merge is, for a finished map, 1 + the index of the merge that holds
	// (done) or is making (running) its output (0: its own output files).
	Merge int32  `json:"merge,omitempty"`
	Node  string `json:"node,omitempty"` // assigned (running) or holding the output (done)
	// Started is when the running attempt was assigned (Unix nanoseconds
	// of the command's time).
	Started int64 `json:"started,omitempty"`
	// Took is how long the finished attempt took from its assignment to
	// its report, in nanoseconds of the commands' times: queueing on its
	// node included, as it is in a running attempt's age, which
	// speculation compares with the median of these.
	Took int64 `json:"took,omitempty"`
	// Twin is a speculative second attempt, while both run.
	Twin *Twin `json:"twin,omitempty"`
	// Failed is the last failed attempt, while the task has not finished.
	Failed *Failure `json:"failed,omitempty"`
	// The finished attempt's result: its records (bytes are records ×
	// RecordSize), a map's input checksum, a reduce's summary.
	Records  int64         `json:"records,omitempty"`
	InputSum gensort.Sum   `json:"input_sum,omitzero"`
	Reduce   *ReduceResult `json:"reduce,omitempty"`
}

// Bytes is the records of a finished task in bytes.
func (t *Task) Bytes() int64 { return t.Records * sortjob.RecordSize }

// Failure is a task's last failed attempt.
type Failure struct {
	// Node is where it failed: a retry goes elsewhere when another node
	// has a free slot.
	Node  string `json:"node,omitempty"`
	Error string `json:"error,omitempty"`
}

// failedOn is the node of the task's last failed attempt, or "".
func (t *Task) failedOn() string {
	if t.Failed == nil {
		return ""
	}
	return t.Failed.Node
}

// LastError is the task's last failure, or "".
func (t *Task) LastError() string {
	if t.Failed == nil {
		return ""
	}
	return t.Failed.Error
}

// ReduceResult is what a finished reduce keeps beyond its records.
type ReduceResult struct {
	// Summary is its output's valsort summary (binary encoding).
	Summary []byte `json:"summary,omitempty"`
	// Remote is the bytes it fetched from other nodes.
	Remote int64 `json:"remote,omitempty"`
}

// NodeFigures is what a job's finished attempts on one node add up to, for
// its report: the seconds they took and the node's peak RSS.
type NodeFigures struct {
	TaskSeconds float64 `json:"task_seconds"`
	PeakRSS     int64   `json:"peak_rss"`
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
	// Merges are the job's merge tasks, created as nodes collect finished
	// map outputs; MergeMaps[i] lists the maps merge i consolidates.
	Merges    []Task  `json:"merges,omitempty"`
	MergeMaps [][]int `json:"merge_maps,omitempty"`
	// MergesCut: the scheduler gave up a straggling merge once every map
	// was done; the job makes no more merges and reduces read the outputs
	// no finished merge holds.
	MergesCut bool `json:"merges_cut,omitempty"`
	// Stage start times, for the report.
	MapStarted    time.Time `json:"map_started,omitzero"`
	ReduceStarted time.Time `json:"reduce_started,omitzero"`
	CommitStarted time.Time `json:"commit_started,omitzero"`
	Finished      time.Time `json:"finished,omitzero"`
	// Retries counts re-run attempts (failed tasks, lost map outputs).
	Retries int `json:"retries"`
	// Speculative counts speculative attempts started; SpeculativeWins
	// those that finished first.
	Speculative     int `json:"speculative,omitempty"`
	SpeculativeWins int `json:"speculative_wins,omitempty"`
	// Nodes sums the finished attempts' figures by node.
	Nodes map[string]*NodeFigures `json:"nodes,omitempty"`
	// Compacted: the job has ended and its task tables are gone; its
	// Report (if it succeeded) and Error say how it went.
	Compacted bool            `json:"compacted,omitempty"`
	Report    *sortjob.Report `json:"report,omitempty"`

	// x is derived from the fields above (never serialised): rebuilt by
	// reindex after a restore, kept up to date by apply.
	x *jobIndex
}

// Done reports whether the job has ended.
func (j *Job) Done() bool { return j.State != JobRunning }

// Tasks returns the job's tasks of a kind (nil once an ended job is
// compacted).
func (j *Job) Tasks(kind Kind) []Task {
	switch kind {
	case KindMap:
		return j.Maps
	case KindReduce:
		return j.Reduces
	case KindMerge:
		return j.Merges
	}
	return nil
}

func (j *Job) task(kind Kind, i int) *Task {
	ts := j.Tasks(kind)
	if i < 0 || i >= len(ts) {
		return nil
	}
	return &ts[i]
}

// Count returns how many of the job's tasks of a kind are in a state.
func (j *Job) Count(kind Kind, state TaskState) int {
	if x := j.index(); x != nil && state != TaskDropped {
		return x.count[kind][state]
	}
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

// intern returns the member id equal to id, so that the tasks of a job
// share the member's string instead of holding copies.
func (s *State) intern(id string) string {
	if m, ok := s.Members[id]; ok {
		return m.ID
	}
	return id
}
