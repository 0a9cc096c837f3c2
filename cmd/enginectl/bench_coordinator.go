package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"engine/bench/coordbench"
	"engine/internal/units"
)

const benchCoordinatorUsage = `Usage: enginectl bench coordinator [flags]

Drives the real coordinator through a whole sort job with simulated task
completions: a one-node Raft on this machine (coordinator.OpenRaft, a bbolt
log and file snapshots in a temporary directory, removed at the end), the
FSM and its snapshots, and the scheduler (Reconcile) every simulated tick.
The job is sortjob.MakePlan's plan for --size on --nodes x --cores; every
state change is proposed through Raft: the members join, the job is
submitted, each simulated node reports the attempts it finished in one
batch per tick (the nodes propose at once), the scheduler's batches assign
the tasks. A task's simulated run time is its bytes over --rate (±10%),
3 to 10 times longer for a share --stragglers of the attempts, so that the
coordinator starts speculative twins; the first of two twins to report wins
and the other is dropped. With --lose-node, when --lose-at of the maps are
done, the node holding the most finished merges (then maps) is declared
dead: its running attempts fail and its finished maps and merges re-run.
At the commit stage the bench measures the peak and finishes the job.

Prints commands applied and Raft entries, Raft log bytes, the peak state
(live heap over the baseline, and a snapshot's size), snapshot time,
Reconcile's time per call at the peak of running tasks, tasks assigned per
second, speculative attempts and wins, the re-runs after the node loss,
the job's simulated time and the wall time, and the issue's targets beside
them (peak state <= 256 MB, snapshot <= 2 s, Reconcile <= 10 ms per tick
with 10,000 tasks running, the whole 100 TB job's control traffic <= 10
minutes) as OK or MISSED. The targets are reported, not enforced: the
command exits 0 when the job ran through.

Examples:
  enginectl bench coordinator --size=100TB --nodes=200
  enginectl bench coordinator --size=100TB --nodes=200 --cores=50   (10,000 slots)
  enginectl bench coordinator --size=1TB --nodes=20 --max-commands=20000

Flags:
`

type benchCoordinatorOptions struct {
	size, memory, rate, dir, jsonFile, cpuProfile string
	cfg                                           coordbench.Config
}

func benchCoordinatorFlags(o *benchCoordinatorOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench coordinator", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.size, "size", "100TB", "the job's size: bytes with a decimal unit (100TB = 10^14 bytes) or records (10Mrec)")
	fs.IntVar(&o.cfg.Nodes, "nodes", 200, "simulated nodes (members)")
	fs.IntVar(&o.cfg.Cores, "cores", 2, "task slots per node (the plan's cores per node)")
	fs.StringVar(&o.memory, "memory", "4GiB", "the job's memory budget per node (the plan's)")
	fs.StringVar(&o.rate, "rate", "100MB", "a core's rate per second: a task takes its bytes over it")
	fs.Uint64Var(&o.cfg.Seed, "seed", 1, "seed of the run times, stragglers and checksums")
	fs.Float64Var(&o.cfg.Stragglers, "stragglers", 0.01, "share of attempts that take 3 to 10 times as long")
	fs.BoolVar(&o.cfg.LoseNode, "lose-node", true, "lose a node during the map stage")
	fs.Float64Var(&o.cfg.LoseAt, "lose-at", coordbench.DefaultLoseAt, "share of the maps done when the node is lost")
	fs.Int64Var(&o.cfg.MaxCommands, "max-commands", 0, "stop after the tick in which this many commands were applied (0: the whole job)")
	fs.DurationVar(&o.cfg.Tick, "tick", coordbench.DefaultTick, "simulated time between two rounds of the scheduler")
	fs.StringVar(&o.dir, "dir", "", "make the temporary Raft directory in `DIR` (default: the system's temporary directory)")
	fs.StringVar(&o.jsonFile, "json", "", "also write the result as JSON to `FILE`")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.Usage = func() {
		fmt.Fprint(out, benchCoordinatorUsage)
		fs.PrintDefaults()
	}
	return fs
}

// benchCoordinator runs "enginectl bench coordinator".
func benchCoordinator(args []string, stdout, stderr io.Writer) error {
	var o benchCoordinatorOptions
	fs := benchCoordinatorFlags(&o, stderr)
	if err := parseBench(fs, args); err != nil {
		var ue usageError
		if errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
			return err
		}
		return usageError{"bench coordinator: " + err.Error()}
	}
	cfg := o.cfg
	var err error
	if cfg.Records, err = sizeFlag(o.size); err != nil {
		return err
	}
	if cfg.Memory, err = units.ParseBytes(o.memory); err != nil || cfg.Memory <= 0 {
		return usageError{fmt.Sprintf("bench coordinator: --memory %q: give a positive byte count such as 4GiB", o.memory)}
	}
	rate, err := units.ParseBytes(o.rate)
	if err != nil || rate <= 0 {
		return usageError{fmt.Sprintf("bench coordinator: --rate %q: give a positive byte count per second such as 100MB", o.rate)}
	}
	cfg.Rate = float64(rate)
	if cfg.Nodes <= 0 || cfg.Cores <= 0 {
		return usageError{fmt.Sprintf("bench coordinator: --nodes %d and --cores %d: both must be at least 1", cfg.Nodes, cfg.Cores)}
	}
	if cfg.Stragglers < 0 || cfg.Stragglers > 1 {
		return usageError{fmt.Sprintf("bench coordinator: --stragglers %g: want a share from 0 to 1", cfg.Stragglers)}
	}
	if cfg.LoseAt <= 0 || cfg.LoseAt > 1 {
		return usageError{fmt.Sprintf("bench coordinator: --lose-at %g: want a share above 0, at most 1", cfg.LoseAt)}
	}
	if cfg.LoseNode && cfg.Nodes < 2 {
		return usageError{"bench coordinator: --lose-node needs --nodes of at least 2 (or --lose-node=false)"}
	}
	if cfg.MaxCommands < 0 || cfg.Tick <= 0 {
		return usageError{fmt.Sprintf("bench coordinator: --max-commands %d and --tick %s: want a count of 0 or more and a positive tick", cfg.MaxCommands, cfg.Tick)}
	}
	cfg.Dir, cfg.Progress = o.dir, stderr
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench coordinator: --cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench coordinator: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return runBench("bench coordinator", "the temporary Raft directory was removed", stderr, func(ctx context.Context) error {
		res, err := coordbench.Run(ctx, cfg)
		if res != nil {
			res.Print(stdout)
			if o.jsonFile != "" {
				b, _ := json.MarshalIndent(res, "", "  ")
				if werr := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); werr != nil && err == nil {
					err = fmt.Errorf("bench coordinator: --json: %w", werr)
				}
			}
		}
		return err
	})
}
