package edgebench

import (
	"context"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"engine/bench/internal/hostinfo"
)

// host describes the machine, wrk and the file system under dir.
func host(ctx context.Context, dir, wrk string) Host {
	h := Host{CPUs: runtime.NumCPU(), WorkDir: dir, Load: hostinfo.LoadAvg(), GoVersion: runtime.Version(), WrkPath: wrk}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	// wrk -v prints "wrk VERSION [epoll] Copyright ..." and its usage.
	out, _ := probe(ctx, wrk, "-v")
	h.Wrk, _, _ = strings.Cut(firstLine(out), " Copyright")
	if h.Wrk == "" {
		h.Wrk = "wrk"
	}
	_, h.FSType, h.FSMount = hostinfo.MountOf(dir)
	return h
}
