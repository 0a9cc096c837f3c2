package main

// End-to-end tests: they build the real enginectl and engined binaries and
// drive them as a user would, checking outputs with the validator.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"engine/gensort"
	"engine/node"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enginectl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"enginectl", "engined"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "engine/cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	// Every cluster and daemon the tests start takes this client token
	// (engined and "cluster up" read ENGINE_TOKEN), and every enginectl
	// they run sends it.
	os.Setenv("ENGINE_TOKEN", testToken)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testToken is the client token of the tests' clusters.
const testToken = "e2e-test-token-0123456789abcdef"

// testClient is a client of a node's API with the tests' token.
func testClient(addr string) *node.Client {
	c := node.NewClient(addr)
	c.Token = testToken
	return c
}

type result struct {
	stdout, stderr string
	code           int
}

// ctl runs enginectl with args and a clean environment (no ENGINE_ADDR).
func ctl(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "enginectl"), args...)
	cmd.Env = append(cleanEnv(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("enginectl %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENGINE_") {
			env = append(env, kv)
		}
	}
	return append(env, "ENGINE_TOKEN="+testToken)
}

func mustOK(t *testing.T, r result, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r.code, r.stdout, r.stderr)
	}
}

func mustFail(t *testing.T, r result, what string, wants ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("%s: succeeded, want an error\nstdout:\n%s", what, r.stdout)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("%s: stderr does not say %q:\n%s", what, w, r.stderr)
		}
	}
}

// dirEntries lists what is under dir (recursively), for "nothing left" checks.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// jobScratch lists what a job left in a data directory's jobs/.
func jobScratch(t *testing.T, data string) []string {
	return dirEntries(t, filepath.Join(data, "jobs"))
}

// The main job on the embedded node: 50 MB generated, sorted, kept, and
// checked again from outside with the valsort front end.
func TestSubmitSort50MB(t *testing.T) {
	data, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	r := ctl(t, nil, "submit", "sort", "--size=50MB", "--output", out, "--data", data, "--partitions", "3")
	mustOK(t, r, "submit sort")
	want := gensort.ChecksumRecords(0, 500_000, gensort.Options{}).String()
	for _, s := range []string{"PASSED", "records in 500000 = out 500000", "checksum in " + want + " = out " + want,
		"map", "reduce", "validates", "MB/s per core", "peak RSS", "TB/min"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("report lacks %q:\n%s", s, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "sorting 50.0 MB of generated binary records (500000)") {
		t.Errorf("no job line on stderr:\n%s", r.stderr)
	}
	names := dirEntries(t, out)
	wantNames := []string{"_SUCCESS", "part-00000", "part-00001", "part-00002", "summary-00000", "summary-00001", "summary-00002"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Fatalf("output holds %v, want %v", names, wantNames)
	}
	// valsort each part, concatenate the summaries, check the whole.
	var all []byte
	for i := 0; i < 3; i++ {
		sum := filepath.Join(t.TempDir(), "s")
		r := ctl(t, nil, "valsort", "-o", sum, filepath.Join(out, fmt.Sprintf("part-%05d", i)))
		mustOK(t, r, "valsort part")
		b, _ := os.ReadFile(sum)
		all = append(all, b...)
		ours, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("summary-%05d", i)))
		if !bytes.Equal(b, ours) {
			t.Errorf("summary-%05d differs from valsort -o of the part", i)
		}
	}
	allPath := filepath.Join(t.TempDir(), "all.sum")
	os.WriteFile(allPath, all, 0o644)
	r = ctl(t, nil, "valsort", "-s", allPath)
	mustOK(t, r, "valsort -s")
	for _, s := range []string{"Records: 500000", "Checksum: " + want, "SUCCESS - all records are in order"} {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("valsort -s output lacks %q:\n%s%s", s, r.stdout, r.stderr)
		}
	}
	if left := jobScratch(t, data); len(left) != 0 {
		t.Errorf("job scratch left behind: %v", left)
	}
}

// Sorting a directory of files made with the reference command lines.
func TestSubmitSortInputDirASCII(t *testing.T) {
	in, data, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
	mustOK(t, ctl(t, nil, "gensort", "-a", "30000", filepath.Join(in, "a.dat")), "gensort a")
	mustOK(t, ctl(t, nil, "gensort", "-a", "-b30000", "20000", filepath.Join(in, "b.dat")), "gensort b")
	before, _ := os.ReadFile(filepath.Join(in, "a.dat"))
	r := ctl(t, nil, "submit", "sort", "--input", in, "--output", out, "--data", data, "--memory", "64MB")
	mustOK(t, r, "submit sort --input")
	want := gensort.ChecksumRecords(0, 50_000, gensort.Options{ASCII: true}).String()
	if !strings.Contains(r.stdout, "checksum in "+want+" = out "+want) {
		t.Fatalf("report:\n%s\nwant checksum %s (gensort -a -c 50000)", r.stdout, want)
	}
	after, _ := os.ReadFile(filepath.Join(in, "a.dat"))
	if !bytes.Equal(before, after) {
		t.Fatal("input file changed")
	}
}

