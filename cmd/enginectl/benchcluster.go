package main

import (
	"context"
	"flag"
	"io"

	"engine/bench/sortbench"
)

type benchClusterOptions struct {
	benchCommon
	nodes int
}

const benchClusterUsage = `Usage: enginectl bench cluster [flags]

Benchmarks the engine's sort on an N-node local cluster against the same sort
on the embedded single node, alternating round by round:
  cluster      started once before the rounds with
                 enginectl cluster up --nodes N --dir DIR/cluster
               (engined processes on this machine, workers per node: nproc/N),
               each round: enginectl --addr ADDR submit sort --size=SIZE --json
                             --progress none --output DIR/cluster-out
               and stopped at the end (also on an error or Ctrl-C) with
                 enginectl cluster down --dir DIR/cluster
  single node  enginectl submit sort --size=SIZE --json --progress none
                 --output DIR/single-out --data DIR/embedded
Both jobs generate gensort records 0..N-1; every output is validated here
(record count, checksum, order) and then removed; a failed run or validation
makes the command exit non-zero. Prints per round and the medians: wall
clock and MB/s, the engine's own sort rate, the cluster's shuffle bytes and
rate, re-run attempts and per-node task counts, the cluster/single ratios and
the target (cluster ≥ 0.8× the single node's wall-clock rate; reported,
never failing).

Examples:
  enginectl bench cluster --size 1GB --rounds 3
  enginectl bench cluster --size 200MB --nodes 2 --rounds 1 --json out.json

Flags:
`

func benchClusterFlags(o *benchClusterOptions, out io.Writer) *flag.FlagSet {
	fs := benchFlagSet("bench cluster", benchClusterUsage, &o.benchCommon, out)
	fs.StringVar(&o.size, "size", "1GB", "size of each sort: bytes with a decimal unit (1GB = 10^9 bytes) or records (10Mrec)")
	fs.IntVar(&o.nodes, "nodes", 3, "nodes of the local cluster")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round sorts on the cluster, then on the single node")
	fs.StringVar(&o.records, "records", "binary", "generated record format: binary or ascii")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (the cluster's data and the last round's outputs)")
	fs.StringVar(&o.enginectl, "enginectl", "", "the enginectl binary to run, with engined beside it or in PATH (default: this enginectl)")
	return fs
}

func (o *benchClusterOptions) options() (sortbench.ClusterOptions, error) {
	var opts sortbench.ClusterOptions
	var err error
	if opts.Records, opts.ASCII, err = o.input(); err != nil {
		return opts, err
	}
	if o.nodes < 1 {
		return opts, usageError{"--nodes must be at least 1"}
	}
	if o.rounds < 1 {
		return opts, usageError{"--rounds must be at least 1"}
	}
	opts.Nodes, opts.Rounds = o.nodes, o.rounds
	opts.Dir, opts.Keep, opts.DropCaches = o.dir, o.keep, o.dropCaches
	opts.JSONFile, opts.Enginectl = o.jsonFile, o.enginectl
	return opts, nil
}

func benchCluster(args []string, stdout, stderr io.Writer) error {
	var o benchClusterOptions
	if err := parseBench(benchClusterFlags(&o, stderr), args); err != nil {
		return err
	}
	opts, err := o.options()
	if err != nil {
		return err
	}
	opts.Log = stderr
	interrupted := "the cluster was stopped and the work directory removed"
	if opts.Keep {
		interrupted = "the cluster was stopped and the work directory kept (--keep)"
	}
	return runBench("bench cluster", interrupted, stderr, func(ctx context.Context) error {
		_, err := sortbench.RunCluster(ctx, opts, stdout)
		return err
	})
}
