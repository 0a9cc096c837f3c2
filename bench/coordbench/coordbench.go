package coordbench

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"engine/coordinator"
	"engine/gensort"
	"engine/sortjob"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Defaults of a Config.
const (
	// DefaultRate is a core's sort rate in bytes per second: what a task's
	// bytes are divided by to give its simulated run time.
	DefaultRate = 100e6
	// DefaultMemory is the job's memory budget per node (the planner's
	// default on a machine of 16 GiB or more), so that the plan does not
	// depend on this machine's memory.
	DefaultMemory = 4 << 30
	// DefaultTick is the simulated time between two rounds of the leader's
	// loop (a node's default Raft timeout is 500ms; the loop runs every
	// half of it).
	DefaultTick = 250 * time.Millisecond
	// DefaultLoseAt is the share of finished maps at which a node is lost.
	DefaultLoseAt = 0.5
)

// Config says what job to drive through the coordinator.
type Config struct {
	// Records to sort (gensort records of 100 bytes): the job's size.
	Records int64
	// Nodes and Cores: the simulated members and each one's task slots.
	Nodes, Cores int
	// Memory is the job's per-node memory budget (the plan's); default
	// DefaultMemory.
	Memory int64
	// Rate is a core's rate in bytes per second; default DefaultRate.
	Rate float64
	// Seed seeds the run times, stragglers and checksums.
	Seed uint64
	// Stragglers is the probability that an attempt takes 3 to 10 times
	// as long as its bytes say.
	Stragglers float64
	// LoseNode loses one node when LoseAt of the maps are done (default
	// DefaultLoseAt): the node with the most finished merges (then maps).
	LoseNode bool
	LoseAt   float64
	// MaxCommands stops the run after the tick in which this many commands
	// were applied (0: run the job to the end). A stopped run measures the
	// peak where it stopped and reports Truncated.
	MaxCommands int64
	// Tick is the simulated time between scheduler rounds; default
	// DefaultTick.
	Tick time.Duration
	// Dir is where the run's temporary directory (Raft's log and
	// snapshots) is made; default os.TempDir(). It is removed at the end.
	Dir string
	// Progress, if set, gets a line about every 10 seconds of wall time.
	Progress io.Writer `json:"-"`
}