func TestGensortReferenceCommandLine(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "out.dat")
	r := ctl(t, nil, "gensort", "-c", "-b500000", "1000", f)
	mustOK(t, r, "gensort -b500000")
	got, _ := os.ReadFile(f)
	want, err := os.ReadFile("../../gensort/testdata/bin-500000-1000.dat")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("enginectl gensort -b500000 1000 differs from the reference gensort's output")
	}
}

func TestSortBadInput(t *testing.T) {
	t.Run("partial record", func(t *testing.T) {
		in, data, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
		os.WriteFile(filepath.Join(in, "ok.dat"), make([]byte, 1000), 0o644)
		os.WriteFile(filepath.Join(in, "bad.dat"), make([]byte, 1234), 0o644)
		r := ctl(t, nil, "submit", "sort", "--input", in, "--output", out, "--data", data)
		mustFail(t, r, "partial record", filepath.Join(in, "bad.dat"), "1234 bytes", "not a whole number of 100-byte records", "offset 1200")
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("output directory created for a refused job")
		}
	})
	t.Run("missing input", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		r := ctl(t, nil, "submit", "sort", "--input", missing, "--data", t.TempDir())
		mustFail(t, r, "missing input", missing, "no such file or directory")
	})
	t.Run("unreadable input", func(t *testing.T) {
		// Directories every user can reach (t.TempDir's parent is 0700).
		base, err := os.MkdirTemp("", "unreadable-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(base)
		os.Chmod(base, 0o755)
		in, data := filepath.Join(base, "in"), filepath.Join(base, "data")
		os.Mkdir(in, 0o755)
		os.Mkdir(data, 0o777)
		os.Chmod(data, 0o777) // past the umask
		f := filepath.Join(in, "secret.dat")
		os.WriteFile(f, make([]byte, 1000), 0o000)
		var env []string
		cmdPath := filepath.Join(binDir, "enginectl")
		if os.Geteuid() == 0 {
			// Root reads anything: run enginectl as nobody instead.
			os.Chmod(binDir, 0o755)
			cmd := exec.Command(cmdPath, "submit", "sort", "--input", in, "--data", data)
			cmd.Env = append(cleanEnv(), "HOME=/tmp")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var se bytes.Buffer
			cmd.Stderr, cmd.Stdout = &se, &se
			err := cmd.Run()
			if err == nil || !strings.Contains(se.String(), f) || !strings.Contains(se.String(), "permission denied") {
				t.Fatalf("unreadable input as nobody: err %v, stderr:\n%s", err, se.String())
			}
			return
		}
		r := ctl(t, env, "submit", "sort", "--input", in, "--data", data)
		mustFail(t, r, "unreadable input", f, "permission denied")
	})
	t.Run("output not empty", func(t *testing.T) {
		out := t.TempDir()
		keep := filepath.Join(out, "precious")
		os.WriteFile(keep, []byte("mine"), 0o644)
		r := ctl(t, nil, "submit", "sort", "--size=1MB", "--output", out, "--data", t.TempDir())
		mustFail(t, r, "non-empty output", out, "exists and is not empty")
		if b, _ := os.ReadFile(keep); string(b) != "mine" || len(dirEntries(t, out)) != 1 {
			t.Fatalf("output directory changed: %v", dirEntries(t, out))
		}
	})
	t.Run("larger than free disk", func(t *testing.T) {
		data := t.TempDir()
		r := ctl(t, nil, "submit", "sort", "--size=100TB", "--data", data)
		mustFail(t, r, "too big", "not enough free disk", "needs 200 TB", "map output 100 TB + output 100 TB", "free")
		if left := jobScratch(t, data); len(left) != 0 {
			t.Errorf("a refused job wrote %v", left)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		r := ctl(t, nil, "submit", "sort", "--size=1KiB")
		if r.code != 2 || !strings.Contains(r.stderr, "not a whole number of 100-byte records") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		r = ctl(t, nil, "submit", "sort")
		if r.code != 2 || !strings.Contains(r.stderr, "needs --size") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
}

// Disk full while spilling: a small tmpfs as the data directory.
func TestSortDiskFullDuringSpill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as a full disk")
	}
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): this test needs mount privileges", err, out)
	}
	defer exec.Command("umount", data).Run()
	out := filepath.Join(t.TempDir(), "out")
	// 20 MB with a 16 MB budget and 10 MB splits: every map spills runs,
	// and the 6 MB file system fills during the first spills.
	r := ctl(t, nil, "submit", "sort", "--size=20MB", "--memory=16MB", "--map-split=10MB", "--skip-space-check", "--data", data, "--output", out)
	mustFail(t, r, "disk full", "no space left on device", data)
	if !regexp.MustCompile(`at byte \d+`).MatchString(r.stderr) {
		t.Errorf("error does not name the offset:\n%s", r.stderr)
	}
	if left := jobScratch(t, data); len(left) != 0 {
		t.Errorf("files left on the full disk: %v", left)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory left behind: %v", dirEntries(t, out))
	}
}

