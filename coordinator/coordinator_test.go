package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"engine/shuffle"
	"engine/sortjob"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func splits(t testing.TB, parts int) []byte {
	p := &shuffle.Partitioner{Splits: make([]shuffle.Key, parts-1)}
	for i := range p.Splits {
		p.Splits[i][0] = byte(i + 1)
	}
	b, _ := p.MarshalBinary()
	return b
}

// cluster returns a state with members a, b, c (2 cores each) and one job
// with the given maps and partitions.
func cluster(t *testing.T, maps, parts int) *State {
	t.Helper()
	s := NewState()
	for _, id := range []string{"a", "b", "c"} {
		must(t, s, Command{Type: CmdMemberUpsert, Member: &Member{ID: id, Cores: 2}})
	}
	p := testPlan(maps, parts)
	must(t, s, Command{Type: CmdJobSubmit, Time: t0, Job: "j", Spec: &p.Spec, Plan: p, Splits: splits(t, parts)})
	return s
}

// testPlan returns a valid plan of generated input with the given maps and
// partitions.
func testPlan(maps, parts int) *sortjob.Plan {
	return &sortjob.Plan{Spec: sortjob.Spec{Records: 1000}, Cluster: sortjob.Cluster{Nodes: 3, CoresPerNode: 2},
		Records: 1000, Bytes: 1000 * sortjob.RecordSize, MapCount: maps, Partitions: parts, ReducePasses: 1}
}

func must(t *testing.T, s *State, c Command) {
	t.Helper()
	if err := Apply(s, c); err != nil {
		t.Fatalf("apply %s: %v", c.Type, err)
	}
}

func applyAll(t *testing.T, s *State, cmds []Command) {
	t.Helper()
	for _, c := range cmds {
		must(t, s, c)
	}
}

func done(s *State, kind Kind, i int) Command {
	task := s.Jobs["j"].task(kind, i)
	return Command{Type: CmdTaskDone, Time: t0, Job: "j", Kind: kind, Index: i, Node: task.Node, Attempt: int(task.Attempt), TaskResult: TaskResult{Records: 10}}
}

// flat returns the commands of Reconcile's batches one by one.
func flat(cmds []Command) []Command {
	var out []Command
	for _, c := range cmds {
		if c.Type == CmdBatch {
			out = append(out, c.Batch...)
			continue
		}
		out = append(out, c)
	}
	return out
}

func TestScheduleRunToCommit(t *testing.T) {
	s := cluster(t, 4, 3)
	cmds := flat(Reconcile(s, t0))
	if len(cmds) != 4 {
		t.Fatalf("first round: %d commands, want 4 map assignments", len(cmds))
	}
	applyAll(t, s, cmds)
	per := map[string]int{}
	for _, m := range s.Jobs["j"].Maps {
		per[m.Node]++
		if m.State != TaskRunning || m.Attempt != 1 {
			t.Fatalf("map %+v", m)
		}
	}
	if len(per) != 3 {
		t.Errorf("maps on %v: want them spread over the 3 nodes", per)
	}
	// No reduce before every map is done.
	if err := Apply(s, Command{Type: CmdTaskAssign, Job: "j", Kind: KindReduce, Index: 0, Node: "a", Attempt: 1}); !errors.Is(err, ErrRejected) {
		t.Fatalf("reduce assigned during the map stage: %v", err)
	}
	for i := 0; i < 4; i++ {
		must(t, s, done(s, KindMap, i))
	}
	if s.Jobs["j"].Stage != StageReduce {
		t.Fatalf("stage %s after all maps, want reduce", s.Jobs["j"].Stage)
	}
	applyAll(t, s, Reconcile(s, t0))
	for i := 0; i < 3; i++ {
		if r := s.Jobs["j"].Reduces[i]; r.State != TaskRunning {
			t.Fatalf("reduce %d not assigned: %+v", i, r)
		}
		must(t, s, done(s, KindReduce, i))
	}
	if s.Jobs["j"].Stage != StageCommit {
		t.Fatalf("stage %s, want commit", s.Jobs["j"].Stage)
	}
	if cmds := Reconcile(s, t0); len(cmds) != 0 {
		t.Fatalf("reconcile in commit stage: %v", cmds)
	}
	must(t, s, Command{Type: CmdJobFinish, Job: "j", State: JobSucceeded, Report: &sortjob.Report{Job: "j"}})
	if j := s.Jobs["j"]; j.State != JobSucceeded || j.Report == nil {
		t.Fatalf("job %+v", j)
	}
}