// Result is what a run measured.
type Result struct {
	Config Config `json:"config"`
	// The plan.
	Bytes      int64 `json:"bytes"`
	Maps       int   `json:"maps"`
	Partitions int   `json:"partitions"`
	MergeGroup int   `json:"merge_group"`
	// Raft: entries proposed (each one Raft log entry), the commands in them
	// (a batch counts its commands), the ones the FSM rejected (stale
	// reports of attempts two nodes finished in the same tick), the FSM's
	// index advance over the run (equals Entries), the bytes of the
	// proposed entries and raft.db's size at the end.
	Entries      int64  `json:"entries"`
	Commands     int64  `json:"commands"`
	Rejected     int64  `json:"rejected"`
	IndexAdvance uint64 `json:"index_advance"`
	EntryBytes   int64  `json:"entry_bytes"`
	RaftDBBytes  int64  `json:"raft_db_bytes"`
	// Tasks: assignments applied (twins and merges included), of which
	// merges and speculative twins, and reports applied.
	Assigned     int64 `json:"assigned"`
	MergesRun    int64 `json:"merges_run"`
	TwinsStarted int64 `json:"twins_started"`
	Reports      int64 `json:"reports"`
	// Dropped counts finished attempts whose assignment had vanished (a
	// twin won, the node died, an input was lost): not reported.
	Dropped int64 `json:"dropped"`
	// The peak, measured when the job reached the commit stage (or where
	// a truncated run stopped): the live heap after a GC less the baseline
	// taken before the job was submitted, and a snapshot of the FSM taken
	// (encoded) and persisted (written and synced by a raft file snapshot
	// store).
	PeakHeapBytes   int64         `json:"peak_heap_bytes"`
	SnapshotBytes   int64         `json:"snapshot_bytes"`
	SnapshotEncode  time.Duration `json:"snapshot_encode"`
	SnapshotPersist time.Duration `json:"snapshot_persist"`
	// AutoSnapshots are the snapshots Raft took by itself during the run
	// (its threshold and interval), and the largest and slowest of them.
	AutoSnapshots     int                       `json:"auto_snapshots"`
	AutoSnapshotMax   time.Duration             `json:"auto_snapshot_max"`
	AutoSnapshotBytes int64                     `json:"auto_snapshot_bytes"`
	LastSnapshot      coordinator.SnapshotStats `json:"last_snapshot"`
	// After the job: the heap over the baseline and a snapshot's size,
	// once the ended job is compacted.
	AfterHeapBytes     int64 `json:"after_heap_bytes"`
	AfterSnapshotBytes int64 `json:"after_snapshot_bytes"`
	// Reconcile: calls, the most running tasks seen when it was called,
	// and its time over the calls that saw at least 90% of that many
	// (PeakCalls of them: the peak's calls that also fill the slots a
	// tick's reports freed), and over all calls.
	ReconcileCalls   int           `json:"reconcile_calls"`
	PeakRunning      int           `json:"peak_running"`
	PeakCalls        int           `json:"peak_calls"`
	ReconcilePeakP50 time.Duration `json:"reconcile_peak_p50"`
	ReconcilePeakP99 time.Duration `json:"reconcile_peak_p99"`
	ReconcilePeakMax time.Duration `json:"reconcile_peak_max"`
	ReconcileP50     time.Duration `json:"reconcile_p50"`
	ReconcileMax     time.Duration `json:"reconcile_max"`
	// The slowest call: its simulated time since submit, the running
	// tasks it saw and the commands it returned.
	SlowestAt       time.Duration `json:"slowest_at"`
	SlowestRunning  int           `json:"slowest_running"`
	SlowestCommands int           `json:"slowest_commands"`
	// FirstWave: the tasks of the first assignment and the wall time to
	// compute, propose and apply it.
	FirstWave     int           `json:"first_wave"`
	FirstWaveTook time.Duration `json:"first_wave_took"`
	// Times: the job's simulated time (submit to finish), the wall time
	// of the job's control traffic (submit to JobFinish applied, less the
	// measurements at the peak) and of the whole run.
	SimTime time.Duration `json:"sim_time"`
	// The stages in simulated time since submit: when the last map was
	// done (the maps' last merges may still run), when the reduce stage
	// began (every merge done) and when the commit stage began.
	SimMapsDone time.Duration `json:"sim_maps_done"`
	SimReduce   time.Duration `json:"sim_reduce"`
	SimCommit   time.Duration `json:"sim_commit"`
	JobWall     time.Duration `json:"job_wall"`
	Wall        time.Duration `json:"wall"`
	// Where JobWall went: the nodes' reports (proposed and applied), the
	// scheduler's rounds (Reconcile alone: ReconcileTotal) and proposing
	// what they returned, and the rest (the simulation itself).
	ReportWall     time.Duration `json:"report_wall"`
	ReconcileTotal time.Duration `json:"reconcile_total"`
	AssignWall     time.Duration `json:"assign_wall"`
	// Overhead is the bench's own work left out of JobWall: the peak's
	// measurement and encoding entries a second time to count their bytes
	// (the last is inside ReportWall and AssignWall).
	Overhead time.Duration `json:"overhead"`
	// AssignPerSec is Assigned over JobWall.
	AssignPerSec float64 `json:"assign_per_sec"`
	// The job: speculative attempts started and won (the job's counts).
	Speculative     int `json:"speculative"`
	SpeculativeWins int `json:"speculative_wins"`
	// The node loss: the node, its running attempts, its finished maps
	// (those held in its finished merges among them) and finished merges
	// at the time; Reruns is the job's re-run attempts from then on (failed
	// attempts and lost outputs), MapReruns the map assignments after it
	// that were not a map's first attempt or a twin.
	LostNode    string `json:"lost_node,omitempty"`
	LostRunning int    `json:"lost_running"`
	LostMaps    int    `json:"lost_maps"`
	LostMerged  int    `json:"lost_merged"`
	LostMerges  int    `json:"lost_merges"`
	Reruns      int    `json:"reruns"`
	MapReruns   int64  `json:"map_reruns"`
	// The end: the job's stage when the bench proposed JobFinish (commit),
	// its state after, and whether it was compacted.
	Stage     string `json:"stage"`
	State     string `json:"state"`
	Compacted bool   `json:"compacted"`
	Truncated bool   `json:"truncated"`
	// TaskSize is the in-memory size of one coordinator.Task.
	TaskSize int `json:"task_size"`
}

const jobID = "bench-sort"

// attempt is a simulated running attempt: it finishes at at.
type attempt struct {
	at      int64 // simulated Unix nanoseconds
	seq     uint64
	kind    coordinator.Kind
	index   int
	attempt int
	node    string
	bytes   int64
	records int64
	started int64
	dur     int64 // how long it runs once a worker takes it
}

