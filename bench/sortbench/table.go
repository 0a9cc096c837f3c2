package sortbench

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"engine/internal/units"
	"engine/sortjob"

	"engine/bench/internal/benchfmt"
)

// runView is what the shared table code reads of one run of either
// benchmark (a Measurement or a ClusterRun).
type runView struct {
	round     int
	system    string
	ok        bool
	validated bool // ok, with a Check
	load      string
	seconds   float64
	user, sys float64
	report    *sortjob.Report
}

func (m *Measurement) view() runView {
	return runView{m.Round, m.System, m.OK, m.OK && m.Check != nil, m.LoadBefore, m.Seconds, m.UserSeconds, m.SysSeconds, m.Report}
}

// views are runs (Measurements or ClusterRuns) as the table reads them.
func views[R interface{ view() runView }](runs []R) []runView {
	v := make([]runView, len(runs))
	for i, m := range runs {
		v[i] = m.view()
	}
	return v
}

// table prints a benchmark's table: a label, a cell a round, the median.
// Its runs are the result's, in the same order.
type table struct {
	w          io.Writer
	labelWidth int
	rounds     int
	runs       []runView
}

const cellWidth = 11

// header prints a blank line and the column heads.
func (t *table) header() {
	fmt.Fprintln(t.w)
	heads := make([]string, t.rounds)
	for i := range heads {
		heads[i] = fmt.Sprintf("round %d", i+1)
	}
	t.row("", heads, "median")
}

func (t *table) row(label string, cells []string, med string) {
	line := fmt.Sprintf("%-*s", t.labelWidth, label)
	for _, c := range cells {
		line += fmt.Sprintf("%*s", cellWidth, c)
	}
	line += fmt.Sprintf("%*s", cellWidth, med)
	fmt.Fprintln(t.w, strings.TrimRight(line, " "))
}

// cells builds a row's cells from each round's run of sys: "-" where the
// round has none, failed where it failed, else cell(i) of runs[i].
func (t *table) cells(sys, failed string, cell func(i int) string) []string {
	cells := make([]string, t.rounds)
	for i := range cells {
		cells[i] = "-"
		for j, m := range t.runs {
			if m.round == i+1 && m.system == sys {
				if m.ok {
					cells[i] = cell(j)
				} else {
					cells[i] = failed
				}
			}
		}
	}
	return cells
}

// valueRow prints a row of value(i) for each round's run of sys (ok false:
// "-") and the median of the values, as format prints them.
func (t *table) valueRow(label, sys string, value func(i int) (v float64, ok bool), format func(float64) string) {
	var vals []float64
	cells := t.cells(sys, "FAILED", func(i int) string {
		v, ok := value(i)
		if !ok {
			return "-"
		}
		vals = append(vals, v)
		return format(v)
	})
	med := "-"
	if len(vals) > 0 {
		med = format(median(vals))
	}
	t.row(label, cells, med)
}

// cpuRow prints the user+sys CPU seconds of each round's run of sys and
// their medians; failed is what a failed run's cell shows.
func (t *table) cpuRow(label, sys, failed string) {
	var users, syss []float64
	cells := t.cells(sys, failed, func(i int) string {
		m := t.runs[i]
		users, syss = append(users, m.user), append(syss, m.sys)
		return fmt.Sprintf("%.1f+%.1f", m.user, m.sys)
	})
	med := "-"
	if len(users) > 0 {
		med = fmt.Sprintf("%.1f+%.1f", median(users), median(syss))
	}
	t.row(label, cells, med)
}

