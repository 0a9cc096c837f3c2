package fiobench

import (
	"fmt"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
)

// Verdicts.
const (
	Pass = benchrun.Pass
	Fail = benchrun.Fail
	NA   = benchrun.NA
)

// result finds job on target; nil when it did not run or failed.
func (r *Report) result(job, target string) *Result {
	for i := range r.Jobs {
		if r.Jobs[i].Name != job {
			continue
		}
		for k := range r.Jobs[i].Results {
			if res := &r.Jobs[i].Results[k]; res.Target == target && res.Value > 0 {
				return res
			}
		}
	}
	return nil
}

// judge fills in the ratios, the drain comparison and the goals.
func (b *bench) judge() {
	r := b.rep
	for ji := range r.Jobs {
		j := &r.Jobs[ji]
		lo, di := r.result(j.Name, Loopback), r.result(j.Name, Direct)
		for k := range j.Results {
			res := &j.Results[k]
			if lo != nil {
				res.VsLoopback = res.Value / lo.Value
			}
			if di != nil {
				res.VsDirect = res.Value / di.Value
			}
		}
	}
	d := r.Drain
	if seq := r.result(JobSeqWrite, Direct); d != nil && seq != nil {
		d.SeqWriteRate = seq.MBps * 1e6
		d.RateVsSeqWrite = d.DrainRate / d.SeqWriteRate
	}
	if nf := r.result(JobNewFile, Direct); d != nil && nf != nil {
		d.NewFileRate = nf.MBps * 1e6
		d.RateVsNewFile = d.DrainRate / d.NewFileRate
	}

	stripes := "stripes written: unknown (no bb status)"
	ec := true
	if d != nil && d.Error == "" {
		stripes = fmt.Sprintf("%d stripes erasure-coded", d.StripesWritten)
		ec = d.StripesWritten > 0
	}
	r.Goals = append(r.Goals,
		b.vsLoopback(JobRandWrite, RandWriteVsLoopback, "4 KiB random writes (O_DIRECT, iodepth 32) while erasure-coded", stripes, ec),
		b.vsLoopback(JobFsync, FsyncVsLoopback, "4 KiB random writes with fsync after each", "", true))

	// The drain creates or extends files and fsyncs them before it frees
	// flash: its like-for-like reference is JobNewFile. The time-based
	// JobSeqWrite, which mostly overwrites blocks it allocated already and
	// never fsyncs, is shown beside it.
	g := Goal{Name: "drain rate vs the backing file system's sequential writes",
		Want: fmt.Sprintf("≥ %.2f× the direct target's sequential write rate into a new file, fsync included (%s)", DrainVsSeqWrite, JobNewFile), Verdict: NA}
	switch {
	case d == nil:
		g.Got = "ours' drain not measured"
	case d.Error != "":
		g.Got = d.Error
	case d.BackingWritten == 0:
		g.Got, g.Verdict = "nothing reached the backing directory", Fail
	case d.NewFileRate == 0:
		g.Got = fmt.Sprintf("drain %.1f MB/s; the direct new-file write rate was not measured", d.DrainRate/1e6)
	default:
		g.Got = fmt.Sprintf("drain %.1f MB/s (the node's own figure; %.1f MB/s over the syncs) = %.2f× direct new-file writes %.1f MB/s",
			d.DrainRate/1e6, d.SyncRate/1e6, d.RateVsNewFile, d.NewFileRate/1e6)
		if d.SeqWriteRate > 0 {
			g.Got += fmt.Sprintf(" (%.2f× the time-based %s, %.1f MB/s)", d.RateVsSeqWrite, JobSeqWrite, d.SeqWriteRate/1e6)
		}
		g.Verdict = benchrun.Verdict(d.RateVsNewFile >= DrainVsSeqWrite)
	}
	r.Goals = append(r.Goals, g)

	g = Goal{Name: "drain writes whole aligned chunks",
		Want: "100% of the writes to the backing file system are whole aligned chunks (by count; file tails excepted)", Verdict: NA}
	switch {
	case d == nil:
		g.Got = "ours' drain not measured"
	case d.Error != "":
		g.Got = d.Error
	case d.Writes == 0:
		g.Got, g.Verdict = "no writes reached the backing directory", Fail
	case d.AlignedWrites != nil && d.TailWrites != nil:
		g.Got = fmt.Sprintf("%d aligned + %d tails of %d writes (the node's own counts)", *d.AlignedWrites, *d.TailWrites, d.Writes)
		g.Verdict = benchrun.Verdict(*d.AlignedWrites+*d.TailWrites == d.Writes)
	default:
		partial := d.Writes - d.FullWrites
		// Every file written through ours is a whole number of chunks
		// (the fio files) or empty (the creates) unless Size is not a
		// multiple of the chunk; then each fio file may end in a tail.
		var tails int64
		if d.DrainChunk > 0 && r.Size%d.DrainChunk != 0 {
			tails = int64(3*r.Rounds + 1)
		}
		g.Got = fmt.Sprintf("%d of %d writes (%.1f%%) in the buckets of the %s chunk and up; %d smaller (tails allowed: %d)",
			d.FullWrites, d.Writes, d.FullPercent, benchfmt.Bytes(d.DrainChunk), partial, tails)
		g.Verdict = benchrun.Verdict(partial <= tails && len(d.Unparsed) == 0)
	}
	r.Goals = append(r.Goals, g)

	g = Goal{Name: "no 4 KiB write reaches the backing file system",
		Want: "0 writes of 4 KiB or less (no file written through ours is that small: the created files are empty)", Verdict: NA}
	switch {
	case d == nil:
		g.Got = "ours' drain not measured"
	case d.Error != "":
		g.Got = d.Error
	default:
		g.Got = fmt.Sprintf("%d writes of 4 KiB or less", d.SmallWrites)
		g.Verdict = benchrun.Verdict(d.SmallWrites == 0 && len(d.Unparsed) == 0)
	}
	r.Goals = append(r.Goals, g)
}

// vsLoopback is the goal "ours ≥ ratio × loopback" for job, and marks
// ours' row with its verdict. extra is said after the figures; ok must
// hold too.
func (b *bench) vsLoopback(job string, ratio float64, name, extra string, ok bool) Goal {
	g := Goal{Name: name, Want: fmt.Sprintf("ours ≥ %.2f× the loopback's IOPS", ratio), Verdict: NA}
	ours, lo := b.rep.result(job, Ours), b.rep.result(job, Loopback)
	switch {
	case ours == nil:
		g.Got = "ours not measured"
	case lo == nil:
		g.Got = "the loopback not measured"
	default:
		g.Got = fmt.Sprintf("ours %.0f IOPS = %.2f× loopback %.0f", ours.Value, ours.VsLoopback, lo.Value)
		g.Verdict = benchrun.Verdict(ours.VsLoopback >= ratio && ok)
		ours.Verdict = fmt.Sprintf("%s (≥ %.2f× loopback)", g.Verdict, ratio)
	}
	if extra != "" {
		g.Got += "; " + extra
	}
	return g
}