func TestNodeDeathRerunsTasksAndLostMaps(t *testing.T) {
	s := cluster(t, 3, 2)
	applyAll(t, s, Reconcile(s, t0))
	// Maps 0 and 1 finish; then the node of map 0 dies.
	must(t, s, done(s, KindMap, 0))
	must(t, s, done(s, KindMap, 1))
	dead := s.Jobs["j"].Maps[0].Node
	must(t, s, Command{Type: CmdMemberAlive, ID: dead, Alive: false})

	cmds := flat(Reconcile(s, t0))
	var lost, failed int
	for _, c := range cmds {
		switch c.Type {
		case CmdMapLost:
			lost++
		case CmdTaskFailed:
			failed++
		default:
			t.Fatalf("repair round assigns: %+v", c)
		}
		if c.Node != dead {
			t.Fatalf("repair for a live node: %+v", c)
		}
	}
	if lost != 1 {
		t.Fatalf("%d maps lost, want 1 (the finished map on %s): %+v", lost, dead, cmds)
	}
	applyAll(t, s, cmds)
	applyAll(t, s, Reconcile(s, t0))
	for _, m := range s.Jobs["j"].Maps {
		if m.Node == dead {
			t.Fatalf("map assigned to the dead node: %+v", m)
		}
	}
	if m := s.Jobs["j"].Maps[0]; m.State != TaskRunning || m.Attempt != 2 || m.Attempts != 2 {
		t.Fatalf("lost map re-run: %+v", m)
	}
}

func TestLostMapDuringReduceSendsStageBack(t *testing.T) {
	s := cluster(t, 2, 2)
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindMap, 0))
	must(t, s, done(s, KindMap, 1))
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindReduce, 0))
	// Reduce 1 cannot fetch map 1's output: it fails and reports it lost.
	r := s.Jobs["j"].Reduces[1]
	must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindReduce, Index: 1, Node: r.Node, Attempt: int(r.Attempt), Error: "fetch failed", LostMaps: []int{1}})
	j := s.Jobs["j"]
	if j.Stage != StageMap || j.Maps[1].State != TaskPending || j.Reduces[0].State != TaskDone || j.Reduces[1].State != TaskPending {
		t.Fatalf("after a lost map: stage %s maps %+v reduces %+v", j.Stage, j.Maps, j.Reduces)
	}
	// The old reduce attempt's late report is stale.
	if err := Apply(s, Command{Type: CmdTaskDone, Job: "j", Kind: KindReduce, Index: 1, Node: r.Node, Attempt: int(r.Attempt)}); !errors.Is(err, ErrRejected) {
		t.Fatalf("stale report accepted: %v", err)
	}
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindMap, 1))
	if j.Stage != StageReduce {
		t.Fatalf("stage %s, want reduce again", j.Stage)
	}
}

// Attempts lost with their node, or failed on a lost input, do not count
// toward MaxAttempts.
func TestFailuresNotOurFaultDoNotCount(t *testing.T) {
	s := cluster(t, 2, 1)
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindMap, 0))
	must(t, s, done(s, KindMap, 1))
	rounds := 2 * (MaxAttempts - 1) // each map lost MaxAttempts-1 times
	for a := 1; a <= rounds; a++ {
		applyAll(t, s, Reconcile(s, t0))
		r := s.Jobs["j"].Reduces[0]
		if r.State != TaskRunning {
			t.Fatalf("round %d: reduce %+v", a, r)
		}
		must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindReduce, Index: 0, Node: r.Node, Attempt: int(r.Attempt), Error: "fetch failed", LostMaps: []int{a % 2}})
		applyAll(t, s, Reconcile(s, t0))
		must(t, s, done(s, KindMap, a%2))
	}
	if j := s.Jobs["j"]; j.State != JobRunning || j.Reduces[0].Failures != 0 {
		t.Fatalf("after %d lost inputs: %s %q, failures %d", rounds, j.State, j.Error, j.Reduces[0].Failures)
	}
	// A map whose output keeps being lost fails the job in the end: no job
	// retries forever.
	for {
		applyAll(t, s, Reconcile(s, t0))
		r := s.Jobs["j"].Reduces[0]
		must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindReduce, Index: 0, Node: r.Node, Attempt: int(r.Attempt), Error: "fetch failed", LostMaps: []int{0}})
		if j := s.Jobs["j"]; j.Done() {
			if j.State != JobFailed || !strings.Contains(j.Error, "map 0's output was lost 4 times") {
				t.Fatalf("job: %s %q", j.State, j.Error)
			}
			return
		}
		applyAll(t, s, Reconcile(s, t0))
		must(t, s, done(s, KindMap, 0))
	}
}

func TestNoCancelDuringCommit(t *testing.T) {
	s := cluster(t, 1, 1)
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindMap, 0))
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindReduce, 0))
	if err := Apply(s, Command{Type: CmdJobCancel, Job: "j"}); !errors.Is(err, ErrRejected) {
		t.Fatalf("cancel during commit: %v", err)
	}
	must(t, s, Command{Type: CmdJobFinish, Job: "j", State: JobSucceeded})
}

