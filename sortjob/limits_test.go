package sortjob

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The planner behind /v1/plan, /v1/jobs and --dry-run refuses what is past
// the limits of a job, naming the limit, instead of overflowing (9e18
// records made negative bytes that passed the free-space check) or
// planning hundreds of millions of map tasks.
func TestPlanLimits(t *testing.T) {
	c200 := Cluster{Nodes: 200, CoresPerNode: 2}
	for _, c := range []struct {
		name    string
		spec    Spec
		cluster Cluster
		want    []string
	}{
		{"records overflow", Spec{Records: 9e18}, c200, []string{"9000000000000000000 records", "limit of 100000000000000", "10.0 PB"}},
		{"max int64 records", Spec{Records: 1<<63 - 1}, c200, []string{"records", "limit of"}},
		{"745 million maps", Spec{Records: 1e12, Memory: 4 << 30, MapSplit: 134200}, c200, []string{"745156800 map tasks", "limit of 8000000", "--map-split"}},
		{"too many partitions asked", Spec{Records: 1e9, Partitions: 2_000_000}, c200, []string{"2000000 partitions", "limit of 1000000"}},
		{"too many partitions planned", Spec{Records: 1e14, Memory: 4 << 30, MapSplit: 20e9}, c200, []string{"10000000 partitions", "limit of 1000000"}},
		{"negative partitions", Spec{Records: 1e9, Partitions: -1}, c200, []string{"-1 partitions is negative"}},
		{"huge memory", Spec{Records: 1e9, Memory: 9e18}, c200, []string{"memory budget", "limit of"}},
		{"negative memory", Spec{Records: 1e9, Memory: -5}, c200, []string{"memory budget", "negative"}},
		{"negative map split", Spec{Records: 1e9, MapSplit: -1}, c200, []string{"map split", "negative"}},
		{"huge map split", Spec{Records: 1e9, MapSplit: 1<<63 - 1}, c200, []string{"map split", "limit of"}},
		{"too many nodes", Spec{Records: 1e9}, Cluster{Nodes: 1e9, CoresPerNode: 2}, []string{"1000000000 nodes", "limits of 1 to 10000"}},
		{"too many cores", Spec{Records: 1e9}, Cluster{Nodes: 2, CoresPerNode: 1 << 40}, []string{"cores per node", "limits of 1 to 4096"}},
		{"relative output", Spec{Records: 1e6, Output: "out"}, c200, []string{`output path "out" is not absolute`}},
		{"relative input", Spec{Input: "in/../x"}, c200, []string{"input path", "not absolute"}},
		{"NUL in output", Spec{Records: 1e6, Output: "/tmp/a\x00b"}, c200, []string{"NUL"}},
		{"too many tasks", Spec{Records: 1e12, Memory: 4 << 30}, Cluster{Nodes: 200, CoresPerNode: 128},
			[]string{"1000000000000 records", "4070400 map tasks", "102400 partitions", "4172800 tasks", "limit of 2000000", "more --memory", "fewer --partitions"}},
		{"too many tasks asked", Spec{Records: 1e9, Maps: 1_500_000, Partitions: 600_000}, c200,
			[]string{"1500000 map tasks", "600000 partitions", "limit of 2000000"}},
		{"negative maps", Spec{Records: 1e9, Maps: -1}, c200, []string{"-1 map tasks is negative"}},
		{"huge maps", Spec{Records: 1e12, Maps: 1 << 40}, c200, []string{"1099511627776 map tasks", "limit of 8000000", "fewer --maps"}},
		{"maps past records", Spec{Records: 10, Maps: 11}, c200, []string{"11 map tasks asked for 10 records", "at most 10 --maps"}},
		{"maps with a map split", Spec{Records: 1e9, Maps: 100, MapSplit: 1e6}, c200, []string{"--maps or --map-split"}},
		{"maps with input", Spec{Input: "/tmp/in", Maps: 100}, c200, []string{"--maps applies to generated input"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := MakePlan(c.spec, c.cluster)
			if err == nil {
				t.Fatalf("planned %d records (%d bytes) in %d maps and %d partitions, want an error", p.Records, p.Bytes, p.MapCount, p.Partitions)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// The limits leave room for the documented 100 TB dry run (on 128 cores a
// node needs a budget that keeps the maps under MaxTasks), and what
// MakePlan makes passes the Validate every node applies to it.
func TestPlanWithinLimits(t *testing.T) {
	for _, c := range []struct {
		spec             Spec
		cluster          Cluster
		maps, partitions int
	}{
		{Spec{Records: 1e12, Memory: 4 << 30}, Cluster{Nodes: 200, CoresPerNode: 2}, 745_200, 100_000},
		{Spec{Records: 1e12, Memory: 64 << 30}, Cluster{Nodes: 200, CoresPerNode: 128}, 768_000, 102_400},
		{Spec{Records: 1e14, Memory: 4 << 30, MapSplit: 20e9, Partitions: 1_000_000}, Cluster{Nodes: 200, CoresPerNode: 2}, 500_000, 1_000_000},
	} {
		p, err := MakePlan(c.spec, c.cluster)
		if err != nil {
			t.Fatalf("%+v on %+v: %v", c.spec, c.cluster, err)
		}
		if p.MapCount != c.maps || p.Partitions != c.partitions || p.Bytes != c.spec.Records*RecordSize {
			t.Fatalf("%+v on %+v: %d maps, %d partitions, %d bytes; want %d, %d, %d", c.spec, c.cluster, p.MapCount, p.Partitions, p.Bytes, c.maps, c.partitions, c.spec.Records*RecordSize)
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseSizeLimit(t *testing.T) {
	for _, s := range []string{"1e19rec", "9.3e18rec", "100PB", "1e20B"} {
		n, err := ParseSize(s)
		if err == nil || !strings.Contains(err.Error(), "limit of 100000000000000") {
			t.Errorf("ParseSize(%q) = %d, %v; want an error naming the limit", s, n, err)
		}
	}
	if n, err := ParseSize("10PB"); err != nil || n != MaxRecords {
		t.Errorf("ParseSize(10PB) = %d, %v", n, err)
	}
}

// A plan for file input lists its splits; Validate refuses any split whose
// path a forger pointed elsewhere, and any count that does not match.
func TestPlanValidateRefusesForgedPlans(t *testing.T) {
	in := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(in, name), make([]byte, 50*RecordSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func(t *testing.T) *Plan {
		p, err := MakePlan(Spec{Input: in + "/", Output: filepath.Join(t.TempDir(), "out"), Memory: 64 << 20, MapSplit: 20 * RecordSize}, Cluster{Nodes: 2, CoresPerNode: 2})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.Input != in || p.MapCount != 8 {
			t.Fatalf("plan of input %q with %d maps", p.Spec.Input, p.MapCount)
		}
		return p
	}
	if err := good(t).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		forge  func(p *Plan)
		reason string
	}{
		{"relative output", func(p *Plan) { p.Spec.Output = "out" }, "not absolute"},
		{"output with ..", func(p *Plan) { p.Spec.Output = "/tmp/x/../../etc" }, "not clean"},
		{"output with a trailing slash", func(p *Plan) { p.Spec.Output = "/tmp/out/" }, "not clean"},
		{"long output", func(p *Plan) { p.Spec.Output = "/" + strings.Repeat("a", MaxPathLen) }, "longer than the limit"},
		{"relative input", func(p *Plan) { p.Spec.Input = "in" }, "not absolute"},
		{"map path relative", func(p *Plan) { p.Maps[1].Path = "a" }, "not absolute"},
		{"map path with ..", func(p *Plan) { p.Maps[1].Path = in + "/../../etc/shadow" }, "not clean"},
		{"map path elsewhere", func(p *Plan) { p.Maps[1].Path = "/etc/shadow" }, "not in the input directory"},
		{"map path below", func(p *Plan) { p.Maps[1].Path = in + "/sub/a" }, "not in the input directory"},
		{"map path NUL", func(p *Plan) { p.Maps[1].Path = in + "/a\x00" }, "NUL"},
		{"input file elsewhere", func(p *Plan) { p.Inputs[0].Path = "/etc/passwd" }, "not in the input directory"},
		{"fewer splits than maps", func(p *Plan) { p.Maps = p.Maps[:3] }, "lists 3 map splits"},
		{"negative offset", func(p *Plan) { p.Maps[2].Offset = -100 }, "offset -100"},
		{"negative split records", func(p *Plan) { p.Maps[2].Records = -1 }, "-1 records"},
		{"split ids out of order", func(p *Plan) { p.Maps[2].ID = 7 }, "has id 7"},
		{"negative maps", func(p *Plan) { p.MapCount = -1 }, "-1 map tasks"},
		{"huge maps", func(p *Plan) { p.MapCount = 745_000_000 }, "limit of 8000000"},
		{"too many tasks", func(p *Plan) { p.MapCount, p.Partitions = 1_500_000, 600_000 }, "2100000 tasks, more than the limit of 2000000"},
		{"merge group of one", func(p *Plan) { p.MergeGroup = 1 }, "merge group of 1"},
		{"negative merge group", func(p *Plan) { p.MergeGroup = -1 }, "merge group of -1"},
		{"huge merge group", func(p *Plan) { p.MergeGroup = MaxMergeFanIn + 1 }, "merge group of 1025"},
		{"negative merge block", func(p *Plan) { p.MergeBlock = -1 }, "merge block"},
		{"huge merge block", func(p *Plan) { p.MergeBlock = 1 << 30 }, "merge block"},
		{"negative spec maps", func(p *Plan) { p.Spec.Maps = -3 }, "-3 map tasks"},
		{"no partitions", func(p *Plan) { p.Partitions = 0 }, "0 partitions"},
		{"bytes overflow", func(p *Plan) { p.Records = 9e18 }, "limit of"},
		{"bytes mismatch", func(p *Plan) { p.Bytes = -1 }, "bytes, want"},
		{"huge sort buffer", func(p *Plan) { p.SortBuffer = 1 << 40 }, "sort buffer"},
		{"negative block", func(p *Plan) { p.BlockSize = -1 }, "block size"},
		{"no nodes", func(p *Plan) { p.Cluster.Nodes = 0 }, "nodes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := good(t)
			c.forge(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Validate = %v, want an error saying %q", err, c.reason)
			}
		})
	}
	// Generated input carries no split list.
	p, err := MakePlan(Spec{Records: 1000, Memory: 64 << 20}, Cluster{Nodes: 1, CoresPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.Maps = []MapSplit{{Path: "/etc/shadow", Records: 10}}
	if err := p.Validate(); err == nil {
		t.Fatal("a generated plan with a split list passed")
	}
}

// An input directory whose files add up past the limit (sparse files of
// exabytes, whose sum overflows int64) is refused before any split is made.
func TestPlanRefusesHugeInput(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "sortjob-huge-input-")
	if err != nil {
		t.Skipf("needs tmpfs at /dev/shm for sparse files of exabytes: %v", err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		err = f.Truncate(5_500_000_000_000_000_000)
		f.Close()
		if err != nil {
			t.Skipf("needs sparse files of exabytes on /dev/shm: %v", err)
		}
	}
	p, err := MakePlan(Spec{Input: dir, Memory: 64 << 20}, Cluster{Nodes: 2, CoresPerNode: 2})
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 10000000000000000 bytes") {
		t.Fatalf("MakePlan = %+v, %v; want the input refused naming the limit", p, err)
	}
}

// The daemon writes _SUCCESS as root into an output directory its users
// may write to: a symbolic link put there is refused, not followed.
func TestWriteFileSyncRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "_SUCCESS")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := writeFileSync(link, []byte("report")); err == nil {
		t.Fatal("writeFileSync wrote through a symbolic link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("the link's target was changed to %q", b)
	}
}