// worker is a simulated node's workers: the scheduler gives a node
// coordinator.SlotsPerCore attempts per core, the node runs Cores of them
// at once and the others wait, in order, as jobs' executor does.
type workers struct {
	busy    int
	waiting []*attempt
}

type attempts []*attempt

func (h attempts) Len() int { return len(h) }
func (h attempts) Less(a, b int) bool {
	return h[a].at < h[b].at || h[a].at == h[b].at && h[a].seq < h[b].seq
}
func (h attempts) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *attempts) Push(x any)   { *h = append(*h, x.(*attempt)) }
func (h *attempts) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type reconcileCall struct {
	running, cmds int
	took          time.Duration
	at            time.Duration // simulated, since submit
}

type sim struct {
	cfg   Config
	fsm   *coordinator.FSM
	raft  *coordinator.Raft
	plan  *sortjob.Plan
	now   time.Time
	rng   *rand.Rand
	queue attempts
	seq   uint64
	dead  map[string]bool
	nodes map[string]*workers
	res   *Result
	calls []reconcileCall
	// lost is set once the node is lost; retriesBefore is the job's
	// Retries then.
	lost          bool
	retriesBefore int
	// pauses is the wall time spent measuring (the peak, the entries'
	// sizes), left out of JobWall.
	pauses   time.Duration
	lastSnap uint64
}

