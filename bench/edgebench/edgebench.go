package edgebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
	"engine/bench/internal/hostinfo"
	"engine/bench/internal/proc"
)

// The targets, in the order a round starts from.
const (
	Ours    = "ours"    // engined --edge
	Varnish = "varnish" // the peer: varnishd -s malloc
)

// AllTargets is every target, in order.
var AllTargets = []string{Ours, Varnish}

// The kinds of scenario.
const (
	Hit        = "hit"        // GET of cached objects: 200 and the bytes
	Revalidate = "revalidate" // GET with If-None-Match: 304 from the cache
)

// GoalRatio is the project's target for hits: ours' requests per second
// at least 1.3× Varnish's, at every object size, with a p99 latency no
// worse than Varnish's.
const GoalRatio = 1.3

// Defaults.
const (
	DefaultDuration    = 10 * time.Second
	DefaultRounds      = 1
	DefaultObjects     = 100
	DefaultConnections = 64
	DefaultThreads     = 2
	DefaultSettle      = 2 * time.Second
	// DefaultCheckDuration is the checked run after every timed run.
	DefaultCheckDuration = 2 * time.Second
	// MaxSize is the largest object size.
	MaxSize = 16 << 20
	// MaxObjects bounds the objects of each size.
	MaxObjects = 100_000
	// MaxConnections bounds wrk's connections.
	MaxConnections = 10_000
	// CacheMemory is both caches' memory: Varnish's -s malloc size and
	// ours' --cache-memory (in DefaultEnginedArgs).
	CacheMemory = 256 << 20
)

// DefaultSizes are the object sizes.
var DefaultSizes = []int64{1 << 10, 64 << 10}

// EdgeEndpointLine is what engined prints (on stdout or stderr) once its
// edge listens: this, then HOST:PORT.
const EdgeEndpointLine = "engined: edge endpoint http://"

// DefaultEnginedArgs are engined's flags for the edge, after the binary.
// In Config.EnginedArgs, {work} is replaced by the work directory and
// {origin} by the origin's URL (http://127.0.0.1:PORT).
var DefaultEnginedArgs = []string{
	"--data", "{work}/edge-data",
	"--api", "127.0.0.1:0",
	"--edge", "127.0.0.1:0",
	"--origin", "{origin}",
	"--cache-dir", "{work}/edge-cache",
	"--cache-memory", "256MiB",
}

