package fiobench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"engine/bench/internal/benchrun"
)

// The targets, in the order a round starts from.
const (
	Direct   = "direct"   // the backing file system itself
	Loopback = "loopback" // go-fuse's loopback over a backing directory
	Ours     = "ours"     // enginectl mount over a backing directory
)

// AllTargets is every target, in order.
var AllTargets = []string{Direct, Loopback, Ours}

// The project's targets (issue 4 §5).
const (
	// RandWriteVsLoopback: ours' 4 KiB random writes against the loopback's.
	RandWriteVsLoopback = 1.0
	// FsyncVsLoopback: ours' fsync-each 4 KiB writes against the loopback's.
	FsyncVsLoopback = 0.5
	// DrainVsSeqWrite: ours' drain rate against the backing file
	// system's sequential write rate: the direct target's, writing a new
	// file once and fsyncing it (JobNewFile), as a drain does.
	DrainVsSeqWrite = 0.70
	// SmallWrite: no write of this size or less may reach the backing
	// file system (unless a file is that small).
	SmallWrite = 4 << 10
)

// Config configures a run. Zero fields take the defaults given.
type Config struct {
	// Dir is where Run makes its work directory (fiobench-*), removed
	// at the end unless Keep. Default /var/tmp: on the disk, not tmpfs.
	Dir string
	// Size is the size of each fio job's file in bytes (default 256 MiB;
	// Quick: 16 MiB).
	Size int64
	// Runtime is how long each fio run lasts (default 20 s; Quick: 2 s).
	Runtime time.Duration
	// Creates is how many files the create job makes per run (default
	// 5000; Quick: 500).
	Creates int
	// Rounds is how many times each job runs on each target (default 1);
	// the tables show medians.
	Rounds int
	// Enginectl is the enginectl binary that mounts ours. Empty:
	// "enginectl" in PATH. Without one, or when it has no mount command,
	// ours is skipped with a note saying why.
	Enginectl string
	// MountArgs are more flags for "enginectl mount", such as
	// "--flash-size", "8GiB" or "--ec", "4+2".
	MountArgs []string
	// Flash is ours' flash directory (--flash); empty: inside the work
	// directory, on the same device as the backing directories.
	Flash string
	// Targets selects what to measure (Direct, Loopback, Ours); nil:
	// all three.
	Targets []string
	// IOEngine forces fio's engine for the asynchronous jobs. Empty: the
	// first of io_uring and libaio that works on every target, else psync.
	IOEngine string
	// Passthrough lets the loopback use the kernel's FUSE passthrough,
	// which sends reads and writes to the backing file without the
	// daemon. Off by default: ours cannot use it, and the loopback is
	// the floor a FUSE daemon that sees the data pays.
	Passthrough bool
	// Quick makes the defaults those of a smoke run.
	Quick bool
	// Keep keeps the work directory.
	Keep bool
	// Out receives the report; nil: discarded.
	Out io.Writer
	// Logger receives progress; nil: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.Dir == "" {
		c.Dir = "/var/tmp"
	}
	if c.Size == 0 {
		c.Size = 256 << 20
		if c.Quick {
			c.Size = 16 << 20
		}
	}
	if c.Runtime == 0 {
		c.Runtime = 20 * time.Second
		if c.Quick {
			c.Runtime = 2 * time.Second
		}
	}
	if c.Creates == 0 {
		c.Creates = 5000
		if c.Quick {
			c.Creates = 500
		}
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Targets == nil {
		c.Targets = AllTargets
	}
	switch {
	case c.Size < 1<<20 || c.Size%(4<<10) != 0:
		return fmt.Errorf("fiobench: Size %d: give at least 1 MiB, a multiple of 4 KiB", c.Size)
	case c.Runtime < time.Second:
		return fmt.Errorf("fiobench: Runtime %v: give at least 1s", c.Runtime)
	case c.Creates < 1:
		return fmt.Errorf("fiobench: Creates %d: give at least 1", c.Creates)
	case c.Rounds < 1:
		return fmt.Errorf("fiobench: Rounds %d: give at least 1", c.Rounds)
	}
	for _, t := range c.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("fiobench: unknown target %q: use %s", t, strings.Join(AllTargets, ", "))
		}
	}
	if len(c.Targets) == 0 {
		return errors.New("fiobench: no targets")
	}
	return nil
}

