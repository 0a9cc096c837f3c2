package fiobench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DrainReport is what ours' burst buffer drained to its backing
// directory, from "enginectl bb status --json" after the last sync.
type DrainReport struct {
	// Node is the API address of the mount's node.
	Node string `json:"node"`
	// Syncs are the "bb sync /" runs: one after each run on ours (so
	// its drain does not slow the next target's run) and one at the end.
	Syncs []SyncRun `json:"syncs"`
	// SyncSeconds and SyncBackingBytes add the syncs up; SyncRate is
	// their quotient, bytes/s: the drain rate seen from outside, while
	// nothing else ran.
	SyncSeconds      float64 `json:"sync_seconds"`
	SyncBackingBytes int64   `json:"sync_backing_bytes"`
	SyncRate         float64 `json:"sync_rate_bytes_per_sec"`

	// The node's counters (bb status) at the end.
	Accepted       int64            `json:"bytes_written"`
	StripesWritten int64            `json:"stripes_written"`
	Drained        int64            `json:"bytes_drained"`
	BackingWritten int64            `json:"backing_bytes_written"`
	DrainRate      float64          `json:"drain_rate_bytes_per_sec"` // the node's own
	DrainChunk     int64            `json:"drain_chunk_bytes"`
	WriteSizes     map[string]int64 `json:"backing_write_sizes"`
	AlignedWrites  *int64           `json:"backing_full_chunk_writes,omitempty"`
	TailWrites     *int64           `json:"backing_tail_writes,omitempty"`
	Throttled      int64            `json:"writes_throttled"`
	BackingFull    string           `json:"backing_full,omitempty"`

	// From the histogram: Writes in all, FullWrites in the buckets of
	// the drain chunk and up, SmallWrites of 4 KiB or less.
	Writes      int64    `json:"writes"`
	FullWrites  int64    `json:"full_writes"`
	FullPercent float64  `json:"full_percent"`
	SmallWrites int64    `json:"small_writes"`
	Unparsed    []string `json:"unparsed_labels,omitempty"`

	// SeqWriteRate is the direct target's 1 MiB write rate, bytes/s;
	// RateVsSeqWrite is DrainRate over it.
	SeqWriteRate   float64 `json:"seq_write_bytes_per_sec"`
	RateVsSeqWrite float64 `json:"rate_vs_seq_write"`
	// NewFileRate is the direct target's rate writing a new file once
	// and fsyncing it (JobNewFile), bytes/s, what a drain does; the goal
	// is RateVsNewFile, DrainRate over it.
	NewFileRate   float64 `json:"new_file_write_bytes_per_sec"`
	RateVsNewFile float64 `json:"rate_vs_new_file_write"`
	// SameDevice: flash and backing share a device, so the drain reads
	// and writes one disk.
	SameDevice bool   `json:"same_device"`
	Error      string `json:"error,omitempty"`
}

// SyncRun is one "enginectl bb sync /".
type SyncRun struct {
	After        string  `json:"after"`
	Seconds      float64 `json:"seconds"`
	BackingBytes int64   `json:"backing_bytes"` // written to the backing directory meanwhile
	Error        string  `json:"error,omitempty"`
}

// NodeStatus is the part of a node's "bb status --json" the report uses
// (burstbuffer.Status). The aligned and tail counts are optional.
type NodeStatus struct {
	Node           string           `json:"node"`
	Health         string           `json:"health"`
	Written        int64            `json:"bytes_written"`
	StripesWritten int64            `json:"stripes_written"`
	Drained        int64            `json:"bytes_drained"`
	BackingWritten int64            `json:"backing_bytes_written"`
	DrainRate      float64          `json:"drain_rate_bytes_per_sec"`
	DrainChunk     int64            `json:"drain_chunk_bytes"`
	WriteSizes     map[string]int64 `json:"backing_write_sizes"`
	AlignedWrites  *int64           `json:"backing_full_chunk_writes"`
	TailWrites     *int64           `json:"backing_tail_writes"`
	Throttled      int64            `json:"writes_throttled"`
	BackingFull    string           `json:"backing_full"`
}

type bbStatus struct {
	Nodes  []NodeStatus `json:"nodes"`
	Errors []string     `json:"errors"`
}