// Run drives one job through a real one-node Raft and the coordinator, and
// returns what it measured. The Result is non-nil when err is nil.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	plan, err := sortjob.MakePlan(sortjob.Spec{Records: cfg.Records, Memory: cfg.Memory}, sortjob.Cluster{Nodes: cfg.Nodes, CoresPerNode: cfg.Cores})
	if err != nil {
		return nil, fmt.Errorf("coordbench: plan: %w", err)
	}
	res := &Result{Config: cfg, Bytes: plan.Bytes, Maps: plan.MapCount, Partitions: plan.Partitions, TaskSize: taskSize()}
	res.MergeGroup = plan.MergeGroup
	splits, err := evenSplits(plan.Partitions)
	if err != nil {
		return nil, fmt.Errorf("coordbench: splits: %w", err)
	}

	dir, err := os.MkdirTemp(cfg.Dir, "coordbench-*")
	if err != nil {
		return nil, fmt.Errorf("coordbench: work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	fsm := coordinator.NewFSM()
	r, err := coordinator.OpenRaft(coordinator.RaftConfig{ID: "bench", Dir: filepath.Join(dir, "raft"), Bind: "127.0.0.1:0", Bootstrap: true, FSM: fsm})
	if err != nil {
		return nil, fmt.Errorf("coordbench: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	if err := waitLeader(ctx, r); err != nil {
		return nil, err
	}
	s := &sim{
		cfg: cfg, fsm: fsm, raft: r, plan: plan, res: res,
		now:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x636f6f7264)),
		dead: map[string]bool{}, nodes: map[string]*workers{},
	}
	// The log's last index (bootstrap configuration, the leader's no-op,
	// the barrier): the bench's entries follow it.
	index0, err := strconv.ParseUint(r.Stats()["last_log_index"], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("coordbench: raft's last log index: %w", err)
	}
	if err := s.join(ctx); err != nil {
		return nil, err
	}
	baseline := liveHeap()
	s.pauses = 0
	jobStart := time.Now()
	if _, err := s.propose(ctx, coordinator.Command{Type: coordinator.CmdJobSubmit, Time: s.now, Job: jobID, Spec: &plan.Spec, Plan: plan, Splits: splits}); err != nil {
		return nil, fmt.Errorf("coordbench: submit: %w", err)
	}
	if err := s.loop(ctx, baseline, dir); err != nil {
		return res, err
	}
	res.JobWall = time.Since(jobStart) - s.pauses
	res.Overhead = s.pauses
	res.AssignPerSec = float64(res.Assigned) / res.JobWall.Seconds()

	fsm.Read(func(st *coordinator.State) {
		res.IndexAdvance = st.Index - index0
		j := st.Jobs[jobID]
		res.State, res.Compacted = j.State, j.Compacted
		res.Speculative, res.SpeculativeWins = j.Speculative, j.SpeculativeWins
		if s.lost {
			res.Reruns = j.Retries - s.retriesBefore
		}
		if !j.ReduceStarted.IsZero() {
			res.SimReduce = j.ReduceStarted.Sub(j.Submitted)
		}
		if !j.CommitStarted.IsZero() {
			res.SimCommit = j.CommitStarted.Sub(j.Submitted)
		}
		if !j.Finished.IsZero() {
			res.SimTime = j.Finished.Sub(j.Submitted)
		} else {
			res.SimTime = s.now.Sub(j.Submitted)
		}
	})
	s.reconcileStats()
	res.AfterHeapBytes = liveHeap() - baseline
	if snap, err := fsm.Snapshot(); err == nil {
		res.AfterSnapshotBytes = fsm.LastSnapshot().Bytes
		snap.Release()
	}
	closed = true
	if err := r.Close(); err != nil {
		return res, fmt.Errorf("coordbench: close raft: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "raft", "raft.db")); err == nil {
		res.RaftDBBytes = fi.Size()
	}
	res.Wall = time.Since(start)
	return res, nil
}

func (c *Config) fill() error {
	if c.Nodes <= 0 {
		c.Nodes = 1
	}
	if c.Cores <= 0 {
		c.Cores = 2
	}
	if c.Memory <= 0 {
		c.Memory = DefaultMemory
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.LoseAt <= 0 {
		c.LoseAt = DefaultLoseAt
	}
	switch {
	case c.Records <= 0:
		return fmt.Errorf("coordbench: %d records: give a size of at least one record", c.Records)
	case c.Stragglers < 0 || c.Stragglers > 1 || math.IsNaN(c.Stragglers):
		return fmt.Errorf("coordbench: straggler probability %g: want 0 to 1", c.Stragglers)
	case c.LoseAt > 1:
		return fmt.Errorf("coordbench: lose a node when a share %g of the maps is done: want more than 0, at most 1", c.LoseAt)
	case c.LoseNode && c.Nodes < 2:
		return fmt.Errorf("coordbench: losing a node needs at least 2 nodes, not %d", c.Nodes)
	case c.MaxCommands < 0:
		return fmt.Errorf("coordbench: max commands %d is negative", c.MaxCommands)
	}
	return nil
}

func waitLeader(ctx context.Context, r *coordinator.Raft) error {
	deadline := time.Now().Add(15 * time.Second)
	for !r.IsLeader() {
		if time.Now().After(deadline) {
			return errors.New("coordbench: the one-node raft did not elect itself leader within 15s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := r.Barrier(5 * time.Second); err != nil {
		return fmt.Errorf("coordbench: raft barrier: %w", err)
	}
	return nil
}

// nodeID names simulated node i.
func (s *sim) nodeID(i int) string {
	return fmt.Sprintf("node%0*d", len(fmt.Sprint(s.cfg.Nodes-1)), i)
}

// join adds the members, concurrently, as nodes joining would.
func (s *sim) join(ctx context.Context) error {
	cmds := make([]coordinator.Command, s.cfg.Nodes)
	for i := range cmds {
		host := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
		id := s.nodeID(i)
		cmds[i] = coordinator.Command{Type: coordinator.CmdMemberUpsert, Time: s.now, Member: &coordinator.Member{
			ID: id, RaftID: id + "-r1", APIAddr: host + ":7070", RaftAddr: host + ":7071", GossipAddr: host + ":7072", ShuffleAddr: host + ":7073",
			DataDir: "/var/lib/engine", Cores: s.cfg.Cores,
		}}
	}
	return s.proposeAll(ctx, cmds, nil)
}

// loop runs the simulated ticks until the job reaches its commit stage
// (then finishes it) or MaxCommands is reached.
func (s *sim) loop(ctx context.Context, baseline int64, dir string) error {
	idle := 0
	lastProgress := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries0 := s.res.Entries
		// The node dies while it runs tasks: before it reports this tick's.
		if s.cfg.LoseNode && !s.lost {
			var lose bool
			s.fsm.Read(func(st *coordinator.State) {
				j := st.Jobs[jobID]
				lose = j.Stage == coordinator.StageMap && float64(j.Count(coordinator.KindMap, coordinator.TaskDone)) >= s.cfg.LoseAt*float64(s.plan.MapCount)
			})
			if lose {
				if err := s.loseNode(ctx); err != nil {
					return err
				}
			}
		}
		t := time.Now()
		if err := s.reportDue(ctx); err != nil {
			return err
		}
		s.res.ReportWall += time.Since(t)
		var stage, state, jobErr string
		var mapsDone, reducesDone int
		s.fsm.Read(func(st *coordinator.State) {
			j := st.Jobs[jobID]
			stage, state, jobErr = j.Stage, j.State, j.Error
			mapsDone, reducesDone = j.Count(coordinator.KindMap, coordinator.TaskDone), j.Count(coordinator.KindReduce, coordinator.TaskDone)
		})
		if state != coordinator.JobRunning {
			return fmt.Errorf("coordbench: the job ended %s at simulated %s: %s", state, s.now.Sub(s.start()), jobErr)
		}
		s.res.Stage = stage
		switch {
		case mapsDone < s.plan.MapCount:
			s.res.SimMapsDone = 0
		case s.res.SimMapsDone == 0:
			s.res.SimMapsDone = s.now.Sub(s.start())
		}
		if stage == coordinator.StageCommit {
			s.measurePeak(baseline, dir)
			rep := &sortjob.Report{Job: jobID, Spec: s.plan.Spec, Records: s.plan.Records, Bytes: s.plan.Bytes, Maps: s.plan.MapCount,
				Partitions: s.plan.Partitions, Workers: s.cfg.Cores, Memory: s.plan.Memory, Started: s.start(), Finished: s.now, Total: s.now.Sub(s.start())}
			if _, err := s.propose(ctx, coordinator.Command{Type: coordinator.CmdJobFinish, Time: s.now, Job: jobID, State: coordinator.JobSucceeded, Report: rep}); err != nil {
				return fmt.Errorf("coordbench: finish the job: %w", err)
			}
			return nil
		}
		// The leader's rounds: repairs first, then assignments.
		for round := 0; round < 3; round++ {
			assigned, n, err := s.reconcile(ctx)
			if err != nil {
				return err
			}
			if n == 0 || assigned {
				break
			}
		}
		s.pollSnapshots()
		if s.cfg.MaxCommands > 0 && s.res.Commands >= s.cfg.MaxCommands {
			s.res.Truncated = true
			s.measurePeak(baseline, dir)
			return nil
		}
		// Bounded: a job that makes no progress for a simulated minute
		// with nothing running is stuck, a bug to report, not to wait on.
		if s.res.Entries == entries0 && len(s.queue) == 0 {
			if idle++; time.Duration(idle)*s.cfg.Tick > time.Minute {
				return fmt.Errorf("coordbench: stuck at simulated %s in stage %s: nothing runs and the scheduler assigns nothing (%d of %d maps, %d of %d reduces done)",
					s.now.Sub(s.start()), stage, mapsDone, s.plan.MapCount, reducesDone, s.plan.Partitions)
			}
		} else {
			idle = 0
		}
		if s.cfg.Progress != nil && time.Since(lastProgress) > 10*time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(s.cfg.Progress, "coordbench: simulated %s, stage %s, maps %d/%d, reduces %d/%d, %d entries, %d commands\n",
				s.now.Sub(s.start()).Round(time.Second), stage, mapsDone, s.plan.MapCount, reducesDone, s.plan.Partitions, s.res.Entries, s.res.Commands)
		}
		s.now = s.now.Add(s.cfg.Tick)
	}
}

func (s *sim) start() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// reportDue has every node report the attempts it finished by now, in one
// batch per node, the nodes proposing at once. An attempt whose assignment
// is gone is dropped, as a node drops it.
func (s *sim) reportDue(ctx context.Context) error {
	var due []*attempt
	for len(s.queue) > 0 && s.queue[0].at <= s.now.UnixNano() {
		a := heap.Pop(&s.queue).(*attempt)
		if !s.dead[a.node] {
			due = append(due, a)
			s.free(a.node, a.at)
		}
	}
	if len(due) == 0 {
		return nil
	}
	byNode := map[string][]coordinator.Command{}
	s.fsm.Read(func(st *coordinator.State) {
		j := st.Jobs[jobID]
		for _, a := range due {
			ts := j.Tasks(a.kind)
			if a.index >= len(ts) {
				s.res.Dropped++
				continue
			}
			t := &ts[a.index]
			live := t.State == coordinator.TaskRunning && (t.Node == a.node && int(t.Attempt) == a.attempt ||
				t.Twin != nil && t.Twin.Node == a.node && int(t.Twin.Attempt) == a.attempt)
			if !live {
				s.res.Dropped++
				continue
			}
			byNode[a.node] = append(byNode[a.node], s.done(a))
		}
	})
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	batches := make([]coordinator.Command, len(nodes))
	for i, n := range nodes {
		batches[i] = coordinator.Command{Type: coordinator.CmdBatch, Time: s.now, Batch: byNode[n]}
	}
	var applied int64
	err := s.proposeAll(ctx, batches, func(c coordinator.Command, ok bool) {
		if ok {
			applied++
		}
	})
	s.res.Reports += applied
	return err
}

// done is the report of a finished attempt, as a node would send it.
func (s *sim) done(a *attempt) coordinator.Command {
	secs := float64(s.now.UnixNano()-a.started) / 1e9
	c := coordinator.Command{Type: coordinator.CmdTaskDone, Job: jobID, Kind: a.kind, Index: a.index, Node: a.node, Attempt: a.attempt,
		TaskResult: coordinator.TaskResult{Records: a.records, Bytes: a.bytes, Seconds: secs, RSS: 1 << 30}}
	switch a.kind {
	case coordinator.KindMap:
		c.InputSum = gensort.Sum{Hi: s.rng.Uint64(), Lo: s.rng.Uint64()}
	case coordinator.KindReduce:
		c.Remote = a.bytes / int64(s.cfg.Nodes) * int64(s.cfg.Nodes-1)
		c.Summary = s.summary(a)
	}
	return c
}

// summary is a reduce output's valsort summary, the size a real one is.
func (s *sim) summary(a *attempt) []byte {
	sum := gensort.Summary{Records: uint64(max(a.records, 2)), Checksum: gensort.Sum{Hi: s.rng.Uint64(), Lo: s.rng.Uint64()}}
	sum.First[0], sum.Last[0] = byte(a.index), byte(a.index)+1
	b, err := sum.MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("coordbench: summary: %v", err)) // a consistent summary always encodes
	}
	return b
}

