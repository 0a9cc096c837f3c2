// Package hostinfo is what the benchmarks say about the machine they ran
// on: the kernel, the load average and the file system under a
// directory.
package hostinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is the kernel's release (uname -r), "" if unknown.
func Kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// LoadAvg is the 1-minute load average, 0 if unknown.
func LoadAvg() float64 {
	var l float64
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(data), &l)
	}
	return l
}

// MountOf finds the mount dir is on in /proc/self/mounts: the longest
// mount point that is a prefix of it.
func MountOf(dir string) (dev, fstype, mnt string) {
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
