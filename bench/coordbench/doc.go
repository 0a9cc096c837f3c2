// Package coordbench drives the real coordinator through a whole sort job
// with simulated task completions, to measure the control plane at scale
// ("enginectl bench coordinator").
//
// What is real: a one-node hashicorp/raft opened with coordinator.OpenRaft
// (a bbolt log in raft.db and a file snapshot store in a temporary
// directory, a TCP transport on 127.0.0.1), the FSM (coordinator.NewFSM)
// and its snapshots, and the scheduler (coordinator.Reconcile), called on
// the FSM's state every simulated tick as the leader's loop does. Every
// state change is a command proposed through Raft.Propose and applied by
// the FSM.
//
// What is simulated: the nodes and the clock. Members are fake (valid
// addresses that nothing listens on). Time is a simulated clock advanced by
// Config.Tick; Command.Time is that clock. A task's run time is its bytes
// over the per-core rate (Config.Rate), times a straggler factor of 3 to 10
// with probability Config.Stragglers. Each tick, every node reports the
// attempts it finished in one CmdBatch, and the nodes propose concurrently,
// as a real cluster would; an attempt whose assignment has vanished (its
// twin won, its node was declared dead, its input was lost) is dropped
// without a report, as a real node's executor drops it. Merge tasks run on
// the node the coordinator put them on and take their maps' bytes over the
// rate. When half the maps are done (Config.LoseAt), one node is declared
// dead (CmdMemberAlive false, as the leader does when gossip loses it): the
// coordinator fails its running attempts and re-runs its finished maps and
// merges. When the job reaches the commit stage the bench measures the
// peak (heap after a GC minus the baseline before submit; a snapshot taken
// and persisted) and proposes JobFinish itself.
//
// The job is planned by sortjob.MakePlan. Until the planner sets
// Plan.MergeGroup (helper P's branch), the bench sets it with the same rule
// (mergeGroup in plan.go).
//
// Use:
//
//	res, err := coordbench.Run(ctx, coordbench.Config{Records: 1e12, Nodes: 200, Cores: 2})
//	res.Print(os.Stdout)
package coordbench
