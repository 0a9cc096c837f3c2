package coordinator

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"engine/gensort"
)

// mergeCluster is cluster with a plan that merges every g map outputs.
func mergeCluster(t *testing.T, maps, parts, g int) *State {
	t.Helper()
	s := NewState()
	for _, id := range []string{"a", "b", "c"} {
		must(t, s, Command{Type: CmdMemberUpsert, Member: &Member{ID: id, Cores: 2}})
	}
	p := testPlan(maps, parts)
	p.MergeGroup = g
	must(t, s, Command{Type: CmdJobSubmit, Time: t0, Job: "j", Spec: &p.Spec, Plan: p, Splits: splits(t, parts)})
	return s
}

// mergesRunning returns a job of 6 maps on 3 nodes merging in pairs: every
// map done, and each node's merge of its two outputs running.
func mergesRunning(t *testing.T) *State {
	t.Helper()
	s := mergeCluster(t, 6, 2, 2)
	applyAll(t, s, Reconcile(s, t0))
	for i := range 6 {
		must(t, s, done(s, KindMap, i))
	}
	applyAll(t, s, Reconcile(s, t0))
	return s
}

func countType(cmds []Command, typ string, kind Kind) int {
	n := 0
	for _, c := range flat(cmds) {
		if c.Type == typ && c.Kind == kind {
			n++
		}
	}
	return n
}

func TestMergesConsolidatePerNode(t *testing.T) {
	s := mergeCluster(t, 6, 2, 2)
	j := s.Jobs["j"]
	applyAll(t, s, Reconcile(s, t0))
	for i := range 6 {
		must(t, s, done(s, KindMap, i))
	}
	if j.Stage != StageMap {
		t.Fatalf("stage %s with every node holding 2 unmerged outputs, want map", j.Stage)
	}
	cmds := Reconcile(s, t0)
	if n := countType(cmds, CmdTaskAssign, KindMerge); n != 3 {
		t.Fatalf("%d merges assigned, want one per node: %+v", n, flat(cmds))
	}
	applyAll(t, s, cmds)
	for i, mt := range j.Merges {
		if mt.State != TaskRunning || len(j.MergeMaps[i]) != 2 {
			t.Fatalf("merge %d: %+v over %v", i, mt, j.MergeMaps[i])
		}
		for _, m := range j.MergeMaps[i] {
			if j.Maps[m].Node != mt.Node || int(j.Maps[m].Merge) != i+1 {
				t.Fatalf("merge %d on %s claims map %d on %s (merge %d)", i, mt.Node, m, j.Maps[m].Node, j.Maps[m].Merge)
			}
		}
	}
	// A second merge of a claimed map is refused.
	mt := j.Merges[0]
	if err := Apply(s, Command{Type: CmdTaskAssign, Time: t0, Job: "j", Kind: KindMerge, Index: 3, Node: mt.Node, Attempt: 1, Maps: j.MergeMaps[0]}); !errors.Is(err, ErrRejected) {
		t.Fatalf("a claimed map merged twice: %v", err)
	}
	for i := range j.Merges {
		must(t, s, done(s, KindMerge, i))
	}
	if j.Stage != StageReduce {
		t.Fatalf("stage %s after every merge, want reduce", j.Stage)
	}
}

// Losing a node loses the maps its finished merge consolidated, and only
// them; a merge that fails by itself releases its maps to a new merge.
func TestLostAndFailedMerges(t *testing.T) {
	s := mergesRunning(t)
	j := s.Jobs["j"]
	must(t, s, done(s, KindMerge, 0))
	dead := j.Merges[0].Node
	failing := j.Merges[1]
	must(t, s, Command{Type: CmdTaskFailed, Time: t0, Job: "j", Kind: KindMerge, Index: 1, Node: failing.Node, Attempt: 1, Error: "disk full"})
	if j.Merges[1].State != TaskDropped {
		t.Fatalf("failed merge: %+v", j.Merges[1])
	}
	for _, m := range j.MergeMaps[1] {
		if j.Maps[m].State != TaskDone || j.Maps[m].Merge != 0 {
			t.Fatalf("map %d of the failed merge: %+v, want done and unclaimed", m, j.Maps[m])
		}
	}
	must(t, s, Command{Type: CmdMemberAlive, ID: dead, Alive: false})
	cmds := Reconcile(s, t0)
	applyAll(t, s, cmds)
	for _, m := range j.MergeMaps[0] {
		if j.Maps[m].State == TaskDone {
			t.Fatalf("map %d of the dead node's merge is still done: %+v", m, j.Maps[m])
		}
	}
	if j.Merges[0].State != TaskDropped {
		t.Fatalf("the dead node's merge: %+v", j.Merges[0])
	}
	for _, m := range j.MergeMaps[2] {
		if j.Maps[m].State != TaskDone {
			t.Fatalf("map %d of a live node's merge was lost", m)
		}
	}
	// The failed merge's maps merge again, in a new merge task.
	cmds = Reconcile(s, t0)
	applyAll(t, s, cmds)
	if len(j.Merges) != 4 || j.Merges[3].Node != failing.Node {
		t.Fatalf("merges after the failure: %+v", j.Merges)
	}
}

