package gensort

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// run runs a command line ("gensort ..." or "valsort ...") in dir, with
// file arguments relative to dir.
func run(t *testing.T, dir, cmdline string) (stdout, stderr string, err error) {
	t.Helper()
	args := strings.Fields(cmdline)
	for i, a := range args[1:] {
		if strings.HasSuffix(a, ".dat") || strings.HasSuffix(a, ".sum") {
			args[i+1] = filepath.Join(dir, a)
		}
	}
	var out, errb bytes.Buffer
	switch args[0] {
	case "gensort":
		err = RunGensort(args[1:], &out, &errb)
	case "valsort":
		err = RunValsort(args[1:], &out, &errb)
	default:
		t.Fatalf("unknown command %q", args[0])
	}
	return out.String(), errb.String(), err
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestRunGensortReferenceCommandLines(t *testing.T) {
	for _, tc := range []struct {
		cmd, ref string
	}{
		{"gensort 1000 out.dat", "bin-0-1000.dat"},
		{"gensort -a 1000 out.dat", "ascii-0-1000.dat"},
		{"gensort -b500000 1000 out.dat", "bin-500000-1000.dat"},
		{"gensort -b 500000 1000 out.dat", "bin-500000-1000.dat"},
		{"gensort -s 1000 out.dat", "skew-bin-0-1000.dat"},
		{"gensort -a -s 1000 out.dat", "skew-ascii-0-1000.dat"},
		{"gensort -s -a 1000 out.dat", "skew-ascii-0-1000.dat"},
		{"gensort -t2 -b500000 1000 out.dat", "bin-500000-1000.dat"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			dir := t.TempDir()
			stdout, stderr, err := run(t, dir, tc.cmd)
			if err != nil || stdout != "" || stderr != "" {
				t.Fatalf("err %v, stdout %q, stderr %q", err, stdout, stderr)
			}
			got, err := os.ReadFile(filepath.Join(dir, "out.dat"))
			if err != nil {
				t.Fatal(err)
			}
			if d := firstDiff(got, readTestdata(t, tc.ref)); d != "" {
				t.Fatal(d)
			}
			st, _ := os.Stat(filepath.Join(dir, "out.dat"))
			if st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", st.Mode())
			}
			noTempFiles(t, dir)
		})
	}
}

func TestRunGensortChecksum(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"gensort -c 10 out.dat", "55fea8a1a\n"},
		{"gensort -a -c 10000 out.dat", "138005ce70eb\n"},
		{"gensort -c 1000000 /dev/null", "7a0e0d4868cd4\n"},
		{"gensort -c 0 out.dat", "0\n"},
	} {
		dir := t.TempDir()
		_, stderr, err := run(t, dir, tc.cmd)
		if err != nil || stderr != tc.want {
			t.Errorf("%s: stderr %q, err %v; want %q", tc.cmd, stderr, err, tc.want)
		}
	}
	// Overwriting an existing file replaces it whole.
	dir := t.TempDir()
	p := filepath.Join(dir, "out.dat")
	os.WriteFile(p, bytes.Repeat([]byte("x"), 12345), 0o600)
	if _, _, err := run(t, dir, "gensort 10 out.dat"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, readTestdata(t, "bin-0-1000.dat")[:1000]) {
		t.Fatal("existing file not replaced by the 10 records")
	}
}

func TestRunGensortMultiChunk(t *testing.T) {
	// More than one chunk, so the parallel writer path is used.
	dir := t.TempDir()
	n := 2*chunkRecs + 5
	_, stderr, err := run(t, dir, fmt.Sprintf("gensort -c -b7 %d out.dat", n))
	if err != nil {
		t.Fatal(err)
	}
	want := genRecords(7, n, Options{})
	got, _ := os.ReadFile(filepath.Join(dir, "out.dat"))
	if d := firstDiff(got, want); d != "" {
		t.Fatal(d)
	}
	if stderr != SumRecords(want).String()+"\n" {
		t.Fatalf("stderr %q, want %s", stderr, SumRecords(want))
	}
	noTempFiles(t, dir)
}

func TestRunGensortErrors(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"gensort", "want NUM_RECS and FILE_NAME"},
		{"gensort 10", "want NUM_RECS and FILE_NAME"},
		{"gensort 10 a.dat b.dat", "got 3 arguments"},
		{"gensort -x 10 out.dat", `unknown option "-x"`},
		{"gensort -bfoo 10 out.dat", `bad starting record number "foo"`},
		{"gensort -b", "-b needs a starting record number"},
		{"gensort -t0 10 out.dat", "bad thread count"},
		{"gensort ten out.dat", `bad NUM_RECS "ten"`},
		{"gensort -1 out.dat", `unknown option "-1"`},
		{"gensort -b18446744073709551615 2 out.dat", "goes past record number"},
		{"gensort 10 nodir/out.dat", "no such file or directory"},
	} {
		dir := t.TempDir()
		_, _, err := run(t, dir, tc.cmd)
		if err == nil || !strings.HasPrefix(err.Error(), "gensort: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want gensort: ... %q", tc.cmd, err, tc.want)
		}
		if strings.Contains(tc.want, "option") || strings.Contains(tc.want, "bad") || strings.Contains(tc.want, "want") {
			if !strings.Contains(err.Error(), "usage: gensort") {
				t.Errorf("%s: error %q lacks the usage line", tc.cmd, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "out.dat")); err == nil {
			t.Errorf("%s: output file created despite the error", tc.cmd)
		}
		noTempFiles(t, dir)
	}
}