// Config configures a run. Zero fields take the defaults given.
type Config struct {
	// Dir is where Run makes its work directory (edgebench-*), removed at
	// the end unless Keep. Default /var/tmp: ours' disk cache is in it.
	Dir string
	// Engined is our server binary. Empty: "engined" beside the running
	// executable, else in PATH.
	Engined string
	// EnginedArgs are engined's flags ({work} and {origin} replaced);
	// nil: DefaultEnginedArgs.
	EnginedArgs []string
	// Varnishd and Wrk are the peer's and the load generator's binaries.
	// Empty: in PATH, else /usr/sbin/varnishd and /usr/bin/wrk.
	Varnishd, Wrk string
	// Targets selects what to measure (Ours, Varnish); nil: both.
	Targets []string
	// Sizes are the object sizes in bytes (default 1 KiB and 64 KiB); the
	// revalidation scenario uses the smallest.
	Sizes []int64
	// Objects is how many objects of each size the origin serves and
	// every run rotates over (default 100).
	Objects int
	// Duration is how long each timed run lasts, whole seconds (wrk -d;
	// default 10 s).
	Duration time.Duration
	// CheckDuration is how long the checked run after every timed run
	// lasts, whole seconds (default 2 s): the same load, with every
	// response's status and size checked in wrk's Lua, which the timed
	// runs leave out (it costs wrk a copy of every body; see Script).
	CheckDuration time.Duration
	// Threads and Connections are wrk's -t and -c (default 2 and 64).
	Threads, Connections int
	// Rounds is how many times every run is repeated (default 1); the
	// tables show medians.
	Rounds int
	// Settle is the pause before every timed run (default 2 s).
	Settle time.Duration
	// Keep keeps the work directory (logs, wrk scripts and outputs).
	Keep bool
	// JSON, if set, is a file the report is also written to, as JSON.
	JSON string
	// Out receives the report; nil: discarded.
	Out io.Writer
	// Log receives progress; nil: discarded.
	Log *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.Dir == "" {
		c.Dir = "/var/tmp"
	}
	if c.EnginedArgs == nil {
		c.EnginedArgs = DefaultEnginedArgs
	}
	if c.Targets == nil {
		c.Targets = AllTargets
	}
	if c.Sizes == nil {
		c.Sizes = DefaultSizes
	}
	if c.Objects == 0 {
		c.Objects = DefaultObjects
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.CheckDuration == 0 {
		c.CheckDuration = DefaultCheckDuration
	}
	if c.Threads == 0 {
		c.Threads = DefaultThreads
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(c.Targets) == 0:
		return errors.New("edgebench: no targets")
	case len(c.Sizes) == 0:
		return errors.New("edgebench: no object sizes")
	case c.Objects < 1 || c.Objects > MaxObjects:
		return fmt.Errorf("edgebench: Objects %d: give 1 to %d", c.Objects, MaxObjects)
	case c.Duration < time.Second || c.Duration%time.Second != 0:
		return fmt.Errorf("edgebench: Duration %v: give whole seconds, at least 1s (wrk -d takes seconds)", c.Duration)
	case c.CheckDuration < time.Second || c.CheckDuration%time.Second != 0:
		return fmt.Errorf("edgebench: CheckDuration %v: give whole seconds, at least 1s (wrk -d takes seconds)", c.CheckDuration)
	case c.Threads < 1:
		return fmt.Errorf("edgebench: Threads %d: give at least 1", c.Threads)
	case c.Connections < c.Threads || c.Connections > MaxConnections:
		return fmt.Errorf("edgebench: Connections %d: give %d (the threads) to %d (wrk needs a connection per thread)", c.Connections, c.Threads, MaxConnections)
	case c.Rounds < 1:
		return fmt.Errorf("edgebench: Rounds %d: give at least 1", c.Rounds)
	case c.Settle < 0:
		return fmt.Errorf("edgebench: Settle %v is negative", c.Settle)
	}
	for i, t := range c.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("edgebench: unknown target %q: use %s", t, strings.Join(AllTargets, ", "))
		}
		if slices.Contains(c.Targets[:i], t) {
			return fmt.Errorf("edgebench: target %q given twice", t)
		}
	}
	for i, s := range c.Sizes {
		if s < 1 || s > MaxSize {
			return fmt.Errorf("edgebench: object size %d: give 1 B to %s", s, benchfmt.Bytes(MaxSize))
		}
		if slices.Contains(c.Sizes[:i], s) {
			return fmt.Errorf("edgebench: object size %s given twice", benchfmt.Bytes(s))
		}
	}
	return nil
}

// Scenario is one kind of timed run: hits of one size, or revalidations.
type Scenario struct {
	Name string `json:"name"` // hit-1KiB, hit-64KiB, revalidate-304
	Kind string `json:"kind"` // Hit or Revalidate
	Size int64  `json:"size"` // of the objects it requests
}

// Status is the HTTP status every response of s must have.
func (s Scenario) Status() int {
	if s.Kind == Revalidate {
		return 304
	}
	return 200
}

// Bytes is the body size every response of s must have.
func (s Scenario) Bytes() int64 {
	if s.Kind == Revalidate {
		return 0
	}
	return s.Size
}