// reconcile runs one round of the scheduler on the FSM's state and
// proposes what it returns; it reports whether the round assigned tasks and
// how many commands it returned.
func (s *sim) reconcile(ctx context.Context) (bool, int, error) {
	var cmds []coordinator.Command
	var running int
	var took time.Duration
	s.fsm.Read(func(st *coordinator.State) {
		j := st.Jobs[jobID]
		for _, k := range []coordinator.Kind{coordinator.KindMap, coordinator.KindMerge, coordinator.KindReduce} {
			running += j.Count(k, coordinator.TaskRunning)
		}
		t := time.Now()
		cmds = coordinator.Reconcile(st, s.now)
		took = time.Since(t)
	})
	n := 0
	for _, c := range cmds {
		n += max(len(c.Batch), 1)
	}
	s.calls = append(s.calls, reconcileCall{running: running, cmds: n, took: took, at: s.now.Sub(s.start())})
	s.res.ReconcileTotal += took
	wall := time.Now()
	defer func() { s.res.AssignWall += time.Since(wall) }()
	first := s.res.Assigned == 0
	assigned := false
	for _, c := range cmds {
		list := c.Batch
		if c.Type != coordinator.CmdBatch {
			list = []coordinator.Command{c}
		}
		errs, err := s.propose(ctx, c)
		if err != nil {
			return false, 0, err
		}
		for i, e := range list {
			if errs != nil && errs[i] != nil {
				continue
			}
			if e.Type == coordinator.CmdTaskAssign {
				assigned = true
				s.start1(e)
			}
		}
	}
	if first && s.res.Assigned > 0 {
		s.res.FirstWave = int(s.res.Assigned)
		s.res.FirstWaveTook = took + time.Since(wall)
	}
	return assigned, n, nil
}

