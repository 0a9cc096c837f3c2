package fiobench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// loadavg is the 1-minute load average, 0 if unknown.
func loadavg() float64 {
	var l float64
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(data), &l)
	}
	return l
}

// host describes the machine and the file system under dir.
func host(dir, fio string) Host {
	h := Host{CPUs: runtime.NumCPU(), Fio: fioVersion(fio), WorkDir: dir, GoFuse: goFuseVersion(), Load: loadavg()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.FSDevice, h.FSType, h.FSMount = mountOf(dir)
	return h
}

// mountOf finds the mount dir is on in /proc/self/mounts: the longest
// mount point that is a prefix of it.
func mountOf(dir string) (dev, fstype, mnt string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", "", ""
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		m := unescapeMount(f[1])
		if (dir == m || strings.HasPrefix(dir, strings.TrimSuffix(m, "/")+"/")) && len(m) >= len(mnt) {
			dev, mnt, fstype = f[0], m, f[2]
		}
	}
	return dev, fstype, mnt
}

// unescapeMount undoes the octal escapes (\040 for a space) of
// /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				sb.WriteByte(c)
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