// Scenarios are the runs for the given object sizes: hits of each size,
// then revalidations of the smallest.
func Scenarios(sizes []int64) []Scenario {
	var out []Scenario
	for _, s := range sizes {
		out = append(out, Scenario{Name: "hit-" + benchfmt.SizeLabel(s), Kind: Hit, Size: s})
	}
	if len(sizes) > 0 {
		out = append(out, Scenario{Name: "revalidate-304", Kind: Revalidate, Size: slices.Min(sizes)})
	}
	return out
}

// Report is everything a run measured. It marshals to JSON.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Host    Host      `json:"host"`
	// Load is wrk's command line, the script and URL left out.
	Load            string       `json:"load"`
	DurationSeconds float64      `json:"duration_seconds"`
	CheckSeconds    float64      `json:"check_seconds"` // each checked run
	Rounds          int          `json:"rounds"`
	Objects         int          `json:"objects_per_size"`
	Sizes           []int64      `json:"sizes"`
	Origin          OriginInfo   `json:"origin"`
	Targets         []TargetInfo `json:"targets"`
	Scenarios       []Scenario   `json:"scenarios"`
	// Results are medians over the rounds, per scenario and target, in
	// the order of Scenarios, then AllTargets.
	Results []Result `json:"results"`
	// Comparisons are ours against Varnish per scenario; Goals the
	// project's targets (the hit scenarios).
	Comparisons []Comparison `json:"comparisons"`
	Goals       []Goal       `json:"goals"`
	Notes       []string     `json:"notes,omitempty"`
	Errors      []string     `json:"errors,omitempty"`
}

// Host describes the machine and the tools.
type Host struct {
	Kernel    string  `json:"kernel"`
	CPUs      int     `json:"cpus"`
	Load      float64 `json:"load"`     // 1-minute load average at the start
	LoadEnd   float64 `json:"load_end"` // and at the end
	GoVersion string  `json:"go_version"`
	Wrk       string  `json:"wrk"`
	WrkPath   string  `json:"wrk_path"`
	WorkDir   string  `json:"work_dir"`
	FSType    string  `json:"fs_type"`
	FSMount   string  `json:"fs_mount"`
}

// OriginInfo is the origin both caches fetch from.
type OriginInfo struct {
	Endpoint     string `json:"endpoint"`
	CacheControl string `json:"cache_control"`
	// Fetches counts every request it answered; NotModified the 304s
	// among them.
	Fetches     int64 `json:"fetches"`
	NotModified int64 `json:"not_modified"`
}

// TargetInfo is one cache: how it was run, or why it was not.
type TargetInfo struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint,omitempty"` // http://127.0.0.1:PORT
	Binary   string `json:"binary,omitempty"`
	Version  string `json:"version,omitempty"`
	// Command is the exact command line.
	Command string `json:"command,omitempty"`
	// Config is the cache's configuration file (Varnish's VCL), if any.
	Config  string `json:"config,omitempty"`
	LogFile string `json:"log_file,omitempty"`
	// Skipped says why it was not measured.
	Skipped string `json:"skipped,omitempty"`
}

// Result is one target's runs of one scenario: medians over the rounds
// that completed requests.
type Result struct {
	Target    string  `json:"target"`
	Scenario  string  `json:"scenario"`
	Size      int64   `json:"size"`
	ReqPerSec float64 `json:"requests_per_sec"`
	MBps      float64 `json:"mb_per_sec"` // 10^6 bytes, headers included (wrk's Transfer/sec)
	P50Us     float64 `json:"p50_us"`
	P75Us     float64 `json:"p75_us"`
	P90Us     float64 `json:"p90_us"`
	P99Us     float64 `json:"p99_us"`
	// ServerCPUPerReq is the CPU time (user + system) the target's whole
	// process tree used per request (engined; varnishd's manager and its
	// cache process), in µs; WrkCPUPerReq is wrk's.
	ServerCPUPerReq float64 `json:"server_cpu_us_per_request"`
	WrkCPUPerReq    float64 `json:"wrk_cpu_us_per_request"`
	// CheckedReqPerSec is the median requests/s of the checked runs.
	CheckedReqPerSec float64 `json:"checked_requests_per_sec"`
	// Errors, Checked, WarmFetches and Fetches are sums over the rounds.
	Errors      int64 `json:"errors"`
	Checked     int64 `json:"checked_responses"`
	WarmFetches int64 `json:"warm_origin_fetches"`
	Fetches     int64 `json:"timed_origin_fetches"`
	// Load is the median 1-minute load average at the runs' starts.
	Load   float64  `json:"load"`
	Rounds []Sample `json:"rounds"`
}

