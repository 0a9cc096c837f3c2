package fiobench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The jobs, by the names the report uses.
const (
	JobRandWrite = "randwrite-4k"       // 4 KiB random writes, O_DIRECT, iodepth 32
	JobFsync     = "randwrite-4k-fsync" // 4 KiB random writes, fsync after each
	JobSeqWrite  = "write-1m"           // 1 MiB sequential writes, O_DIRECT, iodepth 8
	JobNewFile   = "write-new-1m"       // the same into a new file, once through, fsync at the end (direct only)
	JobRandRead  = "randread-4k"        // 4 KiB random reads, O_DIRECT, iodepth 32
	JobCreate    = "create"             // empty file creates (a Go loop, not fio)
)

// Units of a job's main figure.
const (
	UnitIOPS   = "IOPS"
	UnitMBps   = "MB/s" // 10^6 bytes per second
	UnitFilesS = "files/s"
)

// job is one measurement every target runs.
type job struct {
	name, title, unit string
	// fio arguments past the common ones; nil for the create loop.
	args []string
	// async: runs with the chosen asynchronous engine (else psync).
	async bool
	// once: writes the file once through instead of for the runtime.
	once bool
	// directOnly: a reference figure, run on the direct target only.
	directOnly bool
	// read: the figures are in fio's "read" section (else "write"), and
	// the file is laid out before the first run.
	read bool
}

var jobs = []job{
	{name: JobRandWrite, title: "4 KiB random writes, O_DIRECT, iodepth 32", unit: UnitIOPS, async: true,
		args: []string{"--rw=randwrite", "--bs=4k", "--direct=1", "--iodepth=32", "--norandommap", "--randrepeat=0"}},
	{name: JobFsync, title: "4 KiB random writes, fsync after each write (psync, iodepth 1)", unit: UnitIOPS,
		args: []string{"--rw=randwrite", "--bs=4k", "--direct=0", "--fsync=1", "--iodepth=1", "--norandommap", "--randrepeat=0"}},
	{name: JobSeqWrite, title: "1 MiB sequential writes, O_DIRECT, iodepth 8", unit: UnitMBps, async: true,
		args: []string{"--rw=write", "--bs=1m", "--direct=1", "--iodepth=8"}},
	// What a drain does to the backing file system: a new file written
	// once, sequentially, in big O_DIRECT writes, then fsynced (fio counts
	// the fsync in the runtime). The drain's like-for-like reference; the
	// time-based job above mostly overwrites blocks it allocated already.
	{name: JobNewFile, title: "1 MiB sequential writes to a new file, O_DIRECT, iodepth 8, fsync at the end (direct only: the drain's reference)",
		unit: UnitMBps, async: true, once: true, directOnly: true,
		args: []string{"--rw=write", "--bs=1m", "--direct=1", "--iodepth=8", "--end_fsync=1"}},
	{name: JobRandRead, title: "4 KiB random reads, O_DIRECT, iodepth 32 (file laid out first)", unit: UnitIOPS, async: true, read: true,
		args: []string{"--rw=randread", "--bs=4k", "--direct=1", "--iodepth=32", "--norandommap", "--randrepeat=0"}},
	{name: JobCreate, title: "file creates: open(O_CREAT|O_EXCL) + close, one directory", unit: UnitFilesS},
}

// fioArgs is the whole fio command line of j on file, writing its JSON
// report to out.
func fioArgs(j job, engine, file, out string, size int64, runtime time.Duration) []string {
	if !j.async {
		engine = "psync"
	}
	a := []string{
		"--name=" + j.name,
		"--filename=" + fioFile(file),
		"--size=" + strconv.FormatInt(size, 10),
	}
	if !j.once {
		a = append(a, "--runtime="+fioDuration(runtime), "--time_based")
	}
	a = append(a,
		"--group_reporting",
		"--numjobs=1",
		"--ioengine="+engine,
		// ftruncate, not fallocate: FUSE file systems need not support
		// fallocate, and every target must start from the same file.
		"--fallocate=none",
		"--output-format=json",
		"--output="+out,
	)
	return append(a, j.args...)
}

// fioFile escapes a path for --filename, which fio splits at colons.
func fioFile(path string) string { return strings.ReplaceAll(path, ":", `\:`) }

// fioDuration writes d as fio reads a time: whole seconds, else ms.
func fioDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", max(1, d.Milliseconds()))
}

// fioOutput is the part of fio's JSON report the benchmark reads.
type fioOutput struct {
	Version string   `json:"fio version"`
	Jobs    []fioJob `json:"jobs"`
}

type fioJob struct {
	Name  string `json:"jobname"`
	Error int    `json:"error"`
	Read  fioIO  `json:"read"`
	Write fioIO  `json:"write"`
	Sync  struct {
		TotalIOs int64  `json:"total_ios"`
		Lat      fioLat `json:"lat_ns"`
	} `json:"sync"`
}

