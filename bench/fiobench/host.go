package fiobench

import (
	"runtime"

	"engine/bench/internal/hostinfo"
)

func loadavg() float64 { return hostinfo.LoadAvg() }

// host describes the machine and the file system under dir.
func host(dir, fio string) Host {
	h := Host{Kernel: hostinfo.Kernel(), CPUs: runtime.NumCPU(), Fio: fioVersion(fio), WorkDir: dir, GoFuse: goFuseVersion(), Load: loadavg()}
	h.FSDevice, h.FSType, h.FSMount = hostinfo.MountOf(dir)
	return h
}
