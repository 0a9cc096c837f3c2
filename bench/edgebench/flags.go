package edgebench

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"engine/bench/internal/benchflag"
)

// Usage is the help text of "enginectl bench edge", before its flags.
const Usage = `Usage: enginectl bench edge [flags]

Benchmarks our edge cache (engined --edge, in front of an HTTP origin)
against Varnish (Debian package varnish, varnishd -s malloc,256m, a VCL with
the origin as its only backend) on this machine, in one invocation, with the
same origin, objects and load generator: wrk (Debian package wrk),
  wrk -t2 -c64 -dDURATION --latency -s SCRIPT URL
with a generated Lua script that rotates over the objects. A timed run is
judged by wrk's counts: socket errors, statuses of 400 and more, and the
bytes read per response, which must fit the scenario and match the checked
run's. After every timed run comes a checked run of --check-duration: the
same load, with a Lua response() that checks every response's status and
size (it is left out of the timed runs because it costs wrk a copy of
every body, which taxes both caches alike and hides their difference).
The origin runs in this process (127.0.0.1): --objects objects of each
size, random bytes, with a strong ETag, a Last-Modified and Cache-Control:
public, max-age=31536000, immutable; it answers If-None-Match with 304 and
counts every fetch. Scenarios: hits of each size (200 and the bytes) and
revalidations of the smallest (If-None-Match with the object's ETag: 304
from the cache, no origin fetch). Before every timed run each object is
fetched once through the cache (untimed, checked byte for byte). Runs
alternate between the two caches, the first rotating, with a --settle
pause before each.

Prints requests/s, MB/s, p50/p75/p90/p99 latency, errors, CPU time
(user + system) per request of the server (srv CPU/req: the whole process
tree, engined, or varnishd's manager and its cache process) and of wrk
(wrk CPU/req), the responses checked one by one, the origin's fetches
during the warm-up and the timed and checked runs, the load average,
ours/varnish (also for the checked runs) and the targets: ours ≥ 1.30×
Varnish's requests/s for hits of both sizes, with a p99 no worse than
Varnish's (the 304 ratio is reported, without a goal). Exits 0 when every
run succeeded, whatever the goals say; 1 when a run failed.

engined is looked for beside this enginectl, then in PATH, and run as
  engined --data WORK/edge-data --api 127.0.0.1:0 --edge 127.0.0.1:0
    --origin http://127.0.0.1:PORT --cache-dir WORK/edge-cache
    --cache-memory 256MiB
until it prints "engined: edge endpoint http://HOST:PORT". An engined
without --edge is reported as not measured; Varnish is measured anyway.
Everything binds 127.0.0.1 and is stopped at the end, also after Ctrl-C.

Examples:
  enginectl bench edge --duration 10s
  enginectl bench edge --targets varnish --duration 5s --objects 10

Flags:
`

// Flags adds the flags of "enginectl bench edge" to fs; the returned
// function builds the Config once fs is parsed. Its errors name the flag
// at fault.
func Flags(fs *flag.FlagSet) func() (Config, error) {
	duration := fs.Duration("duration", DefaultDuration, "how long each timed run lasts, whole seconds (wrk -d)")
	check := fs.Duration("check-duration", DefaultCheckDuration, "how long the checked run after each timed run lasts, whole seconds: every response's status and size checked in wrk's Lua")
	rounds := fs.Int("rounds", DefaultRounds, "rounds; each runs every scenario on every target, alternating targets")
	objects := fs.Int("objects", DefaultObjects, "objects of each size the origin serves and every run rotates over")
	sizes := fs.String("sizes", "1KiB,64KiB", "object sizes, comma-separated (KiB = 1024 bytes; at most 16MiB); the 304 runs use the smallest")
	conns := fs.Int("connections", DefaultConnections, "wrk's connections (-c)")
	threads := fs.Int("threads", DefaultThreads, "wrk's threads (-t)")
	targets := fs.String("targets", strings.Join(AllTargets, ","), "targets: a comma-separated subset of ours, varnish")
	dir := fs.String("dir", "/var/tmp", "make the work directory, a new edgebench-*, in `DIR`")
	keep := fs.Bool("keep", false, "keep the work directory (logs, the VCL, wrk's scripts and outputs)")
	engined := fs.String("engined", "", "the engined binary (default: beside this enginectl, else in PATH)")
	settle := fs.Duration("settle", DefaultSettle, "pause before every timed run")
	jsonOut := fs.String("json", "", "also write the report as JSON to `FILE`")
	return func() (Config, error) {
		cfg := Config{Duration: *duration, CheckDuration: *check, Rounds: *rounds, Objects: *objects, Connections: *conns, Threads: *threads,
			Dir: *dir, Keep: *keep, Engined: *engined, Settle: *settle, JSON: *jsonOut}
		var err error
		switch {
		case *duration < time.Second:
			return cfg, fmt.Errorf("--duration %v: give at least 1s", *duration)
		case *duration%time.Second != 0:
			return cfg, fmt.Errorf("--duration %v: give whole seconds (wrk -d takes seconds)", *duration)
		case *check < time.Second:
			return cfg, fmt.Errorf("--check-duration %v: give at least 1s", *check)
		case *check%time.Second != 0:
			return cfg, fmt.Errorf("--check-duration %v: give whole seconds (wrk -d takes seconds)", *check)
		case *rounds < 1:
			return cfg, fmt.Errorf("--rounds %d: give at least 1", *rounds)
		case *objects < 1 || *objects > MaxObjects:
			return cfg, fmt.Errorf("--objects %d: give 1 to %d", *objects, MaxObjects)
		case *threads < 1:
			return cfg, fmt.Errorf("--threads %d: give at least 1", *threads)
		case *conns < *threads || *conns > MaxConnections:
			return cfg, fmt.Errorf("--connections %d: give --threads (%d) to %d (wrk needs a connection per thread)", *conns, *threads, MaxConnections)
		case *settle < 0:
			return cfg, fmt.Errorf("--settle %v is negative", *settle)
		case strings.TrimSpace(*dir) == "":
			return cfg, fmt.Errorf("--dir is empty")
		}
		if cfg.Sizes, err = ParseSizes(*sizes); err != nil {
			return cfg, fmt.Errorf("--sizes: %w", err)
		}
		if cfg.Targets, err = ParseTargets(*targets); err != nil {
			return cfg, fmt.Errorf("--targets: %w", err)
		}
		if cfg.Settle == 0 {
			cfg.Settle = time.Millisecond // zero means the default in Config
		}
		return cfg, nil
	}
}

// ParseSizes parses comma-separated object sizes such as "1KiB,64KiB".
func ParseSizes(s string) ([]int64, error) {
	return benchflag.Sizes(s, MaxSize, [2]string{"1KiB", "64KiB"}, "")
}

// ParseTargets parses a comma-separated subset of AllTargets.
func ParseTargets(s string) ([]string, error) { return benchflag.Targets(s, AllTargets) }