// Ctrl-C in the middle of a job: the job is cancelled, everything it wrote
// is removed, and enginectl exits 130.
func TestSortInterrupt(t *testing.T) {
	data, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(filepath.Join(binDir, "enginectl"), "submit", "sort", "--size=2GB", "--output", out, "--data", data, "--progress", "lines")
	cmd.Env = cleanEnv()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "map (2/5)") {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "cancelled") {
		t.Errorf("no cancellation message:\n%s", log.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind after Ctrl-C: %v", dirEntries(t, out))
	}
	if left := jobScratch(t, data); len(left) != 0 {
		t.Errorf("job scratch left after Ctrl-C: %v", left)
	}
}

// engined as a daemon, enginectl through ENGINE_ADDR, and the data
// directory lock.
func TestDaemon(t *testing.T) {
	data := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "engined"), "--data", data, "--api", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var addr string
	for sc.Scan() {
		if m := regexp.MustCompile(`ENGINE_ADDR=(\S+)\)`).FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		t.Fatal("engined did not print its address")
	}
	go io.Copy(io.Discard, stderr)
	env := []string{"ENGINE_ADDR=" + addr}
	r := ctl(t, env, "submit", "sort", "--size=10MB", "--records", "ascii")
	mustOK(t, r, "submit to daemon")
	if !strings.Contains(r.stdout, "checksum in 1df2efc2e4e19 = out") && !strings.Contains(r.stdout, "PASSED") {
		t.Fatalf("report:\n%s", r.stdout)
	}
	r = ctl(t, env, "status")
	mustOK(t, r, "status")
	if !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, data) {
		t.Fatalf("status:\n%s", r.stdout)
	}
	// A second process on the same data directory is refused.
	second := exec.Command(filepath.Join(binDir, "engined"), "--data", data, "--api", "127.0.0.1:0")
	b, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "in use by another engine process") {
		t.Fatalf("second engined on one data directory: %v\n%s", err, b)
	}
	// The embedded node refuses it too.
	r = ctl(t, nil, "submit", "sort", "--size=1MB", "--data", data)
	mustFail(t, r, "embedded on a used data dir", "in use by another engine process")
	// No node at the address: a clear error, no hang.
	r = ctl(t, []string{"ENGINE_ADDR=127.0.0.1:1"}, "status")
	mustFail(t, r, "no node", "cannot reach the engine node at 127.0.0.1:1")

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("engined exit after SIGTERM: %v", err)
	}
}

func TestDryRun100TB(t *testing.T) {
	r := ctl(t, nil, "submit", "sort", "--size=100TB", "--nodes=200", "--dry-run", "--data", t.TempDir())
	mustOK(t, r, "dry run")
	for _, s := range []string{"100 TB", "200 node(s)", "map tasks", "reduce tasks", "bytes per node   500 GB in", "disk needed      1.00 TB per node", "network shuffle", "estimated time"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("plan lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestHelp(t *testing.T) {
	r := ctl(t, nil, "--help")
	mustOK(t, r, "--help")
	for _, c := range []string{"submit sort", "status", "cancel", "cluster up", "cluster down", "gensort", "valsort", "bench sort", "bench cluster", "ENGINE_ADDR"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("--help lacks %q", c)
		}
	}
	for _, args := range [][]string{{"help", "submit", "sort"}, {"help", "gensort"}, {"help", "valsort"}, {"help", "status"}, {"help", "cancel"}, {"help", "cluster"}, {"help", "bench", "sort"}, {"help", "bench", "cluster"}} {
		r := ctl(t, nil, args...)
		if r.code != 0 || len(r.stdout+r.stderr) < 100 {
			t.Errorf("%v: exit %d, %d bytes of help", args, r.code, len(r.stdout+r.stderr))
		}
	}
}
