package sortbench

// What the two benchmarks (bench sort: bench; bench cluster: clusterBench)
// share: the harness they embed, and the helpers for child processes, the
// machine, medians and JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"engine/gensort"
	"engine/internal/units"
	"engine/sortjob"
)

// harness is the part of a benchmark run that does not depend on what it
// measures: the work directory, the result's notes and failures, the page
// cache, the free-space check and the validation of sorted outputs.
type harness struct {
	name     string    // "bench sort" or "bench cluster": starts log lines and errors
	w, log   io.Writer // the table; progress lines
	notes    *[]string // the result's Notes
	failures *[]string // the result's Failures
	dir      string    // the work directory (set by makeDir)
	cleanup  func() error
	dropOK   bool // dropping caches works (set after the first try)
	// Every sorted output must have records records with checksum sum.
	records int64
	sum     gensort.Sum
}

func (h *harness) note(s string) {
	*h.notes = append(*h.notes, s)
	fmt.Fprintf(h.log, "%s: %s\n", h.name, s)
}

// fail records a failed run or validation.
func (h *harness) fail(msg string) {
	*h.failures = append(*h.failures, msg)
	fmt.Fprintf(h.log, "%s: FAILED: %s\n", h.name, msg)
}

func (h *harness) interrupted(ctx context.Context) error {
	return fmt.Errorf("%s: interrupted: %w", h.name, ctx.Err())
}

// makeDir creates the work directory: dir, which must not exist or be
// empty, or (dir empty) a new one under /var/tmp named prefix*. closeDir
// removes what the benchmark put there.
func (h *harness) makeDir(dir, prefix string) error {
	if dir == "" {
		d, err := os.MkdirTemp("/var/tmp", prefix)
		if err != nil {
			return fmt.Errorf("%s: work directory: %w", h.name, err)
		}
		h.dir = d
		h.cleanup = func() error { return os.RemoveAll(d) }
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	created := false
	if st, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: work directory: %w", h.name, err)
		}
		created = true
	} else if err != nil {
		return fmt.Errorf("%s: work directory: %w", h.name, err)
	} else if !st.IsDir() {
		return fmt.Errorf("%s: --dir %s is not a directory", h.name, dir)
	} else if des, err := os.ReadDir(dir); err != nil {
		return fmt.Errorf("%s: work directory: %w", h.name, err)
	} else if len(des) > 0 {
		return fmt.Errorf("%s: --dir %s is not empty (%d entries, e.g. %s): give a new or empty directory", h.name, dir, len(des), des[0].Name())
	}
	h.dir = dir
	h.cleanup = func() error {
		if created {
			return os.RemoveAll(dir)
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var errs []error
		for _, de := range des {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, de.Name())))
		}
		return errors.Join(errs...)
	}
	return nil
}

// closeDir keeps the work directory (keep) or removes what the benchmark
// put there; it returns keep.
func (h *harness) closeDir(keep bool) bool {
	if keep {
		fmt.Fprintf(h.log, "%s: kept the work directory %s\n", h.name, h.dir)
		return true
	}
	if err := h.cleanup(); err != nil {
		fmt.Fprintf(h.log, "%s: removing %s: %v\n", h.name, h.dir, err)
	}
	return false
}

// checkFreeSpace refuses to start without need bytes free in the work
// directory (what: what they are for). Once it knows the free bytes, it
// records them and need in *free and *needed.
func (h *harness) checkFreeSpace(need int64, what string, free, needed *int64) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(h.dir, &fs); err != nil {
		return fmt.Errorf("%s: statfs %s: %w", h.name, h.dir, err)
	}
	*free, *needed = int64(fs.Bavail)*fs.Bsize, need
	if need > *free {
		return fmt.Errorf("%s: not enough free disk in %s: needs %s = %d bytes (%s) and has %s = %d bytes free; sort less (--size) or use --dir on a bigger file system",
			h.name, h.dir, units.Format(need), need, what, units.Format(*free), *free)
	}
	return nil
}

const dropCachesFile = "/proc/sys/vm/drop_caches"

// setupDropCaches tries dropping the page cache once if want, and returns
// what the table says about it; caveat, if any, follows a "no".
func (h *harness) setupDropCaches(want bool, caveat string) string {
	then := func(sep string) string {
		if caveat == "" {
			return ""
		}
		return sep + caveat
	}
	if !want {
		return "no (--drop-caches=false)" + then(": ")
	}
	if err := dropCaches(); err != nil {
		h.note("could not drop the page cache: " + err.Error())
		return fmt.Sprintf("no: requested but failed (%v)", err) + then("; ")
	}
	h.dropOK = true
	return "yes: sync; echo 1 > " + dropCachesFile + " before every run"
}

func dropCaches() error {
	syscall.Sync()
	return os.WriteFile(dropCachesFile, []byte("1\n"), 0)
}

// dropBeforeRun drops the page cache before round's run of sys, if that
// works, and reports whether it did.
func (h *harness) dropBeforeRun(round int, sys string) bool {
	if !h.dropOK {
		return false
	}
	if err := dropCaches(); err != nil {
		h.note(fmt.Sprintf("round %d %s: dropping the page cache failed: %v", round, sys, err))
		return false
	}
	return true
}

// writeDiskAndCaches prints the header's lines on the work directory and
// the page cache.
func (h *harness) writeDiskAndCaches(free, needed int64, cachesNote string) {
	fmt.Fprintf(h.w, "disk      work dir %s: %s free, %s needed\n", h.dir, units.Format(free), units.Format(needed))
	fmt.Fprintf(h.w, "caches    page cache dropped before each run: %s\n", cachesNote)
}

