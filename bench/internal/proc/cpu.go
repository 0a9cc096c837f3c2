package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicksPerSec is USER_HZ, the unit of /proc/PID/stat's times (100
// on every Linux architecture we run on).
const clockTicksPerSec = 100

// procFS is the /proc the functions below read.
func procFS() fs.FS { return os.DirFS("/proc") }

// CPU is process pid's CPU time so far: user + system, all its threads
// (fields utime and stime of /proc/PID/stat, 10 ms steps).
func CPU(pid int) (time.Duration, error) {
	st, err := readStat(procFS(), pid)
	if err != nil {
		return 0, err
	}
	return ticks(st.utime + st.stime), nil
}

// TreeCPU is the CPU time so far (user + system) of process pid and of
// all its descendants, found by their parent ids in /proc/*/stat: a
// server that forks workers (varnishd's manager and its cache process)
// is measured whole. Descendants that have exited and been waited for
// are counted too, in their parents' cutime and cstime, so the figure
// only grows while pid lives; what a run used is the difference of two
// calls. It fails if pid's own stat cannot be read.
func TreeCPU(pid int) (time.Duration, error) { return treeCPU(procFS(), pid) }

func treeCPU(fsys fs.FS, pid int) (time.Duration, error) {
	root, err := readStat(fsys, pid)
	if err != nil {
		return 0, err
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("list /proc: %w", err)
	}
	children := map[int][]stat{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p <= 0 || p == pid {
			continue
		}
		st, err := readStat(fsys, p)
		if err != nil {
			continue // it exited since the listing
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	var sum int64
	queue := []stat{root}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		sum += st.utime + st.stime + st.cutime + st.cstime
		for _, c := range children[st.pid] {
			if !seen[c.pid] {
				seen[c.pid] = true
				queue = append(queue, c)
			}
		}
	}
	return ticks(sum), nil
}

// SelfCPU is this process' CPU time so far (user + system).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicksPerSec }

// stat is what TreeCPU needs of /proc/PID/stat. Times are in clock
// ticks.
type stat struct {
	pid, ppid      int
	utime, stime   int64 // this process', all its threads
	cutime, cstime int64 // its children's that it waited for
}

func readStat(fsys fs.FS, pid int) (stat, error) {
	if pid <= 0 {
		return stat{}, fmt.Errorf("no process id (%d)", pid)
	}
	data, err := fs.ReadFile(fsys, strconv.Itoa(pid)+"/stat")
	if err != nil {
		return stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	st, err := parseStat(data)
	if err != nil {
		return stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses a /proc/PID/stat line: "PID (COMM) STATE PPID ...",
// where COMM may hold spaces and parentheses, so the fields after it are
// counted from its last ')'.
func parseStat(data []byte) (stat, error) {
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return stat{}, errors.New("no (comm)")
	}
	var st stat
	var err error
	if st.pid, err = strconv.Atoi(string(bytes.TrimSpace(data[:open]))); err != nil {
		return stat{}, fmt.Errorf("pid: %w", err)
	}
	// f[0] is field 3 (state): ppid is field 4, utime, stime, cutime and
	// cstime fields 14 to 17.
	f := bytes.Fields(data[end+1:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("%d fields after (comm), want at least 15", len(f))
	}
	if st.ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return stat{}, fmt.Errorf("ppid: %w", err)
	}
	for i, p := range []*int64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		if *p, err = strconv.ParseInt(string(f[11+i]), 10, 64); err != nil || *p < 0 {
			return stat{}, fmt.Errorf("field %d: %q is not a count of clock ticks", 14+i, f[11+i])
		}
	}
	return st, nil
}
