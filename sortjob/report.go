package sortjob

import (
	"fmt"

	"engine/gensort"
	"engine/internal/units"
	"io"
	"time"
)

// PhaseTime is one phase's wall time.
type PhaseTime struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	Bytes    int64         `json:"bytes"`
}

// Check is the valsort-style proof that the output is the sorted input.
type Check struct {
	InputRecords   int64  `json:"input_records"`
	InputChecksum  string `json:"input_checksum"`
	OutputRecords  int64  `json:"output_records"`
	OutputChecksum string `json:"output_checksum"`
	Duplicates     int64  `json:"duplicates"`
	Unordered      int64  `json:"unordered"`
	FirstUnordered int64  `json:"first_unordered,omitempty"`
	Passed         bool   `json:"passed"`
}

// MakeCheck compares the input's record count and checksum with the
// summaries of the output partitions, merged in order.
func MakeCheck(p *Plan, inRecords int64, inSum gensort.Sum, parts []gensort.Summary) Check {
	total := gensort.Merge(parts)
	c := Check{
		InputRecords: inRecords, InputChecksum: inSum.String(),
		OutputRecords: int64(total.Records), OutputChecksum: total.Checksum.String(),
		Duplicates: int64(total.Duplicates), Unordered: int64(total.Unordered),
	}
	if total.Unordered > 0 {
		c.FirstUnordered = int64(total.FirstUnordered)
	}
	c.Passed = c.InputRecords == c.OutputRecords && c.InputChecksum == c.OutputChecksum &&
		total.Unordered == 0 && total.Records == uint64(p.Records)
	return c
}

func (c Check) String() string {
	s := fmt.Sprintf("records in %d, out %d; checksum in %s, out %s; %d duplicate keys; ", c.InputRecords, c.OutputRecords, c.InputChecksum, c.OutputChecksum, c.Duplicates)
	if c.Unordered > 0 {
		return s + fmt.Sprintf("%d unordered records, the first is record %d", c.Unordered, c.FirstUnordered)
	}
	return s + "all records in order"
}

