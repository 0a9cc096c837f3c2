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

type benchOptions struct {
	size, records, memory, gnuMem, dir, only, jsonFile, enginectl string
	rounds                                                        int
	keep, dropCaches                                              bool
}

func benchFlags(o *benchOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench sort", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.size, "size", "1GB", "input size: bytes with a decimal unit (1GB = 10^9 bytes) or records (10Mrec)")
	fs.StringVar(&o.records, "records", "ascii", "gensort record format: ascii or binary (GNU sort needs ascii: it sorts lines)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every system once, in turn")
	fs.StringVar(&o.memory, "memory", "4GB", "the engine's memory budget (submit sort --memory)")
	fs.StringVar(&o.gnuMem, "gnu-mem", "4G", "GNU sort's buffer size (sort -S)")
	fs.StringVar(&o.dir, "dir", "", "work `DIR` (must not exist or be empty; default: a new directory under /var/tmp)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (input and the last round's outputs)")
	fs.BoolVar(&o.dropCaches, "drop-caches", os.Geteuid() == 0, "sync and drop the page cache before every run (needs root)")
	fs.StringVar(&o.only, "only", "engine,gnu,disk", "what to measure: a comma-separated subset of engine, gnu, disk")
	fs.StringVar(&o.jsonFile, "json", "", "also write every measurement as JSON to `FILE`")
	fs.StringVar(&o.enginectl, "enginectl", "", "the engine binary to run (default: this enginectl)")
	fs.Usage = func() {
		fmt.Fprintf(out, `Usage: enginectl bench sort [flags]

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
`)
		fs.PrintDefaults()
	}
	return fs
}

func (o *benchOptions) options() (sortbench.Options, error) {
	var opts sortbench.Options
	n, err := sizeFlag(o.size)
	if err != nil {
		return opts, err
	}
	opts.Records = n
	if opts.ASCII, err = recordsFlag(o.records); err != nil {
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
	fs := benchFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bench sort takes no arguments (got %q); see enginectl help bench sort", fs.Args())}
	}
	opts, err := o.options()
	if err != nil {
		return err
	}
	opts.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = sortbench.Run(ctx, opts, stdout)
	if ctx.Err() != nil {
		msg := "the work directory was removed"
		if opts.Keep {
			msg = "the work directory was kept (--keep)"
		}
		fmt.Fprintf(stderr, "bench sort: interrupted; %s\n", msg)
		return exitCode(130)
	}
	if err != nil && errors.Is(err, sortbench.ErrValidation) {
		// The table already names every failure; say it once more, last.
		fmt.Fprintln(stderr, "enginectl:", err)
		return exitCode(1)
	}
	return err
}