// oursMount is a running "enginectl mount". start starts it; stop ends
// it and waits for it.
type oursMount struct {
	bin                       string
	mnt, backing, flash, data string
	logPath                   string
	log                       *slog.Logger
	bb                        bool // the binary has bb sync and bb status
	api                       string
	cmd                       *exec.Cmd
	logf                      *os.File
	done                      chan struct{} // closed once the process has exited
	waitErr                   error         // cmd.Wait's, once done is closed
	lastStatus                *NodeStatus
	stopped                   bool
}

func (o *oursMount) mountArgs(extra []string) []string {
	a := []string{o.bin, "mount", o.mnt, "--backing", o.backing, "--flash", o.flash,
		"--data", o.data, "--api", "127.0.0.1:0"}
	return append(a, extra...)
}

// start runs the mount and waits for its "mounted " line.
func (o *oursMount) start(ctx context.Context, extra []string) error {
	logf, err := os.Create(o.logPath)
	if err != nil {
		return fmt.Errorf("fiobench: ours: %w", err)
	}
	o.logf = logf
	args := o.mountArgs(extra)
	o.cmd = exec.Command(args[0], args[1:]...)
	o.cmd.Env = childEnv()
	// Its own process group: a Ctrl-C at the terminal is ours to act on
	// (drain, then SIGTERM), not the mount's.
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	mounted := make(chan string, 1)
	o.cmd.Stdout = &lineWatcher{w: logf, prefix: "mounted ", found: mounted}
	o.cmd.Stderr = logf
	o.log.Info("mounting ours", "command", strings.Join(args, " "))
	if err := o.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("fiobench: start %s: %w", strings.Join(args, " "), err)
	}
	o.done = make(chan struct{})
	go func() {
		o.waitErr = o.cmd.Wait()
		close(o.done)
	}()
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	select {
	case line := <-mounted:
		api, ok := apiAddr(line)
		if !ok {
			o.kill()
			return fmt.Errorf("fiobench: ours printed %q: no API address HOST:PORT in it", line)
		}
		o.api = api
		o.log.Info("ours mounted", "line", line, "api", api)
		return nil
	case <-o.done:
		o.logf.Close()
		return fmt.Errorf("fiobench: %s exited before mounting: %v: %s", strings.Join(args, " "), o.waitErr, o.logTail())
	case <-ctx.Done():
		o.kill()
		return ctx.Err()
	case <-timer.C:
		o.kill()
		return fmt.Errorf("fiobench: %s printed no \"mounted \" line in 2 minutes: %s", strings.Join(args, " "), o.logTail())
	}
}

// kill ends the process at once and waits for it.
func (o *oursMount) kill() {
	o.cmd.Process.Signal(syscall.SIGKILL)
	<-o.done
	o.stopped = true
	o.logf.Close()
	o.detach()
}

// stop sends SIGTERM, which unmounts, and waits for a clean exit.
func (o *oursMount) stop() error {
	if o.stopped {
		return nil
	}
	o.stopped = true
	defer o.logf.Close()
	o.log.Info("stopping ours", "pid", o.cmd.Process.Pid)
	o.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	var err error
	select {
	case <-o.done:
		if o.waitErr != nil {
			err = fmt.Errorf("fiobench: ours (enginectl mount) did not exit cleanly on SIGTERM: %v: %s", o.waitErr, o.logTail())
		}
	case <-timer.C:
		o.cmd.Process.Signal(syscall.SIGKILL)
		<-o.done
		err = fmt.Errorf("fiobench: ours (enginectl mount) still ran 2 minutes after SIGTERM; killed it: %s", o.logTail())
	}
	if o.detach() && err == nil {
		err = fmt.Errorf("fiobench: ours exited but left %s mounted (detached it)", o.mnt)
	}
	return err
}

// detach lazily unmounts the mount point if something is still mounted
// there, and says whether it was.
func (o *oursMount) detach() bool {
	var st, parent unix.Stat_t
	if unix.Stat(o.mnt, &st) != nil && unix.Lstat(o.mnt, &st) != nil {
		// ENOTCONN: a FUSE mount whose server is gone.
		unix.Unmount(o.mnt, unix.MNT_DETACH)
		return true
	}
	if unix.Stat(filepath.Dir(o.mnt), &parent) != nil || st.Dev == parent.Dev {
		return false
	}
	unix.Unmount(o.mnt, unix.MNT_DETACH)
	return true
}

