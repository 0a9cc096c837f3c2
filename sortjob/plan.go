package sortjob

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"engine/internal/units"
)

// Spec is what a user asks for.
type Spec struct {
	// Records is the number of records to generate (gensort records
	// 0..Records-1). Ignored when Input is set.
	Records int64 `json:"records,omitempty"`
	ASCII   bool  `json:"ascii,omitempty"` // generate ASCII records (gensort -a)
	Skew    bool  `json:"skew,omitempty"`  // generate skewed keys (gensort -s)
	// Input is a directory whose files (gensort format) are sorted instead
	// of generated data.
	Input string `json:"input,omitempty"`
	// Output is a directory that keeps the result: part-NNNNN files, their
	// summary-NNNNN valsort summaries and _SUCCESS. It must not exist or be
	// empty. Empty: the output is validated and then deleted.
	Output string `json:"output,omitempty"`
	// Memory is the job's memory budget in bytes; 0 takes the node's.
	Memory int64 `json:"memory,omitempty"`
	// Partitions is the number of reduce partitions; 0 picks one.
	Partitions int `json:"partitions,omitempty"`
	// MapSplit caps the bytes per map task; 0 sizes splits to fit the sort
	// buffer (no map-side spill). A larger split is sorted in spilled runs.
	MapSplit int64 `json:"map_split,omitempty"`
	// Maps is the exact number of map tasks for generated input; 0 lets
	// the planner choose. It excludes MapSplit and Input.
	Maps int `json:"maps,omitempty"`
	// SkipSpaceCheck skips the free-disk check before the job starts (for
	// file systems whose free space statfs misreports).
	SkipSpaceCheck bool `json:"skip_space_check,omitempty"`
}

// Cluster is what a plan is made for.
type Cluster struct {
	Nodes        int `json:"nodes"`          // default 1
	CoresPerNode int `json:"cores_per_node"` // concurrent tasks per node; default GOMAXPROCS
}

