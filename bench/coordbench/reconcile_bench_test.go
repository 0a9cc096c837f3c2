package coordbench

import (
	"fmt"
	"testing"
	"time"

	"engine/coordinator"
	"engine/sortjob"
)

// BenchmarkReconcile times one scheduler round on the state of a 100 TB
// job on 200 nodes in its map stage (no Raft): every slot runs a map, and
// every node holds one finished output short of a merge group, so no
// merge is due — the round a leader runs on most ticks of the map stage.
//
//	go test -run XXX -bench Reconcile ./bench/coordbench/
func BenchmarkReconcile(b *testing.B) {
	for _, cores := range []int{2, 50} {
		b.Run(fmt.Sprintf("100TB-200x%d", cores), func(b *testing.B) {
			s, now := mapStageState(b, 1e12, 200, cores)
			b.ResetTimer()
			for b.Loop() {
				if cmds := coordinator.Reconcile(s, now); len(cmds) != 0 {
					b.Fatalf("%d commands from a full cluster", len(cmds))
				}
			}
		})
	}
}

func mapStageState(b testing.TB, records int64, nodes, cores int) (*coordinator.State, time.Time) {
	b.Helper()
	plan, err := sortjob.MakePlan(sortjob.Spec{Records: records, Memory: DefaultMemory}, sortjob.Cluster{Nodes: nodes, CoresPerNode: cores})
	if err != nil {
		b.Fatal(err)
	}
	splits, err := evenSplits(plan.Partitions)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := coordinator.NewState()
	apply := func(c coordinator.Command) {
		if err := coordinator.Apply(s, c); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("node%03d", i)
		apply(coordinator.Command{Type: coordinator.CmdMemberUpsert, Member: &coordinator.Member{ID: ids[i], Cores: cores}})
	}
	apply(coordinator.Command{Type: coordinator.CmdJobSubmit, Time: now, Job: jobID, Spec: &plan.Spec, Plan: plan, Splits: splits})
	done := (plan.MergeGroup - 1) * nodes
	for i := range done {
		node := ids[i%nodes]
		apply(coordinator.Command{Type: coordinator.CmdTaskAssign, Time: now, Job: jobID, Kind: coordinator.KindMap, Index: i, Node: node, Attempt: 1})
		apply(coordinator.Command{Type: coordinator.CmdTaskDone, Time: now, Job: jobID, Kind: coordinator.KindMap, Index: i, Node: node, Attempt: 1,
			TaskResult: coordinator.TaskResult{Records: plan.Split(i).Records, Bytes: plan.Split(i).Bytes(), Seconds: 1.3}})
	}
	for _, c := range coordinator.Reconcile(s, now) {
		apply(c)
	}
	return s, now.Add(time.Second)
}