// writeNotesAndCommands prints the header's last lines.
func (h *harness) writeNotesAndCommands(notes, commands []string) {
	for _, n := range notes {
		fmt.Fprintf(h.w, "note      %s\n", n)
	}
	fmt.Fprintln(h.w, "commands")
	for _, c := range commands {
		fmt.Fprintf(h.w, "  %s\n", c)
	}
}

// finish writes res to jsonFile (if set), then returns the error for the
// failures, if any (wrapping ErrValidation).
func (h *harness) finish(jsonFile string, res any) error {
	if jsonFile != "" {
		if err := writeJSON(jsonFile, res); err != nil {
			return fmt.Errorf("%s: --json: %w", h.name, err)
		}
	}
	if len(*h.failures) > 0 {
		return fmt.Errorf("%s: %w: %s", h.name, ErrValidation, strings.Join(*h.failures, "; "))
	}
	return nil
}

// validate runs the gensort validator over files (in order, as one
// concatenated output) and compares with the input.
func (h *harness) validate(ctx context.Context, files []string) (*Check, error) {
	c := &Check{Files: len(files), WantRecords: uint64(h.records), WantChecksum: h.sum.String()}
	fail := func(format string, a ...any) (*Check, error) {
		c.Problem = fmt.Sprintf(format, a...)
		return c, errors.New("VALIDATION FAILED: " + c.Problem)
	}
	if len(files) == 0 {
		return fail("no output files")
	}
	sums := make([]gensort.Summary, 0, len(files))
	for _, f := range files {
		s, err := gensort.ValidateFile(ctx, f)
		if err != nil {
			return fail("%v", err)
		}
		sums = append(sums, s)
	}
	t := gensort.Merge(sums)
	c.Records, c.Checksum, c.Duplicates, c.Unordered = t.Records, t.Checksum.String(), t.Duplicates, t.Unordered
	if t.Unordered > 0 {
		c.FirstUnordered = t.FirstUnordered
	}
	var probs []string
	if c.Records != c.WantRecords {
		probs = append(probs, fmt.Sprintf("%d records, want %d", c.Records, c.WantRecords))
	}
	if c.Checksum != c.WantChecksum {
		probs = append(probs, fmt.Sprintf("checksum %s, want %s", c.Checksum, c.WantChecksum))
	}
	if c.Unordered > 0 {
		probs = append(probs, fmt.Sprintf("%d unordered records, the first is record %d", c.Unordered, c.FirstUnordered))
	}
	if len(probs) > 0 {
		return fail("%s (%d file(s))", strings.Join(probs, "; "), len(files))
	}
	c.Passed = true
	return c, nil
}

// checkEngineOutput validates the part-* files of an engine's output
// directory, merged in name order (part-00000, part-00001, ...: the sorted
// order), then checks what the engine's report rep says of them. The
// records error reads "the engine reports N records, <has> M".
func (h *harness) checkEngineOutput(ctx context.Context, outDir string, rep *sortjob.Report, has string) (*Check, error) {
	parts, err := filepath.Glob(filepath.Join(outDir, "part-*"))
	if err != nil {
		return nil, err
	}
	slices.Sort(parts)
	c, err := h.validate(ctx, parts)
	if err != nil {
		return c, err
	}
	if !rep.Check.Passed {
		return c, fmt.Errorf("the engine's own report says its check failed: %+v", rep.Check)
	}
	if rep.Records != h.records {
		return c, fmt.Errorf("the engine reports %d records, %s %d", rep.Records, has, h.records)
	}
	return c, nil
}

func recordKind(ascii bool) string {
	if ascii {
		return "ASCII"
	}
	return "binary"
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func childEnv(drop ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			env = append(env, kv)
		}
	}
	return env
}

func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	// Interrupted: let the child clean up (the engine cancels its job, GNU
	// sort removes its temporary files), then kill it.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// runTimed runs cmd and returns its standard output and error and how
// long it ran, in seconds.
func runTimed(cmd *exec.Cmd) (stdout, stderr []byte, seconds float64, err error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0 := time.Now()
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), time.Since(t0).Seconds(), err
}

// engineReport reads the JSON report an enginectl child printed; err is
// how the child ended.
func engineReport(stdout, stderr []byte, err error) (*sortjob.Report, error) {
	if err != nil {
		return nil, fmt.Errorf("enginectl failed (%v): %s", err, tail(stderr))
	}
	var rep sortjob.Report
	if err := json.Unmarshal(stdout, &rep); err != nil {
		return nil, fmt.Errorf("enginectl printed no JSON report (%v): %s", err, tail(stdout))
	}
	return &rep, nil
}

// usage returns a finished child's peak resident set (rusage maxrss,
// bytes) and its user and system CPU seconds.
func usage(ps *os.ProcessState) (peakRSS int64, user, sys float64) {
	if ps == nil {
		return 0, 0, 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		peakRSS = int64(ru.Maxrss) << 10 // KiB on Linux
	}
	return peakRSS, ps.UserTime().Seconds(), ps.SystemTime().Seconds()
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianInt(v []int64) int64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return int64(math.Round(median(f)))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// meminfo returns MemTotal, MemFree and MemAvailable in bytes.
func meminfo() (total, free, avail int64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "MemTotal":
			total = n << 10
		case "MemFree":
			free = n << 10
		case "MemAvailable":
			avail = n << 10
		}
	}
	return
}

func writeJSON(path string, v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(buf, '\n'), 0o644)
}