func (o *oursMount) logTail() string {
	data, err := os.ReadFile(o.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return "log " + o.logPath + ": " + tail(string(data))
}

// enginectl runs "enginectl --addr API args..." for at most timeout.
func (o *oursMount) enginectl(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// --addr is a global flag: it goes before the command.
	cmd := exec.CommandContext(ctx, o.bin, append([]string{"--addr", o.api}, args...)...)
	cmd.Env = append(childEnv(), "ENGINE_ADDR="+o.api)
	// The mount's embedded node made the cluster's client token in its
	// data directory; its API wants it. (A binary from before tokens made
	// none and ignores the variable.)
	if tok, err := os.ReadFile(filepath.Join(o.data, "token")); err == nil {
		cmd.Env = append(cmd.Env, "ENGINE_TOKEN="+strings.TrimSpace(string(tok)))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("enginectl --addr %s %s: %w: %s", o.api, strings.Join(args, " "), err, tail(stderr.String()+stdout.String()))
	}
	return stdout.Bytes(), nil
}

// status reads the node's counters, summed if there are several nodes.
func (o *oursMount) status(ctx context.Context) (NodeStatus, error) {
	out, err := o.enginectl(ctx, time.Minute, "bb", "status", "--json")
	if err != nil {
		return NodeStatus{}, err
	}
	var st bbStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return NodeStatus{}, fmt.Errorf("bb status --json: %w: %s", err, tail(string(out)))
	}
	if len(st.Nodes) == 0 {
		return NodeStatus{}, fmt.Errorf("bb status --json: no nodes (errors: %s)", strings.Join(st.Errors, "; "))
	}
	sum := st.Nodes[0]
	sum.WriteSizes = maps.Clone(sum.WriteSizes)
	if sum.WriteSizes == nil {
		sum.WriteSizes = map[string]int64{}
	}
	for _, n := range st.Nodes[1:] {
		sum.Written += n.Written
		sum.StripesWritten += n.StripesWritten
		sum.Drained += n.Drained
		sum.BackingWritten += n.BackingWritten
		sum.DrainRate += n.DrainRate
		sum.Throttled += n.Throttled
		for k, v := range n.WriteSizes {
			sum.WriteSizes[k] += v
		}
		sum.AlignedWrites, sum.TailWrites = addOpt(sum.AlignedWrites, n.AlignedWrites), addOpt(sum.TailWrites, n.TailWrites)
	}
	return sum, nil
}

func addOpt(a, b *int64) *int64 {
	if a == nil || b == nil {
		return nil
	}
	s := *a + *b
	return &s
}

// drainNow runs "bb sync /" and records it, with the bytes the backing
// directory got meanwhile.
func (b *bench) drainNow(ctx context.Context, o *oursMount, after string) {
	d := b.rep.Drain
	if d == nil || !o.bb {
		return
	}
	run := SyncRun{After: after}
	defer func() {
		d.Syncs = append(d.Syncs, run)
		if run.Error != "" {
			b.fail(fmt.Errorf("fiobench: ours: sync after %s: %s", after, run.Error))
		}
	}()
	before, err := o.status(ctx)
	if err != nil {
		run.Error = err.Error()
		return
	}
	b.log.Info("draining ours", "after", after)
	start := time.Now()
	if _, err := o.enginectl(ctx, 30*time.Minute, "bb", "sync", "/"); err != nil {
		run.Error = err.Error()
		return
	}
	run.Seconds = time.Since(start).Seconds()
	now, err := o.status(ctx)
	if err != nil {
		run.Error = err.Error()
		return
	}
	run.BackingBytes = now.BackingWritten - before.BackingWritten
	d.SyncSeconds += run.Seconds
	d.SyncBackingBytes += run.BackingBytes
	o.lastStatus = &now
}

