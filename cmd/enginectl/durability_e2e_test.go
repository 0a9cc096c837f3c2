package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"engine/node"
)

// The durability scenarios of issue 14, with real processes, as a user
// meets them: a 3-node "enginectl cluster up", a mount joined to it with
// its own --data, 40 files given 64 random 4 KiB pwrites each and an
// fsync, then SIGKILL (of the mount process; of it and one follower; of
// every process at once), a restart, and every fsynced file read back
// through the new mount. Other processes keep the disk (fio, 4 KiB random
// writes with fsync) and a CPU busy throughout: a busy machine is where a
// node restarts before it hears from its peers.
//
// One seed per variant runs in the normal go test; ENGINE_LONG=1 runs
// ENGINE_DURABILITY_SEEDS (default 10) seeds of each.

// fsyncedFile is a file the scenario wrote: its model (the bytes it must
// read as, holes zero) once its fsync returned.
type fsyncedFile struct {
	name  string
	model []byte
}

const (
	durFiles  = 40
	durWrites = 64
	durSize   = 1 << 20 // pwrites land anywhere in the first MiB
)

// writeFsynced writes n files into dir, each with durWrites pwrites of
// 4 KiB at random (unaligned) offsets and an fsync, from 4 writers at once.
func writeFsynced(t *testing.T, dir string, rng *rand.Rand) []*fsyncedFile {
	t.Helper()
	files := make([]*fsyncedFile, durFiles)
	seeds := make([]uint64, durFiles)
	for i := range files {
		files[i] = &fsyncedFile{name: fmt.Sprintf("f%02d", i)}
		seeds[i] = rng.Uint64()
	}
	var wg sync.WaitGroup
	errs := make([]error, durFiles)
	next := make(chan int, durFiles)
	for i := range durFiles {
		next <- i
	}
	close(next)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = writeOneFsynced(filepath.Join(dir, files[i].name), files[i], seeds[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("writing through the mount: %v", err)
	}
	return files
}

func writeOneFsynced(path string, f *fsyncedFile, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	f2, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f2.Close()
	var model []byte
	p := make([]byte, 4096)
	for range durWrites {
		off := rng.IntN(durSize - len(p))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if _, err := f2.WriteAt(p, int64(off)); err != nil {
			return fmt.Errorf("%s: pwrite at %d: %w", path, off, err)
		}
		if end := off + len(p); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], p)
	}
	if err := f2.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", path, err)
	}
	f.model = model // acknowledged
	return nil
}

// checkFsynced reads every file through dir until all read as their
// models or within runs out. A file that reads without error but with
// other bytes fails the test at once (an acknowledged write lost or an old
// version served); EIO is waited out (a node not yet resynced answers EIO
// rather than older bytes). It returns how long it took.
func checkFsynced(t *testing.T, dir string, files []*fsyncedFile, within time.Duration, where string) time.Duration {
	t.Helper()
	start := time.Now()
	pending := files
	var last []string
	for {
		var still []*fsyncedFile
		last = last[:0]
		for _, f := range pending {
			got, err := os.ReadFile(filepath.Join(dir, f.name))
			switch {
			case err != nil:
				still = append(still, f)
				last = append(last, fmt.Sprintf("%s: %v", f.name, err))
			case !bytes.Equal(got, f.model):
				t.Errorf("%s: %s reads without error as %d bytes (sha256 %x), not as its fsynced %d bytes (sha256 %x)",
					where, f.name, len(got), sha256.Sum256(got), len(f.model), sha256.Sum256(f.model))
			}
		}
		pending = still
		if len(pending) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: %d of %d fsynced files still unreadable %s after the restart: %s",
				where, len(pending), len(files), within, firstOf(last, 3))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// loadGenerator keeps the disk and one CPU busy until the test ends: fio
// with 4 KiB random writes, each fsynced, and a spinning process. Both
// are bounded by the test's end (a cleanup kills them) and by fio's own
// runtime.
func loadGenerator(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Fatalf("fio is needed to load the disk (scripts/deps.sh installs it): %v", err)
	}
	procs := []*exec.Cmd{
		exec.Command(fio, "--name=load", "--directory="+dir, "--rw=randwrite", "--bs=4k", "--fsync=1",
			"--size=64m", "--numjobs=2", "--time_based", "--runtime=600", "--ioengine=psync", "--output=/dev/null"),
		exec.Command("sh", "-c", "while :; do :; done"),
	}
	for _, p := range procs {
		p.Stdout, p.Stderr = nil, nil
		if err := p.Start(); err != nil {
			t.Fatalf("start load %v: %v", p.Args, err)
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
		// fio's jobs are processes of their own; they stop when the
		// parent goes, but not at once.
		exec.Command("pkill", "-KILL", "-f", "--", "--directory="+dir).Run()
	})
}

func durabilitySeeds(t *testing.T) int {
	if os.Getenv("ENGINE_LONG") == "" {
		return 1
	}
	n := 10
	if v := os.Getenv("ENGINE_DURABILITY_SEEDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("ENGINE_DURABILITY_SEEDS=%q: want a positive number of seeds", v)
		}
	}
	return n
}

// TestDurabilityFsynced is the scenario of issue 14 in three variants.
func TestDurabilityFsynced(t *testing.T) {
	needFUSE(t)
	seeds := durabilitySeeds(t)
	for _, variant := range []string{"mount", "mount+follower", "cluster"} {
		t.Run(variant, func(t *testing.T) {
			for run := range seeds {
				seed := uint64(time.Now().UnixNano()) + uint64(run)
				t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
					durabilityRun(t, variant, seed)
				})
			}
		})
	}
}

