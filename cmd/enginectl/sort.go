package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"engine/internal/units"
	"engine/jobs"
	"engine/node"
	"engine/sortjob"
)

type sortOptions struct {
	size, input, output, memory, records, mapSplit, data, progress string
	skew, dryRun, json, skipSpace                                  bool
	partitions, maps, nodes, cores, workers                        int
}

func sortFlags(o *sortOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("submit sort", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.size, "size", "", "how much to sort: bytes with a decimal unit as GraySort counts them (1GB = 10^9 bytes, 100TB) or records (10000000rec, 10Mrec)")
	fs.StringVar(&o.input, "input", "", "sort every file in `DIR` (gensort format) instead of generating data")
	fs.StringVar(&o.output, "output", "", "keep the sorted result in `DIR` (must not exist or be empty): part-NNNNN, summary-NNNNN, _SUCCESS")
	fs.StringVar(&o.memory, "memory", "", "memory budget, e.g. 2GB (default: a quarter of RAM, at most 4GiB)")
	fs.StringVar(&o.records, "records", "binary", "generated record format: binary or ascii")
	fs.BoolVar(&o.skew, "skew", false, "generate skewed keys (gensort -s)")
	fs.IntVar(&o.partitions, "partitions", 0, "reduce partitions (output files); 0 picks about 1 GB each")
	fs.IntVar(&o.maps, "maps", 0, "exact number of map tasks for generated input; 0 lets the planner choose (excludes --map-split and --input)")
	fs.StringVar(&o.mapSplit, "map-split", "", "cap the input bytes per map task, e.g. 256MB (default: what fits the sort buffer; larger splits spill sorted runs)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and estimated time without running")
	fs.IntVar(&o.nodes, "nodes", 1, "with --dry-run: number of nodes to plan for")
	fs.IntVar(&o.cores, "cores", 0, "with --dry-run: cores per node (default: this machine's)")
	fs.StringVar(&o.data, "data", defaultDataDir(), "embedded node's data `DIR` (when no --addr/ENGINE_ADDR)")
	fs.IntVar(&o.workers, "workers", 0, "embedded node's concurrent tasks (default: GOMAXPROCS)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of text")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, lines otherwise), bar, lines, none")
	fs.BoolVar(&o.skipSpace, "skip-space-check", false, "do not refuse a job that needs more disk than statfs reports free")
	fs.Usage = func() {
		fmt.Fprintf(out, `Usage: enginectl [--addr HOST:PORT] submit sort [flags]

Runs a GraySort-style sort: generate (or read --input) → map (partition and
sort) → reduce (merge, write part-NNNNN, fsync) → validate (valsort on every
partition and on the whole, against the input's record count and checksum).
Without --addr or ENGINE_ADDR it runs on an embedded single node in this
process. Generated input is gensort records 0..N-1, so its checksum equals
"gensort -c N".

Examples:
  enginectl submit sort --size=1GB
  enginectl submit sort --size=10GB --records ascii --memory=2GB --output /data/sorted
  enginectl submit sort --input /data/in --output /data/out
  enginectl submit sort --size=100TB --nodes=200 --dry-run
  enginectl submit sort --size=10GB --maps 2000 --partitions 1000 --nodes 3 --dry-run

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

func (o *sortOptions) spec() (sortjob.Spec, error) {
	var spec sortjob.Spec
	if o.input == "" && o.size == "" {
		return spec, usageError{"submit sort needs --size (e.g. --size=1GB) or --input DIR"}
	}
	if o.input != "" && o.size != "" {
		return spec, usageError{"give --size or --input, not both: --size generates data, --input sorts existing files"}
	}
	var err error
	if o.size != "" {
		if spec.Records, err = sizeFlag(o.size); err != nil {
			return spec, err
		}
	}
	if spec.ASCII, err = recordsFlag(o.records); err != nil {
		return spec, err
	}
	spec.Skew = o.skew
	if o.input != "" {
		abs, err := filepath.Abs(o.input)
		if err != nil {
			return spec, err
		}
		spec.Input = abs
	}
	if o.output != "" {
		abs, err := filepath.Abs(o.output)
		if err != nil {
			return spec, err
		}
		spec.Output = abs
	}
	if spec.Memory, err = bytesFlag("--memory", o.memory); err != nil {
		return spec, err
	}
	if spec.MapSplit, err = bytesFlag("--map-split", o.mapSplit); err != nil {
		return spec, err
	}
	if o.partitions < 0 {
		return spec, usageError{"--partitions must be positive"}
	}
	spec.Partitions = o.partitions
	if o.maps < 0 {
		return spec, usageError{"--maps must be positive (or 0 to let the planner choose)"}
	}
	spec.Maps = o.maps
	spec.SkipSpaceCheck = o.skipSpace
	return spec, nil
}

func submitSort(args []string, addr string, stdout, stderr io.Writer) error {
	var o sortOptions
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			sortFlags(&o, stdout).Usage()
			return nil
		}
	}
	fs := sortFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.dryRun && (o.json || o.workers != 0) {
		return usageError{"--json and --workers apply to a run, not to --dry-run"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("submit sort takes no arguments (got %q); see enginectl help submit sort", fs.Args())}
	}
	spec, err := o.spec()
	if err != nil {
		return err
	}
	if o.dryRun {
		return dryRun(spec, o, addr, stdout)
	}
	if o.nodes != 1 || o.cores != 0 {
		return usageError{"--nodes and --cores plan with --dry-run; a real run uses the cluster it is given"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var client *node.Client
	if addr == "" {
		n, err := node.Open(node.Config{DataDir: o.data, API: "127.0.0.1:0", Workers: o.workers, RaftTimeout: 100 * time.Millisecond})
		if err != nil {
			return err
		}
		defer n.Close()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = n.WaitReady(rctx)
		cancel()
		if err != nil {
			return err
		}
		client = node.NewClient(n.Addr())
		client.Token = n.ClientToken()
	} else if client, err = newClient(addr); err != nil {
		return err
	}
	st, err := client.SubmitSort(ctx, spec)
	if err != nil {
		return err
	}
	mode := o.progress
	if mode == "auto" {
		mode = "lines"
		if f, ok := stderr.(*os.File); ok && node.IsTerminal(f.Fd()) {
			mode = "bar"
		}
	}
	id := st.ID
	fmt.Fprintf(stderr, "job %s: sorting %s\n", id, describe(spec))
	var w io.Writer = stderr
	if mode == "none" {
		w = io.Discard
	}
	st, err = node.Follow(ctx, client, id, w, node.FollowOptions{Terminal: mode == "bar"})
	if err != nil && ctx.Err() != nil {
		// Interrupted: cancel the job and wait until it has cleaned up.
		fmt.Fprintf(stderr, "\ninterrupted: cancelling job %s...\n", id)
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, cerr := client.Cancel(cctx, id); cerr != nil {
			return fmt.Errorf("cancel job %s: %w", id, cerr)
		}
		st, err = node.Follow(cctx, client, id, io.Discard, node.FollowOptions{})
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if st.Error != "" {
			fmt.Fprintln(stderr, st.Error)
		}
		return exitCode(130)
	}
	if err != nil {
		return err
	}
	if st.State != node.StateSucceeded {
		return errors.New(st.Error)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st.Report)
	}
	st.Report.WriteText(stdout)
	return nil
}

func describe(s sortjob.Spec) string {
	if s.Input != "" {
		return "files in " + s.Input
	}
	kind := "binary"
	if s.ASCII {
		kind = "ASCII"
	}
	if s.Skew {
		kind += " skewed"
	}
	return fmt.Sprintf("%s of generated %s records (%d)", units.Format(s.Records*sortjob.RecordSize), kind, s.Records)
}

// dryRun prints the plan. With a node address the node plans with its own
// settings and measured rate; otherwise it is planned here, with the rate
// measured on this machine (a quick calibration sort if there is none).
func dryRun(spec sortjob.Spec, o sortOptions, addr string, stdout io.Writer) error {
	cluster := sortjob.Cluster{Nodes: o.nodes, CoresPerNode: o.cores}
	if o.nodes < 1 {
		return usageError{"--nodes must be at least 1"}
	}
	if addr != "" {
		c, err := newClient(addr)
		if err != nil {
			return err
		}
		resp, err := c.Plan(context.Background(), spec, cluster)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, resp.Text)
		return nil
	}
	plan, err := sortjob.MakePlan(spec, cluster)
	if err != nil {
		return err
	}
	rate, err := sortjob.LoadRate(o.data)
	if err != nil {
		rate, err = calibrate()
		if err != nil {
			return fmt.Errorf("calibration sort: %w", err)
		}
	}
	plan.WriteText(stdout, rate)
	node.WriteSchedule(stdout, plan)
	return nil
}

// calibrate measures this machine's sort rate with a small real sort through
// the same job lifecycle a run uses (jobs.RunLocal), in a scratch directory
// of its own (the data directory may belong to a running node).
func calibrate() (sortjob.Rate, error) {
	const records = 200_000 // 20 MB
	dir, err := os.MkdirTemp("", "engine-calibrate-")
	if err != nil {
		return sortjob.Rate{}, err
	}
	defer os.RemoveAll(dir)
	if _, err := jobs.RunLocal(context.Background(), jobs.LocalConfig{DataDir: dir},
		sortjob.Spec{Records: records, Memory: 256 << 20}); err != nil {
		return sortjob.Rate{}, err
	}
	rate, err := sortjob.LoadRate(dir)
	rate.Source = "calibrated just now by a 20 MB sort; a larger real sort on this node calibrates better"
	return rate, err
}

// sizeFlag parses --size into a record count.
func sizeFlag(s string) (int64, error) {
	n, err := sortjob.ParseSize(s)
	if err != nil {
		return 0, usageError{"--size: " + err.Error()}
	}
	if n == 0 {
		return 0, usageError{"--size: nothing to sort (0 records)"}
	}
	return n, nil
}

// recordsFlag parses --records: whether records are ASCII.
func recordsFlag(s string) (bool, error) {
	switch s {
	case "binary":
		return false, nil
	case "ascii":
		return true, nil
	}
	return false, usageError{fmt.Sprintf("--records %q: use binary or ascii", s)}
}

// bytesFlag parses an optional byte-count flag; empty is 0.
func bytesFlag(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.ParseBytes(s)
	if err != nil {
		return 0, usageError{name + ": " + err.Error()}
	}
	return n, nil
}
