package sortjob

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"engine/internal/units"
)

// Limits of one job. MakePlan refuses a spec beyond them with an error that
// names the limit, and Plan.Validate refuses a plan beyond them, so a plan
// replicated to every node never sizes an allocation or a loop from an
// unchecked number. They allow 100 TB on 200 nodes (745,200 maps of 134 MB
// and 100,000 partitions with a 4 GiB budget on 2 cores) with room to spare.
const (
	// MaxBytes is the most input one job sorts: 10 PB.
	MaxBytes = 10_000_000_000_000_000
	// MaxRecords is MaxBytes in records.
	MaxRecords = MaxBytes / RecordSize
	// MaxMapTasks bounds a plan's map tasks: each is a task in the
	// replicated state of every node (about 250 bytes). A 100 TB plan on
	// 200 nodes with the default 4 GiB budget has 745,200 on 2 cores and
	// 4 million on 128.
	MaxMapTasks = 8_000_000
	// MaxPartitions bounds a plan's reduce partitions.
	MaxPartitions = 1_000_000
	// MaxTasks bounds a plan's map tasks plus partitions: what the
	// coordinator holds in its replicated state for one job (a record per
	// task). The 100 TB plan on 200 nodes × 2 cores has 845,200.
	MaxTasks = 2_000_000
	// MaxNodes and MaxCoresPerNode bound the cluster a plan is made for.
	MaxNodes        = 10_000
	MaxCoresPerNode = 4096
	// MaxMemory bounds a job's memory budget per node: 256 TiB.
	MaxMemory = 1 << 48
	// MaxPathLen bounds an input or output path, as PATH_MAX does.
	MaxPathLen = 4095
	// maxReducePasses bounds Plan.ReducePasses (a fan-in of MaxFanIn per
	// pass merges MaxMapTasks segments in 3).
	maxReducePasses = 64
)

// ValidPath checks a path that a plan carries to every node: absolute,
// clean (filepath.Clean leaves it as it is, so it holds no "..", "." or
// doubled slash), without a NUL byte, at most MaxPathLen bytes. what names
// the path in the error ("output", "input").
func ValidPath(what, path string) error {
	switch {
	case len(path) > MaxPathLen:
		return fmt.Errorf("sortjob: %s path of %d bytes is longer than the limit of %d", what, len(path), MaxPathLen)
	case strings.IndexByte(path, 0) >= 0:
		return fmt.Errorf("sortjob: %s path %q holds a NUL byte", what, path)
	case !filepath.IsAbs(path):
		return fmt.Errorf("sortjob: %s path %q is not absolute: give an absolute directory", what, path)
	case filepath.Clean(path) != path:
		return fmt.Errorf("sortjob: %s path %q is not clean: give it as %q", what, path, filepath.Clean(path))
	}
	return nil
}