var lostLine = regexp.MustCompile(`lost more than m shards|lost_stripes":[1-9]`)

func durabilityRun(t *testing.T, variant string, seed uint64) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 14))
	root := t.TempDir()
	dir, data, mnt := filepath.Join(root, "cluster"), filepath.Join(root, "mountdata"), filepath.Join(root, "mnt")
	os.MkdirAll(mnt, 0o755)
	loadGenerator(t, filepath.Join(root, "load"))

	t.Cleanup(func() {
		ctl(t, nil, "cluster", "down", "--dir", dir)
		if c, err := node.LoadLocal(dir); err == nil {
			c.Stop(5 * time.Second)
		}
		if t.Failed() {
			logTails(t, dir)
			if keep := os.Getenv("ENGINE_KEEP_DIR"); keep != "" {
				exec.Command("pkill", "-KILL", "-f", "--", "--directory="+filepath.Join(root, "load")).Run()
				exec.Command("rm", "-rf", filepath.Join(root, "load")).Run()
				dst := filepath.Join(keep, filepath.Base(t.Name()))
				out, err := exec.Command("cp", "-a", root, dst).CombinedOutput()
				t.Logf("kept the test's directory in %s (%v %s)", dst, err, out)
			}
		}
	})
	r := ctl(t, nil, "cluster", "up", "--nodes", "3", "--dir", dir, "--workers", "1")
	mustOK(t, r, "cluster up")
	c, err := node.LoadLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	watchdog(t, 240*time.Second, func() {
		exec.Command("pkill", "-KILL", "-f", "enginectl mount "+mnt).Run()
		lazyUnmount(mnt)
	})
	mountArgs := []string{"--data", data, "--backing", filepath.Join(dir, "backing"),
		"--join", c.Nodes[0].API, "--join-token", filepath.Join(dir, "join-token")}
	m := startMount(t, mnt, filepath.Join(root, "mount.log"), mountArgs...)
	t.Logf("seed %d: 3-node cluster up and a mount joined to it (node %s) in %s", seed, m.node, time.Since(start).Round(time.Millisecond))

	files := writeFsynced(t, mnt, rng)
	t.Logf("%d files × %d pwrites of 4 KiB, each file fsynced", len(files), durWrites)
	// Right before the crash, so that a failure after it is the crash's.
	checkFsynced(t, mnt, files, 10*time.Second, "before the crash, through the mount")

	// The crash.
	victims := ""
	switch variant {
	case "mount":
		m.kill(t)
	case "mount+follower":
		f := 1 + rng.IntN(2)
		if l := leaderIndex(t, c, 0); l == f {
			f = 3 - f
		}
		killNode(t, c, f, syscall.SIGKILL, 10*time.Second)
		m.kill(t)
		victims = c.Nodes[f].Name
	case "cluster":
		pids := make([]int, len(c.Nodes))
		for i := range c.Nodes {
			pids[i] = nodePID(c, i)
			syscall.Kill(pids[i], syscall.SIGKILL)
		}
		m.kill(t)
		for i, pid := range pids {
			pollUntil(t, c.Nodes[i].Name+" gone after SIGKILL", 30*time.Second, func() (bool, string) {
				return !procAlive(pid) && dataUnlocked(filepath.Join(c.NodeDir(i), "data")), fmt.Sprintf("pid %d", pid)
			})
			os.Remove(filepath.Join(c.NodeDir(i), "engined.pid"))
		}
	}
	t.Logf("SIGKILLed: the mount process%s", map[bool]string{true: " and " + victims, false: ""}[victims != ""]+
		map[bool]string{true: " and every node", false: ""}[variant == "cluster"])

	restart := time.Now()
	if variant == "cluster" {
		mustOK(t, ctl(t, nil, "cluster", "up", "--dir", dir, "--workers", "1"), "cluster up again")
	}
	m = startMount(t, mnt, filepath.Join(root, "mount2.log"), mountArgs...)
	t.Logf("remounted in %s", time.Since(restart).Round(time.Millisecond))
	took := checkFsynced(t, mnt, files, 60*time.Second, "after the restart, through the mount")
	t.Logf("every fsynced file read back %s after the remount", took.Round(time.Millisecond))

	// No node declared a stripe lost, in its log or its counters.
	for _, p := range append(logFiles(c), filepath.Join(root, "mount2.log")) {
		b, _ := os.ReadFile(p)
		if l := lostLine.Find(b); l != nil {
			t.Errorf("%s declares data lost: %q", p, l)
		}
	}
	st := bbStatus(t, m.api)
	for _, n := range st.Nodes {
		if n.LostStripes != 0 {
			t.Errorf("node %s counts %d lost stripes: %s", n.Node, n.LostStripes, describeBB(st))
		}
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

func logFiles(c *node.LocalCluster) []string {
	var out []string
	for i := range c.Nodes {
		out = append(out, filepath.Join(c.NodeDir(i), "engined.log"))
	}
	return out
}

// dataUnlocked reports whether no process holds the data directory's
// lock (a killed process blocked in an fsync under load keeps it until
// the fsync returns).
func dataUnlocked(data string) bool {
	f, err := os.Open(filepath.Join(data, "LOCK"))
	if err != nil {
		return os.IsNotExist(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}
