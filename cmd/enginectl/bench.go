package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"engine/bench/sortbench"
)

// benchCommon holds the flags both bench commands have.
type benchCommon struct {
	size, records, dir, jsonFile, enginectl string
	rounds                                  int
	keep, dropCaches                        bool
}

// benchFlagSet is the flag set of a bench command (name: "bench sort")
// with the flags both commands have in the same words: --dir,
// --drop-caches and --json. Its help is usage, then the flags.
func benchFlagSet(name, usage string, c *benchCommon, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.dir, "dir", "", "work `DIR` (must not exist or be empty; default: a new directory under /var/tmp)")
	fs.BoolVar(&c.dropCaches, "drop-caches", os.Geteuid() == 0, "sync and drop the page cache before every run (needs root)")
	fs.StringVar(&c.jsonFile, "json", "", "also write every measurement as JSON to `FILE`")
	fs.Usage = func() {
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseBench parses a bench command's flags; it takes no arguments.
func parseBench(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments (got %q); see enginectl help %s", fs.Name(), fs.Args(), fs.Name())}
	}
	return nil
}

// input returns the records --size and --records ask for.
func (c *benchCommon) input() (records int64, ascii bool, err error) {
	if records, err = sizeFlag(c.size); err != nil {
		return 0, false, err
	}
	ascii, err = recordsFlag(c.records)
	return records, ascii, err
}

// runBench runs a benchmark (name: "bench sort") under a context that
// Ctrl-C and SIGTERM cancel. Interrupted, it prints "NAME: interrupted;
// INTERRUPTED" (what became of the work) and exits 130; when a run or a
// validation failed, it exits 1.
func runBench(name, interrupted string, stderr io.Writer, run func(ctx context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%s: interrupted; %s\n", name, interrupted)
		return exitCode(130)
	}
	if err != nil && errors.Is(err, sortbench.ErrValidation) {
		// The table already names every failure; say it once more, last.
		fmt.Fprintln(stderr, "enginectl:", err)
		return exitCode(1)
	}
	return err
}

type benchOptions struct {
	benchCommon
	memory, gnuMem, only string
}

const benchSortUsage = `Usage: enginectl bench sort [flags]

Benchmarks the engine's sort against GNU sort and the disk on one gensort
input, alternating between them for several rounds:
  engine        enginectl submit sort --input IN --output OUT --memory M --json
                (a subprocess, timed from start to exit; its own sort rate is
                shown too)
  GNU sort      LC_ALL=C sort -S GNU_MEM --parallel=NPROC -T TMP -o OUT IN,
                then fsync(OUT)
  disk ceiling  a copy of the input with 4 MiB writes, then fsync
Every sorted output is validated (record count, checksum, order); a failed
validation makes the command exit non-zero. Prints MB/s per round and the
medians, peak RSS, the ratios and the project's targets.

Examples:
  enginectl bench sort --size 1GB --rounds 3
  enginectl bench sort --size 10GB --memory 2GB --gnu-mem 2G --rounds 1

Flags:
`

func benchFlags(o *benchOptions, out io.Writer) *flag.FlagSet {
	fs := benchFlagSet("bench sort", benchSortUsage, &o.benchCommon, out)
	fs.StringVar(&o.size, "size", "1GB", "input size: bytes with a decimal unit (1GB = 10^9 bytes) or records (10Mrec)")
	fs.StringVar(&o.records, "records", "ascii", "gensort record format: ascii or binary (GNU sort needs ascii: it sorts lines)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every system once, in turn")
	fs.StringVar(&o.memory, "memory", "4GB", "the engine's memory budget (submit sort --memory)")
	fs.StringVar(&o.gnuMem, "gnu-mem", "4G", "GNU sort's buffer size (sort -S)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (input and the last round's outputs)")
	fs.StringVar(&o.only, "only", "engine,gnu,disk", "what to measure: a comma-separated subset of engine, gnu, disk")
	fs.StringVar(&o.enginectl, "enginectl", "", "the engine binary to run (default: this enginectl)")
	return fs
}

func (o *benchOptions) options() (sortbench.Options, error) {
	var opts sortbench.Options
	var err error
	if opts.Records, opts.ASCII, err = o.input(); err != nil {
		return opts, err
	}
	if o.rounds < 1 {
		return opts, usageError{"--rounds must be at least 1"}
	}
	opts.Rounds = o.rounds
	if opts.Memory, err = bytesFlag("--memory", o.memory); err != nil {
		return opts, err
	}
	if strings.TrimSpace(o.gnuMem) == "" {
		return opts, usageError{"--gnu-mem is empty: give a sort -S size such as 4G"}
	}
	opts.GNUMem = o.gnuMem
	for _, s := range strings.Split(o.only, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		switch s {
		case "":
		case sortbench.Engine, sortbench.GNU, sortbench.Disk:
			opts.Systems = append(opts.Systems, s)
		default:
			return opts, usageError{fmt.Sprintf("--only: unknown %q: use engine, gnu, disk", s)}
		}
	}
	if len(opts.Systems) == 0 {
		return opts, usageError{"--only: nothing to measure"}
	}
	opts.Dir, opts.Keep, opts.DropCaches = o.dir, o.keep, o.dropCaches
	opts.JSONFile, opts.Enginectl = o.jsonFile, o.enginectl
	return opts, nil
}

func benchSort(args []string, stdout, stderr io.Writer) error {
	var o benchOptions
	if err := parseBench(benchFlags(&o, stderr), args); err != nil {
		return err
	}
	opts, err := o.options()
	if err != nil {
		return err
	}
	opts.Log = stderr
	interrupted := "the work directory was removed"
	if opts.Keep {
		interrupted = "the work directory was kept (--keep)"
	}
	return runBench("bench sort", interrupted, stderr, func(ctx context.Context) error {
		_, err := sortbench.Run(ctx, opts, stdout)
		return err
	})
}