// start1 starts the simulated attempt an applied assignment made.
func (s *sim) start1(c coordinator.Command) {
	s.res.Assigned++
	var bytes, records int64
	switch c.Kind {
	case coordinator.KindMap:
		sp := s.plan.Split(c.Index)
		bytes, records = sp.Bytes(), sp.Records
		if s.lost && c.Attempt > 1 && !c.Speculative {
			s.res.MapReruns++
		}
	case coordinator.KindMerge:
		s.res.MergesRun++
		for _, m := range c.Maps {
			sp := s.plan.Split(m)
			bytes += sp.Bytes()
			records += sp.Records
		}
	case coordinator.KindReduce:
		p, i := int64(s.plan.Partitions), int64(c.Index)
		records = mulDiv(s.plan.Records, i+1, p) - mulDiv(s.plan.Records, i, p)
		bytes = records * sortjob.RecordSize
	}
	if c.Speculative {
		s.res.TwinsStarted++
	}
	// Tasks of one size still take a little more or less time each (±10%).
	d := float64(bytes) / s.cfg.Rate * (0.9 + 0.2*s.rng.Float64())
	if s.rng.Float64() < s.cfg.Stragglers {
		d *= 3 + 7*s.rng.Float64()
	}
	a := &attempt{kind: c.Kind, index: c.Index, attempt: c.Attempt, node: c.Node, bytes: bytes, records: records, dur: max(int64(d*1e9), int64(time.Millisecond))}
	w := s.nodes[c.Node]
	if w == nil {
		w = &workers{}
		s.nodes[c.Node] = w
	}
	if w.busy < s.cfg.Cores {
		w.busy++
		s.run(a, s.now.UnixNano())
		return
	}
	w.waiting = append(w.waiting, a)
}

