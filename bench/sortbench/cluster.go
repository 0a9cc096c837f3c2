package sortbench

// The cluster benchmark ("enginectl bench cluster"): the engine's sort of
// the same generated gensort records on an N-node local cluster and on the
// embedded single node, alternating round by round.
//
// Everything runs through the real binaries as child processes, as a user
// would run them (this package does not import the serving code):
//
//	enginectl cluster up --nodes N --dir DIR/cluster          once, before round 1
//	enginectl --addr ADDR submit sort --size=S --json --progress none --output DIR/cluster-out
//	enginectl submit sort --size=S --json --progress none --output DIR/single-out --data DIR/embedded
//	enginectl cluster down --dir DIR/cluster                  once, at the end (also on error or Ctrl-C)
//
// Both jobs generate gensort records 0..N-1, so both outputs must have N
// records with the checksum of "gensort -c N", in order; every output is
// validated here with the gensort validator, part by part, and merged.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"engine/gensort"
	"engine/internal/units"
	"engine/sortjob"

	"engine/bench/internal/benchfmt"
)

// The two systems of the cluster benchmark.
const (
	ClusterSystem = "cluster"
	SingleSystem  = "single"
)

// ClusterTarget is the project's target for the cluster on one machine.
const ClusterTarget = "cluster ≥ 0.8× single-node rate on this 2-core machine"

