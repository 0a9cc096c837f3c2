package s3bench

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"engine/bench/internal/benchflag"
)

// Usage is the help text of "enginectl bench s3", before its flags.
const Usage = `Usage: enginectl bench s3 [flags]

Benchmarks our S3 endpoint (engined --s3, a one-node burst buffer) against
versitygw (a Go S3 gateway, posix backend) on this machine, in one
invocation, with the same objects and the same load generator (minio-go in
this process): PUT of distinct keys and GET of random keys (from objects
written first, untimed) for each object size at each number of concurrent
clients. Runs alternate between the two servers, the first rotating, so the
machine's noise hits both alike; between runs our burst buffer is drained,
the page cache synced and both servers let go idle. Every GET is checked
byte for byte. Prints ops/s, MB/s, p50/p99 latency, server CPU per op, the
load average, ours/versitygw and the target: ours ≥ 1.00× versitygw's ops/s
for PUT and GET at every size and concurrency.

engined is looked for beside this enginectl, then in PATH; versitygw in
PATH, then in ~/.cache/engine-bench/bin, else it is built there (GOBIN=DIR
go install github.com/versity/versitygw/cmd/versitygw@v1.8.0: minutes).
Both bind 127.0.0.1 and are stopped at the end, also after Ctrl-C.

Examples:
  enginectl bench s3 --duration 10s
  enginectl bench s3 --sizes 4KiB --concurrency 1,8 --targets ours --duration 2s

Flags:
`

// Flags adds the flags of "enginectl bench s3" to fs; the returned
// function builds the Config once fs is parsed. Its errors name the flag
// at fault.
func Flags(fs *flag.FlagSet) func() (Config, error) {
	duration := fs.Duration("duration", DefaultDuration, "how long each run lasts (0: until --ops operations)")
	ops := fs.Int64("ops", 0, fmt.Sprintf("at most this many operations per run (0: %d; a PUT run also stops at 8 GiB)", DefaultMaxOps))
	rounds := fs.Int("rounds", DefaultRounds, "rounds; each runs every op, size and concurrency on every target, alternating targets")
	sizes := fs.String("sizes", "64KiB,1MiB", "object sizes, comma-separated (KiB = 1024 bytes; at most 16MiB)")
	conc := fs.String("concurrency", "1,16,64", "numbers of concurrent clients, comma-separated")
	targets := fs.String("targets", strings.Join(AllTargets, ","), "targets: a comma-separated subset of ours, versitygw")
	payload := fs.String("payload", Streaming, "PUT body signing, the same for both: streaming (aws-chunked, each chunk signed: minio-go's default over http) or unsigned (UNSIGNED-PAYLOAD)")
	objects := fs.Int("objects", DefaultObjects, "objects of each size the GET runs read (written first, untimed)")
	settle := fs.Duration("settle", DefaultSettle, "least pause between runs (then up to 30s more until both servers are idle)")
	dir := fs.String("dir", "/var/tmp", "make the work directory, a new s3bench-*, in `DIR` (on the disk to measure; it needs user xattrs)")
	jsonOut := fs.String("json", "", "also write the report as JSON to `FILE`")
	versitygw := fs.String("versitygw", "", "the versitygw binary (default: in PATH, else ~/.cache/engine-bench/bin, else built there)")
	noBuild := fs.Bool("no-build", false, "skip versitygw, instead of building it, when none is found")
	engined := fs.String("engined", "", "the engined binary (default: beside this enginectl, else in PATH)")
	keep := fs.Bool("keep", false, "keep the work directory (both servers' data and logs)")
	return func() (Config, error) {
		cfg := Config{Duration: *duration, Ops: *ops, Rounds: *rounds, Objects: *objects, Settle: *settle,
			Dir: *dir, JSON: *jsonOut, Versitygw: *versitygw, NoBuild: *noBuild, Engined: *engined, Keep: *keep}
		var err error
		switch {
		case *duration < 0:
			return cfg, fmt.Errorf("--duration %v is negative", *duration)
		case *ops < 0:
			return cfg, fmt.Errorf("--ops %d is negative", *ops)
		case *duration == 0 && *ops == 0:
			return cfg, fmt.Errorf("--duration 0 needs --ops N: every run needs a time or an operation limit")
		case *duration > 0 && *duration < 100*time.Millisecond:
			return cfg, fmt.Errorf("--duration %v: give at least 100ms", *duration)
		case *rounds < 1:
			return cfg, fmt.Errorf("--rounds %d: give at least 1", *rounds)
		case *objects < 1 || *objects > 100_000:
			return cfg, fmt.Errorf("--objects %d: give 1 to 100000", *objects)
		case *settle < 0:
			return cfg, fmt.Errorf("--settle %v is negative", *settle)
		case strings.TrimSpace(*dir) == "":
			return cfg, fmt.Errorf("--dir is empty")
		}
		if cfg.Sizes, err = ParseSizes(*sizes); err != nil {
			return cfg, fmt.Errorf("--sizes: %w", err)
		}
		if cfg.Concurrency, err = ParseConcurrency(*conc); err != nil {
			return cfg, fmt.Errorf("--concurrency: %w", err)
		}
		if cfg.Targets, err = ParseTargets(*targets); err != nil {
			return cfg, fmt.Errorf("--targets: %w", err)
		}
		switch p := strings.ToLower(strings.TrimSpace(*payload)); p {
		case Streaming, Unsigned:
			cfg.Payload = p
		default:
			return cfg, fmt.Errorf("--payload %q: use %s or %s", *payload, Streaming, Unsigned)
		}
		if cfg.Settle == 0 {
			cfg.Settle = time.Millisecond // zero means the default in Config
		}
		return cfg, nil
	}
}

// ParseSizes parses comma-separated object sizes such as "64KiB,1MiB".
func ParseSizes(s string) ([]int64, error) {
	return benchflag.Sizes(s, MaxSize, [2]string{"64KiB", "1MiB"}, "larger objects are multipart uploads, not measured here")
}

// ParseConcurrency parses comma-separated client counts such as "1,16,64".
func ParseConcurrency(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q is not a number of clients", f)
		case n < 1 || n > MaxConcurrency:
			return nil, fmt.Errorf("%d: give 1 to %d clients", n, MaxConcurrency)
		case slices.Contains(out, n):
			return nil, fmt.Errorf("%d given twice", n)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no client counts in %q: give counts such as 1,16,64", s)
	}
	return out, nil
}

// ParseTargets parses a comma-separated subset of AllTargets.
func ParseTargets(s string) ([]string, error) { return benchflag.Targets(s, AllTargets) }
