package fiobench

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
)

// print writes the report as tables.
func (r *Report) print(w io.Writer) {
	h := r.Host
	fmt.Fprintf(w, "fio benchmark: the backing file system, a go-fuse loopback and ours (issue 4 §5)\n")
	fmt.Fprintf(w, "%s, ioengine %s; %s per job file, %gs per run, %d round(s); %d creates per run\n",
		h.Fio, r.IOEngine, benchfmt.Bytes(r.Size), r.RuntimeSeconds, r.Rounds, r.Creates)
	fmt.Fprintf(w, "host: kernel %s, %d CPUs, load %.2f at the start; work dir %s on %s %s (mounted at %s)\n",
		h.Kernel, h.CPUs, h.Load, h.WorkDir, h.FSType, h.FSDevice, h.FSMount)
	fmt.Fprintln(w, "targets:")
	for _, t := range r.Targets {
		var desc string
		switch {
		case t.Skipped != "":
			desc = "SKIPPED: " + t.Skipped
		case t.Name == Direct:
			desc = t.Path
		case t.Name == Loopback:
			pt := "off"
			if h.Passthrough {
				pt = "on"
			}
			gf := "go-fuse"
			if h.GoFuse != "" {
				gf += " " + h.GoFuse
			}
			desc = fmt.Sprintf("%s: %s LoopbackRoot of %s (passthrough %s, max_write 1 MiB)", t.Path, gf, t.Backing, pt)
		default:
			desc = fmt.Sprintf("%s: %s", t.Path, t.Command)
		}
		fmt.Fprintf(w, "  %-9s %s\n", t.Name, desc)
	}

	for _, j := range r.Jobs {
		fmt.Fprintf(w, "\n%s: %s\n", j.Name, j.Title)
		fsync := j.Name == JobFsync
		head := fmt.Sprintf("  %-9s %10s %12s", "target", j.Unit, "p99 latency")
		if fsync {
			head += fmt.Sprintf(" %12s", "fsync p99")
		}
		head += fmt.Sprintf(" %12s %10s", "vs loopback", "vs direct")
		if r.Rounds > 1 {
			head += "  rounds"
		}
		fmt.Fprintln(w, strings.TrimRight(head+"  goal", " "))
		for _, res := range j.Results {
			line := fmt.Sprintf("  %-9s %10s %12s", res.Target, value(j.Unit, res.Value), benchfmt.Micros(res.P99Micros))
			if fsync {
				line += fmt.Sprintf(" %12s", benchfmt.Micros(res.SyncP99Micros))
			}
			line += fmt.Sprintf(" %12s %10s", benchfmt.Ratio(res.VsLoopback), benchfmt.Ratio(res.VsDirect))
			if r.Rounds > 1 {
				var rs []string
				for _, s := range res.Rounds {
					if s.Error != "" {
						rs = append(rs, "failed")
					} else {
						rs = append(rs, value(j.Unit, s.Value))
					}
				}
				line += "  " + strings.Join(rs, ",")
			}
			if res.Verdict != "" {
				line += "  " + res.Verdict
			}
			for _, s := range res.Rounds {
				if s.Error != "" {
					line += fmt.Sprintf("\n      round %d FAILED: %s", s.Round, s.Error)
				}
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}

	if d := r.Drain; d != nil {
		fmt.Fprintf(w, "\ndrain: ours' burst buffer → its backing directory (node %s)\n", d.Node)
		if d.Error != "" {
			fmt.Fprintf(w, "  %s\n", d.Error)
		} else {
			fmt.Fprintf(w, "  accepted %s in %d stripes; drained %s; wrote %s to the backing directory; chunk %s; writes throttled %d\n",
				benchfmt.Bytes(d.Accepted), d.StripesWritten, benchfmt.Bytes(d.Drained), benchfmt.Bytes(d.BackingWritten), benchfmt.Bytes(d.DrainChunk), d.Throttled)
			line := fmt.Sprintf("  drain rate %.1f MB/s (the node's own)", d.DrainRate/1e6)
			if d.NewFileRate > 0 {
				line += fmt.Sprintf(" = %.2f× direct new-file sequential writes + fsync (%.1f MB/s)  %s (≥ %.2f×)",
					d.RateVsNewFile, d.NewFileRate/1e6, benchrun.Verdict(d.RateVsNewFile >= DrainVsSeqWrite), DrainVsSeqWrite)
			}
			if d.SeqWriteRate > 0 {
				line += fmt.Sprintf("; %.2f× the time-based 1 MiB sequential writes (%.1f MB/s)", d.RateVsSeqWrite, d.SeqWriteRate/1e6)
			}
			fmt.Fprintln(w, line)
			fmt.Fprintf(w, "  over %d syncs (bb sync /): %s in %.2fs = %.1f MB/s\n",
				len(d.Syncs), benchfmt.Bytes(d.SyncBackingBytes), d.SyncSeconds, d.SyncRate/1e6)
			fmt.Fprintf(w, "  backing write sizes: %s\n", histogram(d.WriteSizes))
			fmt.Fprintf(w, "  in buckets of the chunk (%s) and up: %d of %d writes (%.1f%%)", benchfmt.Bytes(d.DrainChunk), d.FullWrites, d.Writes, d.FullPercent)
			if d.AlignedWrites != nil && d.TailWrites != nil {
				fmt.Fprintf(w, "; the node counts %d aligned, %d tails", *d.AlignedWrites, *d.TailWrites)
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "  writes of 4 KiB or less: %d\n", d.SmallWrites)
			if d.BackingFull != "" {
				fmt.Fprintf(w, "  BACKING FULL: %s\n", d.BackingFull)
			}
			if d.SameDevice {
				fmt.Fprintln(w, "  (flash and backing share one device here: the drain reads and writes the same disk)")
			}
		}
	}

	fmt.Fprintln(w, "\ngoals:")
	benchrun.WriteGoals(w, r.Goals)
	benchrun.WriteEnd(w, r.Notes, r.Errors, r.Seconds)
}

func value(unit string, v float64) string {
	switch {
	case v == 0:
		return "-"
	case unit == UnitMBps:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// histogram writes the buckets in size order: "≤1MiB:1024 >32MiB:3".
func histogram(h map[string]int64) string {
	if len(h) == 0 {
		return "(none)"
	}
	labels := make([]string, 0, len(h))
	for l := range h {
		labels = append(labels, l)
	}
	slices.SortFunc(labels, func(a, b string) int {
		ua, _ := bucketUpper(a)
		ub, _ := bucketUpper(b)
		if ua != ub {
			if ua < ub {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%s:%d", l, h[l])
	}
	return strings.Join(parts, " ")
}
