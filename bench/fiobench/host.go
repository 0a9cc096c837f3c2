package fiobench

import (
	"runtime"

	"golang.org/x/sys/unix"

	"engine/bench/internal/hostinfo"
)

func loadavg() float64 { return hostinfo.LoadAvg() }

// host describes the machine and the file system under dir.
func host(dir, fio string) Host {
	h := Host{CPUs: runtime.NumCPU(), Fio: fioVersion(fio), WorkDir: dir, GoFuse: goFuseVersion(), Load: loadavg()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.FSDevice, h.FSType, h.FSMount = hostinfo.MountOf(dir)
	return h
}