// InputFile is one file of an Input directory.
type InputFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// MapSplit is one map task's input: a byte range of a file, or a range of
// generated records.
type MapSplit struct {
	ID int `json:"id"`
	// File input.
	Path   string `json:"path,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	// Generated input: records Start..Start+Records-1 (gensort -bStart).
	Start   int64 `json:"start,omitempty"`
	Records int64 `json:"records"`
}

// Bytes returns the split's size.
func (m MapSplit) Bytes() int64 { return m.Records * RecordSize }

// Plan is everything a run needs decided up front; MakePlan computes it the
// same way for a dry run of any size and for a real run.
type Plan struct {
	Spec    Spec        `json:"spec"`
	Cluster Cluster     `json:"cluster"`
	Inputs  []InputFile `json:"inputs,omitempty"`
	Records int64       `json:"records"`
	Bytes   int64       `json:"bytes"`
	// Memory is the per-node budget the plan was sized for.
	Memory int64 `json:"memory"`
	// SortBuffer is each map worker's in-memory sort buffer in bytes.
	SortBuffer int `json:"sort_buffer"`
	// BlockSize is each reduce input's read-ahead block in bytes.
	BlockSize int `json:"block_size"`
	// WriteBuffer and ReduceWriteBuffer size the map and reduce output
	// buffers in bytes.
	WriteBuffer       int `json:"write_buffer"`
	ReduceWriteBuffer int `json:"reduce_write_buffer"`
	// MapCount and Maps: the map tasks (Maps is omitted from JSON for big
	// plans; MapCount always holds the count).
	MapCount   int        `json:"map_count"`
	Maps       []MapSplit `json:"maps,omitempty"` // file input only
	Partitions int        `json:"partitions"`
	// MapSpills is true when a split is larger than the sort buffer.
	MapSpills bool `json:"map_spills"`
	// ReducePasses is 1, or more when a reduce's fan-in
	// (MaxSegmentsPerReduce) exceeds MaxFanIn.
	ReducePasses int `json:"reduce_passes"`
	// MergeGroup is how many finished map outputs on one node a merge task
	// consolidates into one output (the shuffle's consolidation); 0 means
	// no merging: every reduce reads one segment from every map output.
	MergeGroup int `json:"merge_group,omitempty"`
	// MergeBlock is a merge task's read-ahead block per input in bytes.
	MergeBlock int `json:"merge_block,omitempty"`
	// Disk needs per node in bytes.
	MapOutputPerNode int64 `json:"map_output_per_node"`
	OutputPerNode    int64 `json:"output_per_node"`
	// MergeOutputPerNode is the most merged output a node writes at once
	// on top of MapOutputPerNode: one merge per worker at a time, each of
	// MergeGroup map outputs, whose inputs are removed once its output is
	// committed. 0 without merging.
	MergeOutputPerNode int64 `json:"merge_output_per_node,omitempty"`
	// ShuffleNetworkBytes is what crosses the network (0 on one node).
	ShuffleNetworkBytes int64 `json:"shuffle_network_bytes"`
}

const (
	// MaxFanIn is the most segments a reduce merges in one pass.
	MaxFanIn = 1024
	// partitionTarget is the output partition size the planner aims for.
	partitionTarget   = 1e9
	minBlock          = 64 << 10
	maxBlock          = 1 << 20
	maxWriteBuffer    = 4 << 20
	maxReduceWriteBuf = 8 << 20
	maxSortBuffer     = 128 << 20
	// reserve is the budget share kept for the runtime and small buffers
	// (at most a quarter of the budget).
	reserve = 32 << 20
	// MaxMergeFanIn is the most map outputs one merge task consolidates.
	MaxMergeFanIn = 1024
	// minMergesPerNode and mergedSegment: a node's outputs are merged in
	// at least minMergesPerNode groups when the merged segments are still
	// at least mergedSegment bytes.
	minMergesPerNode = 4
	mergedSegment    = 1_000_000
	// maxMergeBlock caps a merge task's read-ahead block per input: its
	// inputs are many (up to MaxMergeFanIn) and each is read once, in
	// order; 256 KiB reads are sequential enough.
	maxMergeBlock = 256 << 10
	// MergeBelow is the map segment size (bytes / maps / partitions) under
	// which the planner consolidates a node's map outputs. It is where a
	// merge pays for itself on a disk: a segment read costs a seek (about
	// 10 ms) plus its transfer, and the merge costs two transfers (read and
	// write) of the same bytes at about 200 MB/s; below 1 MB the seeks cost
	// more. Larger segments are read as they are.
	MergeBelow = 1_000_000
)

// DefaultMemory is the memory budget when none is given: a quarter of the
// machine's memory, at most 4 GiB.
func DefaultMemory() int64 {
	m := totalMemory() / 4
	if m <= 0 || m > 4<<30 {
		m = 4 << 30
	}
	return m
}

func totalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// MakePlan sizes tasks and buffers for spec on cluster. For an Input
// directory it lists and checks the files (readable, whole records); it
// writes nothing. Input and Output must be absolute paths (they are
// cleaned); a spec or a plan beyond the limits of a job (MaxRecords,
// MaxMapTasks, MaxPartitions, MaxTasks, MaxNodes, ...) is refused with an
// error that names the limit, and every size is computed without overflow.
func MakePlan(spec Spec, cluster Cluster) (*Plan, error) {
	if cluster.Nodes <= 0 {
		cluster.Nodes = 1
	}
	if cluster.CoresPerNode <= 0 {
		cluster.CoresPerNode = runtime.GOMAXPROCS(0)
	}
	if spec.Memory == 0 {
		spec.Memory = DefaultMemory()
	}
	for _, path := range []*string{&spec.Input, &spec.Output} {
		if *path != "" && filepath.IsAbs(*path) {
			*path = filepath.Clean(*path)
		}
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := cluster.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{Spec: spec, Cluster: cluster, Memory: spec.Memory}
	workers := cluster.CoresPerNode
	if spec.Input != "" {
		files, err := listInput(spec.Input)
		if err != nil {
			return nil, err
		}
		p.Inputs = files
		for _, f := range files {
			var ok bool
			if p.Bytes, ok = addBytes(p.Bytes, f.Size); !ok {
				return nil, fmt.Errorf("sortjob: input %s holds more than the limit of %d bytes (%s) at %s", spec.Input, int64(MaxBytes), units.Format(MaxBytes), f.Path)
			}
		}
		p.Records = p.Bytes / RecordSize
	} else {
		if spec.Records <= 0 {
			return nil, errors.New("sort: nothing to sort: give a size (--size=1GB) or an input directory (--input DIR)")
		}
		p.Records, p.Bytes = spec.Records, spec.Records*RecordSize
	}
	// Map side: each worker's sort buffer takes an equal share of the
	// budget, up to maxSortBuffer: smaller buffers reused task after task
	// cost fewer fresh pages and let tasks overlap better than a few huge
	// ones.
	perWorker := workerBudget(spec.Memory, workers)
	p.WriteBuffer = int(min(max(perWorker/16, 256<<10), maxWriteBuffer))
	p.ReduceWriteBuffer = int(min(max(perWorker/8, 1<<20), maxReduceWriteBuf))
	sortBuf := (perWorker - 2*int64(p.WriteBuffer) - (1<<16+1)*8) * 100 / 116
	sortBuf = min(sortBuf, maxSortBuffer)
	sortBuf -= sortBuf % RecordSize
	if sortBuf < 1000*RecordSize {
		return nil, fmt.Errorf("sort: memory budget %s is too small for %d workers: give at least 16MB (--memory)", units.Format(spec.Memory), workers)
	}
	split := sortBuf
	if spec.MapSplit > 0 {
		split = spec.MapSplit - spec.MapSplit%RecordSize
		if split < RecordSize {
			return nil, fmt.Errorf("sort: map split %d bytes is smaller than one record", spec.MapSplit)
		}
	}
	slots := int64(workers) * int64(cluster.Nodes)
	var maps int64
	if spec.Maps > 0 {
		// Spec.Validate checked it: generated input, at most MaxMapTasks
		// and at most one map per record.
		maps = int64(spec.Maps)
	} else {
		maps = max(ceilDiv(p.Bytes, split), 2*slots)
		maps = ceilDiv(maps, slots) * slots // whole waves
		maps = min(maps, max(p.Records, 1))
	}
	if maps > MaxMapTasks {
		return nil, errMaps(maps)
	}
	var largest int64
	if spec.Input != "" {
		splitBytes := ceilDiv(p.Records, maps) * RecordSize
		// A file holds at least one split: count them before making them.
		var n int64
		for _, f := range p.Inputs {
			if n += ceilDiv(f.Size, splitBytes); n > MaxMapTasks {
				return nil, fmt.Errorf("sortjob: the %d files of input %s need more than the limit of %d map tasks; merge small files or give larger map splits (--map-split)", len(p.Inputs), spec.Input, MaxMapTasks)
			}
		}
		p.Maps = fileSplits(p.Inputs, splitBytes)
		p.MapCount = len(p.Maps)
		for _, m := range p.Maps {
			largest = max(largest, m.Bytes())
		}
	} else {
		// Generated splits are computed on demand (Split): a plan for
		// petabytes must not hold millions of them.
		p.MapCount = int(maps)
		largest = ceilDiv(p.Records, maps) * RecordSize
	}
	p.SortBuffer = int(min(sortBuf, max(largest, RecordSize)))
	p.MapSpills = largest > sortBuf
	// Reduce side.
	p.Partitions = spec.Partitions
	if p.Partitions <= 0 {
		parts := max(ceilDiv(p.Bytes, partitionTarget), 2*slots)
		parts = ceilDiv(parts, slots) * slots
		if parts > MaxPartitions {
			return nil, fmt.Errorf("sortjob: the plan needs %d partitions of about %s, more than the limit of %d; give --partitions of at most %d (larger partitions)",
				parts, units.Format(partitionTarget), MaxPartitions, MaxPartitions)
		}
		p.Partitions = int(parts)
	}
	if int64(p.MapCount)+int64(p.Partitions) > MaxTasks {
		return nil, errTasks(p.Records, p.MapCount, p.Partitions)
	}
	// Consolidation: a merge task, like a reduce, holds two read-ahead
	// blocks per input and its output's write buffers.
	budget := p.mergeBudget()
	p.MergeGroup = mergeGroup(p.Bytes, int64(p.MapCount), int64(p.Partitions), int64(cluster.Nodes), budget)
	if p.MergeGroup > 0 {
		p.MergeBlock = min(blockFor(budget, p.MergeGroup), maxMergeBlock-maxMergeBlock%RecordSize)
	}
	// A reduce's fan-in is what it reads after consolidation.
	fanIn := p.MaxSegmentsPerReduce()
	p.BlockSize = blockFor(budget, int(min(fanIn, MaxFanIn)))
	p.ReducePasses = reducePasses(fanIn)
	p.MapOutputPerNode = ceilDiv(p.Bytes, int64(cluster.Nodes))
	p.OutputPerNode = p.MapOutputPerNode
	if p.MergeGroup > 0 {
		// At most MergesPerNode × MergeGroup < m + MergeGroup map outputs
		// of at most ceil(Bytes/MapCount) each: within int64.
		running := int64(min(workers, p.MergesPerNode())) * int64(p.MergeGroup)
		p.MergeOutputPerNode = min(running*ceilDiv(p.Bytes, int64(p.MapCount)), p.MapOutputPerNode)
	}
	if cluster.Nodes > 1 {
		p.ShuffleNetworkBytes = p.Bytes / int64(cluster.Nodes) * int64(cluster.Nodes-1)
	}
	// What every node will check before it runs the plan.
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// workerBudget returns one worker's share of a node's memory budget.
func workerBudget(memory int64, workers int) int64 {
	return (memory - min(reserve, memory/4)) / int64(max(workers, 1))
}

// mergeBudget is what a worker holds for the read-ahead blocks of a merge
// (a reduce's or a merge task's): its share of the budget less three
// reduce write buffers.
func (p *Plan) mergeBudget() int64 {
	return workerBudget(p.Memory, p.Cluster.CoresPerNode) - 3*int64(p.ReduceWriteBuffer)
}

// BlockFor returns the read-ahead block for a merge of inputs segments (a
// reduce, or a merge task) within a worker's share of the plan's budget:
// BlockSize when inputs is MaxSegmentsPerReduce. A reduce that finds more
// segments than the plan expected (maps re-run after a node loss and read
// unmerged) sizes its blocks with it. At most MaxFanIn inputs are open at
// once, so larger counts take the block of MaxFanIn.
func (p *Plan) BlockFor(inputs int) int {
	return blockFor(p.mergeBudget(), min(max(inputs, 1), MaxFanIn))
}

// mergeGroup returns how many map outputs of a node one merge task
// consolidates, or 0 for no merging: when a map's segment for one reduce
// (bytes/maps/parts) is at least MergeBelow, or when no node runs more than
// one map. Otherwise a node's m = ceil(maps/nodes) outputs are merged in
// k = ceil(m/fan-in) groups of ceil(m/k), the fan-in being MaxMergeFanIn
// or less when the budget cannot hold two minimum blocks per input.
func mergeGroup(bytes, maps, parts, nodes, budget int64) int {
	if maps <= nodes || bytes/maps/parts >= MergeBelow {
		return 0
	}
	fanIn := min(MaxMergeFanIn, max(2, budget/(2*minBlock)))
	m := ceilDiv(maps, nodes)
	k := ceilDiv(m, fanIn)
	// More, smaller merges while each merged segment stays at least
	// mergedSegment: all but the last of a node's merges then run while
	// its maps do, and the one left when the maps end is short.
	if more := min(minMergesPerNode, m*(bytes/maps/parts)/mergedSegment, m/2); more > k {
		k = more
	}
	return int(ceilDiv(m, k))
}

// blockFor returns a read-ahead block for inputs inputs that each hold two
// blocks in budget bytes: a multiple of RecordSize within minBlock and
// maxBlock.
func blockFor(budget int64, inputs int) int {
	b := budget / (2 * int64(max(inputs, 1)))
	b = min(max(b, minBlock), maxBlock)
	b -= b % RecordSize
	if b < minBlock {
		b += RecordSize
	}
	return int(b)
}

// reducePasses returns the merge passes of a reduce over fanIn segments,
// merging at most MaxFanIn at once.
func reducePasses(fanIn int64) int {
	n := 1
	for ; fanIn > MaxFanIn; fanIn = ceilDiv(fanIn, MaxFanIn) {
		n++
	}
	return n
}

// MergesPerNode returns the merge tasks a node runs when the maps are
// spread evenly (ceil(MapCount/Nodes) maps on each), 0 without merging.
func (p *Plan) MergesPerNode() int {
	if p.MergeGroup <= 0 {
		return 0
	}
	m := ceilDiv(int64(max(p.MapCount, 1)), int64(max(p.Cluster.Nodes, 1)))
	return int(ceilDiv(m, int64(p.MergeGroup)))
}

// SegmentsPerReduce returns the segments one reduce reads after
// consolidation when the maps are spread evenly: one per merge output
// (Nodes × MergesPerNode), or one per map without merging. A node that ran
// a number of maps that is not a multiple of MergeGroup merges its
// remainder in one more, smaller merge: MaxSegmentsPerReduce bounds that.
func (p *Plan) SegmentsPerReduce() int64 {
	maps := int64(max(p.MapCount, 1))
	if p.MergeGroup <= 0 {
		return maps
	}
	return min(maps, int64(max(p.Cluster.Nodes, 1))*int64(p.MergesPerNode()))
}

// MaxSegmentsPerReduce returns the most segments one reduce reads however
// the maps are spread over the nodes: each node's merges hold MergeGroup
// outputs except at most one remainder merge per node, so
// MapCount/MergeGroup + Nodes (never more than MapCount). BlockSize and
// ReducePasses are sized for it.
func (p *Plan) MaxSegmentsPerReduce() int64 {
	maps := int64(max(p.MapCount, 1))
	if p.MergeGroup <= 0 {
		return maps
	}
	return min(maps, maps/int64(p.MergeGroup)+int64(max(p.Cluster.Nodes, 1)))
}

// SegmentBytes returns the average size of one segment a reduce reads:
// bytes / partitions / SegmentsPerReduce.
func (p *Plan) SegmentBytes() int64 {
	return p.Bytes / int64(max(p.Partitions, 1)) / p.SegmentsPerReduce()
}

// Split returns map task i's input.
func (p *Plan) Split(i int) MapSplit {
	if p.Spec.Input != "" {
		return p.Maps[i]
	}
	maps, n := int64(p.MapCount), int64(i)
	lo, hi := mulDiv(p.Records, n, maps), mulDiv(p.Records, n+1, maps)
	return MapSplit{ID: i, Start: lo, Records: hi - lo}
}

// mulDiv returns a*b/c without overflow for the sizes a plan handles.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// fileSplits cuts every file into splits of at most split bytes.
func fileSplits(files []InputFile, split int64) []MapSplit {
	var out []MapSplit
	for _, f := range files {
		for off := int64(0); off < f.Size; off += split {
			n := min(split, f.Size-off)
			out = append(out, MapSplit{ID: len(out), Path: f.Path, Offset: off, Records: n / RecordSize})
		}
	}
	return out
}

// listInput lists the regular files of dir in name order and checks that
// each is readable and a whole number of records.
func listInput(dir string) ([]InputFile, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sort: input directory: %w", unwrap(err))
	}
	var files []InputFile
	var bad []string
	for _, de := range des {
		path := filepath.Join(dir, de.Name())
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("sort: input %s: %w", path, unwrap(err))
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("sort: input %s is a directory: --input takes a directory of gensort files only", path)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("sort: input %s is not a regular file", path)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("sort: input %s is not readable: %w", path, errors.Unwrap(err))
		}
		var b [1]byte
		_, rerr := f.Read(b[:])
		f.Close()
		if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("sort: input %s is not readable: %w", path, errors.Unwrap(rerr))
		}
		if fi.Size()%RecordSize != 0 {
			bad = append(bad, fmt.Sprintf("%s is %d bytes, not a whole number of %d-byte records: %d bytes follow the last whole record at offset %d",
				path, fi.Size(), RecordSize, fi.Size()%RecordSize, fi.Size()-fi.Size()%RecordSize))
			continue
		}
		if fi.Size() > 0 {
			files = append(files, InputFile{Path: path, Size: fi.Size()})
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("sort: input %s", strings.Join(bad, "; "))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("sort: input directory %s has no records to sort", dir)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Rate is a measured sort rate used to estimate run times.
type Rate struct {
	BytesPerSecondPerCore float64   `json:"bytes_per_second_per_core"`
	Bytes                 int64     `json:"bytes"`
	Measured              time.Time `json:"measured"`
	Source                string    `json:"source"`
}

// Estimate returns the plan's expected wall time at rate r.
func (p *Plan) Estimate(r Rate) time.Duration {
	if r.BytesPerSecondPerCore <= 0 {
		return 0
	}
	cores := float64(p.Cluster.Nodes * p.Cluster.CoresPerNode)
	return time.Duration(float64(p.Bytes) / (r.BytesPerSecondPerCore * cores) * float64(time.Second))
}

// WriteText prints the plan for a person.
func (p *Plan) WriteText(w io.Writer, r Rate) {
	src := fmt.Sprintf("generated gensort records 0..%d (%s%s)", p.Records-1, map[bool]string{false: "binary", true: "ASCII"}[p.Spec.ASCII], map[bool]string{false: "", true: ", skewed"}[p.Spec.Skew])
	if p.Spec.Input != "" {
		src = fmt.Sprintf("%d files in %s", len(p.Inputs), p.Spec.Input)
	}
	fmt.Fprintf(w, "Plan: sort %s (%d records) on %d node(s) × %d cores\n", units.Format(p.Bytes), p.Records, p.Cluster.Nodes, p.Cluster.CoresPerNode)
	fmt.Fprintf(w, "  input            %s\n", src)
	fmt.Fprintf(w, "  memory           %s per node; sort buffer %s per worker; reduce read-ahead %s per segment\n", units.Format(p.Memory), units.Format(int64(p.SortBuffer)), units.Format(int64(p.BlockSize)))
	per := ceilDiv(int64(p.MapCount), int64(p.Cluster.Nodes))
	fmt.Fprintf(w, "  map tasks        %d (%d per node, %s each)", p.MapCount, per, units.Format(ceilDiv(p.Bytes, int64(p.MapCount))))
	if p.MapSpills {
		fmt.Fprintf(w, ", splits exceed the sort buffer: sorted runs spill and merge")
	}
	fmt.Fprintln(w)
	mapSeg := p.Bytes / int64(p.MapCount) / int64(p.Partitions)
	seg := p.SegmentBytes()
	fmt.Fprintf(w, "  reduce tasks     %d (%d per node, %s each; %d segments of ~%s per reduce, %d merge pass(es))\n",
		p.Partitions, ceilDiv(int64(p.Partitions), int64(p.Cluster.Nodes)), units.Format(p.Bytes/int64(p.Partitions)), p.SegmentsPerReduce(), units.Format(seg), p.ReducePasses)
	if p.MergeGroup > 0 {
		merges := int64(p.Cluster.Nodes) * int64(p.MergesPerNode())
		fmt.Fprintf(w, "  shuffle merge    every %d map outputs on a node merge into one: %d merge(s) per node, %d in all, fan-in %d, read-ahead %s per input;\n",
			p.MergeGroup, p.MergesPerNode(), merges, p.MergeGroup, units.Format(int64(p.MergeBlock)))
		fmt.Fprintf(w, "                   a reduce reads %d segments of ~%s instead of %d of ~%s (up to %d when a node's maps leave a remainder merge)\n",
			p.SegmentsPerReduce(), units.Format(seg), p.MapCount, units.Format(mapSeg), p.MaxSegmentsPerReduce())
	} else {
		fmt.Fprintf(w, "  shuffle merge    none (map segments of ~%s", units.Format(mapSeg))
		if int64(p.MapCount) <= int64(p.Cluster.Nodes) {
			fmt.Fprintf(w, "; at most one map per node")
		} else {
			fmt.Fprintf(w, " are at least %s", units.Format(MergeBelow))
		}
		fmt.Fprintln(w, ")")
	}
	fmt.Fprintf(w, "  bytes per node   %s in, %s of map output, %s out\n", units.Format(ceilDiv(p.Bytes, int64(p.Cluster.Nodes))), units.Format(p.MapOutputPerNode), units.Format(p.OutputPerNode))
	fmt.Fprintf(w, "  disk needed      %s per node (map output + output", units.Format(p.MapOutputPerNode+p.OutputPerNode))
	if p.Spec.Input == "" {
		fmt.Fprintf(w, "; input is generated in memory")
	}
	fmt.Fprint(w, ")")
	if p.MergeOutputPerNode > 0 {
		fmt.Fprintf(w, ", and up to %s more while merges run", units.Format(p.MergeOutputPerNode))
	}
	fmt.Fprintln(w)
	if p.ShuffleNetworkBytes > 0 {
		fmt.Fprintf(w, "  network shuffle  %s in all, %s per node\n", units.Format(p.ShuffleNetworkBytes), units.Format(p.ShuffleNetworkBytes/int64(p.Cluster.Nodes)))
	}
	if seg > 0 && seg < 256<<10 {
		after := ""
		if p.MergeGroup > 0 {
			after = " (after consolidation)"
		}
		fmt.Fprintf(w, "  warning          segments of %s%s are small: the shuffle will be seek-bound; use fewer --partitions or more memory\n", units.Format(seg), after)
	}
	if d := p.Estimate(r); d > 0 {
		round := time.Second
		if d < 10*time.Second {
			round = 10 * time.Millisecond
		}
		fmt.Fprintf(w, "  estimated time   %s at %s/s per core (%s, %s)\n", d.Round(round), units.Format(int64(r.BytesPerSecondPerCore)), r.Source, r.Measured.Format("2006-01-02"))
		switch {
		case p.Cluster.Nodes > 1 && p.MergeGroup > 0:
			fmt.Fprintf(w, "                   single-node rate; network, stragglers and the merge pass are not modelled\n")
		case p.Cluster.Nodes > 1:
			fmt.Fprintf(w, "                   single-node rate; network and stragglers are not modelled\n")
		case p.MergeGroup > 0:
			fmt.Fprintf(w, "                   the merge pass is not modelled\n")
		}
	} else {
		fmt.Fprintf(w, "  estimated time   unknown: no measured rate on this machine yet\n")
	}
}
