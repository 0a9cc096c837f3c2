package edgebench

import (
	"context"
	"runtime"
	"strings"

	"engine/bench/internal/hostinfo"
	"engine/bench/internal/proc"
)

// host describes the machine, wrk and the file system under dir.
func host(ctx context.Context, dir, wrk string) Host {
	h := Host{Kernel: hostinfo.Kernel(), CPUs: runtime.NumCPU(), WorkDir: dir, Load: hostinfo.LoadAvg(), GoVersion: runtime.Version(), WrkPath: wrk}
	// wrk -v prints "wrk VERSION [epoll] Copyright ..." and its usage.
	out, _ := proc.Probe(ctx, wrk, "-v")
	h.Wrk, _, _ = strings.Cut(firstLine(out), " Copyright")
	if h.Wrk == "" {
		h.Wrk = "wrk"
	}
	_, h.FSType, h.FSMount = hostinfo.MountOf(dir)
	return h
}