// phaseRows prints a row for each phase the reports of sys's runs name, in
// report order, labelled label(phase), then one of the seconds outside the
// job (the run's wall clock less the job's total), labelled outside.
func (t *table) phaseRows(sys string, label func(phase string) string, outside string) {
	var names []string
	for _, m := range t.runs {
		if m.system != sys || m.report == nil {
			continue
		}
		for _, p := range m.report.Phases {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	for _, ph := range names {
		t.valueRow(label(ph), sys, func(i int) (float64, bool) {
			rep := t.runs[i].report
			return phaseSeconds(rep, ph), rep != nil
		}, secsText)
	}
	t.valueRow(outside, sys, func(i int) (float64, bool) {
		m := t.runs[i]
		if m.report == nil {
			return 0, false
		}
		return m.seconds - m.report.Total.Seconds(), true
	}, secsText)
}

// loadRow prints the 1-minute load average at each round's start.
func (t *table) loadRow() {
	loads := make([]string, t.rounds)
	for i := range loads {
		loads[i] = "-"
		for _, m := range t.runs {
			if m.round == i+1 {
				loads[i] = strings.Fields(m.load + " -")[0]
				break
			}
		}
	}
	t.row("load average (1 min) at the round's start", loads, "")
}

// validation prints a blank line, then that every sorted output was valid
// (records records, checksum), or else every failure.
func (t *table) validation(failures []string, records int64, checksum string) {
	fmt.Fprintln(t.w)
	var validated int
	for _, m := range t.runs {
		if m.validated {
			validated++
		}
	}
	if len(failures) == 0 {
		fmt.Fprintf(t.w, "validation: all %d sorted outputs have %d records, checksum %s, in order\n", validated, records, checksum)
		return
	}
	fmt.Fprintf(t.w, "!!! %d RUN(S) OR VALIDATION(S) FAILED (%d sorted outputs valid):\n", len(failures), validated)
	for _, f := range failures {
		fmt.Fprintf(t.w, "!!!   %s\n", f)
	}
}

// verdict returns what a target's line says was measured, and PASS, MISS
// or n/a.
func verdict(t Target) (got, pass string) {
	if !t.Known {
		return "not measured", "n/a"
	}
	if t.Unit == "B" {
		got = units.Format(int64(t.Got))
	} else {
		got = fmt.Sprintf("%.2f%s", t.Got, t.Unit)
	}
	if t.Pass {
		return got, "PASS"
	}
	return got, "MISS"
}

func secsText(v float64) string { return fmt.Sprintf("%.2f", v) }

const labelWidth = 44

func (b *bench) writeTable() {
	r, w := b.res, b.w
	t := &table{w: w, labelWidth: labelWidth, rounds: r.Rounds, runs: views(r.Runs)}
	t.header()
	// per builds a row's cells from round's measurement of sys.
	per := func(sys string, f func(m *Measurement) string) []string {
		return t.cells(sys, "FAILED", func(i int) string { return f(r.Runs[i]) })
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
		return units.Format(v)
	}
	ratios := func(f func(Ratios) float64) []string {
		cells := make([]string, r.Rounds)
		for i, rt := range r.Ratios {
			cells[i] = benchfmt.Ratio(f(rt))
		}
		return cells
	}
	med := r.Median

	if b.run[Engine] {
		t.row("engine MB/s (wall clock of the process)", per(Engine, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.EngineMBps))
		t.row("  engine seconds (wall clock)", per(Engine, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.EngineSeconds))
		t.cpuRow("  engine CPU s (user+sys)", Engine, "FAILED")
		t.row("  engine's own sort rate MB/s (map+reduce)", per(Engine, func(m *Measurement) string {
			if m.Report == nil {
				return "-"
			}
			return mbps(m.Report.MBps)
		}), mbps(med.EngineOwnMBps))
		t.phaseRows(Engine, func(ph string) string { return "    phase " + ph + " s" }, "    outside the job s (process, node start)")
	}
	if b.run[GNU] {
		t.row("GNU sort MB/s (sort + fsync)", per(GNU, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.GNUMBps))
		t.row("  GNU sort seconds", per(GNU, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.GNUSeconds))
		t.cpuRow("  GNU sort CPU s (user+sys)", GNU, "FAILED")
	}
	if b.run[Disk] {
		t.row("disk ceiling MB/s (copy + fsync)", per(Disk, func(m *Measurement) string { return mbps(m.MBps) }), mbps(med.DiskMBps))
		t.row("  disk ceiling seconds", per(Disk, func(m *Measurement) string { return secs(m.Seconds) }), secs(med.DiskSeconds))
	}
	if b.run[Engine] {
		t.row("engine peak RSS (rusage maxrss)", per(Engine, func(m *Measurement) string { return bytesText(m.PeakRSS) }), bytesText(med.EnginePeakRSS))
	}
	if b.run[GNU] {
		t.row("GNU sort peak RSS (rusage maxrss)", per(GNU, func(m *Measurement) string { return bytesText(m.PeakRSS) }), bytesText(med.GNUPeakRSS))
	}
	if b.run[Engine] && b.run[GNU] {
		t.row("engine/GNU sort (wall clock)", ratios(func(rt Ratios) float64 { return rt.EngineOverGNU }), benchfmt.Ratio(med.EngineOverGNU))
		t.row("engine/GNU sort (engine's own rate)", ratios(func(rt Ratios) float64 { return rt.EngineOwnOverGNU }), benchfmt.Ratio(med.EngineOwnOverGNU))
	}
	if b.run[Engine] && b.run[Disk] {
		t.row("engine/disk (wall clock)", ratios(func(rt Ratios) float64 { return rt.EngineOverDisk }), benchfmt.Ratio(med.EngineOverDisk))
	}
	t.loadRow()
	fmt.Fprintln(w, "(MB = 10^6 bytes; medians are over the successful rounds; ratio medians are medians of the per-round ratios)")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (project issue; PASS/MISS is reported, a miss does not fail the command)")
	for _, tg := range r.Targets {
		got, pass := verdict(tg)
		name := tg.Name
		if tg.Unit == "B" && tg.Known {
			name += fmt.Sprintf(" (%s)", units.Format(int64(tg.Want)))
		}
		line := fmt.Sprintf("  %-62s %10s  %s", name, got, pass)
		if tg.Note != "" {
			line += " (" + tg.Note + ")"
		}
		fmt.Fprintln(w, line)
	}

	t.validation(r.Failures, r.Records, r.InputChecksum)
	fmt.Fprintf(w, "load average before %s, after %s; page cache dropped before each run: %s\n", r.LoadBefore, r.LoadAfter, yesNo(r.DropCaches))
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
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
