// Command enginectl is the engine's command-line client: it submits jobs to a
// node (or runs an embedded single node in-process when no node address is
// configured), follows their progress, and includes gensort/valsort
// compatible tools and the sort benchmark.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"engine/gensort"
)

const usage = `enginectl: the engine's command-line client

Usage:
  enginectl [--addr HOST:PORT] [--token FILE] COMMAND [flags] [args]

Commands:
  submit sort   run a GraySort-style sort job and print its report
  status        show the cluster (members, leader, Raft) and its jobs
  cluster up    start a local N-node cluster of engined processes
  cluster down  stop it (data kept)
  cancel ID     cancel a running job
  gensort       generate gensort records (the reference gensort's command line)
  valsort       validate sorted records or summaries (the reference valsort's command line)
  bench sort    benchmark the engine against GNU sort and the disk, side by side
  bench cluster benchmark a local N-node cluster against the embedded single node
  bench fio     fio against the backing directory, a go-fuse loopback and our mount
  bench s3      our S3 endpoint against versitygw: PUT and GET at 1, 16 and 64 clients
  bench edge    our edge cache against Varnish: hits of 1 KiB and 64 KiB, 304 revalidations (wrk)
  bench coordinator  the real coordinator (Raft, FSM, scheduler) through a simulated 100 TB job
  mount DIR     mount the namespace (POSIX over the burst buffer) at DIR
  bb            burst buffer staging: status, sync PATH, purge PATH, prestage PATH
  help [COMMAND [SUBCOMMAND]]  show help

The node: --addr HOST:PORT or the ENGINE_ADDR environment variable names a
running engined. Without either, "submit sort" starts an embedded single
node in this process with its data under --data (default $ENGINE_DATA, else
~/.engine). The client token the node wants: --token FILE, else the
ENGINE_TOKEN environment variable, else the token file of the local data
directory ($ENGINE_DATA/token, else ~/.engine/token).

Run "enginectl help COMMAND" for a command's flags.
`