func TestRunValsort(t *testing.T) {
	dir := t.TempDir()
	unsorted := genRecords(0, 1000, Options{})
	sorted := sortRecords(unsorted)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sorted.dat", sorted)
	write("part0.dat", sorted[:500*RecordSize])
	write("part1.dat", sorted[500*RecordSize:])
	write("unsorted.dat", unsorted)
	write("dups.dat", append(bytes.Clone(sorted), sorted[len(sorted)-RecordSize:]...))
	sum := SumRecords(unsorted).String()
	ns := naiveSummary(unsorted)

	success := func(n int, sum string, dups int) string {
		return fmt.Sprintf("Records: %d\nChecksum: %s\nDuplicate keys: %d\nSUCCESS - all records are in order\n", n, sum, dups)
	}
	dupSum := SumRecords(append(bytes.Clone(sorted), sorted[len(sorted)-RecordSize:]...)).String()
	for _, tc := range []struct {
		cmd     string
		stderr  string
		wantErr string
	}{
		{"valsort sorted.dat", success(1000, sum, 0), ""},
		{"valsort dups.dat", success(1001, dupSum, 1), ""},
		{"valsort -q sorted.dat", "", ""},
		{"valsort unsorted.dat", fmt.Sprintf("First unordered record is record %d\nRecords: 1000\nChecksum: %s\nERROR - there are %d unordered records\n",
			ns.FirstUnordered, sum, ns.Unordered), fmt.Sprintf("%d unordered records", ns.Unordered)},
		{"valsort -q unsorted.dat", "", "unordered records"},
		{"valsort -o part0.sum part0.dat", success(500, SumRecords(sorted[:500*RecordSize]).String(), 0), ""},
		{"valsort -o part1.sum part1.dat", success(500, SumRecords(sorted[500*RecordSize:]).String(), 0), ""},
		{"valsort -o unsorted.sum unsorted.dat", "", "unordered records"},
	} {
		_, stderr, err := run(t, dir, tc.cmd)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "valsort: ")) {
			t.Errorf("%s: err %v, want %q", tc.cmd, err, tc.wantErr)
		}
		if tc.stderr != "" && stderr != tc.stderr || tc.stderr == "" && strings.Contains(tc.cmd, "-q") && stderr != "" {
			t.Errorf("%s: stderr\n%s\nwant\n%s", tc.cmd, stderr, tc.stderr)
		}
	}

	// Concatenated summaries in partition order check as one whole.
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s0, s1 := read("part0.sum"), read("part1.sum")
	if len(s0) != SummarySize {
		t.Fatalf("summary file is %d bytes, want %d", len(s0), SummarySize)
	}
	write("all.sum", append(bytes.Clone(s0), s1...))
	_, stderr, err := run(t, dir, "valsort -s all.sum")
	if err != nil || stderr != success(1000, sum, 0) {
		t.Fatalf("valsort -s all.sum: err %v, stderr\n%s", err, stderr)
	}
	// Wrong order: the boundary is unordered, at global record 500.
	write("swapped.sum", append(bytes.Clone(s1), s0...))
	_, stderr, err = run(t, dir, "valsort -s swapped.sum")
	wantOut := fmt.Sprintf("First unordered record is record 500\nRecords: 1000\nChecksum: %s\nERROR - there are 1 unordered records\n", sum)
	if err == nil || stderr != wantOut {
		t.Fatalf("valsort -s swapped.sum: err %v, stderr\n%s\nwant\n%s", err, stderr, wantOut)
	}
	// The summary of an unordered file keeps its first unordered record.
	write("mixed.sum", append(bytes.Clone(s0), read("unsorted.sum")...))
	_, stderr, err = run(t, dir, "valsort -s mixed.sum")
	if err == nil || !strings.HasPrefix(stderr, "First unordered record is record ") {
		t.Fatalf("valsort -s mixed.sum: err %v, stderr %q", err, stderr)
	}
	if want := naiveSummary(append(bytes.Clone(sorted[:500*RecordSize]), unsorted...)); !strings.Contains(stderr, fmt.Sprintf("record %d\n", want.FirstUnordered)) ||
		!strings.Contains(stderr, fmt.Sprintf("there are %d unordered", want.Unordered)) {
		t.Fatalf("valsort -s mixed.sum: stderr %q, want first %d, %d unordered", stderr, want.FirstUnordered, want.Unordered)
	}
	noTempFiles(t, dir)
}

func TestRunValsortErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "partial.dat"), make([]byte, 1050), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.dat"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "short.sum"), make([]byte, 100), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.sum"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "records.sum"), make([]byte, SummarySize), 0o644)
	for _, tc := range []struct{ cmd, want string }{
		{"valsort", "want exactly one FILE_NAME"},
		{"valsort a.dat b.dat", "got 2 arguments"},
		{"valsort -x partial.dat", `unknown option "-x"`},
		{"valsort -i partial.dat", "not supported"},
		{"valsort -o", "-o needs a summary file name"},
		{"valsort partial.dat", "50 bytes left over at offset 1000 (file size 1050"},
		{"valsort empty.dat", "there must be at least one record"},
		{"valsort missing.dat", "no such file or directory"},
		{"valsort -s short.sum", "truncated summary 0"},
		{"valsort -s empty.sum", "there must be at least one record"},
		{"valsort -s records.sum", "bad magic"},
	} {
		_, _, err := run(t, dir, tc.cmd)
		if err == nil || !strings.HasPrefix(err.Error(), "valsort: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want valsort: ... %q", tc.cmd, err, tc.want)
		}
	}
}

// TestValidatePipe exercises the streaming path for non-regular files.
func TestValidatePipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	data := append(genRecords(0, 3000, Options{}), 9, 9)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.Write(data)
		f.Close()
	}()
	_, _, err := run(t, dir, "valsort "+fifo)
	if err == nil || !strings.Contains(err.Error(), "2 bytes left over at offset 300000 (stream length 300002") {
		t.Fatalf("err %v", err)
	}
}
