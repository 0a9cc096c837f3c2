package gensort

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// chunkRecs is the number of records generated per chunk.
const chunkRecs = ioChunk / RecordSize

// generate produces records start..start+count-1 in chunks of chunkRecs,
// using up to workers goroutines that fill alternate chunks, and hands the
// chunks to sink in order (sink may be nil). It returns the checksum of the
// records when wantSum is set. Memory is bounded by 2 chunks per worker.
func generate(ctx context.Context, start, count uint64, opts Options, workers int, wantSum bool, sink func([]byte) error) (Sum, error) {
	var total Sum
	if count == 0 {
		return total, nil
	}
	chunks := (count + chunkRecs - 1) / chunkRecs
	if uint64(workers) > chunks {
		workers = int(chunks)
	}
	if workers <= 1 {
		g := NewGenerator(start, opts)
		buf := make([]byte, min(count, chunkRecs)*RecordSize)
		for left := count; left > 0; {
			if err := ctx.Err(); err != nil {
				return Sum{}, err
			}
			b := buf[:min(left, chunkRecs)*RecordSize]
			g.Fill(b)
			if wantSum {
				total.Add(SumRecords(b))
			}
			if sink != nil {
				if err := sink(b); err != nil {
					return Sum{}, err
				}
			}
			left -= uint64(len(b) / RecordSize)
		}
		return total, nil
	}

	type item struct {
		buf []byte
		sum Sum
	}
	stop := make(chan struct{})
	free := make([]chan []byte, workers)
	outs := make([]chan item, workers)
	var wg sync.WaitGroup
	for w := range workers {
		free[w] = make(chan []byte, 2)
		outs[w] = make(chan item, 2)
		for range 2 {
			free[w] <- make([]byte, chunkRecs*RecordSize)
		}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			g := NewGenerator(start, opts)
			for k := uint64(w); k < chunks; k += uint64(workers) {
				var buf []byte
				select {
				case buf = <-free[w]:
				case <-stop:
					return
				}
				first := k * chunkRecs
				b := buf[:min(chunkRecs, count-first)*RecordSize]
				g.Seek(start + first)
				g.Fill(b)
				it := item{buf: b}
				if wantSum {
					it.sum = SumRecords(b)
				}
				select {
				case outs[w] <- it:
				case <-stop:
					return
				}
			}
		}(w)
	}
	var err error
	for k := uint64(0); k < chunks; k++ {
		w := k % uint64(workers)
		var it item
		select {
		case it = <-outs[w]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
		total.Add(it.sum)
		if sink != nil {
			if err = sink(it.buf); err != nil {
				break
			}
		}
		free[w] <- it.buf[:cap(it.buf)]
	}
	close(stop)
	wg.Wait()
	if err != nil {
		return Sum{}, err
	}
	return total, nil
}

// workersFor returns the number of goroutines to generate count records.
func workersFor(count uint64) int {
	return numWorkers(int64(min(count/chunkRecs+1, math.MaxInt32)))
}

// ChecksumRecords returns the checksum of records start..start+count-1
// without writing them anywhere (what gensort -c prints), using several
// goroutines for large counts.
func ChecksumRecords(start, count uint64, opts Options) Sum {
	s, _ := generate(context.Background(), start, count, opts, workersFor(count), true, nil)
	return s
}

// GenerateFile writes records start..start+count-1 to path and returns
// their checksum if wantSum is set. A regular file is written to a
// temporary file in the same directory (path.tmp-*), synced and renamed
// into place, so an interrupted run never leaves a partial file under the
// final name. A non-regular existing path (device, pipe) is written in
// place; "/dev/null" is not written at all, as in the reference gensort.
// workers <= 0 means choose automatically.
func GenerateFile(ctx context.Context, path string, start, count uint64, opts Options, workers int, wantSum bool) (Sum, error) {
	if count > 0 && start+(count-1) < start {
		return Sum{}, fmt.Errorf("starting record %d plus %d records goes past record number %d", start, count, uint64(math.MaxUint64))
	}
	if workers <= 0 {
		workers = workersFor(count)
	}
	if path == os.DevNull {
		return generate(ctx, start, count, opts, workers, wantSum, nil)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return Sum{}, fmt.Errorf("%s: is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return Sum{}, err
		}
		sum, err := generate(ctx, start, count, opts, workers, wantSum, writeSink(f, path))
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		return sum, err
	}
	var sum Sum
	err := writeAtomic(path, func(f *os.File) error {
		var err error
		sum, err = generate(ctx, start, count, opts, workers, wantSum, writeSink(f, path))
		return err
	})
	return sum, err
}

func writeSink(f *os.File, path string) func([]byte) error {
	var off int64
	return func(b []byte) error {
		n, err := f.Write(b)
		off += int64(n)
		if err != nil {
			return fmt.Errorf("%s: write at offset %d: %w", path, off, err)
		}
		return nil
	}
}