// run starts an attempt on a worker at simulated time at.
func (s *sim) run(a *attempt, at int64) {
	s.seq++
	a.seq, a.started, a.at = s.seq, at, at+a.dur
	heap.Push(&s.queue, a)
}

// free hands a worker of node, free since at, to the next waiting attempt
// whose assignment still stands (the others are dropped, as the executor
// cancels them).
func (s *sim) free(node string, at int64) {
	w := s.nodes[node]
	if w == nil {
		return
	}
	w.busy--
	for len(w.waiting) > 0 {
		a := w.waiting[0]
		w.waiting = w.waiting[1:]
		if !s.live(a) {
			s.res.Dropped++
			continue
		}
		w.busy++
		s.run(a, at)
		return
	}
}

// live reports whether an attempt's assignment still stands.
func (s *sim) live(a *attempt) bool {
	ok := false
	s.fsm.Read(func(st *coordinator.State) {
		j := st.Jobs[jobID]
		if j == nil {
			return
		}
		ts := j.Tasks(a.kind)
		if a.index >= len(ts) {
			return
		}
		t := &ts[a.index]
		ok = t.State == coordinator.TaskRunning && (t.Node == a.node && int(t.Attempt) == a.attempt ||
			t.Twin != nil && t.Twin.Node == a.node && int(t.Twin.Attempt) == a.attempt)
	})
	return ok
}

func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// loseNode declares the node with the most finished merges (then maps)
// dead, as the leader does when gossip loses it.
func (s *sim) loseNode(ctx context.Context) error {
	merges, maps := map[string]int{}, map[string]int{}
	var victim string
	s.fsm.Read(func(st *coordinator.State) {
		j := st.Jobs[jobID]
		for _, t := range j.Merges {
			if t.State == coordinator.TaskDone {
				merges[t.Node]++
			}
		}
		for _, t := range j.Maps {
			if t.State == coordinator.TaskDone {
				maps[t.Node]++
			}
		}
		for _, id := range st.MemberIDs() {
			if v := victim; v == "" || merges[id] > merges[v] || merges[id] == merges[v] && maps[id] > maps[v] {
				victim = id
			}
		}
		for _, t := range j.Maps {
			if t.State == coordinator.TaskDone && t.Node == victim && t.Merge > 0 && j.Merges[t.Merge-1].State == coordinator.TaskDone {
				s.res.LostMerged++
			}
		}
		s.res.LostRunning = len(j.RunningOn(victim))
		s.retriesBefore = j.Retries
	})
	s.res.LostNode, s.res.LostMaps, s.res.LostMerges = victim, maps[victim], merges[victim]
	s.lost = true
	s.dead[victim] = true
	if _, err := s.propose(ctx, coordinator.Command{Type: coordinator.CmdMemberAlive, Time: s.now, ID: victim, Alive: false}); err != nil {
		return fmt.Errorf("coordbench: lose node %s: %w", victim, err)
	}
	return nil
}

// propose proposes one command through Raft and counts it. errs is the
// per-command outcome of a batch some of whose commands were rejected (nil
// when all applied); err is a failure of Raft itself, or the rejection of a
// command that is not a batch.
func (s *sim) propose(ctx context.Context, c coordinator.Command) ([]error, error) {
	o := s.proposeOne(ctx, c, s.encodedSize(c))
	s.count(c, o)
	return o.errs, o.err
}

type outcome struct {
	bytes int64
	errs  []error
	err   error
}

// encodedSize is the size of c's log entry. Encoding it a second time (Propose
// encodes it too) is the bench's own work: its time is left out of JobWall.
func (s *sim) encodedSize(c coordinator.Command) int64 {
	t := time.Now()
	n := int64(len(c.Encode()))
	s.pauses += time.Since(t)
	return n
}

func (s *sim) proposeOne(ctx context.Context, c coordinator.Command, size int64) outcome {
	o := outcome{bytes: size}
	err := s.raft.Propose(ctx, c)
	var be *coordinator.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Errs) == len(c.Batch):
		o.errs = be.Errs
	default:
		o.err = err
	}
	return o
}