func main() {
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	addr := os.Getenv("ENGINE_ADDR")
	tokenFile = ""
	// Global flags come before the command.
	globals := []struct {
		name, arg string
		v         *string
	}{{"addr", "HOST:PORT", &addr}, {"token", "FILE", &tokenFile}}
flags:
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		for _, g := range globals {
			if name != g.name {
				continue
			}
			switch {
			case hasVal:
				*g.v, args = val, args[1:]
			case len(args) < 2:
				fmt.Fprintf(stderr, "enginectl: --%s needs %s\n", g.name, g.arg)
				return 2
			default:
				*g.v, args = args[1], args[2:]
			}
			continue flags
		}
		fmt.Fprintf(stderr, "enginectl: unknown flag %s before the command\n\n%s", a, usage)
		return 2
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "help":
		return help(rest, stdout, stderr)
	case "submit":
		if len(rest) == 0 || rest[0] != "sort" {
			fmt.Fprintf(stderr, "enginectl: submit takes a job kind: enginectl submit sort --size=1GB\n")
			return 2
		}
		err = submitSort(rest[1:], addr, stdout, stderr)
	case "status":
		err = status(rest, addr, stdout, stderr)
	case "cluster":
		err = cluster(rest, stdout, stderr)
	case "cancel":
		err = cancel(rest, addr, stdout, stderr)
	case "mount":
		err = mount(rest, addr, stdout, stderr)
	case "bb":
		err = bbCommand(rest, addr, stdout, stderr)
	case "gensort":
		err = gensort.RunGensort(rest, stdout, stderr)
	case "valsort":
		err = gensort.RunValsort(rest, stdout, stderr)
	case "bench":
		if len(rest) > 0 && rest[0] == "cluster" {
			err = benchCluster(rest[1:], stdout, stderr)
			break
		}
		if len(rest) > 0 && rest[0] == "fio" {
			err = benchFio(rest[1:], stdout, stderr)
			break
		}
		if len(rest) > 0 && rest[0] == "s3" {
			err = benchS3(rest[1:], stdout, stderr)
			break
		}
		if len(rest) > 0 && rest[0] == "edge" {
			err = benchEdge(rest[1:], stdout, stderr)
			break
		}
		if len(rest) > 0 && rest[0] == "coordinator" {
			err = benchCoordinator(rest[1:], stdout, stderr)
			break
		}
		if len(rest) == 0 || rest[0] != "sort" {
			fmt.Fprintf(stderr, "enginectl: bench takes a benchmark name: enginectl bench sort, or enginectl bench cluster\n")
			return 2
		}
		err = benchSort(rest[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "enginectl: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "enginectl:", err)
		}
		return 2
	}
	var ce exitCode
	if errors.As(err, &ce) {
		return int(ce)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "gensort:") && !strings.HasPrefix(msg, "valsort:") {
		msg = "enginectl: " + msg
	}
	fmt.Fprintln(stderr, msg)
	return 1
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode ends the program with a code, having said why already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	key := strings.Join(args, " ")
	switch key {
	case "submit", "submit sort":
		fs := sortFlags(new(sortOptions), stdout)
		fs.Usage()
	case "status":
		fmt.Fprint(stdout, statusUsage)
	case "cluster", "cluster up", "cluster down":
		fs, _, _ := clusterFlags(stdout)
		fs.Usage()
	case "cancel":
		fmt.Fprint(stdout, cancelUsage)
	case "mount":
		fs, _ := mountFlags(stdout)
		fs.Usage()
	case "bb", "bb status", "bb sync", "bb purge", "bb prestage":
		fmt.Fprint(stdout, bbUsage)
	case "gensort":
		fmt.Fprint(stdout, gensortUsage)
	case "valsort":
		fmt.Fprint(stdout, valsortUsage)
	case "bench", "bench sort":
		benchFlags(new(benchOptions), stdout).Usage()
	case "bench cluster":
		benchClusterFlags(new(benchClusterOptions), stdout).Usage()
	case "bench fio":
		benchFio([]string{"-h"}, stdout, stdout)
	case "bench s3":
		benchS3([]string{"-h"}, stdout, stdout)
	case "bench edge":
		benchEdge([]string{"-h"}, stdout, stdout)
	case "bench coordinator":
		benchCoordinatorFlags(new(benchCoordinatorOptions), stdout).Usage()
	default:
		fmt.Fprintf(stderr, "enginectl: no help for %q\n\n%s", key, usage)
		return 2
	}
	return 0
}

const gensortUsage = `Usage: enginectl gensort [-a] [-c] [-s] [-bN] NUM_RECS FILE

Generates NUM_RECS gensort 1.5 records into FILE, byte for byte what the
reference gensort writes.
  -a     ASCII records (printable keys; lines end in \r\n)
  -bN    start at record number N (also "-b N")
  -c     print the checksum of the generated records to stderr
  -s     skewed keys
  -tN    use N goroutines to generate
FILE is written to a temporary name and renamed when complete.
`

const valsortUsage = `Usage: enginectl valsort [-o SUMFILE] [-q] [-s] FILE

Checks that FILE's records are in order, counts records and duplicate keys,
and prints the checksum (sum of per-record CRC32s), as the reference valsort.
  -o SUMFILE  also write FILE's summary to SUMFILE (for checking partitions
              separately: concatenate their summaries in order, then -s)
  -q          quiet: print nothing, exit status only
  -s          FILE is a file of concatenated summaries: check them as one
              ordered whole
  -tN         use N goroutines to validate
Exit status 0 when the records are in order.
`

// defaultDataDir is where the embedded node keeps its data.
func defaultDataDir() string {
	if d := os.Getenv("ENGINE_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "engine")
	}
	return filepath.Join(home, ".engine")
}

func init() {
	// ENGINE_CPUPROFILE=FILE writes a CPU profile of the whole command, for
	// finding where a run's time goes.
	if path := os.Getenv("ENGINE_CPUPROFILE"); path != "" {
		startProfile(path)
	}
}