// Validate checks a spec's numbers against the limits of a job and its
// paths with ValidPath (an empty Input or Output is allowed: generated input,
// output not kept). It does no I/O.
func (s *Spec) Validate() error {
	switch {
	case s.Records < 0:
		return fmt.Errorf("sortjob: %d records is negative", s.Records)
	case s.Records > MaxRecords:
		return errRecords(s.Records)
	case s.Memory < 0:
		return fmt.Errorf("sortjob: memory budget of %d bytes is negative", s.Memory)
	case s.Memory > MaxMemory:
		return fmt.Errorf("sortjob: memory budget of %d bytes is more than the limit of %d (%s); give a smaller --memory", s.Memory, int64(MaxMemory), units.Format(MaxMemory))
	case s.Partitions < 0:
		return fmt.Errorf("sortjob: %d partitions is negative: give a positive number, or 0 to let the planner choose", s.Partitions)
	case s.Partitions > MaxPartitions:
		return errPartitions(s.Partitions)
	case s.MapSplit < 0:
		return fmt.Errorf("sortjob: map split of %d bytes is negative", s.MapSplit)
	case s.MapSplit > MaxBytes:
		return fmt.Errorf("sortjob: map split of %d bytes is more than the limit of %d (%s)", s.MapSplit, int64(MaxBytes), units.Format(MaxBytes))
	case s.Maps < 0:
		return fmt.Errorf("sortjob: %d map tasks is negative: give a positive number, or 0 to let the planner choose", s.Maps)
	case s.Maps > MaxMapTasks:
		return fmt.Errorf("sortjob: %d map tasks asked is more than the limit of %d; give fewer --maps", s.Maps, MaxMapTasks)
	case s.Maps > 0 && s.Input != "":
		return fmt.Errorf("sortjob: %d map tasks asked for input %s: --maps applies to generated input; size the splits of files with --map-split", s.Maps, s.Input)
	case s.Maps > 0 && s.MapSplit > 0:
		return fmt.Errorf("sortjob: %d map tasks and a map split of %d bytes asked: give --maps or --map-split, not both", s.Maps, s.MapSplit)
	case s.Maps > 0 && s.Records > 0 && int64(s.Maps) > s.Records:
		return fmt.Errorf("sortjob: %d map tasks asked for %d records: each map needs at least one record; give at most %d --maps", s.Maps, s.Records, s.Records)
	}
	if s.Input != "" {
		if err := ValidPath("input", s.Input); err != nil {
			return err
		}
	}
	if s.Output != "" {
		if err := ValidPath("output", s.Output); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a cluster's size against MaxNodes and MaxCoresPerNode;
// both must be at least 1 (MakePlan fills the defaults first).
func (c Cluster) Validate() error {
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("sortjob: a cluster of %d nodes is outside the limits of 1 to %d", c.Nodes, MaxNodes)
	}
	if c.CoresPerNode < 1 || c.CoresPerNode > MaxCoresPerNode {
		return fmt.Errorf("sortjob: %d cores per node is outside the limits of 1 to %d", c.CoresPerNode, MaxCoresPerNode)
	}
	return nil
}

func errRecords(n int64) error {
	return fmt.Errorf("sortjob: %d records is more than the limit of %d (%s); sort at most %s in one job",
		n, int64(MaxRecords), units.Format(MaxBytes), units.Format(MaxBytes))
}

func errPartitions(n int) error {
	return fmt.Errorf("sortjob: %d partitions is more than the limit of %d; give fewer --partitions (each reduce then writes more)", n, MaxPartitions)
}

func errTasks(records int64, maps, parts int) error {
	return fmt.Errorf("sortjob: a plan of %d records (%s) in %d map tasks and %d partitions has %d tasks, more than the limit of %d tasks per job that the coordinator holds; give more --memory per node (larger map splits, so fewer maps), a larger --map-split or fewer --maps, or fewer --partitions",
		records, units.Format(records*RecordSize), maps, parts, int64(maps)+int64(parts), MaxTasks)
}

func errMaps(n int64) error {
	return fmt.Errorf("sortjob: the plan needs %d map tasks, more than the limit of %d; give larger map splits (--map-split) or more --memory", n, MaxMapTasks)
}

// Validate checks that a plan is internally consistent and within the
// limits of a job, without I/O: the coordinator calls it on every submitted
// plan before the plan is replicated state, so it must be deterministic.
// It does not check that paths lie under any configured root; nodes do that
// before they act on a path.
func (p *Plan) Validate() error {
	if err := p.Spec.Validate(); err != nil {
		return err
	}
	if err := p.Cluster.Validate(); err != nil {
		return err
	}
	switch {
	case p.Records < 0 || p.Records > MaxRecords:
		if p.Records < 0 {
			return fmt.Errorf("sortjob: plan of %d records is negative", p.Records)
		}
		return errRecords(p.Records)
	case p.Bytes != p.Records*RecordSize:
		return fmt.Errorf("sortjob: plan of %d records has %d bytes, want %d", p.Records, p.Bytes, p.Records*RecordSize)
	case p.Spec.Input == "" && p.Records != p.Spec.Records:
		return fmt.Errorf("sortjob: plan of %d records for a spec of %d generated records", p.Records, p.Spec.Records)
	case p.Memory < 0 || p.Memory > MaxMemory:
		return fmt.Errorf("sortjob: plan memory of %d bytes is outside the limits of 0 to %d", p.Memory, int64(MaxMemory))
	case p.MapCount < 1 || p.MapCount > MaxMapTasks:
		if p.MapCount < 1 {
			return fmt.Errorf("sortjob: plan of %d map tasks: want at least 1", p.MapCount)
		}
		return errMaps(int64(p.MapCount))
	case p.Partitions < 1 || p.Partitions > MaxPartitions:
		if p.Partitions < 1 {
			return fmt.Errorf("sortjob: plan of %d partitions: want at least 1", p.Partitions)
		}
		return errPartitions(p.Partitions)
	case int64(p.MapCount)+int64(p.Partitions) > MaxTasks:
		return errTasks(p.Records, p.MapCount, p.Partitions)
	case p.ReducePasses < 0 || p.ReducePasses > maxReducePasses:
		return fmt.Errorf("sortjob: plan of %d reduce passes is outside the limits of 0 to %d", p.ReducePasses, maxReducePasses)
	case p.MergeGroup != 0 && (p.MergeGroup < 2 || p.MergeGroup > MaxMergeFanIn):
		return fmt.Errorf("sortjob: plan merge group of %d map outputs: want 0 (no merging) or 2 to %d", p.MergeGroup, MaxMergeFanIn)
	}
	// Buffer sizes become allocations on every node: 0 takes the shuffle
	// package's default.
	for _, b := range []struct {
		name   string
		n, max int
	}{
		{"sort buffer", p.SortBuffer, maxSortBuffer},
		{"block size", p.BlockSize, maxBlock},
		{"write buffer", p.WriteBuffer, maxWriteBuffer},
		{"reduce write buffer", p.ReduceWriteBuffer, maxReduceWriteBuf},
		{"merge block", p.MergeBlock, maxBlock},
	} {
		if b.n < 0 || b.n > b.max {
			return fmt.Errorf("sortjob: plan %s of %d bytes is outside the limits of 0 to %d", b.name, b.n, b.max)
		}
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"map output per node", p.MapOutputPerNode}, {"output per node", p.OutputPerNode}, {"merge output per node", p.MergeOutputPerNode}, {"shuffle network bytes", p.ShuffleNetworkBytes}} {
		if v.n < 0 || v.n > MaxBytes {
			return fmt.Errorf("sortjob: plan %s of %d bytes is outside the limits of 0 to %d", v.name, v.n, int64(MaxBytes))
		}
	}
	if p.Spec.Input == "" {
		if len(p.Inputs) != 0 || len(p.Maps) != 0 {
			return fmt.Errorf("sortjob: plan of generated input lists %d input files and %d map splits, want none", len(p.Inputs), len(p.Maps))
		}
		return nil
	}
	// File input: every split is a byte range of a file directly in the
	// input directory, one per map task.
	if len(p.Inputs) > MaxMapTasks {
		return fmt.Errorf("sortjob: plan lists %d input files, more than the limit of %d", len(p.Inputs), MaxMapTasks)
	}
	for i, f := range p.Inputs {
		if err := validInputPath(p.Spec.Input, f.Path); err != nil {
			return fmt.Errorf("%w (input file %d)", err, i)
		}
		if f.Size < 0 || f.Size > MaxBytes {
			return fmt.Errorf("sortjob: input file %s of %d bytes is outside the limits of 0 to %d", f.Path, f.Size, int64(MaxBytes))
		}
	}
	if len(p.Maps) != p.MapCount {
		return fmt.Errorf("sortjob: plan of %d map tasks lists %d map splits", p.MapCount, len(p.Maps))
	}
	for i, m := range p.Maps {
		if m.ID != i {
			return fmt.Errorf("sortjob: map split %d has id %d", i, m.ID)
		}
		if err := validInputPath(p.Spec.Input, m.Path); err != nil {
			return fmt.Errorf("%w (map split %d)", err, i)
		}
		if m.Offset < 0 || m.Offset > MaxBytes || m.Records < 0 || m.Records > MaxRecords || m.Start != 0 {
			return fmt.Errorf("sortjob: map split %d of %s: offset %d, %d records, start %d: want an offset of 0 to %d, 0 to %d records and no start",
				i, m.Path, m.Offset, m.Records, m.Start, int64(MaxBytes), int64(MaxRecords))
		}
	}
	return nil
}

// validInputPath checks that path is a valid path directly in dir.
func validInputPath(dir, path string) error {
	if err := ValidPath("input", path); err != nil {
		return err
	}
	if filepath.Dir(path) != dir || path == dir {
		return fmt.Errorf("sortjob: input file %q is not in the input directory %s", path, dir)
	}
	return nil
}

// addBytes returns a+b, or false when the sum passes MaxBytes (a and b are
// not negative).
func addBytes(a, b int64) (int64, bool) {
	if b > MaxBytes-a {
		return 0, false
	}
	return a + b, true
}

// ceilDiv returns a/b rounded up, for a >= 0 and b > 0, without overflow.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// recordsOf converts a float size in records to an int64, refusing what is
// past MaxRecords (and so never converting a float past math.MaxInt64).
func recordsOf(s string, v float64) (int64, error) {
	if v > MaxRecords || math.IsNaN(v) {
		return 0, fmt.Errorf("size %q is %.4g records, more than the limit of %d (%s) for one job", s, v, int64(MaxRecords), units.Format(MaxBytes))
	}
	return int64(math.Round(v)), nil
}