// Sample is one timed run and its warm-up.
type Sample struct {
	Round     int     `json:"round"`
	Requests  int64   `json:"requests"`
	Seconds   float64 `json:"seconds"`
	ReqPerSec float64 `json:"requests_per_sec"`
	MBps      float64 `json:"mb_per_sec"`
	// Latency as wrk gives it, in µs.
	AvgUs float64 `json:"avg_us"`
	MaxUs float64 `json:"max_us"`
	P50Us float64 `json:"p50_us"`
	P75Us float64 `json:"p75_us"`
	P90Us float64 `json:"p90_us"`
	P99Us float64 `json:"p99_us"`
	// SocketErrors are wrk's connect, read, write and timeout errors in
	// the timed and the checked run; Non2xx3xx its count of statuses ≥
	// 400 in the timed run; Checked the responses the checked run's
	// script looked at one by one, and Unexpected those with a status or
	// a size other than expected.
	SocketErrors int64 `json:"socket_errors"`
	Non2xx3xx    int64 `json:"non_2xx_3xx"`
	Checked      int64 `json:"checked_responses"`
	Unexpected   int64 `json:"unexpected"`
	// CheckedReqPerSec is the checked run's requests/s (wrk copying
	// every body into Lua).
	CheckedReqPerSec float64 `json:"checked_requests_per_sec"`
	// Errors is SocketErrors + Non2xx3xx + Unexpected, + 1 for each of:
	// the timed run's bytes per response do not fit the scenario or
	// differ from the checked run's; a run's script expected another
	// status; a run completed no request; the checked run checked none;
	// a run failed.
	Errors int64 `json:"errors"`
	// BytesPerResponse is the timed run's bytes read per response
	// completed, headers included.
	BytesPerResponse float64 `json:"bytes_per_response"`
	FirstError       string  `json:"first_error,omitempty"`
	// WarmFetches and Fetches are the origin's fetches during the
	// warm-up and during the timed and checked runs (Fetches keeps its
	// JSON name from before the checked runs).
	WarmFetches int64 `json:"warm_origin_fetches"`
	Fetches     int64 `json:"timed_origin_fetches"`
	// FetchedPaths are the objects fetched from the origin during the
	// timed and checked runs (at most 10) and how often.
	FetchedPaths map[string]int64 `json:"timed_fetched_paths,omitempty"`
	// ServerCPU is the CPU time (user + system) the target's process
	// tree used from just before wrk started until it exited, in
	// seconds (0: unknown); WrkCPU is wrk's own, from its resource usage.
	ServerCPU float64 `json:"server_cpu_seconds"`
	WrkCPU    float64 `json:"wrk_cpu_seconds"`
	// ServerCPUPerReq and WrkCPUPerReq are those over Requests, in µs.
	ServerCPUPerReq float64 `json:"server_cpu_us_per_request"`
	WrkCPUPerReq    float64 `json:"wrk_cpu_us_per_request"`
	// Load is the 1-minute load average just before the timed run.
	Load float64 `json:"load_before"`
	// Output and CheckedOutput are wrk's output files, kept with the
	// work directory.
	Output        string `json:"wrk_output,omitempty"`
	CheckedOutput string `json:"wrk_checked_output,omitempty"`
}

