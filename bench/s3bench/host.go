package s3bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
	"engine/bench/internal/hostinfo"
	"engine/bench/internal/proc"
)

// Settling between runs.
const (
	settleMax  = 30 * time.Second
	idleWindow = 500 * time.Millisecond
	idleCPU    = 0.05     // of one CPU, both servers together
	idleDirty  = 64 << 20 // dirty + writeback bytes in the page cache
)

// settle lets the machine settle before a run: ours' burst buffer is
// drained (POST /v1/bb/sync of "/"), the page cache written back
// (sync(2)), then at least Settle passes and, for up to 30 s in all, the
// bench waits until both servers are idle (together under 5% of a CPU
// over half a second) and the page cache holds under 64 MiB of dirty and
// writeback pages. Nothing of it is timed. It says what it did.
func (b *bench) settle(ctx context.Context) string {
	start := time.Now()
	var parts []string
	for _, t := range b.targets {
		if t.api == "" {
			continue
		}
		t0 := time.Now()
		if err := bbSync(ctx, t.api, t.token); err != nil {
			if ctx.Err() != nil {
				return "interrupted"
			}
			b.Fail(fmt.Errorf("s3bench: draining %s's burst buffer: %w", t.name, err))
			parts = append(parts, "drain failed")
		} else {
			parts = append(parts, fmt.Sprintf("drained %s %.1fs", t.name, time.Since(t0).Seconds()))
		}
	}
	unix.Sync()
	if !benchrun.Sleep(ctx, b.cfg.Settle) {
		return "interrupted"
	}
	for {
		var c0 float64
		for _, t := range b.targets {
			c0 += max(0, serverCPU(t))
		}
		if !benchrun.Sleep(ctx, idleWindow) {
			return "interrupted"
		}
		var c1 float64
		for _, t := range b.targets {
			c1 += max(0, serverCPU(t))
		}
		busy, dirty := (c1-c0)/idleWindow.Seconds(), dirtyBytes()
		if busy < idleCPU && dirty < idleDirty {
			parts = append(parts, fmt.Sprintf("synced, idle after %.1fs", time.Since(start).Seconds()))
			break
		}
		if time.Since(start) > settleMax {
			parts = append(parts, fmt.Sprintf("synced, NOT idle after %.0fs (servers at %.0f%% of a CPU, %s dirty)",
				time.Since(start).Seconds(), busy*100, benchfmt.Bytes(dirty)))
			break
		}
	}
	return strings.Join(parts, ", ")
}

// bbSync asks our node to drain its whole namespace to the backing
// directory and waits for it.
func bbSync(ctx context.Context, api, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+"/v1/bb/sync", strings.NewReader(`{"path":"/"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// serverCPU is the CPU time (user + system) of t's process tree in
// seconds, -1 if unknown.
func serverCPU(t *target) float64 {
	d, err := proc.TreeCPU(t.pid())
	if err != nil {
		return -1
	}
	return d.Seconds()
}

// dirtyBytes is the page cache's dirty and writeback bytes.
func dirtyBytes() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "Dirty:" || f[0] == "Writeback:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			n += kb << 10
		}
	}
	return n
}

func loadavg() float64 { return hostinfo.LoadAvg() }

// freeBytes is the space available in dir's file system, 0 if unknown.
func freeBytes(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

// host describes the machine and the file system under dir.
func host(dir string) Host {
	h := Host{Kernel: hostinfo.Kernel(), CPUs: runtime.NumCPU(), WorkDir: dir, Load: loadavg(), GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/minio/minio-go/v7" {
				h.MinioGo = d.Version
			}
		}
	}
	if h.MinioGo == "" {
		h.MinioGo = "v7"
	}
	h.FSDevice, h.FSType, h.FSMount = hostinfo.MountOf(dir)
	return h
}