// writeAtomic creates path by writing a temporary file in the same
// directory with fill, syncing it and renaming it over path.
func writeAtomic(path string, fill func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("%s: sync: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const gensortUsage = "usage: gensort [-a] [-c] [-s] [-bSTARTING_REC_NUM] [-tN] NUM_RECS FILE_NAME"

// RunGensort runs the gensort command line (without the program name):
//
//	gensort [-a] [-c] [-s] [-bN | -b N] [-tN] NUM_RECS FILE
//
// -a ascii records, -c print the checksum to stderr, -s skewed keys,
// -b first record number, -t number of generating goroutines. The output
// matches the reference gensort 1.5 byte for byte. Errors start with
// "gensort:"; the caller should print them and exit non-zero.
func RunGensort(args []string, stdout, stderr io.Writer) error {
	usage := func(format string, a ...any) error {
		return fmt.Errorf("gensort: %s; %s", fmt.Sprintf(format, a...), gensortUsage)
	}
	var (
		opts     Options
		start    uint64
		printSum bool
		workers  int
	)
	i := 0
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-'; i++ {
		a := args[i]
		switch {
		case a == "-a":
			opts.ASCII = true
		case a == "-c":
			printSum = true
		case a == "-s":
			opts.Skew = true
		case strings.HasPrefix(a, "-b"):
			v := a[2:]
			if v == "" {
				if i+1 >= len(args) {
					return usage("-b needs a starting record number")
				}
				i++
				v = args[i]
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return usage("bad starting record number %q (want a decimal number below 2^64)", v)
			}
			start = n
		case strings.HasPrefix(a, "-t"):
			n, err := strconv.Atoi(a[2:])
			if err != nil || n < 1 {
				return usage("bad thread count %q (want -tN with N >= 1)", a)
			}
			workers = n
		default:
			return usage("unknown option %q", a)
		}
	}
	rest := args[i:]
	if len(rest) != 2 {
		return usage("want NUM_RECS and FILE_NAME, got %d arguments", len(rest))
	}
	count, err := strconv.ParseUint(rest[0], 10, 64)
	if err != nil {
		return usage("bad NUM_RECS %q (want a decimal number below 2^64)", rest[0])
	}
	sum, err := GenerateFile(context.Background(), rest[1], start, count, opts, workers, printSum)
	if err != nil {
		return fmt.Errorf("gensort: %w", err)
	}
	if printSum {
		fmt.Fprintf(stderr, "%s\n", sum)
	}
	return nil
}

const valsortUsage = "usage: valsort [-q] [-o SUMMARY_FILE] [-s] FILE_NAME"

// RunValsort runs the valsort command line (without the program name):
//
//	valsort [-q] [-o SUMMARY_FILE] [-s] FILE
//
// Like the reference valsort it reports on stderr ("Records: N",
// "Checksum: X", then "Duplicate keys: N" and "SUCCESS - all records are in
// order", or "First unordered record is record N" first and "ERROR - there
// are N unordered records" last); -q suppresses the report. -o writes the
// file's summary (SummarySize bytes, see SummarySize) to SUMMARY_FILE; -s
// treats FILE as concatenated summaries of consecutive partitions and
// checks them as one whole. Any failure, including unordered records,
// returns an error starting with "valsort:".
func RunValsort(args []string, stdout, stderr io.Writer) error {
	usage := func(format string, a ...any) error {
		return fmt.Errorf("valsort: %s; %s", fmt.Sprintf(format, a...), valsortUsage)
	}
	var (
		sumOut    string
		quiet     bool
		summaries bool
	)
	i := 0
	for ; i < len(args) && len(args[i]) > 1 && args[i][0] == '-'; i++ {
		a := args[i]
		switch {
		case a == "-q":
			quiet = true
		case a == "-s":
			summaries = true
		case strings.HasPrefix(a, "-o"):
			v := a[2:]
			if v == "" {
				if i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") {
					return usage("-o needs a summary file name")
				}
				i++
				v = args[i]
			}
			sumOut = v
		case strings.HasPrefix(a, "-t"):
			// Accepted for compatibility; the number of goroutines is automatic.
			if n, err := strconv.Atoi(a[2:]); err != nil || n < 1 {
				return usage("bad thread count %q (want -tN with N >= 1)", a)
			}
		case a == "-i":
			return usage("-i (case-insensitive keys) is not supported")
		default:
			return usage("unknown option %q", a)
		}
	}
	rest := args[i:]
	if len(rest) != 1 {
		return usage("want exactly one FILE_NAME, got %d arguments", len(rest))
	}
	file := rest[0]

	var s Summary
	if summaries {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("valsort: %w", err)
		}
		parts, err := ReadSummaries(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("valsort: %s: %w (was it written by valsort -o?)", file, err)
		}
		s = Merge(parts)
	} else {
		var err error
		s, err = ValidateFile(context.Background(), file)
		if err != nil {
			return fmt.Errorf("valsort: %w", err)
		}
	}
	if s.Records == 0 {
		return fmt.Errorf("valsort: %s: there must be at least one record to be validated", file)
	}
	if !quiet && s.Unordered > 0 {
		fmt.Fprintf(stderr, "First unordered record is record %d\n", s.FirstUnordered)
	}
	if sumOut != "" {
		b, err := s.MarshalBinary()
		if err == nil {
			err = writeAtomic(sumOut, func(f *os.File) error {
				_, err := f.Write(b)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("valsort: writing summary: %w", err)
		}
	}
	if !quiet {
		fmt.Fprintf(stderr, "Records: %d\n", s.Records)
		fmt.Fprintf(stderr, "Checksum: %s\n", s.Checksum)
		if s.Unordered > 0 {
			fmt.Fprintf(stderr, "ERROR - there are %d unordered records\n", s.Unordered)
		} else {
			fmt.Fprintf(stderr, "Duplicate keys: %d\n", s.Duplicates)
			fmt.Fprintf(stderr, "SUCCESS - all records are in order\n")
		}
	}
	if s.Unordered > 0 {
		return fmt.Errorf("valsort: %s: %d unordered records, the first is record %d", file, s.Unordered, s.FirstUnordered)
	}
	return nil
}