// Report is what a finished sort job tells the user.
type Report struct {
	Job        string        `json:"job"`
	Spec       Spec          `json:"spec"`
	Records    int64         `json:"records"`
	Bytes      int64         `json:"bytes"`
	Maps       int           `json:"maps"`
	Partitions int           `json:"partitions"`
	Workers    int           `json:"workers"`
	Memory     int64         `json:"memory"`
	SortBuffer int           `json:"sort_buffer"`
	Spills     int           `json:"spills"`
	Phases     []PhaseTime   `json:"phases"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Total      time.Duration `json:"total"`
	// GenerateCPU is the CPU time the map tasks spent generating input
	// (summed over workers; part of the map phase).
	GenerateCPU time.Duration `json:"generate_cpu"`
	// Rates over the sort itself: map + reduce, input read to output
	// fsynced.
	MBps        float64 `json:"mb_per_s"`
	TBPerMin    float64 `json:"tb_per_min"`
	MBpsPerCore float64 `json:"mb_per_s_per_core"`
	PeakRSS     int64   `json:"peak_rss"`
	PeakRSSNote string  `json:"peak_rss_note,omitempty"`
	Check       Check   `json:"check"`
	Output      string  `json:"output,omitempty"`
	// On a cluster: the bytes reduces fetched from other nodes, their rate
	// over the reduce stage, re-run attempts, and per-node figures.
	ShuffleBytes int64         `json:"shuffle_bytes,omitempty"`
	ShuffleMBps  float64       `json:"shuffle_mb_per_s,omitempty"`
	Retries      int           `json:"retries,omitempty"`
	Nodes        []NodeFigures `json:"nodes,omitempty"`
	// The consolidated shuffle: merge tasks that finished, the map outputs
	// they merged, and the segments a reduce read (the largest count).
	Merges            int `json:"merges,omitempty"`
	MergedMaps        int `json:"merged_maps,omitempty"`
	SegmentsPerReduce int `json:"segments_per_reduce,omitempty"`
	// Speculative attempts started, and those that finished first.
	Speculative     int `json:"speculative,omitempty"`
	SpeculativeWins int `json:"speculative_wins,omitempty"`
}

// NodeFigures is one node's share of a cluster job.
type NodeFigures struct {
	Node         string  `json:"node"`
	Maps         int     `json:"maps"`
	Reduces      int     `json:"reduces"`
	MapBytes     int64   `json:"map_bytes"`
	ReduceBytes  int64   `json:"reduce_bytes"`
	FetchedBytes int64   `json:"fetched_bytes"`
	TaskSeconds  float64 `json:"task_seconds"`
	PeakRSS      int64   `json:"peak_rss"`
}

// AddPhase appends a phase's wall time.
func (r *Report) AddPhase(name string, d time.Duration, bytes int64) {
	r.Phases = append(r.Phases, PhaseTime{Name: name, Duration: d, Bytes: bytes})
}

func (r *Report) hasPhase(name string) bool {
	for _, p := range r.Phases {
		if p.Name == name {
			return true
		}
	}
	return false
}

// SortTime is the map plus reduce time.
func (r *Report) SortTime() time.Duration {
	var d time.Duration
	for _, p := range r.Phases {
		if p.Name == "map" || p.Name == "reduce" {
			d += p.Duration
		}
	}
	return d
}

// Finish computes the rates from the phases.
func (r *Report) Finish() {
	if s := r.SortTime().Seconds(); s > 0 {
		r.MBps = float64(r.Bytes) / 1e6 / s
		r.TBPerMin = float64(r.Bytes) / 1e12 / (s / 60)
		r.MBpsPerCore = r.MBps / float64(max(r.Workers, 1))
	}
}

func (r *Report) finish(rssReset bool) {
	r.Finish()
	r.PeakRSS = PeakRSS()
	if !rssReset {
		r.PeakRSSNote = "process peak (the per-job reset was not available)"
	}
}

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) {
	src := fmt.Sprintf("generated gensort records 0..%d (%s%s)", r.Records-1, map[bool]string{false: "binary", true: "ASCII"}[r.Spec.ASCII], map[bool]string{false: "", true: ", skewed"}[r.Spec.Skew])
	if r.Spec.Input != "" {
		src = r.Spec.Input
	}
	fmt.Fprintf(w, "Sort job %s\n", r.Job)
	fmt.Fprintf(w, "  input        %s\n", src)
	fmt.Fprintf(w, "  size         %s, %d records\n", units.Format(r.Bytes), r.Records)
	workers := fmt.Sprintf("%d workers", r.Workers)
	if len(r.Nodes) > 0 {
		workers = fmt.Sprintf("%d workers on %d node(s)", r.Workers, len(r.Nodes))
	}
	fmt.Fprintf(w, "  tasks        %d map, %d reduce, %s; memory budget %s per node, sort buffer %s",
		r.Maps, r.Partitions, workers, units.Format(r.Memory), units.Format(int64(r.SortBuffer)))
	if r.Spills > 0 {
		fmt.Fprintf(w, ", %d runs spilled", r.Spills)
	}
	fmt.Fprintln(w)
	for _, p := range r.Phases {
		fmt.Fprintf(w, "  %-12s %8.2fs", p.Name, p.Duration.Seconds())
		if p.Bytes > 0 && p.Duration > 0 {
			fmt.Fprintf(w, "  %8.1f MB/s", float64(p.Bytes)/1e6/p.Duration.Seconds())
		}
		if p.Name == "map" && r.GenerateCPU > 0 {
			fmt.Fprintf(w, "  (includes generating the input: %.2fs of CPU)", r.GenerateCPU.Seconds())
		}
		if p.Name == "reduce" && !r.hasPhase("validate") {
			fmt.Fprintf(w, "  (each reduce fsyncs its partition, then reads it back and validates it)")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  total        %8.2fs\n", r.Total.Seconds())
	fmt.Fprintf(w, "  sort rate    %.1f MB/s, %.4f TB/min, %.1f MB/s per core (map+reduce: input read to output fsynced)\n", r.MBps, r.TBPerMin, r.MBpsPerCore)
	fmt.Fprintf(w, "  peak RSS     %s", units.Format(r.PeakRSS))
	if r.Memory > 0 {
		fmt.Fprintf(w, " (%.0f%% of the budget)", 100*float64(r.PeakRSS)/float64(r.Memory))
	}
	if r.PeakRSSNote != "" {
		fmt.Fprintf(w, "; %s", r.PeakRSSNote)
	}
	fmt.Fprintln(w)
	c := r.Check
	verdict := "FAILED"
	if c.Passed {
		verdict = "PASSED"
	}
	fmt.Fprintf(w, "  check        %s: records in %d = out %d; checksum in %s = out %s; %d duplicate keys; ",
		verdict, c.InputRecords, c.OutputRecords, c.InputChecksum, c.OutputChecksum, c.Duplicates)
	if c.Unordered > 0 {
		fmt.Fprintf(w, "%d unordered, first at record %d\n", c.Unordered, c.FirstUnordered)
	} else {
		fmt.Fprintf(w, "all records in order\n")
	}
	if r.Merges > 0 {
		fmt.Fprintf(w, "  merge        %d merge tasks consolidated %d of %d map outputs; a reduce read %d segments instead of %d\n",
			r.Merges, r.MergedMaps, r.Maps, r.SegmentsPerReduce, r.Maps)
	}
	if r.Speculative > 0 {
		fmt.Fprintf(w, "  speculation  %d speculative attempts of stragglers, %d finished first\n", r.Speculative, r.SpeculativeWins)
	}
	if len(r.Nodes) > 1 {
		fmt.Fprintf(w, "  shuffle      %s fetched across the network, %.1f MB/s over the reduce stage; %d re-run attempts\n",
			units.Format(r.ShuffleBytes), r.ShuffleMBps, r.Retries)
		for _, n := range r.Nodes {
			fmt.Fprintf(w, "  node %-12s %d maps (%s), %d reduces (%s out, %s fetched), %.1fs of tasks, peak RSS %s\n",
				n.Node, n.Maps, units.Format(n.MapBytes), n.Reduces, units.Format(n.ReduceBytes), units.Format(n.FetchedBytes), n.TaskSeconds, units.Format(n.PeakRSS))
		}
	}
	if r.Output != "" {
		fmt.Fprintf(w, "  output       %s (part-00000..part-%05d, valsort summaries summary-NNNNN, %s)\n", r.Output, r.Partitions-1, SuccessName)
	} else {
		fmt.Fprintf(w, "  output       validated and discarded (use --output DIR to keep it)\n")
	}
}
