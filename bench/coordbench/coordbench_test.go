package coordbench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"engine/coordinator"
)

// A 100 GB job on 20 nodes of 4 cores (maps of 66 MB, segments of 658 kB:
// the plan merges) through the real Raft and coordinator: it
// reaches the commit stage and finishes compacted, the node loss re-runs
// work, stragglers get twins, and the figures add up.
func TestShortRun(t *testing.T) {
	res, err := Run(context.Background(), Config{Records: 1e9, Nodes: 20, Cores: 4, Seed: 1, Stragglers: 0.02, LoseNode: true, Dir: t.TempDir()})
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
	// What is left is the job's header: its plan, split keys, report and
	// per-node figures, not its 1,600 tasks.
	if res.AfterSnapshotBytes >= res.SnapshotBytes/4 {
		t.Errorf("snapshot of %d bytes after the job, %d at the peak: the ended job is not compacted", res.AfterSnapshotBytes, res.SnapshotBytes)
	}
	// Every slot of every node holds an attempt at the peak (one node may
	// be lost by then): SlotsPerCore per core, Cores of them running.
	if slots := 20 * 4 * coordinator.SlotsPerCore; res.PeakRunning > slots || res.PeakRunning < slots-4*coordinator.SlotsPerCore {
		t.Errorf("peak of %d assigned attempts on 20 nodes x 4 cores, want %d", res.PeakRunning, slots)
	}
	if !strings.Contains(out.String(), "targets") {
		t.Errorf("no targets printed")
	}
}

// --max-commands stops a run early and still measures where it stopped.
func TestMaxCommands(t *testing.T) {
	res, err := Run(context.Background(), Config{Records: 1e9, Nodes: 20, Cores: 2, Seed: 2, MaxCommands: 300, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Commands < 300 || res.Stage != coordinator.StageMap || res.State != coordinator.JobRunning {
		t.Fatalf("truncated %v after %d commands in stage %s (%s), want a truncated run in the map stage", res.Truncated, res.Commands, res.Stage, res.State)
	}
	if uint64(res.Entries) != res.IndexAdvance || res.SnapshotBytes <= 0 || res.PeakHeapBytes <= 0 {
		t.Fatalf("entries %d, index advance %d, snapshot %d bytes, heap %d bytes", res.Entries, res.IndexAdvance, res.SnapshotBytes, res.PeakHeapBytes)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Records: 0, Nodes: 2}, "0 records"},
		{Config{Records: 1e6, Nodes: 2, Stragglers: 1.5}, "straggler probability 1.5"},
		{Config{Records: 1e6, Nodes: 1, LoseNode: true}, "at least 2 nodes, not 1"},
		{Config{Records: 1e6, Nodes: 2, MaxCommands: -1}, "max commands -1"},
		{Config{Records: 1e6, Nodes: 2, LoseAt: 2}, "share 2 of the maps"},
	} {
		_, err := Run(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "coordbench: ") {
			t.Errorf("%+v: %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}
