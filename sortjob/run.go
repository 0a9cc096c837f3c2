package sortjob

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"engine/gensort"
	"engine/internal/fsutil"
	"engine/internal/units"
	"engine/shuffle"
)

// Config is the node's side of a run.
type Config struct {
	// DataDir holds job scratch space (DataDir/jobs/ID) and the measured
	// sort rate (DataDir/rate.json).
	DataDir string
	// Workers is the number of tasks run at once; default GOMAXPROCS.
	Workers int
	Logger  *slog.Logger
}

// Precheck plans spec and runs every check a run makes before writing:
// input files, output directory, free disk. It writes nothing.
func Precheck(cfg Config, spec Spec, cluster Cluster) (*Plan, error) {
	plan, err := MakePlan(spec, cluster)
	if err != nil {
		return nil, err
	}
	if err := checkOutput(plan); err != nil {
		return nil, err
	}
	if !plan.Spec.SkipSpaceCheck {
		if err := checkSpace(cfg.DataDir, plan.Spec.Output, plan); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// checkOutput refuses an output that exists and is not an empty directory,
// or that is the input directory.
func checkOutput(p *Plan) error {
	out := p.Spec.Output
	if out == "" {
		return nil
	}
	out = filepath.Clean(out)
	if fi, err := os.Stat(out); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("sort: output %s exists and is not a directory; choose a new directory", out)
		}
		des, err := os.ReadDir(out)
		if err != nil {
			return fmt.Errorf("sort: output %w", unwrap(err))
		}
		if len(des) > 0 {
			return fmt.Errorf("sort: output directory %s exists and is not empty (%d entries, e.g. %s); choose a new directory or empty it", out, len(des), des[0].Name())
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("sort: output %w", unwrap(err))
	}
	for _, in := range p.Inputs {
		if filepath.Dir(in.Path) == out {
			return fmt.Errorf("sort: output directory %s is the input directory", out)
		}
	}
	return nil
}

// checkSpace compares what the job will write with the free space of the
// file systems it writes to.
func checkSpace(dataDir, out string, p *Plan) error {
	type need struct {
		dir   string
		bytes int64
		what  []string
	}
	var needs []*need
	byDev := map[uint64]*need{}
	add := func(dir string, bytes int64, what string) error {
		probe := dir
		for {
			var st unix.Stat_t
			if err := unix.Stat(probe, &st); err == nil {
				n := byDev[st.Dev]
				if n == nil {
					n = &need{dir: probe}
					byDev[st.Dev] = n
					needs = append(needs, n)
				}
				n.bytes += bytes
				n.what = append(n.what, fmt.Sprintf("%s %s", what, units.Format(bytes)))
				return nil
			}
			parent := filepath.Dir(probe)
			if parent == probe {
				return fmt.Errorf("sort: cannot find the file system of %s", dir)
			}
			probe = parent
		}
	}
	if err := add(dataDir, p.MapOutputPerNode, "map output"); err != nil {
		return err
	}
	outDir := out
	if outDir == "" {
		outDir = dataDir
	}
	if err := add(outDir, p.OutputPerNode, "output"); err != nil {
		return err
	}
	for _, n := range needs {
		var fs unix.Statfs_t
		if err := unix.Statfs(n.dir, &fs); err != nil {
			return fmt.Errorf("sort: statfs %s: %w", n.dir, err)
		}
		free := int64(fs.Bavail) * int64(fs.Bsize)
		if n.bytes > free {
			return fmt.Errorf("sort: not enough free disk: %s needs %s (%s) and has %s free; free some space, sort less, or point --data/--output elsewhere",
				n.dir, units.Format(n.bytes), strings.Join(n.what, " + "), units.Format(free))
		}
	}
	return nil
}

// sample reads or generates keys spread over the input and picks the
// partition boundaries. Samples are stratified: the input is cut into equal
// strata and each contributes a cluster of consecutive records at a random
// (seeded, so reproducible) place in it — one small read per cluster for
// file input.
// Sampling: SamplesPerPartition keys per reduce partition (Spark's range
// partitioner takes 20), at most MaxSamples in all. With s samples per
// partition a partition's size varies by about 1/sqrt(s) of the mean: 10%
// here. Keys only are kept (10 bytes each): 100 MB at the most.
const (
	SamplesPerPartition = 100
	MaxSamples          = 10_000_000
)

// Sample builds the plan's range partitioner from sampled keys: clusters of
// 40 records from every stratum of the input (or of the generated records),
// so that a skewed key distribution (gensort -s) is split into partitions
// of equal record counts, not equal key ranges.
func Sample(p *Plan) (*shuffle.Partitioner, error) {
	const cluster = 40 // records per read: 4000 bytes
	n := min(p.Records, max(10_000, SamplesPerPartition*int64(p.Partitions)), MaxSamples)
	strata := max(n/cluster, 1)
	per := min(cluster, p.Records/strata)
	rng := rand.New(rand.NewPCG(uint64(p.Records), 0x5a3b1e))
	starts := make([]int64, strata)
	for s := range starts {
		lo, hi := mulDiv(p.Records, int64(s), strata), mulDiv(p.Records, int64(s)+1, strata)
		starts[s] = lo + rng.Int64N(max(hi-lo-per, 0)+1)
	}
	keys := make([]shuffle.Key, strata*per)
	got := make([]int, strata) // keys of each stratum, at keys[s*per:]
	take := func(s int, b []byte) {
		k := keys[int64(s)*per:]
		n := 0
		for i := 0; i+RecordSize <= len(b) && n < int(per); i += RecordSize {
			copy(k[n][:], b[i:i+gensort.KeySize])
			n++
		}
		got[s] = n
	}
	if p.Spec.Input == "" {
		g := gensort.NewGenerator(0, gensort.Options{ASCII: p.Spec.ASCII, Skew: p.Spec.Skew})
		buf := make([]byte, per*RecordSize)
		for s, start := range starts {
			g.Seek(uint64(start))
			g.Fill(buf)
			take(s, buf)
		}
	} else {
		// Small random reads: several at once, since a cold disk answers
		// each in milliseconds.
		files := make([]*os.File, len(p.Inputs))
		defer func() {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
		}()
		for i, in := range p.Inputs {
			f, err := os.Open(in.Path)
			if err != nil {
				return nil, fmt.Errorf("sort: sample %w", unwrap(err))
			}
			files[i] = f
		}
		err := pool(context.Background(), 8, len(starts), func() []byte { return make([]byte, per*RecordSize) }, func(_ context.Context, buf []byte, s int) error {
			// A cluster is read from the file that holds its first record,
			// clipped to that file.
			off := starts[s] * RecordSize
			i := 0
			for ; off >= p.Inputs[i].Size; i++ {
				off -= p.Inputs[i].Size
			}
			off = max(min(off, p.Inputs[i].Size-int64(len(buf))), 0)
			n, err := files[i].ReadAt(buf, off)
			if err != nil && err != io.EOF {
				return fmt.Errorf("sort: sample %s at byte %d: %w", p.Inputs[i].Path, off, err)
			}
			take(s, buf[:n-n%RecordSize])
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Close the gaps of short strata (clusters clipped by a file's end).
	n = 0
	for s, c := range got {
		n += int64(copy(keys[n:], keys[int64(s)*per:int64(s)*per+int64(c)]))
	}
	return shuffle.NewPartitionerFromKeys(keys[:n], p.Partitions)
}

// sumReader counts the records read through it and sums their CRCs, the
// input side of the valsort check.
type sumReader struct {
	r       io.Reader
	carry   []byte
	sum     gensort.Sum
	records int64
}

func (s *sumReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	p := b[:n]
	if len(s.carry) > 0 {
		take := min(RecordSize-len(s.carry), len(p))
		s.carry = append(s.carry, p[:take]...)
		p = p[take:]
		if len(s.carry) == RecordSize {
			s.sum.AddCRC(gensort.RecordCRC(s.carry))
			s.records++
			s.carry = s.carry[:0]
		}
	}
	whole := len(p) - len(p)%RecordSize
	s.sum.Add(gensort.SumRecords(p[:whole]))
	s.records += int64(whole / RecordSize)
	s.carry = append(s.carry, p[whole:]...)
	return n, err
}

// genReader yields generated records; it fills the caller's buffer directly.
type genReader struct {
	g    *gensort.Generator
	left int64
	took time.Duration
}

func (g *genReader) Read(b []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)/RecordSize), g.left)
	if n == 0 {
		return 0, fmt.Errorf("sort: read buffer of %d bytes is smaller than a record", len(b))
	}
	t := time.Now()
	g.g.Fill(b[:n*RecordSize])
	g.took += time.Since(t)
	g.left -= n
	return int(n * RecordSize), nil
}

// PartName and SummaryName are the names of output partition i of n and of
// its valsort summary: part-00000 and summary-00000, with more digits when n
// needs them, so that the names sort in partition order.
func PartName(i, n int) string    { return fmt.Sprintf("part-%0*d", digits(n), i) }
func SummaryName(i, n int) string { return fmt.Sprintf("summary-%0*d", digits(n), i) }

func digits(n int) int {
	d := len(fmt.Sprint(max(n-1, 0)))
	return max(d, 5)
}

// SuccessName is written last into a committed output directory.
const SuccessName = "_SUCCESS"

// CommitOutput moves the part and summary files from the temporary
// directory tmp into out, fsyncs out, writes _SUCCESS (the report) and
// fsyncs again, then removes tmp. It can be repeated after a crash: files
// already moved are skipped. The part and summary files were fsynced when
// written (RunReduce, ValidatePart): once _SUCCESS is durable, every file
// it stands beside is too.
func CommitOutput(tmp, out string, rep *Report) error {
	for _, pat := range []string{"part-*", "summary-*"} {
		names, err := filepath.Glob(filepath.Join(tmp, pat))
		if err != nil {
			return fmt.Errorf("sort: commit: %w", err)
		}
		for _, from := range names {
			if err := os.Rename(from, filepath.Join(out, filepath.Base(from))); err != nil {
				return fmt.Errorf("sort: commit: %w", unwrap(err))
			}
		}
	}
	if err := syncDir(out); err != nil {
		return fmt.Errorf("sort: commit: %w", err)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	if err := writeFileSync(filepath.Join(out, SuccessName), []byte(sb.String())); err != nil {
		return fmt.Errorf("sort: commit: %w", err)
	}
	if err := syncDir(out); err != nil {
		return fmt.Errorf("sort: commit: %w", err)
	}
	return os.RemoveAll(tmp)
}

// TempPrefix begins the name of a job's temporary directory inside its
// output directory: TempDir(out, job) holds the parts until the commit moves
// them out. Nothing else in an output directory starts with it.
const TempPrefix = ".engine-"

// TempDir is job's temporary directory inside the output directory out.
func TempDir(out, job string) string { return filepath.Join(out, TempPrefix+job) }

// AttemptDir is where attempt a of a reduce writes its part and summary
// inside the temporary directory tmp: two attempts of one reduce (a
// speculative twin) never write the same file.
func AttemptDir(tmp string, a int) string { return filepath.Join(tmp, fmt.Sprintf("attempt-%d", a)) }

// PromoteAttempt moves partition part's files (of n partitions) written by
// attempt a into tmp itself, where CommitOutput finds them. Files already
// moved (a commit repeated after a crash) are left as they are.
func PromoteAttempt(tmp string, part, n, a int) error {
	for _, name := range []string{PartName(part, n), SummaryName(part, n)} {
		from, to := filepath.Join(AttemptDir(tmp, a), name), filepath.Join(tmp, name)
		if _, err := os.Stat(to); err == nil {
			continue
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("sort: commit: %w", unwrap(err))
		}
	}
	return nil
}

// RemoveUncommitted removes what an unfinished job left in its output
// directory: its temporary directory, and part and summary files that have
// no _SUCCESS beside them (the job required the directory to be empty, so
// they are its own). A committed output is left alone.
func RemoveUncommitted(out string) {
	if _, err := os.Stat(filepath.Join(out, SuccessName)); err == nil {
		return
	}
	for _, pat := range []string{TempPrefix + "*", "part-*", "summary-*"} {
		matches, _ := filepath.Glob(filepath.Join(out, pat))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
}

// writeFileSync writes path whole and fsyncs it; a symbolic link at path
// is refused, not followed (the daemon writes as root into a directory
// its users may write to).
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if syncHook != nil {
		syncHook("file", path)
	}
	return f.Close()
}

// syncDir fsyncs the directory dir (its names).
func syncDir(dir string) error {
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if syncHook != nil {
		syncHook("dir", dir)
	}
	return nil
}

// syncHook, set by tests, is told of each fsync of an output file or
// directory once it has returned: a test seam for the commit order.
var syncHook func(kind, path string)

// rateFile holds the measured rate of the last real sort on this node.
const rateFile = "rate.json"

// SaveRate records a finished sort's rate per worker in dataDir/rate.json
// for later plans' estimates, unless a much larger sort measured it before.
func SaveRate(dataDir string, rep *Report) {
	sortTime := rep.SortTime().Seconds()
	if rep.Bytes < 10e6 || sortTime <= 0 {
		return
	}
	where := "this node"
	if len(rep.Nodes) > 1 {
		where = fmt.Sprintf("a %d-node cluster", len(rep.Nodes))
	}
	rate := Rate{
		BytesPerSecondPerCore: float64(rep.Bytes) / sortTime / float64(max(rep.Workers, 1)),
		Bytes:                 rep.Bytes, Measured: time.Now(),
		Source: fmt.Sprintf("measured by a %s sort on %s", units.Format(rep.Bytes), where),
	}
	if old, err := LoadRate(dataDir); err == nil && old.Bytes > rep.Bytes*10 {
		return // keep the measurement from a much larger run
	}
	b, _ := json.MarshalIndent(rate, "", "  ")
	tmp := filepath.Join(dataDir, rateFile+".tmp")
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, filepath.Join(dataDir, rateFile))
	}
}

// LoadRate reads the node's measured sort rate.
func LoadRate(dataDir string) (Rate, error) {
	var rate Rate
	b, err := os.ReadFile(filepath.Join(dataDir, rateFile))
	if err != nil {
		return rate, err
	}
	err = json.Unmarshal(b, &rate)
	return rate, err
}

// pool runs n tasks on workers goroutines; the first error cancels the rest.
// Each worker gets its own state from newWorker.
func pool[W any](ctx context.Context, workers, n int, newWorker func() W, task func(ctx context.Context, w W, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker()
			for i := range next {
				if err := task(ctx, w, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
