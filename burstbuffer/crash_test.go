package burstbuffer

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	crashSeeds    = flag.Int("crash.seeds", 0, "TestCrashHarness: how many seeds to run (default 3, 40 with ENGINE_LONG=1)")
	crashSeed     = flag.Int64("crash.seed", 0, "TestCrashHarness: run only this seed (replays a failure)")
	crashOps      = flag.Int("crash.ops", 0, "TestCrashHarness: operations per seed (default 60, 300 with ENGINE_LONG=1)")
	crashTogether = flag.Bool("crash.together", false, "TestCrashHarness: restarted nodes all rejoin before any opens (default: one by one as they open)")
	crashTruncate = flag.Bool("crash.truncate", true, "TestCrashHarness: include truncates (false turns them into fsyncs)")
	crashP        = flag.Float64("crash.p", 0, "TestCrashHarness: chance of a crash at each sync point, 0..1 (default 0.5, 1 with ENGINE_LONG=1)")
)

// TestCrashHarness runs seeded random sequences of writes, overwrites,
// fsyncs, truncates, drains and writer hand-offs against 3 Services (4+2
// stripes) on crashable file systems, crashes one node or all of them at
// sync points and restarts them from what a crash leaves, and checks every
// file on every node against a model (crash_harness_test.go):
//
//   - acknowledged bytes (an fsync or a truncate returned) read back exactly
//     after any crash, on every node;
//   - a byte written since the last acknowledgement reads as the
//     acknowledged value or as one of the unacknowledged writes' values
//     over it, never anything else; the size is between the acknowledged
//     size and the end of the furthest unacknowledged write;
//   - a writer that did not crash reads everything it wrote;
//   - with no crash, and after the writer's next fsync, every node reads
//     what the writer reads (close-to-open);
//   - after a crash that kept every byte written (as SIGKILL does), no node
//     declares a stripe lost.
//
// A failure prints the seed, the crash, the last steps and the command
// that replays it. ENGINE_LONG=1 (or -crash.seeds, -crash.ops, -crash.p)
// runs the long version.
func TestCrashHarness(t *testing.T) {
	long := os.Getenv("ENGINE_LONG") != ""
	seeds, ops, p := 3, 60, 0.5
	if long {
		seeds, ops, p = 40, 300, 1
	}
	if *crashSeeds > 0 {
		seeds = *crashSeeds
	}
	if *crashOps > 0 {
		ops = *crashOps
	}
	if *crashP > 0 {
		p = *crashP
	}
	first := int64(1)
	if *crashSeed != 0 {
		first, seeds = *crashSeed, 1
	}
	start := time.Now()
	var crashes, syncPts, acks int
	for seed := first; seed < first+int64(seeds); seed++ {
		run := newCrashRun(t, seed, ops, p, *crashTogether)
		run.noTruncate = !*crashTruncate
		run.Run()
		run.c.stopAll()
		crashes += run.crashes
		syncPts += run.syncPts
		acks += run.acks
	}
	t.Logf("%d seeds x %d operations: %d sync points, %d acknowledged fsyncs/truncates, %d crashes (one node or all), 0 lost acknowledged writes, in %v",
		seeds, ops, syncPts, acks, crashes, time.Since(start).Round(time.Millisecond))
}