func (s *sim) count(c coordinator.Command, o outcome) {
	if o.err != nil && !errors.Is(o.err, coordinator.ErrRejected) {
		return // not in the log
	}
	s.res.Entries++
	s.res.EntryBytes += o.bytes
	n := int64(1)
	if c.Type == coordinator.CmdBatch {
		n = int64(len(c.Batch))
	}
	s.res.Commands += n
	switch {
	case o.err != nil:
		s.res.Rejected++
	case o.errs != nil:
		for _, e := range o.errs {
			if e != nil {
				s.res.Rejected++
			}
		}
	}
}

// proposeAll proposes commands concurrently, as many nodes would, and
// calls each (if set) with every command of every batch and whether it
// applied. A rejection is counted, not an error.
func (s *sim) proposeAll(ctx context.Context, cmds []coordinator.Command, each func(c coordinator.Command, ok bool)) error {
	outs := make([]outcome, len(cmds))
	sizes := make([]int64, len(cmds))
	for i, c := range cmds {
		sizes[i] = s.encodedSize(c)
	}
	var wg sync.WaitGroup
	for i := range cmds {
		wg.Go(func() { outs[i] = s.proposeOne(ctx, cmds[i], sizes[i]) })
	}
	wg.Wait()
	for i, c := range cmds {
		o := outs[i]
		s.count(c, o)
		if o.err != nil && !errors.Is(o.err, coordinator.ErrRejected) {
			return fmt.Errorf("coordbench: propose %s: %w", c.Type, o.err)
		}
		if each == nil {
			continue
		}
		if c.Type != coordinator.CmdBatch {
			each(c, o.err == nil)
			continue
		}
		for k, e := range c.Batch {
			each(e, o.err == nil && (o.errs == nil || o.errs[k] == nil))
		}
	}
	return nil
}

// measurePeak measures the state at its peak: the live heap over the
// baseline, and a snapshot encoded and persisted.
func (s *sim) measurePeak(baseline int64, dir string) {
	t := time.Now()
	defer func() { s.pauses += time.Since(t) }()
	s.pollSnapshots()
	s.res.LastSnapshot = s.fsm.LastSnapshot()
	s.res.PeakHeapBytes = liveHeap() - baseline
	enc := time.Now()
	snap, err := s.fsm.Snapshot()
	if err != nil {
		return
	}
	defer snap.Release()
	s.res.SnapshotEncode = time.Since(enc)
	st := s.fsm.LastSnapshot()
	s.res.SnapshotBytes = st.Bytes
	s.lastSnap = st.Index // not an automatic one
	store, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "forced"), 1, hclog.NewNullLogger())
	if err != nil {
		return
	}
	persist := time.Now()
	sink, err := store.Create(raft.SnapshotVersionMax, st.Index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		return
	}
	if err := snap.Persist(sink); err != nil {
		return
	}
	s.res.SnapshotPersist = time.Since(persist)
}

// pollSnapshots notes a snapshot Raft took by itself since the last poll.
func (s *sim) pollSnapshots() {
	st := s.fsm.LastSnapshot()
	if st.Index == 0 || st.Index == s.lastSnap {
		return
	}
	s.lastSnap = st.Index
	s.res.AutoSnapshots++
	s.res.AutoSnapshotMax = max(s.res.AutoSnapshotMax, st.Took)
	s.res.AutoSnapshotBytes = max(s.res.AutoSnapshotBytes, st.Bytes)
}

// reconcileStats sums up the scheduler's calls: over all of them, and over
// those that saw the most running tasks.
func (s *sim) reconcileStats() {
	r := s.res
	r.ReconcileCalls = len(s.calls)
	var all, peak []time.Duration
	for _, c := range s.calls {
		r.PeakRunning = max(r.PeakRunning, c.running)
	}
	for _, c := range s.calls {
		if c.took > r.ReconcileMax {
			r.ReconcileMax, r.SlowestAt, r.SlowestRunning, r.SlowestCommands = c.took, c.at, c.running, c.cmds
		}
		all = append(all, c.took)
		if c.running*10 >= r.PeakRunning*9 {
			peak = append(peak, c.took)
		}
	}
	r.PeakCalls = len(peak)
	r.ReconcileP50 = quantile(all, 0.5)
	r.ReconcilePeakP50, r.ReconcilePeakP99, r.ReconcilePeakMax = quantile(peak, 0.5), quantile(peak, 0.99), slices.Max(append(peak, 0))
}

// quantile returns the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(int(q*float64(len(ds))), len(ds)-1)]
}

// taskSize is the in-memory size of one task of the state.
func taskSize() int { return int(unsafe.Sizeof(coordinator.Task{})) }

// liveHeap returns the live heap bytes after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
