package s3bench

import (
	"fmt"
	"io"
	"strings"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
)

// print writes the report as tables.
func (r *Report) print(w io.Writer) {
	h := r.Host
	fmt.Fprintf(w, "S3 benchmark: ours against versitygw, the same objects and load (issue 5)\n")
	limit := fmt.Sprintf("%gs per run", r.DurationSeconds)
	if r.DurationSeconds == 0 {
		limit = "no time limit"
	}
	fmt.Fprintf(w, "load: %s; PUT bodies %s (%s); %s, at most %d ops (a PUT run at most %s, deleted after it), %d round(s); GET reads %d objects per size\n",
		r.Client, r.PayloadHeader, r.Payload, limit, r.MaxOps, benchfmt.Bytes(r.MaxPutBytes), r.Rounds, r.Objects)
	fmt.Fprintf(w, "host: kernel %s, %d CPUs, %s, load %.2f at the start and %.2f at the end; work dir %s on %s %s (mounted at %s)\n",
		h.Kernel, h.CPUs, h.GoVersion, h.Load, h.LoadEnd, h.WorkDir, h.FSType, h.FSDevice, h.FSMount)
	fmt.Fprintln(w, "targets:")
	for _, t := range r.Targets {
		if t.Skipped != "" {
			fmt.Fprintf(w, "  %-10s SKIPPED: %s\n", t.Name, t.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %-10s %s  %s\n", t.Name, t.Endpoint, t.Version)
		fmt.Fprintf(w, "             command: %s\n", t.Command)
		fmt.Fprintf(w, "             durability: %s\n", t.Durability)
	}

	for _, size := range r.Sizes {
		for _, op := range AllOps {
			var rows []string
			for _, conc := range r.Concurrency {
				for _, res := range r.Results {
					if res.Op != op || res.Size != size || res.Concurrency != conc {
						continue
					}
					rows = append(rows, r.row(res))
				}
			}
			if len(rows) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s %s objects\n", op, benchfmt.Bytes(size))
			head := fmt.Sprintf("  %7s  %-10s %9s %9s %10s %10s %7s %11s %11s %6s %8s  %s",
				"clients", "target", "ops/s", "MB/s", "p50", "p99", "errors", "srv CPU/op", "cli CPU/op", "load", "vs peer", "goal")
			if r.Rounds > 1 {
				head += fmt.Sprintf("%*s", 17-len("goal"), "") + "rounds (ops/s)"
			}
			fmt.Fprintln(w, strings.TrimRight(head, " "))
			for _, row := range rows {
				fmt.Fprintln(w, row)
			}
		}
	}

	if len(r.Comparisons) > 0 {
		fmt.Fprintf(w, "\nours / versitygw, ops/s (goal ≥ %.2f× everywhere):\n", GoalRatio)
		line := fmt.Sprintf("  %-11s", "")
		for _, size := range r.Sizes {
			for _, op := range AllOps {
				line += fmt.Sprintf(" %14s", op+" "+benchfmt.Bytes(size))
			}
		}
		fmt.Fprintln(w, line)
		for _, conc := range r.Concurrency {
			line := fmt.Sprintf("  %-11s", fmt.Sprintf("%d client%s", conc, plural(conc)))
			for _, size := range r.Sizes {
				for _, op := range AllOps {
					cell := "-"
					for _, c := range r.Comparisons {
						if c.Op == op && c.Size == size && c.Concurrency == conc {
							cell = benchfmt.Ratio(c.Ratio) + " " + c.Verdict
						}
					}
					line += fmt.Sprintf(" %14s", cell)
				}
			}
			fmt.Fprintln(w, line)
		}
	}

	fmt.Fprintf(w, "\ngoals: %s\n", benchrun.Summary(r.Goals))
	benchrun.WriteGoals(w, r.Goals)
	benchrun.WriteEnd(w, r.Notes, r.Errors, r.Seconds)
}

// row is one result's line of its table.
func (r *Report) row(res Result) string {
	line := fmt.Sprintf("  %7d  %-10s %9s %9s %10s %10s %7d %11s %11s %6.2f",
		res.Concurrency, res.Target, benchfmt.Rate(res.OpsPerSec), benchfmt.Rate(res.MBps), benchfmt.Micros(1000*(res.P50Ms)), benchfmt.Micros(1000*(res.P99Ms)),
		res.Errors, benchfmt.Micros(res.ServerCPUPerOp), benchfmt.Micros(res.ClientCPUPerOp), res.Load)
	vs, goal := "", ""
	if res.Target == Ours {
		for _, c := range r.Comparisons {
			if c.Op == res.Op && c.Size == res.Size && c.Concurrency == res.Concurrency {
				vs = benchfmt.Ratio(c.Ratio)
				goal = c.Verdict
				if c.Verdict != NA {
					goal += fmt.Sprintf(" (≥ %.2f×)", GoalRatio)
				}
			}
		}
	}
	line += fmt.Sprintf(" %8s  %-15s  ", vs, goal)
	if r.Rounds > 1 {
		var rs []string
		for _, s := range res.Rounds {
			if s.Ops == 0 {
				rs = append(rs, "failed")
			} else {
				rs = append(rs, benchfmt.Rate(s.OpsPerSec))
			}
		}
		line += strings.Join(rs, ", ")
	}
	line = strings.TrimRight(line, " ")
	for _, s := range res.Rounds {
		if s.Errors > 0 {
			line += fmt.Sprintf("\n           round %d: %d errors, first: %s", s.Round, s.Errors, s.FirstError)
		}
		if strings.Contains(s.Settle, "NOT idle") {
			line += fmt.Sprintf("\n           round %d started on a busy machine: %s", s.Round, s.Settle)
		}
	}
	return line
}