func TestAttemptsAreBounded(t *testing.T) {
	s := cluster(t, 1, 1)
	for a := 1; a <= MaxAttempts; a++ {
		applyAll(t, s, Reconcile(s, t0))
		m := s.Jobs["j"].Maps[0]
		if int(m.Attempt) != a {
			t.Fatalf("attempt %d, want %d", m.Attempt, a)
		}
		must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindMap, Index: 0, Node: m.Node, Attempt: int(m.Attempt), Error: fmt.Sprintf("disk full %d", a)})
	}
	j := s.Jobs["j"]
	if j.State != JobFailed || !strings.Contains(j.Error, "failed 4 times") || !strings.Contains(j.Error, "disk full 4") {
		t.Fatalf("job after %d failures: %s %q", MaxAttempts, j.State, j.Error)
	}
	if cmds := Reconcile(s, t0); len(cmds) != 0 {
		t.Fatalf("a failed job is scheduled: %v", cmds)
	}
}

func TestRejections(t *testing.T) {
	for _, c := range []struct {
		name string
		cmd  Command
	}{
		{"unknown job", Command{Type: CmdTaskDone, Job: "nope"}},
		{"unknown type", Command{Type: "frobnicate", Job: "j"}},
		{"task out of range", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 9, Node: "a", Attempt: 1}},
		{"dead node", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 0, Node: "zz", Attempt: 1}},
		{"wrong attempt", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 3}},
		{"done without running", Command{Type: CmdTaskDone, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 1}},
		{"duplicate job", Command{Type: CmdJobSubmit, Job: "j", Spec: &testPlan(1, 1).Spec, Plan: testPlan(1, 1), Splits: splits(t, 1)}},
		{"bad splits", Command{Type: CmdJobSubmit, Job: "k", Spec: &testPlan(1, 3).Spec, Plan: testPlan(1, 3), Splits: splits(t, 2)}},
		{"succeed early", Command{Type: CmdJobFinish, Job: "j", State: JobSucceeded}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := cluster(t, 2, 2)
			before, _ := json.Marshal(s)
			if err := Apply(s, c.cmd); !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
			if after, _ := json.Marshal(s); string(before) != string(after) {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
}

// Replaying the same log gives the same state, and a state survives a
// snapshot round trip exactly.
func TestDeterministicAndSnapshotRoundTrip(t *testing.T) {
	var log []Command
	s := cluster(t, 5, 3)
	record := func(cmds []Command) {
		applyAll(t, s, cmds)
		log = append(log, cmds...)
	}
	record(Reconcile(s, t0))
	record([]Command{done(s, KindMap, 0), done(s, KindMap, 1), {Type: CmdMemberAlive, ID: "b", Alive: false}})
	record(Reconcile(s, t0.Add(time.Second)))
	record(Reconcile(s, t0.Add(2*time.Second)))

	r := cluster(t, 5, 3)
	applyAll(t, r, log)
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(r)
	if string(a) != string(b) {
		t.Fatalf("replay differs:\n%s\n%s", a, b)
	}
	var buf bytes.Buffer
	if _, err := encodeState(&buf, s); err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := json.Marshal(back); string(c) != string(a) {
		t.Fatalf("snapshot round trip changed the state:\n%s\n%s", a, c)
	}
	for id, j := range s.Jobs {
		if !reflect.DeepEqual(back.Jobs[id].x, j.index()) {
			t.Fatalf("job %s: the restored index differs from the applied one", id)
		}
	}
}

func TestRestartWithoutDataLosesMapOutputs(t *testing.T) {
	s := cluster(t, 2, 1)
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, done(s, KindMap, 0))
	node := s.Jobs["j"].Maps[0].Node
	m := *s.Members[node]
	m.Incarnation++
	must(t, s, Command{Type: CmdMemberUpsert, Member: &m})
	cmds := flat(Reconcile(s, t0))
	if len(cmds) == 0 || cmds[0].Type != CmdMapLost || cmds[0].Index != 0 {
		t.Fatalf("commands after a node came back empty: %+v", cmds)
	}
}

func TestFailedAttemptIsRetriedElsewhere(t *testing.T) {
	s := cluster(t, 1, 1)
	applyAll(t, s, Reconcile(s, t0))
	first := s.Jobs["j"].Maps[0].Node
	must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindMap, Index: 0, Node: first, Attempt: 1, Error: "boom"})
	applyAll(t, s, Reconcile(s, t0))
	if again := s.Jobs["j"].Maps[0].Node; again == first {
		t.Fatalf("retry went back to %s, the node where it failed, with two other nodes free", first)
	}
	// With a single member the retry has nowhere else to go.
	s = NewState()
	must(t, s, Command{Type: CmdMemberUpsert, Member: &Member{ID: "only", Cores: 1}})
	must(t, s, Command{Type: CmdJobSubmit, Time: t0, Job: "j", Spec: &testPlan(1, 1).Spec, Plan: testPlan(1, 1), Splits: splits(t, 1)})
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, Command{Type: CmdTaskFailed, Job: "j", Kind: KindMap, Index: 0, Node: "only", Attempt: 1, Error: "boom"})
	if cmds := flat(Reconcile(s, t0)); len(cmds) != 1 || cmds[0].Node != "only" {
		t.Fatalf("single-node retry: %+v", cmds)
	}
}