// ClusterOptions configures RunCluster.
type ClusterOptions struct {
	// Records is the size of each sort in 100-byte gensort records.
	Records int64
	// ASCII sorts gensort -a records (submit sort --records ascii).
	ASCII bool
	// Nodes is the local cluster's size (default 3).
	Nodes int
	// Rounds is how many times each of the two sorts runs (default 3).
	Rounds int
	// Dir is the work directory: it must not exist or be empty; empty: a
	// new directory under /var/tmp. It is removed at the end unless Keep.
	Dir  string
	Keep bool
	// DropCaches syncs and drops the page cache before every run (root).
	DropCaches bool
	// Enginectl is the enginectl binary (engined must be beside it or in
	// PATH, for "cluster up"); empty: this executable.
	Enginectl string
	// JSONFile, if set, receives the ClusterResult as JSON.
	JSONFile string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// ClusterRun is one timed sort, on the cluster or on the single node: a
// Measurement whose System is ClusterSystem or SingleSystem and whose
// Seconds is the wall clock of the enginectl process. Its CPU is, for the
// single node, the enginectl process's (rusage; the node runs in it), for
// the cluster the sum over its engined processes (/proc/PID/stat before and
// after the run); its PeakRSS is the single node's rusage maxrss, or the
// cluster report's largest per-node peak.
type ClusterRun struct {
	Measurement
}

// OwnMBps is the engine's own sort rate (map+reduce), 0 without a report.
func (m *ClusterRun) OwnMBps() float64 {
	if m == nil || m.Report == nil {
		return 0
	}
	return m.Report.MBps
}

// OwnValidatedMBps is the engine's rate over map, reduce and validate. A
// node's job validates each partition inside its reduce task; the local
// driver (sortjob.Run) has a validate phase of its own, which the engine's
// own rate leaves out: this rate compares the two like for like.
func (m *ClusterRun) OwnValidatedMBps() float64 {
	if m == nil || m.Report == nil {
		return 0
	}
	s := phaseSeconds(m.Report, "map") + phaseSeconds(m.Report, "reduce") + phaseSeconds(m.Report, "validate")
	if s <= 0 {
		return 0
	}
	return float64(m.Report.Bytes) / 1e6 / s
}

// ClusterNode is one engined process of the benchmark's cluster.
type ClusterNode struct {
	Name string `json:"name"`
	API  string `json:"api"`
	PID  int    `json:"pid"`
}

// validatePhase reports whether any of sys's reports has a validate
// phase of its own (the engine's local driver has; a node's job validates
// each partition inside its reduce task).
func (b *clusterBench) validatePhase(sys string) bool {
	for _, m := range b.res.Runs {
		if m.System == sys && m.Report != nil && phaseSeconds(m.Report, "validate") > 0 {
			return true
		}
	}
	return false
}

// ClusterRatios are one round's cluster/single ratios (0: not measured).
type ClusterRatios struct {
	Round int `json:"round"`
	// Wall is the ratio of the wall-clock rates (single seconds / cluster
	// seconds); Own of the engine's own rates; OwnValidated of the rates
	// with validation counted on both sides.
	Wall         float64 `json:"wall"`
	Own          float64 `json:"own"`
	OwnValidated float64 `json:"own_validated"`
}

// ClusterMedian holds the medians over the successful runs (0: none).
type ClusterMedian struct {
	ClusterSeconds         float64 `json:"cluster_seconds"`
	ClusterMBps            float64 `json:"cluster_mb_per_s"`
	ClusterOwnMBps         float64 `json:"cluster_own_mb_per_s"`
	ShuffleBytes           int64   `json:"shuffle_bytes"`
	ShuffleMBps            float64 `json:"shuffle_mb_per_s"`
	Retries                float64 `json:"retries"`
	SingleSeconds          float64 `json:"single_seconds"`
	SingleMBps             float64 `json:"single_mb_per_s"`
	SingleOwnMBps          float64 `json:"single_own_mb_per_s"`
	SingleOwnValidatedMBps float64 `json:"single_own_validated_mb_per_s"`
	Wall                   float64 `json:"cluster_over_single_wall"`
	Own                    float64 `json:"cluster_over_single_own"`
	OwnValidated           float64 `json:"cluster_over_single_own_validated"`
}

// ClusterResult is everything RunCluster measured.
type ClusterResult struct {
	Started        time.Time       `json:"started"`
	Finished       time.Time       `json:"finished"`
	Records        int64           `json:"records"`
	Bytes          int64           `json:"bytes"`
	ASCII          bool            `json:"ascii"`
	Size           string          `json:"size"` // the --size given to both jobs
	Nodes          int             `json:"nodes"`
	Rounds         int             `json:"rounds"`
	Dir            string          `json:"dir"`
	Kept           bool            `json:"kept"`
	DropCaches     bool            `json:"drop_caches"`
	DropCachesNote string          `json:"drop_caches_note"`
	Nproc          int             `json:"nproc"`
	LoadBefore     string          `json:"load_before"`
	LoadAfter      string          `json:"load_after"`
	MemTotal       int64           `json:"mem_total"`
	MemAvailable   int64           `json:"mem_available"`
	DiskFree       int64           `json:"disk_free"`
	DiskNeeded     int64           `json:"disk_needed"`
	Enginectl      string          `json:"enginectl"`
	Engined        string          `json:"engined"`
	WantChecksum   string          `json:"want_checksum"`
	ClusterAddr    string          `json:"cluster_addr"`
	ClusterNodes   []ClusterNode   `json:"cluster_nodes"`
	ClusterUpSecs  float64         `json:"cluster_up_seconds"`
	ClusterDown    bool            `json:"cluster_down"` // every engined process is gone
	ClusterDownMsg string          `json:"cluster_down_msg,omitempty"`
	Commands       []string        `json:"commands"`
	Notes          []string        `json:"notes,omitempty"`
	Runs           []*ClusterRun   `json:"runs"`
	Ratios         []ClusterRatios `json:"ratios"`
	Median         ClusterMedian   `json:"median"`
	Target         Target          `json:"target"`
	Failures       []string        `json:"failures,omitempty"`
}

type clusterBench struct {
	harness
	o         ClusterOptions
	res       *ClusterResult
	enginectl string
	downDone  bool
}

// RunCluster runs the cluster benchmark, printing its table to w. It
// returns the result (as far as it got) and an error when it was
// interrupted, could not start, or a run or a validation failed (wrapping
// ErrValidation). The target's PASS/MISS never makes it fail. Whatever
// happens after the cluster was started, it is brought down before
// RunCluster returns.
func RunCluster(ctx context.Context, o ClusterOptions, w io.Writer) (res *ClusterResult, err error) {
	if o.Records <= 0 {
		return nil, fmt.Errorf("bench cluster: nothing to sort (%d records)", o.Records)
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 {
		return nil, fmt.Errorf("bench cluster: --nodes must be at least 1")
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	b := &clusterBench{o: o}
	res = &ClusterResult{
		Started: time.Now(), Records: o.Records, Bytes: o.Records * gensort.RecordSize, ASCII: o.ASCII,
		Size: sizeArg(o.Records), Nodes: o.Nodes, Rounds: o.Rounds, Nproc: runtime.NumCPU(),
		LoadBefore: loadavg(), Runs: []*ClusterRun{},
	}
	b.res = res
	b.harness = harness{name: "bench cluster", w: w, log: o.Log, notes: &res.Notes, failures: &res.Failures, records: o.Records}
	res.MemTotal, _, res.MemAvailable = meminfo()

	// The binaries.
	p := o.Enginectl
	if p == "" {
		if p, err = os.Executable(); err != nil {
			return res, fmt.Errorf("bench cluster: finding enginectl: %w", err)
		}
	}
	if p, err = filepath.Abs(p); err != nil {
		return res, err
	}
	if !isExecutable(p) {
		return res, fmt.Errorf("bench cluster: enginectl %s is not an executable file", p)
	}
	b.enginectl, res.Enginectl = p, p
	// "cluster up" looks for engined beside enginectl, then in PATH.
	if e := filepath.Join(filepath.Dir(p), "engined"); isExecutable(e) {
		res.Engined = e
	} else if e, lerr := exec.LookPath("engined"); lerr == nil {
		res.Engined = e
	} else {
		return res, fmt.Errorf("bench cluster: engined is neither beside %s nor in PATH; build both: go build -o DIR/ ./cmd/enginectl ./cmd/engined", p)
	}

	// Work directory.
	if err := b.makeDir(o.Dir, "clusterbench-"); err != nil {
		return res, err
	}
	res.Dir = b.dir
	defer func() { res.Kept = b.closeDir(o.Keep) }()
	if err := b.checkSpace(); err != nil {
		return res, err
	}
	res.DropCachesNote = b.setupDropCaches(o.DropCaches, "")
	res.DropCaches = b.dropOK

	// What every output must be: gensort records 0..N-1.
	fmt.Fprintf(b.log, "bench cluster: computing the checksum of gensort records 0..%d...\n", o.Records-1)
	b.sum = gensort.ChecksumRecords(0, uint64(o.Records), gensort.Options{ASCII: o.ASCII})
	res.WantChecksum = b.sum.String()
	if ctx.Err() != nil {
		return res, b.interrupted(ctx)
	}

	// The cluster: from here on, whatever happens, it is brought down
	// (before the work directory is removed: defers run last first).
	defer b.clusterDown()
	if err := b.clusterUp(ctx); err != nil {
		if ctx.Err() != nil {
			return res, b.interrupted(ctx)
		}
		return res, err
	}
	res.Commands = b.commands()
	b.writeHeader()

	// Rounds: the cluster, then the single node.
	for round := 1; round <= o.Rounds; round++ {
		for _, sys := range []string{ClusterSystem, SingleSystem} {
			fmt.Fprintf(b.log, "bench cluster: round %d/%d %s: sorting %s...\n", round, o.Rounds, clusterSysName(sys, o.Nodes), units.Format(res.Bytes))
			m := b.measure(ctx, round, sys)
			if ctx.Err() != nil {
				return res, b.interrupted(ctx)
			}
			res.Runs = append(res.Runs, m)
			if m.OK {
				fmt.Fprintf(b.log, "bench cluster: round %d/%d %-7s %7.2fs %8.1f MB/s, own rate %.1f MB/s (output valid)\n",
					round, o.Rounds, sys, m.Seconds, m.MBps, m.OwnMBps())
			} else {
				b.fail(fmt.Sprintf("%s round %d: %s", clusterSysName(sys, o.Nodes), round, m.Error))
			}
			if !(o.Keep && round == o.Rounds) {
				b.removeOutput(sys)
			}
		}
	}
	b.clusterDown()
	res.LoadAfter = loadavg()
	res.Finished = time.Now()
	b.summarize()
	b.writeTable()
	if err := b.finish(o.JSONFile, res); err != nil {
		return res, err
	}
	if !res.ClusterDown {
		return res, fmt.Errorf("bench cluster: the cluster did not come down: %s", res.ClusterDownMsg)
	}
	return res, nil
}

func clusterSysName(sys string, nodes int) string {
	if sys == ClusterSystem {
		return fmt.Sprintf("%d-node cluster", nodes)
	}
	return "single node"
}

// sizeArg is the --size that makes submit sort generate exactly records.
func sizeArg(records int64) string {
	s := units.FormatExact(records * gensort.RecordSize)
	if n, err := sortjob.ParseSize(s); err == nil && n == records {
		return s
	}
	return strconv.FormatInt(records, 10) + "rec"
}

func (b *clusterBench) clusterDir() string  { return filepath.Join(b.dir, "cluster") }
func (b *clusterBench) embeddedDir() string { return filepath.Join(b.dir, "embedded") }
func (b *clusterBench) outDir(sys string) string {
	return filepath.Join(b.dir, sys+"-out")
}
func (b *clusterBench) removeOutput(sys string) { os.RemoveAll(b.outDir(sys)) }

// checkSpace refuses to start without room for one sort at a time: its
// map outputs and its sorted output (the other system's are removed
// between runs).
func (b *clusterBench) checkSpace() error {
	what := "map outputs + sorted output of one " + units.Format(b.res.Bytes) + " sort"
	return b.checkFreeSpace(2*b.res.Bytes, what, &b.res.DiskFree, &b.res.DiskNeeded)
}

// ctlCommand is an enginectl child in its own process group, so that a
// Ctrl-C on the terminal reaches only the benchmark, which then stops its
// children in order: SIGINT (a submit cancels its job), SIGKILL after 30 s.
func (b *clusterBench) ctlCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := command(ctx, b.enginectl, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = childEnv("ENGINE_ADDR", "ENGINE_CPUPROFILE", "ENGINE_DATA")
	return cmd
}

func (b *clusterBench) upArgs() []string {
	return []string{"cluster", "up", "--nodes", strconv.Itoa(b.o.Nodes), "--dir", b.clusterDir()}
}

func (b *clusterBench) downArgs() []string {
	return []string{"cluster", "down", "--dir", b.clusterDir()}
}

// clusterUp starts the cluster with "enginectl cluster up" and reads its
// address and node processes from what it prints.
func (b *clusterBench) clusterUp(ctx context.Context) error {
	fmt.Fprintf(b.log, "bench cluster: starting a %d-node cluster: %s %s\n", b.o.Nodes, b.enginectl, strings.Join(b.upArgs(), " "))
	stdout, stderr, seconds, err := runTimed(b.ctlCommand(ctx, b.upArgs()...))
	b.res.ClusterUpSecs = seconds
	if err != nil {
		return fmt.Errorf("bench cluster: cluster up failed (%v): %s %s", err, tail(stderr), tail(stdout))
	}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if addr, ok := strings.CutPrefix(line, "ENGINE_ADDR="); ok {
			b.res.ClusterAddr = strings.TrimSpace(addr)
			continue
		}
		// node-0  api 127.0.0.1:P  raft ...  pid 123  DIR/node-0
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "node-") {
			continue
		}
		n := ClusterNode{Name: f[0]}
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "api":
				n.API = f[i+1]
			case "pid":
				n.PID, _ = strconv.Atoi(f[i+1])
			}
		}
		b.res.ClusterNodes = append(b.res.ClusterNodes, n)
	}
	if b.res.ClusterAddr == "" {
		return fmt.Errorf("bench cluster: cluster up printed no ENGINE_ADDR= line: %s", tail(stdout))
	}
	if len(b.res.ClusterNodes) != b.o.Nodes {
		b.note(fmt.Sprintf("cluster up listed %d nodes, want %d", len(b.res.ClusterNodes), b.o.Nodes))
	}
	fmt.Fprintf(b.log, "bench cluster: cluster up in %.1fs: ENGINE_ADDR=%s\n", b.res.ClusterUpSecs, b.res.ClusterAddr)
	return nil
}

