package s3bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
	"engine/bench/internal/proc"
)

// The targets, in the order a round starts from.
const (
	Ours      = "ours"      // engined --s3 over the burst buffer
	Versitygw = "versitygw" // the peer: versitygw's posix backend
)

// AllTargets is every target, in order.
var AllTargets = []string{Ours, Versitygw}

// The operations.
const (
	Put = "PUT"
	Get = "GET"
)

// AllOps is every operation, in the order a size runs them.
var AllOps = []string{Put, Get}

// Payload signing modes of a PUT (the same for both targets).
const (
	// Streaming is minio-go's default over plain http: the body is sent
	// in aws-chunked framing, every 64 KiB chunk signed (SHA-256 and
	// HMAC on the client, the same checks on the server).
	Streaming = "streaming"
	// Unsigned sends the body as is, with X-Amz-Content-Sha256:
	// UNSIGNED-PAYLOAD (PutObjectOptions.DisableContentSha256).
	Unsigned = "unsigned"
)

// payloadHeader is the X-Amz-Content-Sha256 a mode sends.
var payloadHeader = map[string]string{
	Streaming: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
	Unsigned:  "UNSIGNED-PAYLOAD",
}

// GoalRatio is the project's target (issue 5): ours' operations per
// second at least the peer's, for PUT and GET at every object size and
// concurrency.
const GoalRatio = 1.0

// The peer: the only versitygw release on the Go module proxy.
const (
	VersitygwModule  = "github.com/versity/versitygw"
	VersitygwPackage = VersitygwModule + "/cmd/versitygw"
	VersitygwVersion = "v1.8.0"
)

// The credentials and bucket both servers get.
const (
	accessKey = "S3BENCHACCESSKEY"
	secretKey = "s3bench+Secret/Key0123456789abcdefABCDEF"
	bucket    = "s3bench"
	region    = "us-east-1"
)

// Defaults.
const (
	DefaultDuration = 10 * time.Second
	DefaultRounds   = 1
	DefaultObjects  = 256
	DefaultSettle   = 2 * time.Second
	// DefaultMaxOps bounds every run's operations, whatever its time.
	DefaultMaxOps = 1_000_000
	// maxPutBytes bounds the bytes one PUT run writes (it is deleted
	// after the run), so a fast target cannot fill the disk.
	maxPutBytes = 8 << 30
	// opsOnlyLimit bounds a run given Ops but no Duration.
	opsOnlyLimit = 10 * time.Minute
	// MaxSize is the largest object size: minio-go PUTs larger objects
	// as multipart uploads, which this benchmark does not measure.
	MaxSize = 16 << 20
	// MaxConcurrency bounds the clients of one run.
	MaxConcurrency = 1024
)

// DefaultSizes and DefaultConcurrency are issue 5's.
var (
	DefaultSizes       = []int64{64 << 10, 1 << 20}
	DefaultConcurrency = []int{1, 16, 64}
)