// straggling returns a job of 3 maps on 3 nodes whose maps 0 and 1 took
// took each, from t0; map 2 still runs.
func straggling(t *testing.T, took time.Duration) *State {
	t.Helper()
	s := cluster(t, 3, 1)
	applyAll(t, s, Reconcile(s, t0))
	for i := range 2 {
		c := done(s, KindMap, i)
		c.Time = t0.Add(took)
		must(t, s, c)
	}
	return s
}

// A straggler gets a twin on another node; the first to finish wins and
// the other's report is stale.
func TestSpeculativeTwinFirstFinishWins(t *testing.T) {
	s := straggling(t, 2*time.Second)
	j := s.Jobs["j"]
	if cmds := Reconcile(s, t0.Add(2*time.Second)); countType(cmds, CmdTaskAssign, KindMap) != 0 {
		t.Fatalf("a twin for a task running as long as the median: %+v", flat(cmds))
	}
	cmds := flat(Reconcile(s, t0.Add(10*time.Second)))
	if len(cmds) != 1 || !cmds[0].Speculative || cmds[0].Index != 2 || cmds[0].Node == j.Maps[2].Node || cmds[0].Attempt != 2 {
		t.Fatalf("speculation: %+v", cmds)
	}
	applyAll(t, s, cmds)
	slow := j.Maps[2]
	if slow.Twin == nil || slow.Attempts != 2 || slow.Attempt != 1 || j.Speculative != 1 {
		t.Fatalf("task with a twin: %+v", slow)
	}
	if cmds := flat(Reconcile(s, t0.Add(20*time.Second))); len(cmds) != 0 {
		t.Fatalf("a second twin: %+v", cmds)
	}
	must(t, s, Command{Type: CmdTaskDone, Time: t0, Job: "j", Kind: KindMap, Index: 2, Node: slow.Twin.Node, Attempt: 2, TaskResult: TaskResult{Records: 10, InputSum: gensort.Sum{Lo: 3}}})
	if m := j.Maps[2]; m.State != TaskDone || m.Node != slow.Twin.Node || m.Attempt != 2 || m.Twin != nil || j.SpeculativeWins != 1 {
		t.Fatalf("after the twin won: %+v", m)
	}
	if err := Apply(s, Command{Type: CmdTaskDone, Time: t0, Job: "j", Kind: KindMap, Index: 2, Node: slow.Node, Attempt: 1}); !errors.Is(err, ErrRejected) {
		t.Fatalf("the loser's report: %v, want stale", err)
	}
	if j.Stage != StageReduce {
		t.Fatalf("stage %s", j.Stage)
	}
}

// When the primary attempt fails, its twin carries on as the task.
func TestTwinCarriesOnWhenPrimaryFails(t *testing.T) {
	s := straggling(t, time.Second)
	j := s.Jobs["j"]
	applyAll(t, s, Reconcile(s, t0.Add(time.Minute)))
	m := j.Maps[2]
	tw := *m.Twin
	must(t, s, Command{Type: CmdTaskFailed, Time: t0, Job: "j", Kind: KindMap, Index: 2, Node: m.Node, Attempt: 1, Error: "node died", NotOurFault: true})
	if m := j.Maps[2]; m.State != TaskRunning || m.Node != tw.Node || m.Attempt != tw.Attempt || m.Twin != nil {
		t.Fatalf("after the primary failed: %+v", m)
	}
	must(t, s, done(s, KindMap, 2))
	if j.Stage != StageReduce {
		t.Fatalf("stage %s", j.Stage)
	}
}

