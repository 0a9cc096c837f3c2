package coordbench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"engine/coordinator"
)

// A 100 GB job on 20 nodes through the real Raft and coordinator: it
// reaches the commit stage and finishes compacted, the node loss re-runs
// work, stragglers get twins, and the figures add up.
func TestShortRun(t *testing.T) {
	res, err := Run(context.Background(), Config{Records: 1e9, Nodes: 20, Cores: 2, Seed: 1, Stragglers: 0.02, LoseNode: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	if res.Stage != coordinator.StageCommit || res.State != coordinator.JobSucceeded || !res.Compacted || res.Truncated {
		t.Fatalf("the job ended in stage %s as %s (compacted %v, truncated %v), want commit, succeeded, compacted", res.Stage, res.State, res.Compacted, res.Truncated)
	}
	if res.LostNode == "" || res.Reruns == 0 || res.MapReruns == 0 {
		t.Fatalf("node loss: node %q, %d re-runs, %d map re-runs", res.LostNode, res.Reruns, res.MapReruns)
	}
	if res.TwinsStarted == 0 || res.Speculative != int(res.TwinsStarted) {
		t.Fatalf("speculation: %d twins started by the bench, the job counts %d", res.TwinsStarted, res.Speculative)
	}
	if res.MergeGroup == 0 || res.MergesRun == 0 {
		t.Fatalf("merge group %d, %d merges run", res.MergeGroup, res.MergesRun)
	}
	if uint64(res.Entries) != res.IndexAdvance {
		t.Fatalf("%d entries proposed, the FSM index advanced by %d", res.Entries, res.IndexAdvance)
	}
	if res.Commands < res.Entries || res.Assigned+res.Reports > res.Commands {
		t.Fatalf("%d commands in %d entries, %d assigned + %d reports", res.Commands, res.Entries, res.Assigned, res.Reports)
	}
	for name, v := range map[string]int64{
		"entry bytes": res.EntryBytes, "raft.db bytes": res.RaftDBBytes, "peak heap": res.PeakHeapBytes, "snapshot bytes": res.SnapshotBytes,
		"snapshot encode": int64(res.SnapshotEncode), "snapshot persist": int64(res.SnapshotPersist), "reconcile max": int64(res.ReconcilePeakMax),
		"simulated time": int64(res.SimTime), "job wall": int64(res.JobWall), "first wave": int64(res.FirstWave),
	} {
		if v <= 0 {
			t.Errorf("%s is %d, want > 0", name, v)
		}
	}
	if res.AfterSnapshotBytes >= res.SnapshotBytes/10 {
		t.Errorf("snapshot of %d bytes after the job, %d at the peak: the ended job is not compacted", res.AfterSnapshotBytes, res.SnapshotBytes)
	}
	if res.PeakRunning != 40 && res.PeakRunning != 38 {
		t.Errorf("peak of %d running tasks on 20 nodes x 2 cores", res.PeakRunning)
	}
	if !strings.Contains(out.String(), "targets") {
		t.Errorf("no targets printed")
	}
}
