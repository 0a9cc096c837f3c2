package sortbench

import (
	"fmt"
	"slices"
	"strings"

	"engine/sortjob"
)

const (
	labelWidth = 44
	cellWidth  = 11
)

func (b *bench) writeTable() {
	r, w := b.res, b.w
	fmt.Fprintln(w)
	header := fmt.Sprintf("%-*s", labelWidth, "")
	for round := 1; round <= r.Rounds; round++ {
		header += fmt.Sprintf("%*s", cellWidth, fmt.Sprintf("round %d", round))
	}
	header += fmt.Sprintf("%*s", cellWidth, "median")
	fmt.Fprintln(w, header)

	row := func(label string, cells []string, med string) {
		line := fmt.Sprintf("%-*s", labelWidth, label)
		for _, c := range cells {
			line += fmt.Sprintf("%*s", cellWidth, c)
		}
		line += fmt.Sprintf("%*s", cellWidth, med)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	// per builds a row's cells from round's measurement of sys.
	per := func(sys string, f func(m *Measurement) string) []string {
		cells := make([]string, r.Rounds)
		for i := range cells {
			cells[i] = "-"
			for _, m := range r.Runs {
				if m.Round == i+1 && m.System == sys {
					if m.OK {
						cells[i] = f(m)
					} else {
						cells[i] = "FAILED"
					}
				}
			}
		}
		return cells
	}
	mbps := func(v float64) string {
		if v <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	secs := func(v float64) string {
		if v <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	bytesText := func(v int64) string {
		if v <= 0 {
			return "-"
		}
		return sortjob.FormatBytes(v)
	}
	ratio := func(v float64) string {
		if v <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", v)
	}
	ratios := func(f func(Ratios) float64) []string {
		cells := make([]string, r.Rounds)
		for i, rt := range r.Ratios {
			cells[i] = ratio(f(rt))
		}
		return cells
	}
	med := r.Median
	cpu := func(m *Measurement) string { return fmt.Sprintf("%.1f+%.1f", m.UserSeconds, m.SysSeconds) }
	cpuMedian := func(sys string) string {
		var u, s []float64
		for _, m := range r.Runs {
			if m.System == sys && m.OK {
				u, s = append(u, m.UserSeconds), append(s, m.SysSeconds)
			}
		}
		if len(u) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f+%.1f", median(u), median(s))
	}

	if b.run[Engine] {
		row("engine MB/s (wall clock of the process)", per(Engine, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.EngineMBps))
		row("  engine seconds (wall clock)", per(Engine, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.EngineSeconds))
		row("  engine CPU s (user+sys)", per(Engine, cpu), cpuMedian(Engine))
		row("  engine's own sort rate MB/s (map+reduce)", per(Engine, func(m *Measurement) string {
			if m.Report == nil {
				return "-"
			}
			return mbps(m.Report.MBps)
		}), mbps(med.EngineOwnMBps))
		for _, ph := range b.phaseNames() {
			var vals []float64
			cells := per(Engine, func(m *Measurement) string {
				v := phaseSeconds(m.Report, ph)
				vals = append(vals, v)
				return fmt.Sprintf("%.2f", v)
			})
			row("    phase "+ph+" s", cells, secsOrDash(vals))
		}
		var outside []float64
		cells := per(Engine, func(m *Measurement) string {
			if m.Report == nil {
				return "-"
			}
			v := m.Seconds - m.Report.Total.Seconds()
			outside = append(outside, v)
			return fmt.Sprintf("%.2f", v)
		})
		row("    outside the job s (process, node start)", cells, secsOrDash(outside))
	}
	if b.run[GNU] {
		row("GNU sort MB/s (sort + fsync)", per(GNU, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.GNUMBps))
		row("  GNU sort seconds", per(GNU, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.GNUSeconds))
		row("  GNU sort CPU s (user+sys)", per(GNU, cpu), cpuMedian(GNU))
	}
	if b.run[Disk] {
		row("disk ceiling MB/s (copy + fsync)", per(Disk, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.DiskMBps))
		row("  disk ceiling seconds", per(Disk, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.DiskSeconds))
	}
	if b.run[Engine] {
		row("engine peak RSS (rusage maxrss)", per(Engine, func(m *Measurement) string { return bytesText(m.PeakRSS) }), bytesText(med.EnginePeakRSS))
	}
	if b.run[GNU] {
		row("GNU sort peak RSS (rusage maxrss)", per(GNU, func(m *Measurement) string { return bytesText(m.PeakRSS) }), bytesText(med.GNUPeakRSS))
	}
	if b.run[Engine] && b.run[GNU] {
		row("engine/GNU sort (wall clock)", ratios(func(rt Ratios) float64 { return rt.EngineOverGNU }), ratio(med.EngineOverGNU))
		row("engine/GNU sort (engine's own rate)", ratios(func(rt Ratios) float64 { return rt.EngineOwnOverGNU }), ratio(med.EngineOwnOverGNU))
	}
	if b.run[Engine] && b.run[Disk] {
		row("engine/disk (wall clock)", ratios(func(rt Ratios) float64 { return rt.EngineOverDisk }), ratio(med.EngineOverDisk))
	}
	loads := make([]string, r.Rounds)
	for i := range loads {
		loads[i] = "-"
		for _, m := range r.Runs {
			if m.Round == i+1 {
				loads[i] = strings.Fields(m.LoadBefore + " -")[0]
				break
			}
		}
	}
	row("load average (1 min) at the round's start", loads, "")
	fmt.Fprintln(w, "(MB = 10^6 bytes; medians are over the successful rounds; ratio medians are medians of the per-round ratios)")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (project issue; PASS/MISS is reported, a miss does not fail the command)")
	for _, t := range r.Targets {
		got := "not measured"
		verdict := "n/a"
		if t.Known {
			if t.Unit == "B" {
				got = sortjob.FormatBytes(int64(t.Got))
			} else {
				got = fmt.Sprintf("%.2f%s", t.Got, t.Unit)
			}
			verdict = map[bool]string{true: "PASS", false: "MISS"}[t.Pass]
		}
		name := t.Name
		if t.Unit == "B" && t.Known {
			name += fmt.Sprintf(" (%s)", sortjob.FormatBytes(int64(t.Want)))
		}
		line := fmt.Sprintf("  %-62s %10s  %s", name, got, verdict)
		if t.Note != "" {
			line += " (" + t.Note + ")"
		}
		fmt.Fprintln(w, line)
	}

	fmt.Fprintln(w)
	var validated int
	for _, m := range r.Runs {
		if m.OK && m.Check != nil {
			validated++
		}
	}
	if len(r.Failures) == 0 {
		fmt.Fprintf(w, "validation: all %d sorted outputs have %d records, checksum %s, in order\n", validated, r.Records, r.InputChecksum)
	} else {
		fmt.Fprintf(w, "!!! %d RUN(S) OR VALIDATION(S) FAILED (%d sorted outputs valid):\n", len(r.Failures), validated)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "!!!   %s\n", f)
		}
	}
	fmt.Fprintf(w, "load average before %s, after %s; page cache dropped before each run: %s\n", r.LoadBefore, r.LoadAfter, yesNo(r.DropCaches))
}

// secsOrDash is the median of vals in seconds, "-" for none.
func secsOrDash(vals []float64) string {
	if len(vals) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", median(vals))
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// phaseNames lists the engine phases seen, in report order.
func (b *bench) phaseNames() []string {
	var names []string
	for _, m := range b.res.Runs {
		if m.Report == nil {
			continue
		}
		for _, p := range m.Report.Phases {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	return names
}

func phaseSeconds(rep *sortjob.Report, name string) float64 {
	if rep == nil {
		return 0
	}
	var d float64
	for _, p := range rep.Phases {
		if p.Name == name {
			d += p.Duration.Seconds()
		}
	}
	return d
}