type fioIO struct {
	IOBytes  int64   `json:"io_bytes"`
	BwBytes  float64 `json:"bw_bytes"`
	IOPS     float64 `json:"iops"`
	TotalIOs int64   `json:"total_ios"`
	Runtime  int64   `json:"runtime"` // ms
	Clat     fioLat  `json:"clat_ns"`
	Lat      fioLat  `json:"lat_ns"`
}

type fioLat struct {
	Mean       float64            `json:"mean"`
	Percentile map[string]float64 `json:"percentile"`
}

// p99 is the 99th percentile in microseconds, 0 when fio gave none.
func (l fioLat) p99() float64 { return l.Percentile["99.000000"] / 1e3 }

// parseFio reads fio's JSON report of one job into a sample.
func parseFio(data []byte, read bool) (Sample, string, error) {
	// fio may put warnings before the JSON.
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:]
	}
	var out fioOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return Sample{}, "", fmt.Errorf("fio JSON report: %w", err)
	}
	if len(out.Jobs) != 1 {
		return Sample{}, out.Version, fmt.Errorf("fio JSON report has %d jobs, want 1 (group_reporting)", len(out.Jobs))
	}
	j := out.Jobs[0]
	if j.Error != 0 {
		return Sample{}, out.Version, fmt.Errorf("fio job %s: error %d (%s)", j.Name, j.Error, syscall.Errno(j.Error))
	}
	io := j.Write
	if read {
		io = j.Read
	}
	if io.TotalIOs == 0 {
		return Sample{}, out.Version, fmt.Errorf("fio job %s: no I/O done", j.Name)
	}
	s := Sample{
		IOPS:      io.IOPS,
		MBps:      io.BwBytes / 1e6,
		P99Micros: io.Clat.p99(),
		Seconds:   float64(io.Runtime) / 1e3,
		Ops:       io.TotalIOs,
		Bytes:     io.IOBytes,
	}
	if j.Sync.TotalIOs > 0 {
		s.SyncP99Micros = j.Sync.Lat.p99()
	}
	return s, out.Version, nil
}

// runFio runs j on file and returns its figures.
func (b *bench) runFio(ctx context.Context, j job, t *target, round int) (Sample, error) {
	file := filepath.Join(t.path, j.name+".dat")
	if !j.read {
		// Every write run starts from a new file, as the first did.
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Sample{}, fmt.Errorf("fiobench: %s: %w", t.name, err)
		}
	}
	out := filepath.Join(b.work, fmt.Sprintf("fio-%s-%s-%d.json", j.name, t.name, round))
	args := fioArgs(j, b.engine, file, out, b.cfg.Size, b.cfg.Runtime)
	cmd := exec.CommandContext(ctx, b.fio, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	b.log.Info("fio", "job", j.name, "target", t.name, "round", round, "file", file)
	err := cmd.Run()
	if ctx.Err() != nil {
		return Sample{}, ctx.Err()
	}
	if err != nil {
		return Sample{}, fmt.Errorf("fio %s on %s: %w: %s", j.name, t.name, err, tail(stderr.String()))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return Sample{}, fmt.Errorf("fio %s on %s: %w", j.name, t.name, err)
	}
	s, _, err := parseFio(data, j.read)
	if err != nil {
		return Sample{}, fmt.Errorf("fio %s on %s: %w: %s", j.name, t.name, err, tail(stderr.String()))
	}
	os.Remove(out)
	return s, nil
}

// pickEngine returns the first asynchronous fio engine that does a short
// O_DIRECT run on every target: io_uring, then libaio, else psync.
func (b *bench) pickEngine(ctx context.Context, targets []*target) (string, []string) {
	if b.cfg.IOEngine != "" {
		return b.cfg.IOEngine, nil
	}
	var notes []string
next:
	for _, e := range []string{"io_uring", "libaio"} {
		for _, t := range targets {
			file := filepath.Join(t.path, "probe.dat")
			cmd := exec.CommandContext(ctx, b.fio, "--name=probe", "--filename="+fioFile(file), "--size=1m",
				"--rw=randwrite", "--bs=4k", "--direct=1", "--iodepth=4", "--ioengine="+e,
				"--fallocate=none", "--output-format=json", "--output="+filepath.Join(b.work, "probe.json"))
			outb, err := cmd.CombinedOutput()
			os.Remove(file)
			if err == nil {
				var data []byte
				data, err = os.ReadFile(filepath.Join(b.work, "probe.json"))
				if err == nil {
					_, _, err = parseFio(data, false)
				}
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("ioengine %s fails on %s: %v %s", e, t.name, err, tail(string(outb))))
				continue next
			}
		}
		return e, notes
	}
	return "psync", notes
}

// fioVersion returns "fio-3.33" or similar.
func fioVersion(fio string) string {
	out, err := exec.Command(fio, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// tail returns the last lines of a command's output, on one line.
func tail(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
