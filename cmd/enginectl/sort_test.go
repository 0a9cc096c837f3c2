package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"engine/sortjob"
)

// The many-tasks run, planned: --maps forces the map count beside
// --partitions, and the dry run reports the consolidated shuffle. A rate
// file in the data directory spares the calibration sort.
func TestDryRunManyTasks(t *testing.T) {
	data := t.TempDir()
	rate, _ := json.Marshal(sortjob.Rate{BytesPerSecondPerCore: 50e6, Bytes: 1e9, Measured: time.Now(), Source: "test"})
	if err := os.WriteFile(filepath.Join(data, "rate.json"), rate, 0o644); err != nil {
		t.Fatal(err)
	}
	r := ctl(t, nil, "submit", "sort", "--size=10GB", "--maps", "2000", "--partitions", "1000", "--nodes", "3", "--cores", "2", "--memory", "4GiB", "--dry-run", "--data", data)
	mustOK(t, r, "dry run")
	for _, s := range []string{
		"map tasks        2000 (667 per node, 5.00 MB each)",
		"reduce tasks     1000 (334 per node, 10.0 MB each; 9 segments of ~1.11 MB per reduce, 1 merge pass(es))",
		"every 223 map outputs on a node merge into one: 3 merge(s) per node, 9 in all",
		"instead of 2000 of ~5.00 kB (up to 11",
		"estimated time   33s at 50.0 MB/s per core",
		"network, stragglers and the merge pass are not modelled",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("plan lacks %q:\n%s", s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "warning") {
		t.Fatalf("plan warns:\n%s", r.stdout)
	}
	r = ctl(t, nil, "submit", "sort", "--size=10GB", "--maps", "-1", "--dry-run", "--data", data)
	if r.code != 2 || !strings.Contains(r.stderr, "--maps must be positive") {
		t.Fatalf("--maps -1: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = ctl(t, nil, "submit", "sort", "--size=10GB", "--maps", "2000", "--map-split", "1MB", "--dry-run", "--data", data)
	mustFail(t, r, "--maps with --map-split", "give --maps or --map-split, not both")
	r = ctl(t, nil, "submit", "sort", "--size=1kB", "--maps", "11", "--dry-run", "--data", data)
	mustFail(t, r, "--maps past the records", "11 map tasks asked for 10 records")
	r = ctl(t, nil, "submit", "sort", "--size=100TB", "--nodes", "200", "--cores", "128", "--dry-run", "--data", data)
	mustFail(t, r, "too many tasks", "4070400 map tasks and 102400 partitions", "limit of 2000000", "more --memory")
}
