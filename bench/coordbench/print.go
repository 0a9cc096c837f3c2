package coordbench

import (
	"fmt"
	"io"
	"time"

	"engine/internal/units"
)

// The targets for the control plane, on this machine.
const (
	TargetStateBytes   = 256_000_000
	TargetSnapshot     = 2 * time.Second
	TargetReconcile    = 10 * time.Millisecond
	TargetRunning      = 10_000 // the running tasks TargetReconcile is for
	TargetJobWall      = 10 * time.Minute
	targetJobWallBytes = 100e12 // TargetJobWall is for a 100 TB job
)

// Print writes the figures and, beside them, the targets.
func (r *Result) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "bench coordinator: %s (%d records) on %d nodes x %d cores, %s/s per core, stragglers %g, lose a node: %v, seed %d, tick %s\n",
		units.Format(r.Bytes), c.Records, c.Nodes, c.Cores, units.Format(int64(c.Rate)), c.Stragglers, c.LoseNode, c.Seed, c.Tick)
	fmt.Fprintf(w, "  plan               %d maps, %d partitions, merge group %d; a task takes %d bytes in memory\n", r.Maps, r.Partitions, r.MergeGroup, r.TaskSize)
	if r.Truncated {
		fmt.Fprintf(w, "  TRUNCATED          stopped after %d commands (--max-commands) in stage %s: the peak figures are where it stopped\n", r.Commands, r.Stage)
	}
	fmt.Fprintf(w, "  commands applied   %d in %d Raft entries (%d rejected as stale); FSM index advanced by %d\n", r.Commands, r.Entries, r.Rejected, r.IndexAdvance)
	fmt.Fprintf(w, "  tasks              %d assigned (%d merges, %d speculative twins), %d reports applied, %d finished attempts dropped (assignment gone)\n",
		r.Assigned, r.MergesRun, r.TwinsStarted, r.Reports, r.Dropped)
	fmt.Fprintf(w, "  raft log           %s proposed (%s per entry); raft.db %s at the end\n",
		units.Format(r.EntryBytes), units.Format(r.EntryBytes/max(r.Entries, 1)), units.Format(r.RaftDBBytes))
	fmt.Fprintf(w, "  peak state         %s live heap over the baseline; snapshot %s (encode %s, persist %s)\n",
		units.Format(r.PeakHeapBytes), units.Format(r.SnapshotBytes), round(r.SnapshotEncode), round(r.SnapshotPersist))
	fmt.Fprintf(w, "  raft snapshots     %d taken by raft during the run, largest %s, slowest %s; FSM.LastSnapshot before the peak: %s in %s at index %d\n",
		r.AutoSnapshots, units.Format(r.AutoSnapshotBytes), round(r.AutoSnapshotMax), units.Format(r.LastSnapshot.Bytes), round(r.LastSnapshot.Took), r.LastSnapshot.Index)
	fmt.Fprintf(w, "  after the job      state %s, compacted %v: %s heap over the baseline, snapshot %s\n",
		r.State, r.Compacted, units.Format(r.AfterHeapBytes), units.Format(r.AfterSnapshotBytes))
	executing := min(r.PeakRunning, c.Nodes*c.Cores)
	fmt.Fprintf(w, "  reconcile          %d calls; p50 %s, max %s; with %d attempts assigned at the peak (%d of them running, Cores per node, the others queued behind them) (%d calls at 90%% of it or more): p50 %s, p99 %s, max %s\n",
		r.ReconcileCalls, round(r.ReconcileP50), round(r.ReconcileMax), r.PeakRunning, executing, r.PeakCalls, round(r.ReconcilePeakP50), round(r.ReconcilePeakP99), round(r.ReconcilePeakMax))
	fmt.Fprintf(w, "  slowest reconcile  %s at simulated %s, %d running, returned %d commands\n",
		round(r.ReconcileMax), round(r.SlowestAt), r.SlowestRunning, r.SlowestCommands)
	fmt.Fprintf(w, "  assignment         %.0f tasks/s over the job's wall time; first wave of %d tasks computed, proposed and applied in %s\n",
		r.AssignPerSec, r.FirstWave, round(r.FirstWaveTook))
	fmt.Fprintf(w, "  speculation        %d speculative attempts, %d won\n", r.Speculative, r.SpeculativeWins)
	if r.LostNode != "" {
		fmt.Fprintf(w, "  node loss          %s: %d running attempts, %d finished maps (%d of them in its %d finished merges); %d re-runs after it (%d map re-assignments)\n",
			r.LostNode, r.LostRunning, r.LostMaps, r.LostMerged, r.LostMerges, r.Reruns, r.MapReruns)
	}
	fmt.Fprintf(w, "  wall time split    nodes' reports %s, Reconcile %s, proposing its batches %s, the rest (simulation, GC) %s; the bench's own encoding and measuring %s (left out of the job's wall time)\n",
		round(r.ReportWall), round(r.ReconcileTotal), round(r.AssignWall), round(r.JobWall+r.Overhead-r.ReportWall-r.ReconcileTotal-r.AssignWall), round(r.Overhead))
	fmt.Fprintf(w, "  time               simulated job %s (last map done at %s, reduce stage from %s, commit from %s); wall: job's control traffic %s, whole run %s\n",
		round(r.SimTime), round(r.SimMapsDone), round(r.SimReduce), round(r.SimCommit), round(r.JobWall), round(r.Wall))
	fmt.Fprintln(w, "targets (issue 15, on this machine):")
	fmt.Fprintf(w, "  peak state         %-12s target <= %-8s %s (snapshot: %s)\n", units.Format(r.PeakHeapBytes), units.Format(TargetStateBytes),
		verdict(r.PeakHeapBytes <= TargetStateBytes), verdict(r.SnapshotBytes <= TargetStateBytes))
	snap := r.SnapshotEncode + r.SnapshotPersist
	fmt.Fprintf(w, "  snapshot           %-12s target <= %-8s %s\n", round(snap), TargetSnapshot, verdict(snap <= TargetSnapshot))
	rec := "not measured (fewer than 10,000 tasks ran at once; run --cores=50 on 200 nodes)"
	if executing >= TargetRunning {
		rec = verdict(r.ReconcilePeakMax <= TargetReconcile)
	}
	fmt.Fprintf(w, "  reconcile/tick     %-12s target <= %-8s %s (max over %d calls at %d assigned or more, %d running; p50 %s, p99 %s)\n",
		round(r.ReconcilePeakMax), TargetReconcile, rec, r.PeakCalls, r.PeakRunning*9/10, executing, round(r.ReconcilePeakP50), round(r.ReconcilePeakP99))
	job := "not measured (not a whole 100 TB job)"
	if !r.Truncated && r.Bytes >= targetJobWallBytes {
		job = verdict(r.JobWall <= TargetJobWall)
	}
	fmt.Fprintf(w, "  100 TB job wall    %-12s target <= %-8s %s\n", round(r.JobWall), TargetJobWall, job)
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "MISSED"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond / 10)
}
