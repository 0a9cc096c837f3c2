package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// statLine is a /proc/PID/stat line with the given ids and times (in
// clock ticks); the fields TreeCPU does not read are plausible values.
func statLine(pid, ppid int, comm string, utime, stime, cutime, cstime int) string {
	return strings.Join([]string{
		strconv.Itoa(pid), "(" + comm + ")", "S", strconv.Itoa(ppid), strconv.Itoa(pid), strconv.Itoa(pid), "0", "-1", "4194560", "100", "0", "0", "0",
		strconv.Itoa(utime), strconv.Itoa(stime), strconv.Itoa(cutime), strconv.Itoa(cstime), "20", "0", "3", "0", "12345", "1000000", "200",
	}, " ") + "\n"
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line string
		want stat
		err  string
	}{
		{line: statLine(42, 1, "varnishd", 150, 50, 7, 3), want: stat{pid: 42, ppid: 1, utime: 150, stime: 50, cutime: 7, cstime: 3}},
		// A command name with spaces and parentheses.
		{line: statLine(7, 42, "cache) (main", 1, 2, 0, 0), want: stat{pid: 7, ppid: 42, utime: 1, stime: 2}},
		{line: statLine(8, 42, "", 0, 0, 0, 0), want: stat{pid: 8, ppid: 42}},
		{line: "42 varnishd S 1", err: "no (comm)"},
		{line: "x (sh) S 1 " + strings.Repeat("0 ", 20), err: "pid:"},
		{line: "42 (sh) S 1 0 0", err: "fields after (comm)"},
		{line: statLine(42, 1, "sh", -1, 0, 0, 0), err: `field 14: "-1"`},
		{line: strings.Replace(statLine(42, 1, "sh", 1, 2, 3, 4), " 4 20 ", " x 20 ", 1), err: `field 17: "x"`},
	} {
		got, err := parseStat([]byte(tc.line))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseStat(%q): %v, want an error with %q", tc.line, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

// TestTreeCPUFake sums a fake /proc: 10 (a manager) forked 11 (its
// worker), which forked 12; 20 is another process whose child 21 is not
// in 10's tree, and 13 is a child of 12 that exited between the listing
// and the reading.
func TestTreeCPUFake(t *testing.T) {
	fsys := fstest.MapFS{
		"10/stat":      {Data: []byte(statLine(10, 1, "varnishd", 5, 5, 30, 10))},
		"11/stat":      {Data: []byte(statLine(11, 10, "cache-main", 400, 100, 0, 0))},
		"12/stat":      {Data: []byte(statLine(12, 11, "cc", 20, 5, 0, 0))},
		"20/stat":      {Data: []byte(statLine(20, 1, "other", 1000, 1000, 0, 0))},
		"21/stat":      {Data: []byte(statLine(21, 20, "other child", 1000, 1000, 0, 0))},
		"13/status":    {Data: []byte("Name: gone\n")},
		"self/stat":    {Data: []byte(statLine(99, 1, "self", 1, 1, 0, 0))},
		"meminfo":      {Data: []byte("MemTotal: 1 kB\n")},
		"11/task/11/x": {Data: []byte("")},
	}
	for _, tc := range []struct {
		pid   int
		ticks int
	}{
		{10, 5 + 5 + 30 + 10 + 400 + 100 + 20 + 5},
		{11, 400 + 100 + 20 + 5},
		{12, 25},
		{20, 4000},
	} {
		got, err := treeCPU(fsys, tc.pid)
		if want := time.Duration(tc.ticks) * 10 * time.Millisecond; err != nil || got != want {
			t.Errorf("treeCPU(%d) = %v, %v; want %v", tc.pid, got, err, want)
		}
	}
	if _, err := treeCPU(fsys, 13); err == nil {
		t.Error("treeCPU of a process without a stat file did not fail")
	}
	if _, err := treeCPU(fsys, 0); err == nil {
		t.Error("treeCPU(0) did not fail")
	}
}

// TestTreeCPU measures a real tree: a shell (a Server, like varnishd's
// manager) whose child burns CPU while it waits. The tree's CPU grows
// past the shell's own, and this test's tree holds them both. (The child
// writes nowhere: Stop kills it with the shell's process group, but
// would wait for the log pipe while it held it open.)
func TestTreeCPU(t *testing.T) {
	s, err := Start([]string{"/bin/sh", "-c", "sh -c 'while :; do :; done' >/dev/null 2>&1 & wait"}, nil, filepath.Join(t.TempDir(), "sh.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	own0, err := CPU(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	tree0, err := TreeCPU(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	const burn = 200 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	var tree1 time.Duration
	for tree1-tree0 < burn {
		if time.Now().After(deadline) {
			t.Fatalf("the tree used %v of CPU in 30 s, want %v: is the child running? %s", tree1-tree0, burn, s.LogTail())
		}
		time.Sleep(20 * time.Millisecond)
		if tree1, err = TreeCPU(s.Pid()); err != nil {
			t.Fatal(err)
		}
	}
	own1, err := CPU(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if own1-own0 >= burn/2 {
		t.Errorf("the waiting shell used %v, its tree %v: the child's CPU is counted as the shell's", own1-own0, tree1-tree0)
	}
	self, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if selfOwn := SelfCPU(); self < tree1 || self < selfOwn {
		t.Errorf("this test's tree used %v, less than the shell's tree (%v) or this process (%v)", self, tree1, selfOwn)
	}
}

// TestTreeCPUCountsExited: a child that burned CPU and was waited for
// stays in its parent's tree (as its cutime and cstime).
func TestTreeCPUCountsExited(t *testing.T) {
	ready := make(chan struct{})
	watch := func(l string) {
		if l == "DONE" {
			close(ready)
		}
	}
	s, err := Start([]string{"/bin/sh", "-c", "(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); echo DONE; exec sleep 60"},
		nil, filepath.Join(t.TempDir(), "sh.log"), watch)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	select {
	case <-ready:
	case <-s.Done():
		t.Fatalf("exited: %v: %s", s.Err(), s.LogTail())
	case <-time.After(time.Minute):
		t.Fatalf("the loop did not end in a minute: %s", s.LogTail())
	}
	own, err := CPU(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := TreeCPU(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if tree <= own {
		t.Errorf("tree %v, own %v: the exited child's CPU is not counted", tree, own)
	}
}