// Comparison is ours against Varnish for one scenario.
type Comparison struct {
	Scenario string  `json:"scenario"`
	Ours     float64 `json:"ours_requests_per_sec"`
	Peer     float64 `json:"varnish_requests_per_sec"`
	// Ratio is the median over the rounds of ours' requests/s over
	// Varnish's in the same round (0: not measured).
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"round_ratios,omitempty"`
	OursP99Us   float64   `json:"ours_p99_us"`
	PeerP99Us   float64   `json:"varnish_p99_us"`
	// OursChecked and PeerChecked are the checked runs' median
	// requests/s (wrk copying every body into Lua): no goal, reported.
	OursChecked float64 `json:"ours_checked_requests_per_sec"`
	PeerChecked float64 `json:"varnish_checked_requests_per_sec"`
	// HasGoal says whether the project has a target for the scenario
	// (the hits); without one the verdict is n/a and the ratio reported.
	HasGoal bool   `json:"has_goal"`
	Verdict string `json:"verdict"` // PASS, FAIL or n/a
	Why     string `json:"why,omitempty"`
}

// Goal is one of the project's targets and how this run did.
type Goal = benchrun.Goal

// bench is one Run's state.
type bench struct {
	*benchrun.Run // the work directory, notes and errors
	cfg           Config
	log           *slog.Logger
	wrk           string
	rep           *Report
	origin        *origin
	targets       []*target // running
	samples       map[cell][]Sample
}

// cell names one target's runs of a scenario.
type cell struct{ target, scenario string }

// Run starts the origin and the caches, runs every scenario on every
// target, stops them and prints the report to cfg.Out (and writes it to
// cfg.JSON). It returns the report whenever it got as far as starting the
// origin, also with an error (a failed run, a cache that failed to
// start), so that it can be saved. A missing wrk or varnishd is an error
// before anything starts; an engined without the edge flags is reported
// as "not measured".
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	wrk, err := findTool(cfg.Wrk, "wrk", "/usr/bin/wrk", "wrk")
	if err != nil {
		return nil, err
	}
	if slices.Contains(cfg.Targets, Varnish) {
		if cfg.Varnishd, err = findTool(cfg.Varnishd, "varnishd", "/usr/sbin/varnishd", "varnish"); err != nil {
			return nil, err
		}
	}
	run, err := benchrun.Start("edgebench", cfg.Dir, cfg.Log)
	if err != nil {
		return nil, err
	}
	b := &bench{Run: run, cfg: cfg, log: cfg.Log, wrk: wrk, samples: map[cell][]Sample{}}
	b.rep = &Report{
		Started:         time.Now(),
		Host:            host(ctx, b.Work, wrk),
		Load:            fmt.Sprintf("wrk -t%d -c%d -d%ds --latency", cfg.Threads, cfg.Connections, int(cfg.Duration/time.Second)),
		DurationSeconds: cfg.Duration.Seconds(),
		CheckSeconds:    cfg.CheckDuration.Seconds(),
		Rounds:          cfg.Rounds,
		Objects:         cfg.Objects,
		Sizes:           cfg.Sizes,
		Scenarios:       Scenarios(cfg.Sizes),
	}
	b.Ended(ctx, b.run(ctx))
	b.summarize()
	b.rep.judge()
	b.notes()
	b.rep.Host.LoadEnd = hostinfo.LoadAvg()
	b.Finish(cfg.Keep, "logs, wrk scripts and outputs")
	b.rep.Seconds = time.Since(b.rep.Started).Seconds()
	b.rep.Notes, b.rep.Errors = b.Notes, b.Errors()
	b.rep.print(cfg.Out)
	b.WriteJSON(cfg.JSON, b.rep)
	return b.rep, b.Err()
}

// run starts the origin and the targets, runs every scenario and stops
// them all.
func (b *bench) run(ctx context.Context) error {
	o, err := startOrigin(b.cfg.Sizes, b.cfg.Objects)
	if err != nil {
		return err
	}
	b.origin = o
	defer func() {
		b.rep.Origin.Fetches, b.rep.Origin.NotModified = o.fetches(), o.notModified()
		o.close()
	}()
	b.rep.Origin = OriginInfo{Endpoint: o.url(), CacheControl: CacheControl}
	b.log.Info("origin ready", "url", o.url(), "objects", b.cfg.Objects, "sizes", len(b.cfg.Sizes))
	defer b.stopAll()
	for _, name := range b.cfg.Targets {
		t, err := b.setup(ctx, name)
		if t != nil {
			b.rep.Targets = append(b.rep.Targets, t.info)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.Fail(err)
			continue
		}
		if t.info.Skipped == "" {
			b.targets = append(b.targets, t)
		}
	}
	if len(b.targets) == 0 {
		return errors.New("edgebench: no target could be started")
	}
	scripts := map[string][2]string{} // unchecked, checked
	for _, s := range b.rep.Scenarios {
		var ps [2]string
		for i, checked := range []bool{false, true} {
			if ps[i], err = writeScript(b.Work, s, o.objects(s.Size), checked); err != nil {
				return err
			}
		}
		scripts[s.Name] = ps
	}
	k := 0
	for round := 1; round <= b.cfg.Rounds; round++ {
		for _, s := range b.rep.Scenarios {
			for i := range b.targets {
				t := b.targets[(i+k+round-1)%len(b.targets)]
				smp := b.measure(ctx, t, s, scripts[s.Name], round)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c := cell{t.name, s.Name}
				b.samples[c] = append(b.samples[c], smp)
			}
			k++
		}
	}
	return nil
}

// measure warms t's cache with s's objects, lets the machine settle, runs
// wrk on t with the unchecked script (timed) and then with the checked
// one, counting the origin's fetches around each.
func (b *bench) measure(ctx context.Context, t *target, s Scenario, scripts [2]string, round int) Sample {
	smp := Sample{Round: round}
	objs := b.origin.objects(s.Size)
	f0 := b.origin.fetches()
	err := warm(ctx, t.client, t.addr, s, objs)
	smp.WarmFetches = b.origin.fetches() - f0
	if err != nil {
		if ctx.Err() == nil {
			smp.Errors, smp.FirstError = 1, "warm-up: "+err.Error()
			b.Fail(fmt.Errorf("edgebench: %s %s round %d: warm-up: %w", t.name, s.Name, round, err))
		}
		return smp
	}
	if !benchrun.Sleep(ctx, b.cfg.Settle) {
		return smp
	}
	smp.Load = hostinfo.LoadAvg()
	b.log.Info("run", "target", t.name, "scenario", s.Name, "round", round, "load", smp.Load)
	out := fmt.Sprintf("wrk-%s-%s-r%d.txt", s.Name, t.name, round)
	f1, paths := b.origin.fetches(), b.origin.perPath()
	cpu0, err0 := proc.TreeCPU(t.proc.Pid())
	spec := wrkSpec{bin: b.wrk, threads: b.cfg.Threads, conns: b.cfg.Connections,
		duration: b.cfg.Duration, script: scripts[0], url: "http://" + t.addr + "/", out: b.path(out)}
	res, err := runWrk(ctx, spec)
	cpu1, err1 := proc.TreeCPU(t.proc.Pid())
	smp.Output = out
	timed := err == nil
	if timed {
		res.fill(&smp, s, b.cfg.Connections)
		smp.CheckedOutput = strings.TrimSuffix(out, ".txt") + "-checked.txt"
		spec.duration, spec.script, spec.out = b.cfg.CheckDuration, scripts[1], b.path(smp.CheckedOutput)
		var chk WrkResult
		if chk, err = runWrk(ctx, spec); err != nil {
			err = fmt.Errorf("the checked run: %w", err)
		} else {
			chk.fillChecked(&smp, s, b.cfg.Connections)
		}
	}
	smp.Fetches = b.origin.fetches() - f1
	if smp.Fetches > 0 {
		smp.FetchedPaths = b.origin.fetchedSince(paths, 10)
	}
	if err != nil {
		if ctx.Err() == nil {
			// The timed run's own findings, if it ran, stay.
			smp.Errors++
			smp.FirstError = strings.TrimPrefix(smp.FirstError+"; "+err.Error(), "; ")
			b.Fail(fmt.Errorf("edgebench: %s %s round %d: %w", t.name, s.Name, round, err))
		}
		if !timed {
			return smp
		}
	}
	if err0 == nil && err1 == nil {
		smp.ServerCPU = (cpu1 - cpu0).Seconds()
	}
	if smp.Requests > 0 {
		smp.ServerCPUPerReq = smp.ServerCPU / float64(smp.Requests) * 1e6
		smp.WrkCPUPerReq = smp.WrkCPU / float64(smp.Requests) * 1e6
	}
	b.log.Info("done", "target", t.name, "scenario", s.Name, "req/s", fmt.Sprintf("%.0f", smp.ReqPerSec),
		"p99", benchfmt.Micros(smp.P99Us), "errors", smp.Errors, "origin fetches", smp.Fetches)
	if smp.Errors > 0 {
		b.Fail(fmt.Errorf("edgebench: %s %s round %d: %d errors; %s", t.name, s.Name, round, smp.Errors, smp.FirstError))
	}
	if !t.alive() {
		b.Fail(fmt.Errorf("edgebench: %s exited during %s: %s", t.name, s.Name, t.proc.LogTail()))
	}
	return smp
}

func (b *bench) path(name string) string { return filepath.Join(b.Work, name) }

// summarize turns the samples into Results: medians over the rounds that
// completed requests.
func (b *bench) summarize() {
	for _, s := range b.rep.Scenarios {
		for _, name := range AllTargets {
			ss := b.samples[cell{name, s.Name}]
			if len(ss) == 0 {
				continue
			}
			b.rep.Results = append(b.rep.Results, summarize(name, s, ss))
		}
	}
}

func summarize(target string, s Scenario, samples []Sample) Result {
	r := Result{Target: target, Scenario: s.Name, Size: s.Size, Rounds: samples}
	var rps, mbps, p50, p75, p90, p99, scpu, wcpu, load, crps []float64
	for _, x := range samples {
		r.Errors += x.Errors
		r.Checked += x.Checked
		if x.CheckedReqPerSec > 0 {
			crps = append(crps, x.CheckedReqPerSec)
		}
		r.WarmFetches += x.WarmFetches
		r.Fetches += x.Fetches
		load = append(load, x.Load)
		if x.Requests == 0 {
			continue
		}
		rps, mbps = append(rps, x.ReqPerSec), append(mbps, x.MBps)
		p50, p75, p90, p99 = append(p50, x.P50Us), append(p75, x.P75Us), append(p90, x.P90Us), append(p99, x.P99Us)
		scpu, wcpu = append(scpu, x.ServerCPUPerReq), append(wcpu, x.WrkCPUPerReq)
	}
	med := benchrun.Median
	r.ReqPerSec, r.MBps, r.Load = med(rps), med(mbps), med(load)
	r.P50Us, r.P75Us, r.P90Us, r.P99Us = med(p50), med(p75), med(p90), med(p99)
	r.ServerCPUPerReq, r.WrkCPUPerReq = med(scpu), med(wcpu)
	r.CheckedReqPerSec = med(crps)
	return r
}

// notes says what the figures alone do not: hits that were not hits.
func (b *bench) notes() {
	for _, r := range b.rep.Results {
		if r.Fetches > 0 {
			b.Note("%s fetched %d times from the origin during its timed %s runs: not every request was served from the cache",
				r.Target, r.Fetches, r.Scenario)
		}
	}
}
