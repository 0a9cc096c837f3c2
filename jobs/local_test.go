package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"engine/gensort"
	"engine/sortjob"
)

// The single-node run goes through the same lifecycle as a cluster's.

func TestRunLocalGeneratedMatchesGensortChecksum(t *testing.T) {
	for _, c := range []struct {
		name string
		spec sortjob.Spec
		sum  string
	}{
		{"binary", sortjob.Spec{Records: 10_000, Memory: 128 << 20}, gensort.ChecksumRecords(0, 10_000, gensort.Options{}).String()},
		{"ascii", sortjob.Spec{Records: 10_000, ASCII: true, Memory: 128 << 20}, "138005ce70eb"},
		{"skew-spill", sortjob.Spec{Records: 400_000, Skew: true, Memory: 16 << 20, MapSplit: 10e6, Partitions: 5}, gensort.ChecksumRecords(0, 400_000, gensort.Options{Skew: true}).String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			out := filepath.Join(t.TempDir(), "out")
			c.spec.Output = out
			rep, err := RunLocal(context.Background(), LocalConfig{DataDir: data, Workers: 2}, c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Check.Passed || rep.Check.InputChecksum != c.sum || rep.Check.OutputChecksum != c.sum {
				t.Fatalf("check %+v, want checksum %s", rep.Check, c.sum)
			}
			// The output validates as one ordered whole with valsort.
			var all []byte
			for i := 0; i < rep.Partitions; i++ {
				b, err := os.ReadFile(filepath.Join(out, sortjob.PartName(i, rep.Partitions)))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			v := gensort.NewValidator()
			v.Write(all)
			s, err := v.Summary()
			if err != nil || !s.Ordered() || s.Checksum.String() != c.sum || s.Records != uint64(c.spec.Records) {
				t.Fatalf("concatenated output: %+v %v", s, err)
			}
			if _, err := os.Stat(filepath.Join(out, sortjob.SuccessName)); err != nil {
				t.Fatal(err)
			}
			if des, _ := os.ReadDir(filepath.Join(data, "jobs")); len(des) != 0 {
				t.Errorf("job scratch left behind: %v", des)
			}
		})
	}
}

func TestRunLocalRefusesNonEmptyOutput(t *testing.T) {
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
	_, err := RunLocal(context.Background(), LocalConfig{DataDir: t.TempDir()}, sortjob.Spec{Records: 100, Output: out})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v", err)
	}
}

// Input files of very different sizes, including empty and smaller than a
// sample cluster, sort correctly.
func TestRunLocalInputFilesOfMixedSizes(t *testing.T) {
	in := t.TempDir()
	var want gensort.Sum
	start := uint64(0)
	for i, n := range []uint64{3, 0, 5000, 77, 1} {
		path := filepath.Join(in, fmt.Sprintf("f%d", i))
		s, err := gensort.GenerateFile(context.Background(), path, start, n, gensort.Options{ASCII: true}, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		want.Add(s)
		start += n
	}
	rep, err := RunLocal(context.Background(), LocalConfig{DataDir: t.TempDir(), Workers: 2}, sortjob.Spec{Input: in, Memory: 64 << 20, Partitions: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Check.Passed || rep.Check.OutputChecksum != want.String() || rep.Records != int64(start) {
		t.Fatalf("check %+v, want %d records with checksum %s", rep.Check, start, want)
	}
}