// enginedPIDs are the cluster's processes: from its pid files and from
// what cluster up printed.
func (b *clusterBench) enginedPIDs() []int {
	var pids []int
	files, _ := filepath.Glob(filepath.Join(b.clusterDir(), "node-*", "engined.pid"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	for _, n := range b.res.ClusterNodes {
		if n.PID > 0 && !slices.Contains(pids, n.PID) {
			pids = append(pids, n.PID)
		}
	}
	return pids
}

// clusterDown runs "enginectl cluster down" (once; not cancellable: it
// must happen after a Ctrl-C too), then makes sure no engined process of
// this cluster is left, killing any survivor by its pid.
func (b *clusterBench) clusterDown() {
	if b.downDone {
		return
	}
	b.downDone = true
	pids := b.enginedPIDs()
	var msgs []string
	if _, err := os.Stat(filepath.Join(b.clusterDir(), "cluster.json")); err == nil {
		fmt.Fprintf(b.log, "bench cluster: stopping the cluster: %s %s\n", b.enginectl, strings.Join(b.downArgs(), " "))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := b.ctlCommand(ctx, b.downArgs()...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("cluster down failed (%v): %s", err, tail(out)))
		}
	}
	// Anything of ours still running: the nodes we know of, and any
	// engined whose data is in this cluster's directory (say, one started
	// by an interrupted cluster up before it wrote its pid file).
	for _, pid := range ourEngined(b.clusterDir()) {
		if !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	var left []int
	for _, pid := range pids {
		if procAlive(pid) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		msgs = append(msgs, fmt.Sprintf("engined pid(s) %v still running after cluster down: sent SIGTERM, then SIGKILL", left))
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, pid := range left {
			for procAlive(pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if procAlive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var still []int
	for _, pid := range pids {
		if procAlive(pid) {
			still = append(still, pid)
		}
	}
	b.res.ClusterDown = len(still) == 0
	if len(still) > 0 {
		msgs = append(msgs, fmt.Sprintf("engined pid(s) %v are STILL RUNNING", still))
	}
	b.res.ClusterDownMsg = strings.Join(msgs, "; ")
	if len(msgs) > 0 {
		fmt.Fprintf(b.log, "bench cluster: %s\n", b.res.ClusterDownMsg)
	}
}

// ourEngined lists the processes whose command line puts their data under
// dir (engined --data dir/node-i/data).
func ourEngined(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := dir + string(filepath.Separator)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if filepath.Base(args[0]) != "engined" {
			continue
		}
		for i, a := range args {
			if a == "--data" && i+1 < len(args) && strings.HasPrefix(args[i+1], prefix) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// procAlive reports whether pid is a running (not zombie) process.
func procAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := procStat(pid)
	if err != nil {
		return false
	}
	return len(st) > 0 && st[0] != "Z"
}

// procStat returns the fields of /proc/PID/stat after the command name:
// [0] is the state (field 3), [11] utime and [12] stime (fields 14, 15).
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// procCPU returns pid's user and system CPU seconds so far.
func procCPU(pid int) (user, sys float64) {
	f, err := procStat(pid)
	if err != nil || len(f) < 13 {
		return 0, 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return u / clockTicks, s / clockTicks
}

// clusterCPU sums the CPU seconds of the cluster's processes, by pid.
func (b *clusterBench) clusterCPU() map[int][2]float64 {
	m := map[int][2]float64{}
	for _, pid := range b.enginedPIDs() {
		u, s := procCPU(pid)
		m[pid] = [2]float64{u, s}
	}
	return m
}

func (b *clusterBench) submitArgs(sys string) []string {
	var args []string
	if sys == ClusterSystem {
		args = append(args, "--addr", b.res.ClusterAddr, "--token", filepath.Join(b.clusterDir(), "token"))
	}
	args = append(args, "submit", "sort", "--size="+b.res.Size)
	if b.o.ASCII {
		args = append(args, "--records", "ascii")
	}
	args = append(args, "--json", "--progress", "none", "--output", b.outDir(sys))
	if sys == SingleSystem {
		args = append(args, "--data", b.embeddedDir())
	}
	return args
}

func (b *clusterBench) commands() []string {
	var cmds []string
	if b.dropOK {
		cmds = append(cmds, "before every run: sync; echo 1 > "+dropCachesFile)
	}
	cmds = append(cmds,
		"cluster up:   "+b.enginectl+" "+strings.Join(b.upArgs(), " ")+"   (once, before round 1; engined "+b.res.Engined+")",
		"cluster:      "+b.enginectl+" "+strings.Join(b.submitArgs(ClusterSystem), " "),
		"single node:  "+b.enginectl+" "+strings.Join(b.submitArgs(SingleSystem), " "),
		"each timed from start to exit, ENGINE_ADDR/ENGINE_DATA/ENGINE_CPUPROFILE unset; then every part-* validated here (gensort validator, merged in order), the output removed",
		"cluster down: "+b.enginectl+" "+strings.Join(b.downArgs(), " ")+"   (once, after the last round, or on error / Ctrl-C)",
	)
	return cmds
}

func (b *clusterBench) writeHeader() {
	r, w := b.res, b.w
	fmt.Fprintf(w, "bench cluster: %s (%d %s gensort records 0..%d, generated by each job), %d round(s), each: the %d-node local cluster, then the embedded single node\n",
		units.Format(r.Bytes), r.Records, recordKind(r.ASCII), r.Records-1, r.Rounds, r.Nodes)
	fmt.Fprintf(w, "machine   nproc %d; load average before %s; memory total %s, available %s\n",
		r.Nproc, r.LoadBefore, units.Format(r.MemTotal), units.Format(r.MemAvailable))
	b.writeDiskAndCaches(r.DiskFree, r.DiskNeeded, r.DropCachesNote)
	var nodes []string
	for _, n := range r.ClusterNodes {
		nodes = append(nodes, fmt.Sprintf("%s %s pid %d", n.Name, n.API, n.PID))
	}
	fmt.Fprintf(w, "cluster   up in %.1fs at ENGINE_ADDR=%s: %s; workers per node: cluster up's default max(1, nproc/nodes) = %d; it stays up (idle) during the single-node runs\n",
		r.ClusterUpSecs, r.ClusterAddr, strings.Join(nodes, ", "), max(1, r.Nproc/max(r.Nodes, 1)))
	fmt.Fprintf(w, "expected  %d records, checksum %s (gensort -c %d), in order\n", r.Records, r.WantChecksum, r.Records)
	b.writeNotesAndCommands(r.Notes, r.Commands)
}

// measure runs one sort, then validates its output.
func (b *clusterBench) measure(ctx context.Context, round int, sys string) *ClusterRun {
	m := &ClusterRun{Measurement{Round: round, System: sys}}
	b.removeOutput(sys)
	m.CachesDropped = b.dropBeforeRun(round, sys)
	m.LoadBefore = loadavg()
	if err := b.runSort(ctx, m); err != nil {
		m.Error = err.Error()
		return m
	}
	m.MBps = float64(b.res.Bytes) / 1e6 / m.Seconds
	m.OK = true
	return m
}

func (b *clusterBench) runSort(ctx context.Context, m *ClusterRun) error {
	args := b.submitArgs(m.System)
	m.Command = b.enginectl + " " + strings.Join(args, " ")
	var cpu0 map[int][2]float64
	if m.System == ClusterSystem {
		cpu0 = b.clusterCPU()
	}
	cmd := b.ctlCommand(ctx, args...)
	stdout, stderr, seconds, err := runTimed(cmd)
	m.Seconds = seconds
	if m.System == ClusterSystem {
		for pid, c := range b.clusterCPU() {
			if c0, ok := cpu0[pid]; ok {
				m.UserSeconds += c[0] - c0[0]
				m.SysSeconds += c[1] - c0[1]
			}
		}
	} else {
		m.PeakRSS, m.UserSeconds, m.SysSeconds = usage(cmd.ProcessState)
	}
	rep, err := engineReport(stdout, stderr, err)
	if err != nil {
		return err
	}
	m.Report = rep
	if m.System == ClusterSystem {
		m.PeakRSS = rep.PeakRSS
	}
	if m.Seconds <= 0 {
		return fmt.Errorf("no time measured")
	}
	// The same validation as bench sort's: every part with the gensort
	// validator, merged in order, against records 0..N-1.
	m.Check, err = b.checkEngineOutput(ctx, b.outDir(m.System), rep, "want")
	return err
}

// get returns round's successful run of sys.
func (b *clusterBench) get(round int, sys string) *ClusterRun {
	for _, m := range b.res.Runs {
		if m.Round == round && m.System == sys && m.OK {
			return m
		}
	}
	return nil
}

func finite(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// summarize computes the per-round ratios, the medians and the target.
func (b *clusterBench) summarize() {
	r := b.res
	var cS, cM, cO, shM, retr, sS, sM, sO, sOV, wall, own, ownV []float64
	var shB []int64
	for round := 1; round <= r.Rounds; round++ {
		c, s := b.get(round, ClusterSystem), b.get(round, SingleSystem)
		rt := ClusterRatios{Round: round}
		if c != nil {
			cS, cM, cO = append(cS, c.Seconds), append(cM, c.MBps), append(cO, c.OwnMBps())
			shB, shM = append(shB, c.Report.ShuffleBytes), append(shM, c.Report.ShuffleMBps)
			retr = append(retr, float64(c.Report.Retries))
		}
		if s != nil {
			sS, sM, sO, sOV = append(sS, s.Seconds), append(sM, s.MBps), append(sO, s.OwnMBps()), append(sOV, s.OwnValidatedMBps())
		}
		if c != nil && s != nil {
			if v := c.MBps / s.MBps; finite(v) {
				rt.Wall = v
				wall = append(wall, v)
			}
			if v := c.OwnMBps() / s.OwnMBps(); finite(v) {
				rt.Own = v
				own = append(own, v)
			}
			if v := c.OwnValidatedMBps() / s.OwnValidatedMBps(); finite(v) {
				rt.OwnValidated = v
				ownV = append(ownV, v)
			}
		}
		r.Ratios = append(r.Ratios, rt)
	}
	r.Median = ClusterMedian{
		ClusterSeconds: median(cS), ClusterMBps: median(cM), ClusterOwnMBps: median(cO),
		ShuffleBytes: medianInt(shB), ShuffleMBps: median(shM), Retries: median(retr),
		SingleSeconds: median(sS), SingleMBps: median(sM), SingleOwnMBps: median(sO), SingleOwnValidatedMBps: median(sOV),
		Wall: median(wall), Own: median(own), OwnValidated: median(ownV),
	}
	t := Target{Name: ClusterTarget, Want: 0.8, Got: r.Median.Wall, Unit: "×", Known: len(wall) > 0,
		Applies: r.Nproc == 2 && r.Nodes == 3 && r.Records == 10_000_000}
	t.Pass = t.Known && t.Got >= t.Want
	t.Note = fmt.Sprintf("median cluster/single of the wall-clock rates over %d round(s); of the engine's own rates %s",
		len(wall), benchfmt.Ratio(r.Median.Own))
	if b.validatePhase(ClusterSystem) != b.validatePhase(SingleSystem) {
		t.Note += ", with validation counted on both sides " + benchfmt.Ratio(r.Median.OwnValidated)
	}
	if !t.Applies {
		t.Note += fmt.Sprintf("; informational: the target is for 1 GB on 3 nodes on 2 cores, this run is %s on %d node(s) on %d core(s)",
			units.Format(r.Bytes), r.Nodes, r.Nproc)
	}
	r.Target = t
}

const clusterLabelWidth = 54

func (b *clusterBench) writeTable() {
	r, w := b.res, b.w
	t := &table{w: w, labelWidth: clusterLabelWidth, rounds: r.Rounds, runs: views(r.Runs)}
	t.header()
	// show prints a row of f's value for each round's run of sys and
	// their median (ok false: no value).
	show := func(label, sys string, f func(m *ClusterRun) (float64, bool), format func(float64) string) {
		t.valueRow(label, sys, func(i int) (float64, bool) { return f(r.Runs[i]) }, format)
	}
	f1 := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	fb := func(v float64) string { return units.Format(int64(math.Round(v))) }
	rep := func(g func(*sortjob.Report) float64) func(m *ClusterRun) (float64, bool) {
		return func(m *ClusterRun) (float64, bool) {
			if m.Report == nil {
				return 0, false
			}
			return g(m.Report), true
		}
	}
	phases := func(sys string) {
		what := "(process, node start, sample)"
		if sys == ClusterSystem {
			what = "(client, submit, sample)"
		}
		t.phaseRows(sys, func(ph string) string {
			if ph == "reduce" && !b.validatePhase(sys) {
				return "    phase " + ph + " s (includes validation)"
			}
			return "    phase " + ph + " s"
		}, "    outside the job s "+what)
	}
	wallRate := func(m *ClusterRun) (float64, bool) { return m.MBps, true }
	wallSecs := func(m *ClusterRun) (float64, bool) { return m.Seconds, true }
	ownRate := func(m *ClusterRun) (float64, bool) { return m.OwnMBps(), m.Report != nil }
	ownV := func(m *ClusterRun) (float64, bool) { return m.OwnValidatedMBps(), m.Report != nil }
	rss := func(m *ClusterRun) (float64, bool) { return float64(m.PeakRSS), m.PeakRSS > 0 }

	c, s := ClusterSystem, SingleSystem
	show(fmt.Sprintf("cluster (%d nodes) MB/s (wall clock of the submit)", r.Nodes), c, wallRate, f1)
	show("  cluster seconds (wall clock)", c, wallSecs, secsText)
	show("  cluster's own sort rate MB/s (map+reduce)", c, ownRate, f1)
	phases(c)
	show("  shuffle bytes (fetched from other nodes)", c, rep(func(rp *sortjob.Report) float64 { return float64(rp.ShuffleBytes) }), fb)
	show("  shuffle MB/s (over the reduce stage)", c, rep(func(rp *sortjob.Report) float64 { return rp.ShuffleMBps }), f1)
	show("  re-run attempts (retries; should be 0)", c, rep(func(rp *sortjob.Report) float64 { return float64(rp.Retries) }), f0)
	show("  workers (tasks at once, all nodes)", c, rep(func(rp *sortjob.Report) float64 { return float64(rp.Workers) }), f0)
	t.cpuRow("  CPU s (user+sys, all engined processes)", c, "-")
	show("  peak RSS (largest node)", c, rss, fb)
	for _, name := range b.nodeNames() {
		t.row("    "+name+" tasks (maps/reduces)", t.cells(c, "FAILED", func(i int) string {
			cell := "0/0"
			if rp := r.Runs[i].Report; rp != nil {
				for _, n := range rp.Nodes {
					if n.Node == name {
						cell = fmt.Sprintf("%d/%d", n.Maps, n.Reduces)
					}
				}
			}
			return cell
		}), "")
	}
	show("single node MB/s (wall clock of the process)", s, wallRate, f1)
	show("  single seconds (wall clock)", s, wallSecs, secsText)
	show("  single's own sort rate MB/s (map+reduce)", s, ownRate, f1)
	split := b.validatePhase(ClusterSystem) != b.validatePhase(SingleSystem)
	if split {
		show("  single's rate MB/s over map+reduce+validate", s, ownV, f1)
	}
	phases(s)
	show("  workers (tasks at once)", s, rep(func(rp *sortjob.Report) float64 { return float64(rp.Workers) }), f0)
	t.cpuRow("  CPU s (user+sys, rusage)", s, "-")
	show("  peak RSS (rusage maxrss)", s, rss, fb)
	ratios := func(label string, f func(ClusterRatios) float64, med float64) {
		cells := make([]string, r.Rounds)
		for i := range cells {
			cells[i] = "-"
			if i < len(r.Ratios) {
				cells[i] = benchfmt.Ratio(f(r.Ratios[i]))
			}
		}
		t.row(label, cells, benchfmt.Ratio(med))
	}
	ratios("cluster/single (wall clock)", func(rt ClusterRatios) float64 { return rt.Wall }, r.Median.Wall)
	ratios("cluster/single (engine's own rate)", func(rt ClusterRatios) float64 { return rt.Own }, r.Median.Own)
	if split {
		ratios("cluster/single (own rate, validation on both sides)", func(rt ClusterRatios) float64 { return rt.OwnValidated }, r.Median.OwnValidated)
	}
	t.loadRow()
	fmt.Fprintln(w, "(MB = 10^6 bytes; medians are over the successful runs; ratio medians are medians of the per-round ratios;")
	fmt.Fprint(w, " the engine's own sort rate is over its map and reduce phases")
	if split {
		fmt.Fprint(w, ": one side validates inside its reduce phase, the other in a phase of its own")
	}
	fmt.Fprintln(w, ")")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "target (PASS/MISS is reported, a miss does not fail the command)")
	got, pass := verdict(r.Target)
	fmt.Fprintf(w, "  %s   %s  %s (%s)\n", r.Target.Name, got, pass, r.Target.Note)

	t.validation(r.Failures, r.Records, r.WantChecksum)
	down := "down: no engined process of it is left"
	if !r.ClusterDown {
		down = "NOT DOWN"
	}
	if r.ClusterDownMsg != "" {
		down += " (" + r.ClusterDownMsg + ")"
	}
	fmt.Fprintf(w, "cluster %s\n", down)
	fmt.Fprintf(w, "load average before %s, after %s; nproc %d; page cache dropped before each run: %s\n", r.LoadBefore, r.LoadAfter, r.Nproc, yesNo(r.DropCaches))
}

// nodeNames lists the cluster's node names: those cluster up printed and
// any a report names.
func (b *clusterBench) nodeNames() []string {
	var names []string
	for _, n := range b.res.ClusterNodes {
		names = append(names, n.Name)
	}
	for _, m := range b.res.Runs {
		if m.System != ClusterSystem || m.Report == nil {
			continue
		}
		for _, n := range m.Report.Nodes {
			if !slices.Contains(names, n.Node) {
				names = append(names, n.Node)
			}
		}
	}
	return names
}