// An ended job keeps its header and report only, and survives a snapshot.
func TestEndedJobsAreCompacted(t *testing.T) {
	s := cluster(t, 4, 2)
	applyAll(t, s, Reconcile(s, t0))
	must(t, s, Command{Type: CmdJobCancel, Time: t0, Job: "j", Error: "cancelled"})
	j := s.Jobs["j"]
	if !j.Compacted || j.Maps != nil || j.Reduces != nil || j.State != JobCancelled || j.Error != "cancelled" {
		t.Fatalf("cancelled job: %+v", j)
	}
	var buf bytes.Buffer
	if _, err := encodeState(&buf, s); err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if bj := back.Jobs["j"]; !bj.Compacted || bj.State != JobCancelled || bj.Plan.MapCount != 4 {
		t.Fatalf("restored: %+v", bj)
	}
	if cmds := Reconcile(back, t0); len(cmds) != 0 {
		t.Fatalf("an ended job scheduled: %+v", cmds)
	}
}

// A damaged snapshot is refused with an error, never a panic: every
// truncation and every single flipped byte of a real one.
func TestSnapshotDamageRefused(t *testing.T) {
	s := mergesRunning(t)
	var buf bytes.Buffer
	if _, err := encodeState(&buf, s); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for n := 0; n < len(good); n++ {
		if _, err := decodeState(bytes.NewReader(good[:n])); err == nil {
			t.Fatalf("a snapshot cut to %d of %d bytes was accepted", n, len(good))
		}
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		if _, err := decodeState(bytes.NewReader(bad)); err == nil {
			t.Fatalf("a snapshot with byte %d flipped was accepted", i)
		}
	}
}

// FuzzSnapshot: any bytes either decode into a state the scheduler can run
// on, or are refused; never a panic.
func FuzzSnapshot(f *testing.F) {
	s := NewState()
	for _, id := range []string{"a", "b"} {
		s.Members[id] = &Member{ID: id, Cores: 2, Alive: true}
	}
	var buf bytes.Buffer
	encodeState(&buf, s)
	f.Add(buf.Bytes())
	f.Add(rawSnapshot(`{"index":1,"members":{},"jobs":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(bytes.NewReader(b))
		if err != nil {
			return
		}
		Reconcile(st, t0)
	})
}

// A straggling merge after the last map is given up: the reduce stage
// starts without it, its maps are read as they are, and no merge is made
// of them again.
func TestStragglingMergeGivenUp(t *testing.T) {
	s := mergesRunning(t)
	j := s.Jobs["j"]
	for i := range 2 {
		c := done(s, KindMerge, i)
		c.Time = t0.Add(2 * time.Second) // merges take 2 s
		must(t, s, c)
	}
	if cmds := flat(Reconcile(s, t0.Add(2*time.Second))); len(cmds) != 0 {
		t.Fatalf("merge 2 given up as early as the others finished: %+v", cmds)
	}
	cmds := flat(Reconcile(s, t0.Add(10*time.Second)))
	if len(cmds) != 1 || cmds[0].Type != CmdTaskFailed || !cmds[0].GiveUp || cmds[0].Index != 2 {
		t.Fatalf("straggling merge 2: %+v", cmds)
	}
	applyAll(t, s, cmds)
	if !j.MergesCut || j.Stage != StageReduce || j.Merges[2].State != TaskDropped {
		t.Fatalf("after giving merge 2 up: cut %v, stage %s, merge %+v", j.MergesCut, j.Stage, j.Merges[2])
	}
	for _, m := range j.MergeMaps[2] {
		if j.Maps[m].State != TaskDone || j.Maps[m].Merge != 0 {
			t.Fatalf("map %d of the given-up merge: %+v", m, j.Maps[m])
		}
	}
	if n := countType(Reconcile(s, t0.Add(11*time.Second)), CmdTaskAssign, KindMerge); n != 0 {
		t.Fatalf("%d merges made after merging was cut", n)
	}
	// Only a merge's task_failed gives anything up.
	if err := Apply(s, Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 9, GiveUp: true}); !errors.Is(err, ErrRejected) {
		t.Fatalf("give-up on an assignment: %v", err)
	}
}