// Config configures a run. Zero fields take the defaults given.
type Config struct {
	// Dir is where Run makes its work directory (s3bench-*), removed at
	// the end unless Keep. Default /var/tmp: on the disk, not tmpfs. It
	// must support user xattrs (both servers keep metadata in them).
	Dir string
	// Engined is our server binary. Empty: "engined" beside the running
	// executable, else in PATH.
	Engined string
	// EnginedArgs are more flags for engined, such as "--flash-size",
	// "8GiB".
	EnginedArgs []string
	// Versitygw is the peer's binary. Empty: "versitygw" in PATH, else
	// in CacheDir/bin, else built there with go install (unless NoBuild).
	Versitygw string
	// CacheDir is where a built versitygw is kept (in its bin/). Empty:
	// $XDG_CACHE_HOME/engine-bench or $HOME/.cache/engine-bench.
	CacheDir string
	// NoBuild skips the peer, with a note, when no binary is found,
	// instead of building one (which takes minutes).
	NoBuild bool
	// Targets selects what to measure (Ours, Versitygw); nil: both.
	Targets []string
	// Sizes are the object sizes in bytes (default 64 KiB and 1 MiB).
	Sizes []int64
	// Concurrency are the numbers of concurrent clients (default 1, 16
	// and 64).
	Concurrency []int
	// Duration is how long each run lasts (default 10 s, unless Ops is
	// given; then a run ends after Ops operations, or 10 minutes).
	Duration time.Duration
	// Ops bounds the operations of each run (default 1,000,000); a PUT
	// run also stops after 8 GiB.
	Ops int64
	// Rounds is how many times every run is repeated (default 1); the
	// tables show medians.
	Rounds int
	// Objects is how many objects of each size the GET runs read from
	// (default 256), written before the first run and not timed.
	Objects int
	// Payload is how PUT bodies are signed: Streaming (default,
	// minio-go's default over http) or Unsigned.
	Payload string
	// Settle is the least pause between runs (default 2 s); after it
	// the bench also waits, up to 30 s, for both servers to go idle.
	Settle time.Duration
	// Keep keeps the work directory (the servers' data and logs).
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
	if c.Targets == nil {
		c.Targets = AllTargets
	}
	if c.Sizes == nil {
		c.Sizes = DefaultSizes
	}
	if c.Concurrency == nil {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = DefaultDuration
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Objects == 0 {
		c.Objects = DefaultObjects
	}
	if c.Payload == "" {
		c.Payload = Streaming
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
		return errors.New("s3bench: no targets")
	case len(c.Sizes) == 0:
		return errors.New("s3bench: no object sizes")
	case len(c.Concurrency) == 0:
		return errors.New("s3bench: no concurrency")
	case c.Duration < 0:
		return fmt.Errorf("s3bench: Duration %v is negative", c.Duration)
	case c.Ops < 0:
		return fmt.Errorf("s3bench: Ops %d is negative", c.Ops)
	case c.Rounds < 1:
		return fmt.Errorf("s3bench: Rounds %d: give at least 1", c.Rounds)
	case c.Objects < 1 || c.Objects > 100_000:
		return fmt.Errorf("s3bench: Objects %d: give 1 to 100000", c.Objects)
	case c.Settle < 0:
		return fmt.Errorf("s3bench: Settle %v is negative", c.Settle)
	}
	if _, ok := payloadHeader[c.Payload]; !ok {
		return fmt.Errorf("s3bench: Payload %q: use %s or %s", c.Payload, Streaming, Unsigned)
	}
	for i, t := range c.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("s3bench: unknown target %q: use %s", t, strings.Join(AllTargets, ", "))
		}
		if slices.Contains(c.Targets[:i], t) {
			return fmt.Errorf("s3bench: target %q given twice", t)
		}
	}
	for i, s := range c.Sizes {
		if s < 1 || s > MaxSize {
			return fmt.Errorf("s3bench: object size %d: give 1 B to %s (larger objects are multipart uploads)", s, benchfmt.Bytes(MaxSize))
		}
		if slices.Contains(c.Sizes[:i], s) {
			return fmt.Errorf("s3bench: object size %s given twice", benchfmt.Bytes(s))
		}
	}
	for i, n := range c.Concurrency {
		if n < 1 || n > MaxConcurrency {
			return fmt.Errorf("s3bench: concurrency %d: give 1 to %d clients", n, MaxConcurrency)
		}
		if slices.Contains(c.Concurrency[:i], n) {
			return fmt.Errorf("s3bench: concurrency %d given twice", n)
		}
	}
	return nil
}

// maxOps is the bound on one run's operations.
func (c *Config) maxOps() int64 {
	if c.Ops > 0 {
		return c.Ops
	}
	return DefaultMaxOps
}

// runLimit is how long one run may last.
func (c *Config) runLimit() time.Duration {
	if c.Duration > 0 {
		return c.Duration
	}
	return opsOnlyLimit
}

// Report is everything a run measured. It marshals to JSON.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Host    Host      `json:"host"`
	// DurationSeconds is each run's time limit; MaxOps its operation
	// limit; MaxPutBytes the bytes a PUT run may write.
	DurationSeconds float64 `json:"duration_seconds"`
	MaxOps          int64   `json:"max_ops"`
	MaxPutBytes     int64   `json:"max_put_bytes"`
	Rounds          int     `json:"rounds"`
	Objects         int     `json:"get_objects_per_size"`
	Sizes           []int64 `json:"sizes"`
	Concurrency     []int   `json:"concurrency"`
	// Payload is the PUT signing mode and PayloadHeader the
	// X-Amz-Content-Sha256 it sends.
	Payload       string       `json:"payload"`
	PayloadHeader string       `json:"payload_header"`
	Client        string       `json:"client"`
	Targets       []TargetInfo `json:"targets"`
	// Results are medians over the rounds, per target, op, size and
	// concurrency, in the order of Sizes, AllOps, Concurrency, Targets.
	Results []Result `json:"results"`
	// Comparisons are ours against the peer, per op, size and
	// concurrency; Goals the project's target for each.
	Comparisons []Comparison `json:"comparisons"`
	Goals       []Goal       `json:"goals"`
	Notes       []string     `json:"notes,omitempty"`
	Errors      []string     `json:"errors,omitempty"`
}

