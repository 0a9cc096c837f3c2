package sortjob

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"engine/gensort"
)

// TestSummariesDurableBeforeSuccess: a sort's summary-NNNNN files are
// fsynced (ValidatePart), and the output directory after them, before
// _SUCCESS is written (CommitOutput) (recorded through syncHook, in the
// order the fsyncs returned).
// Before, the summaries were written without fsync and committed under an
// fsynced _SUCCESS: a power cut could leave _SUCCESS beside empty
// summaries.
func TestSummariesDurableBeforeSuccess(t *testing.T) {
	var mu sync.Mutex
	var events []string
	syncHook = func(kind, path string) {
		mu.Lock()
		events = append(events, kind+" "+filepath.Base(path))
		mu.Unlock()
	}
	t.Cleanup(func() { syncHook = nil })
	out := filepath.Join(t.TempDir(), "out")
	tmp := TempDir(out, "j1")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Plan{Partitions: 3}
	rep := &Report{Job: "j1", Partitions: 3}
	for i := range p.Partitions {
		if _, err := gensort.GenerateFile(context.Background(), filepath.Join(tmp, PartName(i, p.Partitions)), uint64(i)*1000, 1000, gensort.Options{}, 1, true); err != nil {
			t.Fatal(err)
		}
		if _, err := ValidatePart(context.Background(), p, i, tmp, make([]byte, 1<<20), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := CommitOutput(tmp, out, rep); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	pos := func(ev string) int {
		for i, e := range events {
			if e == ev {
				return i
			}
		}
		return -1
	}
	success := pos("file " + SuccessName)
	if success < 0 {
		t.Fatalf("_SUCCESS was not fsynced: %q", events)
	}
	dirBefore := -1
	for i, e := range events[:success] {
		if e == "dir out" {
			dirBefore = i
		}
	}
	for i := 0; i < rep.Partitions; i++ {
		name := SummaryName(i, rep.Partitions)
		p := pos("file " + name)
		if p < 0 {
			t.Fatalf("%s was never fsynced; fsyncs: %s", name, strings.Join(events, ", "))
		}
		if p > dirBefore || dirBefore < 0 {
			t.Fatalf("%s fsynced at %d, the output directory at %d, _SUCCESS at %d: want summary, directory, _SUCCESS; fsyncs: %s", name, p, dirBefore, success, strings.Join(events, ", "))
		}
	}
}