// finishDrain drains ours a last time and fills the drain report from
// its counters.
func (b *bench) finishDrain(ctx context.Context, o *oursMount) {
	d := b.rep.Drain
	if d == nil {
		return
	}
	b.drainNow(ctx, o, "end")
	if d.SyncSeconds > 0 {
		d.SyncRate = float64(d.SyncBackingBytes) / d.SyncSeconds
	}
	st := o.lastStatus
	if st == nil {
		d.Error = "no status from the node"
		return
	}
	d.Accepted, d.StripesWritten, d.Drained, d.BackingWritten = st.Written, st.StripesWritten, st.Drained, st.BackingWritten
	d.DrainRate, d.DrainChunk, d.WriteSizes = st.DrainRate, st.DrainChunk, st.WriteSizes
	d.AlignedWrites, d.TailWrites, d.Throttled, d.BackingFull = st.AlignedWrites, st.TailWrites, st.Throttled, st.BackingFull
	d.Writes, d.FullWrites, d.SmallWrites, d.Unparsed = analyze(st.WriteSizes, st.DrainChunk)
	if d.Writes > 0 {
		d.FullPercent = 100 * float64(d.FullWrites) / float64(d.Writes)
	}
	if len(d.Unparsed) > 0 {
		b.fail(fmt.Errorf("fiobench: ours: backing write size labels not understood: %q", d.Unparsed))
	}
}

// analyze adds up a write size histogram: every write, those in buckets
// whose upper bound is chunk or more (whole chunks or multiples: the
// histogram cannot tell a bucket's smaller writes apart), and those of
// at most SmallWrite bytes. Labels are "≤4KiB" (writes of at most 4 KiB)
// or ">32MiB"; unparsed are those that are neither.
func analyze(hist map[string]int64, chunk int64) (writes, full, small int64, unparsed []string) {
	for label, n := range hist {
		writes += n
		upper, ok := bucketUpper(label)
		if !ok {
			unparsed = append(unparsed, label)
			continue
		}
		if chunk > 0 && upper >= chunk {
			full += n
		}
		if upper <= SmallWrite {
			small += n
		}
	}
	slices.Sort(unparsed)
	return writes, full, small, unparsed
}

// bucketUpper is the largest write a histogram bucket holds:
// "≤4KiB" → 4096, ">32MiB" → MaxInt64.
func bucketUpper(label string) (int64, bool) {
	l := strings.TrimSpace(label)
	switch {
	case strings.HasPrefix(l, ">"):
		_, ok := parseSize(strings.TrimPrefix(strings.TrimPrefix(l, ">"), "="))
		return math.MaxInt64, ok
	case strings.HasPrefix(l, "≤"):
		return parseSize(strings.TrimPrefix(l, "≤"))
	case strings.HasPrefix(l, "<="):
		return parseSize(strings.TrimPrefix(l, "<="))
	}
	return 0, false
}

// parseSize reads "512B", "4KiB", "1MiB", "2GiB" (KB, MB, GB, K, M, G
// mean the same binary units).
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "KB": 1 << 10,
		"M": 1 << 20, "MiB": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30, "GB": 1 << 30}[strings.TrimSpace(s[i:])]
	if mult == 0 {
		return 0, false
	}
	return int64(v * mult), true
}

// apiAddr finds the API address in the mount's "mounted …" line: the
// HOST:PORT after the word "api", else the first HOST:PORT at all.
func apiAddr(line string) (string, bool) {
	fields := strings.Fields(line)
	first := ""
	for i, f := range fields {
		f = strings.Trim(f, "(),;[]")
		f = strings.TrimPrefix(strings.TrimPrefix(f, "http://"), "api=")
		ap, err := netip.ParseAddrPort(f)
		if err != nil || ap.Port() == 0 {
			continue
		}
		if i > 0 && strings.EqualFold(strings.Trim(fields[i-1], "(),;:"), "api") {
			return f, true
		}
		if first == "" {
			first = f
		}
	}
	return first, first != ""
}

// lineWatcher copies output to w and sends the first line that starts
// with prefix on found.
type lineWatcher struct {
	w      io.Writer
	prefix string
	found  chan<- string
	mu     sync.Mutex
	buf    []byte
	sent   bool
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.sent {
		l.buf = append(l.buf, p...)
		for {
			i := bytes.IndexByte(l.buf, '\n')
			if i < 0 {
				break
			}
			line := string(l.buf[:i])
			l.buf = l.buf[i+1:]
			if strings.HasPrefix(line, l.prefix) {
				l.found <- line
				l.sent, l.buf = true, nil
				break
			}
		}
		if len(l.buf) > 64<<10 {
			l.buf = l.buf[len(l.buf)-(64<<10):]
		}
	}
	if _, err := l.w.Write(p); err != nil && !errors.Is(err, os.ErrClosed) {
		return 0, err
	}
	return len(p), nil
}