// Host describes the machine and the file system of the work directory.
type Host struct {
	Kernel    string  `json:"kernel"`
	CPUs      int     `json:"cpus"`
	Load      float64 `json:"load"`     // 1-minute load average at the start
	LoadEnd   float64 `json:"load_end"` // and at the end
	GoVersion string  `json:"go_version"`
	MinioGo   string  `json:"minio_go"`
	WorkDir   string  `json:"work_dir"`
	FSType    string  `json:"fs_type"`
	FSDevice  string  `json:"fs_device"`
	FSMount   string  `json:"fs_mount"`
}

// TargetInfo is one server: how it was run, or why it was skipped.
type TargetInfo struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint,omitempty"` // http://127.0.0.1:PORT
	Binary   string `json:"binary,omitempty"`
	Version  string `json:"version,omitempty"`
	// Command is the exact command line, environment included.
	Command string `json:"command,omitempty"`
	// Data is the directory its buckets are in.
	Data string `json:"data,omitempty"`
	// Durability says when a PUT's bytes are on disk.
	Durability string `json:"durability,omitempty"`
	LogFile    string `json:"log_file,omitempty"`
	Skipped    string `json:"skipped,omitempty"`
}

// Result is one target's runs of one op, size and concurrency: medians
// over the rounds that completed operations.
type Result struct {
	Target      string  `json:"target"`
	Op          string  `json:"op"`
	Size        int64   `json:"size"`
	Concurrency int     `json:"concurrency"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	MBps        float64 `json:"mb_per_sec"` // 10^6 bytes
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// ServerCPUPerOp is the CPU time (user + system) of the server's
	// process tree per operation, in µs.
	ServerCPUPerOp float64 `json:"server_cpu_us_per_op"`
	// ClientCPUPerOp is the load generator's (this process') CPU per
	// operation, in µs.
	ClientCPUPerOp float64 `json:"client_cpu_us_per_op"`
	// Errors is the sum over the rounds.
	Errors int64 `json:"errors"`
	// Load is the median 1-minute load average at the runs' starts.
	Load   float64  `json:"load"`
	Rounds []Sample `json:"rounds"`
}

// Sample is one run.
type Sample struct {
	Round          int     `json:"round"`
	Ops            int64   `json:"ops"` // completed without error
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	Bytes          int64   `json:"bytes"`
	Seconds        float64 `json:"seconds"`
	OpsPerSec      float64 `json:"ops_per_sec"`
	MBps           float64 `json:"mb_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	ServerCPU      float64 `json:"server_cpu_seconds"`
	ClientCPU      float64 `json:"client_cpu_seconds"`
	ServerCPUPerOp float64 `json:"server_cpu_us_per_op"`
	ClientCPUPerOp float64 `json:"client_cpu_us_per_op"`
	// Load is the 1-minute load average just before the run.
	Load float64 `json:"load_before"`
	// Settle says how the machine was let settle before the run.
	Settle string `json:"settle,omitempty"`
	// Stop is why the run ended: "time", "ops", "bytes", "errors" or
	// "interrupted".
	Stop string `json:"stop"`
}

