// Package sortbench benchmarks the engine's sort against GNU sort and
// against the disk's sequential write rate on the same gensort input.
//
// Run generates the input once, then alternates over several rounds between
// the three measurements, each started from the same page cache state:
//
//   - engine: the real enginectl binary as a subprocess ("submit sort
//     --input DIR --output DIR --json"), timed from start to exit;
//   - GNU sort: "LC_ALL=C sort -S MEM --parallel=N -T TMP -o OUT IN" plus an
//     fsync of OUT, timed together;
//   - disk ceiling: a copy of the input with 4 MiB writes and an fsync.
//
// Every sorted output is checked with the gensort validator against the
// input's record count and checksum; a failed check makes Run return an
// error. Run prints the measurements, their medians, the ratios and the
// project's targets as a table.
package sortbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"engine/gensort"
	"engine/internal/units"
	"engine/sortjob"
)

// The measured systems, as --only names them.
const (
	Engine = "engine"
	GNU    = "gnu"
	Disk   = "disk"
)

// AllSystems is the order the systems run in within a round.
var AllSystems = []string{Engine, GNU, Disk}

// Options configures a benchmark run.
type Options struct {
	// Records is the input size in 100-byte gensort records.
	Records int64
	// ASCII generates gensort -a records. GNU sort needs them (it sorts
	// lines); with binary records the GNU sort runs are skipped.
	ASCII bool
	// Rounds is how many times each system runs (default 3).
	Rounds int
	// Memory is the engine's --memory budget in bytes; 0 lets the engine
	// pick its default.
	Memory int64
	// GNUMem is GNU sort's -S value (default "4G").
	GNUMem string
	// GNUParallel is GNU sort's --parallel value (default: the number of
	// CPUs, as the engine's workers).
	GNUParallel int
	// Dir is the work directory. It must not exist or be empty. Empty: a
	// new directory under /var/tmp. Everything Run creates in it is removed
	// at the end unless Keep is set.
	Dir  string
	Keep bool
	// DropCaches syncs and writes 1 to /proc/sys/vm/drop_caches before
	// every measured run (needs root).
	DropCaches bool
	// Systems selects what to measure (Engine, GNU, Disk); nil: all.
	Systems []string
	// Enginectl is the engine binary; empty: this executable.
	Enginectl string
	// Sort is the GNU sort binary; empty: "sort" looked up in PATH.
	Sort string
	// JSONFile, if set, receives the Result as JSON.
	JSONFile string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Check is the validation of one sorted output against the input.
type Check struct {
	Files          int    `json:"files"`
	Records        uint64 `json:"records"`
	Checksum       string `json:"checksum"`
	Duplicates     uint64 `json:"duplicates"`
	Unordered      uint64 `json:"unordered"`
	FirstUnordered uint64 `json:"first_unordered,omitempty"`
	WantRecords    uint64 `json:"want_records"`
	WantChecksum   string `json:"want_checksum"`
	Passed         bool   `json:"passed"`
	Problem        string `json:"problem,omitempty"`
}

// Measurement is one timed run of one system.
type Measurement struct {
	Round   int    `json:"round"`
	System  string `json:"system"`
	Command string `json:"command"`
	// CachesDropped says whether the page cache was dropped just before.
	CachesDropped bool    `json:"caches_dropped"`
	LoadBefore    string  `json:"load_before"`
	Seconds       float64 `json:"seconds"`
	MBps          float64 `json:"mb_per_s"`
	// PeakRSS is the child's peak resident set (rusage maxrss), bytes.
	PeakRSS int64 `json:"peak_rss,omitempty"`
	// CPUSeconds is the child's user and system CPU time (rusage).
	UserSeconds float64 `json:"user_seconds,omitempty"`
	SysSeconds  float64 `json:"sys_seconds,omitempty"`
	// Report is the engine's own JSON report.
	Report *sortjob.Report `json:"engine_report,omitempty"`
	Check  *Check          `json:"check,omitempty"`
	// Error is why the run or its validation failed.
	Error string `json:"error,omitempty"`
	OK    bool   `json:"ok"`
}

// Target is one of the project's performance targets with its verdict.
type Target struct {
	Name    string  `json:"name"`
	Want    float64 `json:"want"`
	Got     float64 `json:"got"`
	Unit    string  `json:"unit"`
	Pass    bool    `json:"pass"`
	Known   bool    `json:"known"`   // Got was measured
	Applies bool    `json:"applies"` // this run is the target's configuration
	Note    string  `json:"note,omitempty"`
}

// Median holds the medians over the successful rounds (0: not measured).
type Median struct {
	EngineMBps       float64 `json:"engine_mb_per_s"`
	EngineSeconds    float64 `json:"engine_seconds"`
	EngineOwnMBps    float64 `json:"engine_own_mb_per_s"`
	GNUMBps          float64 `json:"gnu_mb_per_s"`
	GNUSeconds       float64 `json:"gnu_seconds"`
	DiskMBps         float64 `json:"disk_mb_per_s"`
	DiskSeconds      float64 `json:"disk_seconds"`
	EnginePeakRSS    int64   `json:"engine_peak_rss"`
	GNUPeakRSS       int64   `json:"gnu_peak_rss"`
	EngineOverGNU    float64 `json:"engine_over_gnu"`
	EngineOwnOverGNU float64 `json:"engine_own_over_gnu"`
	EngineOverDisk   float64 `json:"engine_over_disk"`
}

// Ratios are one round's ratios (0: not measured).
type Ratios struct {
	Round            int     `json:"round"`
	EngineOverGNU    float64 `json:"engine_over_gnu"`
	EngineOwnOverGNU float64 `json:"engine_own_over_gnu"`
	EngineOverDisk   float64 `json:"engine_over_disk"`
}

// Result is everything a run measured.
type Result struct {
	Started        time.Time      `json:"started"`
	Finished       time.Time      `json:"finished"`
	Records        int64          `json:"records"`
	Bytes          int64          `json:"bytes"`
	ASCII          bool           `json:"ascii"`
	Rounds         int            `json:"rounds"`
	Memory         int64          `json:"memory"`
	GNUMem         string         `json:"gnu_mem"`
	Systems        []string       `json:"systems"`
	Dir            string         `json:"dir"`
	Kept           bool           `json:"kept"`
	DropCaches     bool           `json:"drop_caches"`
	DropCachesNote string         `json:"drop_caches_note"`
	Nproc          int            `json:"nproc"`
	LoadBefore     string         `json:"load_before"`
	LoadAfter      string         `json:"load_after"`
	MemTotal       int64          `json:"mem_total"`
	MemFree        int64          `json:"mem_free"`
	MemAvailable   int64          `json:"mem_available"`
	DiskFree       int64          `json:"disk_free"`
	DiskNeeded     int64          `json:"disk_needed"`
	Input          string         `json:"input"`
	InputChecksum  string         `json:"input_checksum"`
	GenerateSecs   float64        `json:"generate_seconds"`
	Commands       []string       `json:"commands"`
	Notes          []string       `json:"notes,omitempty"`
	Runs           []*Measurement `json:"runs"`
	Ratios         []Ratios       `json:"ratios"`
	Median         Median         `json:"median"`
	Targets        []Target       `json:"targets"`
	Failures       []string       `json:"failures,omitempty"`
}

// ErrValidation is wrapped by Run's error when an output failed validation
// or a run failed.
var ErrValidation = errors.New("benchmark run or output validation failed")

type bench struct {
	harness
	o         Options
	res       *Result
	enginectl string
	sortBin   string
	run       map[string]bool
}

// Run runs the benchmark, printing the table to w. It returns the result
// (as far as it got) and an error when the run was interrupted, could not
// start, or any run or validation failed.
func Run(ctx context.Context, o Options, w io.Writer) (res *Result, err error) {
	if o.Records <= 0 {
		return nil, fmt.Errorf("bench sort: nothing to sort (%d records)", o.Records)
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.GNUMem == "" {
		o.GNUMem = "4G"
	}
	if o.GNUParallel <= 0 {
		o.GNUParallel = runtime.NumCPU()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if len(o.Systems) == 0 {
		o.Systems = AllSystems
	}
	b := &bench{o: o, run: map[string]bool{}}
	for _, s := range o.Systems {
		if !slices.Contains(AllSystems, s) {
			return nil, fmt.Errorf("bench sort: unknown system %q: use engine, gnu or disk", s)
		}
		b.run[s] = true
	}
	res = &Result{
		Started: time.Now(), Records: o.Records, Bytes: o.Records * gensort.RecordSize, ASCII: o.ASCII,
		Rounds: o.Rounds, Memory: o.Memory, GNUMem: o.GNUMem, Nproc: runtime.NumCPU(),
		LoadBefore: loadavg(), Runs: []*Measurement{},
	}
	b.res = res
	b.harness = harness{name: "bench sort", w: w, log: o.Log, notes: &res.Notes, failures: &res.Failures, records: o.Records}
	res.MemTotal, res.MemFree, res.MemAvailable = meminfo()

	if b.run[GNU] && !o.ASCII {
		b.run[GNU] = false
		b.note("GNU sort skipped: it sorts lines and binary gensort records are not lines (use --records ascii)")
	}
	if b.run[GNU] {
		path := o.Sort
		if path == "" {
			path = "sort"
		}
		p, lerr := exec.LookPath(path)
		if lerr != nil {
			b.run[GNU] = false
			b.note(fmt.Sprintf("GNU sort not found (%v): continuing without it", lerr))
		} else {
			b.sortBin = p
		}
	}
	if b.run[Engine] {
		p := o.Enginectl
		if p == "" {
			if p, err = os.Executable(); err != nil {
				return res, fmt.Errorf("bench sort: finding enginectl: %w (give --enginectl PATH)", err)
			}
		}
		if !isExecutable(p) {
			return res, fmt.Errorf("bench sort: enginectl %s is not an executable file (give --enginectl PATH)", p)
		}
		b.enginectl = p
	}
	for _, s := range AllSystems {
		if b.run[s] {
			res.Systems = append(res.Systems, s)
		}
	}
	if len(res.Systems) == 0 {
		return res, fmt.Errorf("bench sort: nothing left to measure")
	}

	// Work directory.
	if err := b.makeDir(o.Dir, "sortbench-"); err != nil {
		return res, err
	}
	res.Dir = b.dir
	defer func() { res.Kept = b.closeDir(o.Keep) }()
	if err := b.checkSpace(); err != nil {
		return res, err
	}
	res.DropCachesNote = b.setupDropCaches(o.DropCaches, "runs may read the input from the page cache")
	res.DropCaches = b.dropOK
	res.Commands = b.commands()
	b.writeHeader()

	// Input.
	fmt.Fprintf(b.log, "bench sort: generating %s of %s gensort records into %s...\n", units.Format(res.Bytes), recordKind(o.ASCII), b.inFile())
	if err := os.MkdirAll(b.inDir(), 0o755); err != nil {
		return res, fmt.Errorf("bench sort: %w", err)
	}
	t0 := time.Now()
	b.sum, err = gensort.GenerateFile(ctx, b.inFile(), 0, uint64(o.Records), gensort.Options{ASCII: o.ASCII}, 0, true)
	if err != nil {
		if ctx.Err() != nil {
			return res, b.interrupted(ctx)
		}
		return res, fmt.Errorf("bench sort: generating the input: %w", err)
	}
	res.GenerateSecs = time.Since(t0).Seconds()
	res.Input = b.inFile()
	res.InputChecksum = b.sum.String()
	fmt.Fprintf(w, "input     %s: %d records, checksum %s, generated in %.1fs\n", b.inFile(), o.Records, res.InputChecksum, res.GenerateSecs)

	// Rounds.
	for round := 1; round <= o.Rounds; round++ {
		for _, sys := range AllSystems {
			if !b.run[sys] {
				continue
			}
			m := b.measure(ctx, round, sys)
			if ctx.Err() != nil {
				return res, b.interrupted(ctx)
			}
			res.Runs = append(res.Runs, m)
			if m.OK {
				what := "output valid"
				if sys == Disk {
					what = "all bytes written"
				}
				fmt.Fprintf(b.log, "bench sort: round %d/%d %-6s %7.2fs %8.1f MB/s (%s)\n", round, o.Rounds, sys, m.Seconds, m.MBps, what)
			} else {
				b.fail(fmt.Sprintf("%s round %d: %s", sysName(sys), round, m.Error))
			}
			if !(o.Keep && round == o.Rounds) {
				b.removeOutputs(sys)
			}
		}
	}
	res.LoadAfter = loadavg()
	res.Finished = time.Now()
	b.summarize()
	b.writeTable()
	return res, b.finish(o.JSONFile, res)
}

func sysName(s string) string {
	switch s {
	case GNU:
		return "GNU sort"
	case Disk:
		return "disk ceiling"
	}
	return s
}

func (b *bench) inDir() string      { return filepath.Join(b.dir, "input") }
func (b *bench) inFile() string     { return filepath.Join(b.inDir(), "input.dat") }
func (b *bench) engineOut() string  { return filepath.Join(b.dir, "engine-out") }
func (b *bench) engineData() string { return filepath.Join(b.dir, "engine-data") }
func (b *bench) gnuOut() string     { return filepath.Join(b.dir, "gnu-out.dat") }
func (b *bench) gnuTmp() string     { return filepath.Join(b.dir, "gnu-tmp") }
func (b *bench) diskOut() string    { return filepath.Join(b.dir, "disk-out.dat") }

func (b *bench) removeOutputs(sys string) {
	switch sys {
	case Engine:
		os.RemoveAll(b.engineOut())
		os.RemoveAll(b.engineData())
	case GNU:
		os.Remove(b.gnuOut())
		os.RemoveAll(b.gnuTmp())
	case Disk:
		os.Remove(b.diskOut())
	}
}

// checkSpace refuses to start without room for the input, two outputs
// (the engine's map output and sorted output, or GNU sort's output) and GNU
// sort's temporary files.
func (b *bench) checkSpace() error {
	size := b.res.Bytes
	need := size
	what := []string{"input " + units.Format(size)}
	if b.run[Engine] || b.run[GNU] {
		need += 2 * size
		what = append(what, "2 outputs "+units.Format(2*size))
	} else {
		need += size
		what = append(what, "copy "+units.Format(size))
	}
	if b.run[GNU] {
		need += size
		what = append(what, "GNU sort temporary files "+units.Format(size))
	}
	return b.checkFreeSpace(need, strings.Join(what, " + "), &b.res.DiskFree, &b.res.DiskNeeded)
}

func (b *bench) engineArgs() []string {
	args := []string{"submit", "sort", "--input", b.inDir(), "--output", b.engineOut()}
	if b.o.Memory > 0 {
		args = append(args, "--memory", units.FormatExact(b.o.Memory))
	}
	return append(args, "--json", "--progress", "none", "--data", b.engineData())
}

func (b *bench) gnuArgs() []string {
	return []string{"-S", b.o.GNUMem, "--parallel=" + strconv.Itoa(b.o.GNUParallel), "-T", b.gnuTmp(), "-o", b.gnuOut(), b.inFile()}
}

func (b *bench) commands() []string {
	var cmds []string
	if b.dropOK {
		cmds = append(cmds, "before every run: sync; echo 1 > "+dropCachesFile)
	}
	if b.run[Engine] {
		cmds = append(cmds, "engine:   "+b.enginectl+" "+strings.Join(b.engineArgs(), " ")+"   (ENGINE_ADDR and ENGINE_CPUPROFILE unset; then the output's part-* files validated)")
	}
	if b.run[GNU] {
		cmds = append(cmds, "GNU sort: LC_ALL=C "+b.sortBin+" "+strings.Join(b.gnuArgs(), " ")+"   + fsync("+b.gnuOut()+") (timed); then validated")
	}
	if b.run[Disk] {
		cmds = append(cmds, fmt.Sprintf("disk:     copy %s to %s with 4 MiB writes + fsync (in-process, timed)", b.inFile(), b.diskOut()))
	}
	return cmds
}

func (b *bench) writeHeader() {
	r, w := b.res, b.w
	var names []string
	for _, s := range r.Systems {
		names = append(names, sysName(s))
	}
	fmt.Fprintf(w, "bench sort: %s (%d %s gensort records), %d round(s) of %s", units.Format(r.Bytes), r.Records, recordKind(r.ASCII), r.Rounds, strings.Join(names, ", "))
	if b.run[Engine] {
		fmt.Fprintf(w, "; engine --memory %s", memText(r.Memory))
	}
	if b.run[GNU] {
		fmt.Fprintf(w, "; GNU sort -S %s", r.GNUMem)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "machine   nproc %d; load average before %s; memory total %s, free %s, available %s\n",
		r.Nproc, r.LoadBefore, units.Format(r.MemTotal), units.Format(r.MemFree), units.Format(r.MemAvailable))
	b.writeDiskAndCaches(r.DiskFree, r.DiskNeeded, r.DropCachesNote)
	b.writeNotesAndCommands(r.Notes, r.Commands)
}

// measure runs one system once, then validates its output.
func (b *bench) measure(ctx context.Context, round int, sys string) *Measurement {
	m := &Measurement{Round: round, System: sys}
	b.removeOutputs(sys)
	m.CachesDropped = b.dropBeforeRun(round, sys)
	m.LoadBefore = loadavg()
	var err error
	switch sys {
	case Engine:
		err = b.runEngine(ctx, m)
	case GNU:
		err = b.runGNU(ctx, m)
	case Disk:
		err = b.runDisk(ctx, m)
	}
	if err != nil {
		m.Error = err.Error()
		return m
	}
	if m.Seconds > 0 {
		m.MBps = float64(b.res.Bytes) / 1e6 / m.Seconds
	}
	m.OK = true
	return m
}

func (b *bench) runEngine(ctx context.Context, m *Measurement) error {
	args := b.engineArgs()
	m.Command = b.enginectl + " " + strings.Join(args, " ")
	cmd := command(ctx, b.enginectl, args...)
	cmd.Env = childEnv("ENGINE_ADDR", "ENGINE_CPUPROFILE")
	stdout, stderr, seconds, err := runTimed(cmd)
	m.Seconds = seconds
	m.PeakRSS, m.UserSeconds, m.SysSeconds = usage(cmd.ProcessState)
	rep, err := engineReport(stdout, stderr, err)
	if err != nil {
		return err
	}
	m.Report = rep
	m.Check, err = b.checkEngineOutput(ctx, b.engineOut(), rep, "the input has")
	return err
}

func (b *bench) runGNU(ctx context.Context, m *Measurement) error {
	args := b.gnuArgs()
	m.Command = "LC_ALL=C " + b.sortBin + " " + strings.Join(args, " ") + " && fsync " + b.gnuOut()
	if err := os.MkdirAll(b.gnuTmp(), 0o755); err != nil {
		return err
	}
	cmd := command(ctx, b.sortBin, args...)
	cmd.Env = append(childEnv("LC_ALL"), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	t0 := time.Now()
	err := cmd.Run()
	if err == nil {
		err = fsync(b.gnuOut())
	}
	m.Seconds = time.Since(t0).Seconds()
	m.PeakRSS, m.UserSeconds, m.SysSeconds = usage(cmd.ProcessState)
	if err != nil {
		return fmt.Errorf("GNU sort failed (%v): %s", err, tail(stderr.Bytes()))
	}
	c, err := b.validate(ctx, []string{b.gnuOut()})
	m.Check = c
	return err
}

func fsync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

const copyChunk = 4 << 20

func (b *bench) runDisk(ctx context.Context, m *Measurement) error {
	m.Command = fmt.Sprintf("copy %s to %s with 4 MiB writes + fsync", b.inFile(), b.diskOut())
	t0 := time.Now()
	n, err := copyFile(ctx, b.diskOut(), b.inFile())
	m.Seconds = time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	// The copy is not sorted, so there is nothing to valsort: check that
	// every byte was written.
	if st, err := os.Stat(b.diskOut()); err != nil {
		return err
	} else if st.Size() != b.res.Bytes || n != b.res.Bytes {
		return fmt.Errorf("disk copy wrote %d bytes (file is %d), want %d", n, st.Size(), b.res.Bytes)
	}
	return nil
}

func copyFile(ctx context.Context, dst, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	buf := make([]byte, copyChunk)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return total, rerr
		}
	}
	if err := out.Sync(); err != nil {
		return total, fmt.Errorf("fsync %s: %w", dst, err)
	}
	return total, out.Close()
}

// summarize computes the per-round ratios, the medians and the targets.
func (b *bench) summarize() {
	r := b.res
	var eng, own, engS, gnu, gnuS, disk, diskS, ovG, ownG, ovD []float64
	var engRSS, gnuRSS []int64
	var maxEngRSS, budget int64
	for round := 1; round <= r.Rounds; round++ {
		e, g, d := b.get(round, Engine), b.get(round, GNU), b.get(round, Disk)
		rt := Ratios{Round: round}
		if e != nil {
			eng, engS = append(eng, e.MBps), append(engS, e.Seconds)
			engRSS = append(engRSS, e.PeakRSS)
			maxEngRSS = max(maxEngRSS, e.PeakRSS)
			if e.Report != nil {
				own = append(own, e.Report.MBps)
				budget = e.Report.Memory
			}
		}
		if g != nil {
			gnu, gnuS = append(gnu, g.MBps), append(gnuS, g.Seconds)
			gnuRSS = append(gnuRSS, g.PeakRSS)
		}
		if d != nil {
			disk, diskS = append(disk, d.MBps), append(diskS, d.Seconds)
		}
		if e != nil && g != nil && g.MBps > 0 {
			rt.EngineOverGNU = e.MBps / g.MBps
			ovG = append(ovG, rt.EngineOverGNU)
			if e.Report != nil {
				rt.EngineOwnOverGNU = e.Report.MBps / g.MBps
				ownG = append(ownG, rt.EngineOwnOverGNU)
			}
		}
		if e != nil && d != nil && d.MBps > 0 {
			rt.EngineOverDisk = e.MBps / d.MBps
			ovD = append(ovD, rt.EngineOverDisk)
		}
		r.Ratios = append(r.Ratios, rt)
	}
	r.Median = Median{
		EngineMBps: median(eng), EngineSeconds: median(engS), EngineOwnMBps: median(own),
		GNUMBps: median(gnu), GNUSeconds: median(gnuS), DiskMBps: median(disk), DiskSeconds: median(diskS),
		EnginePeakRSS: medianInt(engRSS), GNUPeakRSS: medianInt(gnuRSS),
		EngineOverGNU: median(ovG), EngineOwnOverGNU: median(ownG), EngineOverDisk: median(ovD),
	}
	if budget == 0 {
		budget = b.o.Memory
	}

	size := fmt.Sprintf("this run is %s, --memory %s, --gnu-mem %s", units.Format(r.Bytes), memText(r.Memory), r.GNUMem)
	t1 := Target{Name: "engine ≥ 2.0× GNU sort on 1 GB", Want: 2.0, Got: r.Median.EngineOverGNU, Unit: "×",
		Known: len(ovG) > 0, Applies: r.Records == 10_000_000}
	t2 := Target{Name: "engine ≥ 1.5× GNU sort on 10 GB, --memory 2GB, --gnu-mem 2G", Want: 1.5, Got: r.Median.EngineOverGNU, Unit: "×",
		Known: len(ovG) > 0, Applies: r.Records == 100_000_000 && r.Memory == 2_000_000_000 && strings.EqualFold(r.GNUMem, "2G")}
	for _, t := range []*Target{&t1, &t2} {
		t.Pass = t.Known && t.Got >= t.Want
		if !t.Applies {
			t.Note = "informational: " + size
		}
	}
	t3 := Target{Name: "engine peak RSS ≤ 1.25 × memory budget", Want: 1.25 * float64(budget), Got: float64(maxEngRSS), Unit: "B",
		Known: len(engRSS) > 0 && budget > 0, Applies: true}
	t3.Pass = t3.Known && t3.Got <= t3.Want
	if t3.Known {
		t3.Note = fmt.Sprintf("largest of %d round(s); budget %s", len(engRSS), units.Format(budget))
	}
	r.Targets = []Target{t1, t2, t3}
}

// get returns round's successful measurement of sys.
func (b *bench) get(round int, sys string) *Measurement {
	for _, m := range b.res.Runs {
		if m.Round == round && m.System == sys && m.OK {
			return m
		}
	}
	return nil
}

func memText(n int64) string {
	if n == 0 {
		return "(engine default)"
	}
	return units.FormatExact(n)
}