// Report is everything a run measured. It marshals to JSON.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Host    Host      `json:"host"`
	// Size, RuntimeSeconds, Creates and Rounds are the Config's.
	Size           int64        `json:"size_bytes"`
	RuntimeSeconds float64      `json:"runtime_seconds"`
	Creates        int          `json:"creates"`
	Rounds         int          `json:"rounds"`
	IOEngine       string       `json:"ioengine"`
	Targets        []TargetInfo `json:"targets"`
	Jobs           []JobReport  `json:"jobs"`
	Drain          *DrainReport `json:"drain,omitempty"`
	// Goals are the project's targets, each PASS, FAIL or n/a.
	Goals  []Goal   `json:"goals"`
	Notes  []string `json:"notes,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Host describes the machine and the disk under the work directory.
type Host struct {
	Kernel      string  `json:"kernel"`
	Load        float64 `json:"load"` // 1-minute load average at the start
	CPUs        int     `json:"cpus"`
	Fio         string  `json:"fio"`
	WorkDir     string  `json:"work_dir"`
	FSType      string  `json:"fs_type"` // of the work directory, from /proc/self/mounts
	FSDevice    string  `json:"fs_device"`
	FSMount     string  `json:"fs_mount"`
	GoFuse      string  `json:"go_fuse"`
	Enginectl   string  `json:"enginectl,omitempty"`
	Passthrough bool    `json:"loopback_passthrough"`
}

// TargetInfo is one target: where its files go, or why it was skipped.
type TargetInfo struct {
	Name    string `json:"name"`
	Path    string `json:"path,omitempty"`    // where the job files are
	Backing string `json:"backing,omitempty"` // the directory under a mount
	Command string `json:"command,omitempty"` // ours' mount command
	Skipped string `json:"skipped,omitempty"`
}

// JobReport is one job on every target.
type JobReport struct {
	Name    string   `json:"name"`
	Title   string   `json:"title"`
	Unit    string   `json:"unit"` // of Result.Value
	FioArgs []string `json:"fio_args,omitempty"`
	Results []Result `json:"results"`
}

// Result is one job on one target: medians over the rounds.
type Result struct {
	Target string  `json:"target"`
	Value  float64 `json:"value"` // in the job's Unit
	IOPS   float64 `json:"iops,omitempty"`
	MBps   float64 `json:"mb_per_s,omitempty"`
	// P99Micros is the 99th percentile completion latency of a read or
	// write (fio clat), or of a create and close, in µs.
	P99Micros float64 `json:"p99_us"`
	// SyncP99Micros is that of the fsyncs (fsync job only).
	SyncP99Micros float64 `json:"sync_p99_us,omitempty"`
	// VsLoopback and VsDirect are Value over theirs; 0: not measured.
	VsLoopback float64  `json:"vs_loopback,omitempty"`
	VsDirect   float64  `json:"vs_direct,omitempty"`
	Verdict    string   `json:"verdict,omitempty"` // PASS or FAIL where a goal applies
	Rounds     []Sample `json:"rounds"`
}

// Sample is one run of one job on one target.
type Sample struct {
	Round         int     `json:"round"`
	Value         float64 `json:"value"`
	IOPS          float64 `json:"iops"`
	MBps          float64 `json:"mb_per_s"`
	P99Micros     float64 `json:"p99_us"`
	SyncP99Micros float64 `json:"sync_p99_us,omitempty"`
	Seconds       float64 `json:"seconds"`
	Ops           int64   `json:"ops"`
	Bytes         int64   `json:"bytes"`
	// Load is the 1-minute load average just before the run: other
	// work on the machine skews the figures.
	Load  float64 `json:"load_before"`
	Error string  `json:"error,omitempty"`
}

// Goal is one of the project's targets and how this run did.
type Goal = benchrun.Goal

// target is a place the jobs run in.
type target struct {
	name    string
	path    string
	info    TargetInfo
	unmount func() error // nil for direct
	ours    *oursMount
}

// bench is one Run's state.
type bench struct {
	cfg    Config
	log    *slog.Logger
	fio    string
	work   string
	engine string
	rep    *Report
	errs   []error
}

// Run runs every job on every target and prints the report to cfg.Out.
// It returns the report whenever the jobs started, also with an error
// (a failed job, a failed mount or unmount), so that it can be saved.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	fio, err := exec.LookPath("fio")
	if err != nil {
		return nil, errors.New("fiobench: fio not found in PATH: install the Debian package fio (apt-get install fio)")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("fiobench: work directory: %w", err)
	}
	work, err := os.MkdirTemp(cfg.Dir, "fiobench-")
	if err != nil {
		return nil, fmt.Errorf("fiobench: work directory: %w", err)
	}
	b := &bench{cfg: cfg, log: cfg.Logger, fio: fio, work: work}
	b.rep = &Report{
		Started:        time.Now(),
		Host:           host(work, fio),
		Size:           cfg.Size,
		RuntimeSeconds: cfg.Runtime.Seconds(),
		Creates:        cfg.Creates,
		Rounds:         cfg.Rounds,
	}
	b.rep.Host.Passthrough = cfg.Passthrough
	if b.rep.Host.FSType == "tmpfs" || b.rep.Host.FSType == "ramfs" {
		b.note("the work directory %s is on %s, not a disk: give Config.Dir on the real disk", work, b.rep.Host.FSType)
	}
	err = b.run(ctx)
	b.rep.Seconds = time.Since(b.rep.Started).Seconds()
	if !cfg.Keep {
		if rerr := os.RemoveAll(work); rerr != nil {
			b.fail(fmt.Errorf("fiobench: remove %s: %w", work, rerr))
		}
	}
	if err != nil {
		b.fail(err)
	}
	for _, e := range b.errs {
		b.rep.Errors = append(b.rep.Errors, e.Error())
	}
	b.rep.print(cfg.Out)
	return b.rep, errors.Join(b.errs...)
}

func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.log.Info(s)
	b.rep.Notes = append(b.rep.Notes, s)
}

func (b *bench) fail(err error) {
	b.log.Error(err.Error())
	b.errs = append(b.errs, err)
}

// run sets the targets up, runs the jobs and tears the targets down.
func (b *bench) run(ctx context.Context) error {
	var targets []*target
	defer func() {
		// Unmount in reverse; ours is stopped with SIGTERM.
		for _, t := range slices.Backward(targets) {
			if err := b.teardown(t); err != nil {
				b.fail(err)
			}
		}
	}()
	for _, name := range b.cfg.Targets {
		t, err := b.setup(ctx, name)
		if t != nil {
			b.rep.Targets = append(b.rep.Targets, t.info)
			if t.info.Skipped == "" {
				targets = append(targets, t)
			}
		}
		if err != nil {
			return err
		}
	}
	if len(targets) == 0 {
		return errors.New("fiobench: every target was skipped")
	}
	var notes []string
	b.engine, notes = b.pickEngine(ctx, targets)
	b.rep.IOEngine = b.engine
	for _, n := range notes {
		b.note("%s", n)
	}
	if b.engine == "psync" {
		b.note("no asynchronous fio engine works on every target: the iodepth 32 and 8 jobs run psync at depth 1")
	}
	if err := b.runJobs(ctx, targets); err != nil {
		return err
	}
	for _, t := range targets {
		if t.ours != nil {
			b.finishDrain(ctx, t.ours)
		}
	}
	b.judge()
	return nil
}

// runJobs runs every job on every target: job-major, target-minor, the
// first target rotating with the round.
func (b *bench) runJobs(ctx context.Context, targets []*target) error {
	for _, j := range jobs {
		jr := JobReport{Name: j.name, Title: j.title, Unit: j.unit}
		if j.args != nil {
			jr.FioArgs = fioArgs(j, b.engine, "FILE", "OUT.json", b.cfg.Size, b.cfg.Runtime)
		}
		samples := map[string][]Sample{}
		if j.read {
			for _, t := range targets {
				if err := b.layout(ctx, t, filepath.Join(t.path, j.name+".dat")); err != nil {
					return err
				}
			}
		}
		for round := 1; round <= b.cfg.Rounds; round++ {
			for k := range targets {
				t := targets[(k+round-1)%len(targets)]
				if j.directOnly && t.name != Direct {
					continue
				}
				var s Sample
				var err error
				load := loadavg()
				if j.args == nil {
					s, err = b.creates(ctx, t, round)
				} else {
					s, err = b.runFio(ctx, j, t, round)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.Round, s.Load = round, load
				if err != nil {
					s.Error = err.Error()
					b.fail(err)
				} else {
					s.Value = s.IOPS
					switch j.unit {
					case UnitMBps:
						s.Value = s.MBps
					case UnitFilesS:
						s.Value = s.IOPS
						s.IOPS = 0
					}
				}
				samples[t.name] = append(samples[t.name], s)
				b.quiesce(ctx, t, fmt.Sprintf("%s round %d", j.name, round))
			}
		}
		for _, t := range targets {
			if j.directOnly && t.name != Direct {
				continue
			}
			jr.Results = append(jr.Results, summarize(t.name, samples[t.name]))
		}
		b.rep.Jobs = append(b.rep.Jobs, jr)
	}
	return nil
}

// summarize takes the medians of a target's runs of a job.
func summarize(name string, samples []Sample) Result {
	r := Result{Target: name, Rounds: samples}
	var v, iops, mbps, p99, sp99 []float64
	for _, s := range samples {
		if s.Error != "" {
			continue
		}
		v, iops, mbps = append(v, s.Value), append(iops, s.IOPS), append(mbps, s.MBps)
		p99, sp99 = append(p99, s.P99Micros), append(sp99, s.SyncP99Micros)
	}
	med := benchrun.Median
	r.Value, r.IOPS, r.MBps = med(v), med(iops), med(mbps)
	r.P99Micros, r.SyncP99Micros = med(p99), med(sp99)
	return r
}

// quiesce lets the next run start on a quiet disk: ours drains what the
// run buffered, then everything dirty is written back. Neither is timed
// as part of the run.
func (b *bench) quiesce(ctx context.Context, t *target, after string) {
	if t.ours != nil {
		b.drainNow(ctx, t.ours, after)
	}
	unix.Sync()
}

// layout writes file with 1 MiB writes of random bytes and fsyncs it,
// so that a read job finds it whole (fio then does not lay it out with
// small writes of its own).
func (b *bench) layout(ctx context.Context, t *target, file string) error {
	b.log.Info("laying out", "file", file, "bytes", b.cfg.Size)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("fiobench: lay out %s on %s: %w", file, t.name, err)
	}
	buf := make([]byte, 1<<20)
	rnd := newRand(uint64(len(file)))
	for off := int64(0); off < b.cfg.Size; off += int64(len(buf)) {
		if ctx.Err() != nil {
			f.Close()
			return ctx.Err()
		}
		rnd.fill(buf)
		n := min(int64(len(buf)), b.cfg.Size-off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("fiobench: lay out %s on %s at byte %d: %w", file, t.name, off, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fiobench: lay out %s on %s: fsync: %w", file, t.name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fiobench: lay out %s on %s: %w", file, t.name, err)
	}
	b.quiesce(ctx, t, "layout of "+filepath.Base(file))
	return nil
}

// rand is a xorshift generator: incompressible bytes, fast.
type rand struct{ s uint64 }

func newRand(seed uint64) *rand { return &rand{s: seed*0x9e3779b97f4a7c15 | 1} }

func (r *rand) fill(p []byte) {
	for i := 0; i+8 <= len(p); i += 8 {
		r.s ^= r.s << 13
		r.s ^= r.s >> 7
		r.s ^= r.s << 17
		x := r.s
		p[i], p[i+1], p[i+2], p[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(x>>32), byte(x>>40), byte(x>>48), byte(x>>56)
	}
}

// creates makes cfg.Creates empty files in a new directory with
// open(O_CREAT|O_EXCL) and close, and times them.
func (b *bench) creates(ctx context.Context, t *target, round int) (Sample, error) {
	dir := filepath.Join(t.path, fmt.Sprintf("creates-%d", round))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Sample{}, fmt.Errorf("fiobench: creates on %s: %w", t.name, err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			b.fail(fmt.Errorf("fiobench: creates on %s: %w", t.name, err))
		}
	}()
	b.log.Info("creates", "target", t.name, "round", round, "files", b.cfg.Creates)
	n := b.cfg.Creates
	lat := make([]time.Duration, 0, n)
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf("f%07d", i))
	}
	start := time.Now()
	for i, name := range names {
		if i%256 == 0 && ctx.Err() != nil {
			return Sample{}, ctx.Err()
		}
		t0 := time.Now()
		fd, err := unix.Open(name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return Sample{}, fmt.Errorf("fiobench: creates on %s: file %d: %w", t.name, i, err)
		}
		if err := unix.Close(fd); err != nil {
			return Sample{}, fmt.Errorf("fiobench: creates on %s: close file %d: %w", t.name, i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	el := time.Since(start)
	slices.Sort(lat)
	p99 := lat[max(0, (len(lat)*99+99)/100-1)]
	return Sample{
		IOPS:      float64(n) / el.Seconds(),
		P99Micros: float64(p99) / float64(time.Microsecond),
		Seconds:   el.Seconds(),
		Ops:       int64(n),
	}, nil
}