// Comparison is ours against the peer for one op, size and concurrency.
type Comparison struct {
	Op          string  `json:"op"`
	Size        int64   `json:"size"`
	Concurrency int     `json:"concurrency"`
	Ours        float64 `json:"ours_ops_per_sec"`
	Peer        float64 `json:"peer_ops_per_sec"`
	// Ratio is the median over the rounds of ours' ops/s over the
	// peer's in the same round (0: not measured).
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"round_ratios,omitempty"`
	Verdict     string    `json:"verdict"` // PASS, FAIL or n/a
	Why         string    `json:"why,omitempty"`
}

// Goal is one of the project's targets and how this run did.
type Goal = benchrun.Goal

// bench is one Run's state.
type bench struct {
	*benchrun.Run // the work directory, notes and errors
	cfg           Config
	log           *slog.Logger
	rep           *Report
	targets       []*target // running
	samples       map[cell][]Sample
}

// cell names one target's runs of an op, size and concurrency.
type cell struct {
	target, op string
	size       int64
	conc       int
}

// Run starts the servers, runs every op, size and concurrency on every
// target, stops the servers and prints the report to cfg.Out (and writes
// it to cfg.JSON). It returns the report whenever it got as far as
// starting the servers, also with an error (a run with errors, a server
// that failed), so that it can be saved.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	run, err := benchrun.Start("s3bench", cfg.Dir, cfg.Log)
	if err != nil {
		return nil, err
	}
	b := &bench{Run: run, cfg: cfg, log: cfg.Log, samples: map[cell][]Sample{}}
	h := host(b.Work)
	b.rep = &Report{
		Started:         time.Now(),
		Host:            h,
		DurationSeconds: cfg.Duration.Seconds(),
		MaxOps:          cfg.maxOps(),
		MaxPutBytes:     b.putBytesLimit(),
		Rounds:          cfg.Rounds,
		Objects:         cfg.Objects,
		Sizes:           cfg.Sizes,
		Concurrency:     cfg.Concurrency,
		Payload:         cfg.Payload,
		PayloadHeader:   payloadHeader[cfg.Payload],
		Client: fmt.Sprintf("minio-go %s in this process: one client and one http.Transport per target (MaxIdleConnsPerHost %d), "+
			"path-style requests, region %s, no retries (MaxRetries 1)", h.MinioGo, idleConns(cfg.Concurrency), region),
	}
	if t := b.rep.Host.FSType; t == "tmpfs" || t == "ramfs" {
		b.Note("the work directory %s is on %s, not a disk: give Config.Dir on the real disk", b.Work, t)
	}
	b.Ended(ctx, b.run(ctx))
	if len(b.samples) > 0 && slices.ContainsFunc(b.rep.Targets, func(t TargetInfo) bool { return t.Name == Versitygw && t.Skipped == "" }) {
		b.Note("versitygw does not fsync: its PUT runs end with their bytes in the page cache, written back by the sync(2) " +
			"between runs, untimed; ours' PUT runs include their fsyncs (flash stores, object file, directory)")
	}
	b.summarize()
	b.judge()
	b.rep.Host.LoadEnd = loadavg()
	b.Finish(cfg.Keep, "")
	b.rep.Seconds = time.Since(b.rep.Started).Seconds()
	b.rep.Notes, b.rep.Errors = b.Notes, b.Errors()
	b.rep.print(cfg.Out)
	b.WriteJSON(cfg.JSON, b.rep)
	return b.rep, b.Err()
}

// putBytesLimit is the most one PUT run writes: 8 GiB, or a quarter of
// the free space of the work directory if that is less.
func (b *bench) putBytesLimit() int64 {
	limit := int64(maxPutBytes)
	if free := freeBytes(b.Work); free > 0 && free/4 < limit {
		limit = max(free/4, 1<<20)
	}
	return limit
}

// run sets the targets up, fills them, runs every cell and stops them.
func (b *bench) run(ctx context.Context) error {
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
		if t != nil && t.info.Skipped == "" {
			b.targets = append(b.targets, t)
		}
	}
	if len(b.targets) == 0 {
		return errors.New("s3bench: no target could be started")
	}
	pays := map[int64]*payload{}
	for _, size := range b.cfg.Sizes {
		pays[size] = newPayload(size)
	}
	for _, t := range b.targets {
		for _, size := range b.cfg.Sizes {
			b.log.Info("filling", "target", t.name, "objects", b.cfg.Objects, "size", benchfmt.Bytes(size))
			if err := fill(ctx, t.client, pays[size], b.cfg.Objects, b.cfg.Payload); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("s3bench: %s: writing the %d %s objects the GET runs read: %w", t.name, b.cfg.Objects, benchfmt.Bytes(size), err)
			}
		}
	}
	k := 0
	for round := 1; round <= b.cfg.Rounds; round++ {
		for _, size := range b.cfg.Sizes {
			for _, op := range AllOps {
				for _, conc := range b.cfg.Concurrency {
					for i := range b.targets {
						t := b.targets[(i+k+round-1)%len(b.targets)]
						s := b.measure(ctx, t, op, pays[size], conc, round)
						if ctx.Err() != nil {
							return ctx.Err()
						}
						c := cell{t.name, op, size, conc}
						b.samples[c] = append(b.samples[c], s)
					}
					k++
				}
			}
		}
	}
	return nil
}

// measure runs one op, size and concurrency on t: it lets the machine
// settle, runs the load and, after a PUT, deletes what it wrote.
func (b *bench) measure(ctx context.Context, t *target, op string, p *payload, conc, round int) Sample {
	settle := b.settle(ctx)
	load := loadavg()
	spec := loadSpec{
		op: op, pay: p, conc: conc, duration: b.cfg.runLimit(), maxOps: b.cfg.maxOps(),
		objects: b.cfg.Objects, payload: b.cfg.Payload,
		prefix: fmt.Sprintf("put/r%d-%s-c%d", round, benchfmt.SizeLabel(p.size), conc),
		seed:   uint64(round)<<32 | uint64(conc),
	}
	if n := max(1, b.rep.MaxPutBytes/p.size); op == Put && n < spec.maxOps {
		spec.maxOps, spec.byBytes = n, true
	}
	b.log.Info("run", "target", t.name, "op", op, "size", benchfmt.Bytes(p.size), "clients", conc, "round", round, "load", load)
	cpu0, self0 := serverCPU(t), proc.SelfCPU()
	s, attempts := runLoad(ctx, t.client, spec)
	cpu1, self1 := serverCPU(t), proc.SelfCPU()
	s.Round, s.Load, s.Settle = round, load, settle
	if cpu0 >= 0 && cpu1 >= 0 {
		s.ServerCPU = cpu1 - cpu0
	}
	s.ClientCPU = (self1 - self0).Seconds()
	if s.Ops > 0 {
		s.ServerCPUPerOp = s.ServerCPU / float64(s.Ops) * 1e6
		s.ClientCPUPerOp = s.ClientCPU / float64(s.Ops) * 1e6
	}
	b.log.Info("done", "target", t.name, "op", op, "size", benchfmt.Bytes(p.size), "clients", conc,
		"ops/s", fmt.Sprintf("%.1f", s.OpsPerSec), "MB/s", fmt.Sprintf("%.1f", s.MBps), "errors", s.Errors, "stop", s.Stop)
	if s.Errors > 0 && ctx.Err() == nil {
		b.Fail(fmt.Errorf("s3bench: %s %s %s ×%d round %d: %d errors; first: %s", t.name, op, benchfmt.Bytes(p.size), conc, round, s.Errors, s.FirstError))
	}
	if !t.alive() && ctx.Err() == nil {
		b.Fail(fmt.Errorf("s3bench: %s exited during %s %s ×%d: %s", t.name, op, benchfmt.Bytes(p.size), conc, t.proc.LogTail()))
	}
	if op == Put && ctx.Err() == nil {
		if err := deleteKeys(ctx, t.client, spec.prefix, attempts); err != nil && ctx.Err() == nil {
			b.Fail(fmt.Errorf("s3bench: %s: deleting the objects of %s %s ×%d: %w", t.name, op, benchfmt.Bytes(p.size), conc, err))
		}
	}
	return s
}

// summarize turns the samples into Results: medians over the rounds
// that completed operations.
func (b *bench) summarize() {
	for _, size := range b.cfg.Sizes {
		for _, op := range AllOps {
			for _, conc := range b.cfg.Concurrency {
				for _, name := range b.cfg.Targets {
					ss := b.samples[cell{name, op, size, conc}]
					if len(ss) == 0 {
						continue
					}
					b.rep.Results = append(b.rep.Results, summarize(name, op, size, conc, ss))
				}
			}
		}
	}
}

func summarize(target, op string, size int64, conc int, samples []Sample) Result {
	r := Result{Target: target, Op: op, Size: size, Concurrency: conc, Rounds: samples}
	var ops, mbps, p50, p99, scpu, ccpu, load []float64
	for _, s := range samples {
		r.Errors += s.Errors
		load = append(load, s.Load)
		if s.Ops == 0 {
			continue
		}
		ops, mbps = append(ops, s.OpsPerSec), append(mbps, s.MBps)
		p50, p99 = append(p50, s.P50Ms), append(p99, s.P99Ms)
		scpu, ccpu = append(scpu, s.ServerCPUPerOp), append(ccpu, s.ClientCPUPerOp)
	}
	med := benchrun.Median
	r.OpsPerSec, r.MBps, r.P50Ms, r.P99Ms = med(ops), med(mbps), med(p50), med(p99)
	r.ServerCPUPerOp, r.ClientCPUPerOp, r.Load = med(scpu), med(ccpu), med(load)
	return r
}
