package edgebench

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
	fmt.Fprintln(w, "Edge cache benchmark: ours against Varnish, the same origin, objects and load generator")
	fmt.Fprintf(w, "load: %s (%s) per run, %d round(s), %d objects per size, warmed untimed before every run\n",
		r.Load, h.Wrk, r.Rounds, r.Objects)
	fmt.Fprintf(w, "checks: the timed runs count socket errors, statuses ≥ 400 and the bytes per response; a checked run of %gs after each "+
		"(a Lua response() per response, which costs wrk a copy of every body) checks every status and size: \"checked\"; "+
		"origin warm/runs: the origin's fetches in the warm-up and in the timed and checked runs\n",
		r.CheckSeconds)
	fmt.Fprintln(w, "CPU per request: user + system time over the requests wrk completed; srv: the cache's whole process tree "+
		"(engined; varnishd's manager and its cache process) from wrk's start to its exit; wrk: its own")
	fmt.Fprintf(w, "origin: %s in this process: Cache-Control: %s, strong ETags, 304 on If-None-Match; %d fetches in all (%d of them 304)\n",
		r.Origin.Endpoint, r.Origin.CacheControl, r.Origin.Fetches, r.Origin.NotModified)
	fmt.Fprintf(w, "host: kernel %s, %d CPUs, %s, load %.2f at the start and %.2f at the end; work dir %s on %s (mounted at %s)\n",
		h.Kernel, h.CPUs, h.GoVersion, h.Load, h.LoadEnd, h.WorkDir, h.FSType, h.FSMount)
	fmt.Fprintln(w, "targets:")
	for _, t := range r.Targets {
		if t.Skipped != "" {
			fmt.Fprintf(w, "  %s: %s\n", t.Name, t.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %-8s %s  %s\n", t.Name, t.Endpoint, t.Version)
		fmt.Fprintf(w, "           command: %s\n", t.Command)
		if t.Config != "" {
			fmt.Fprintf(w, "           config: %s\n", t.Config)
		}
	}

	for _, s := range r.Scenarios {
		var rows []string
		for _, name := range AllTargets {
			if res := r.result(name, s.Name); res != nil {
				rows = append(rows, r.row(*res))
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s\n", s.Name, describe(s, r.Objects))
		head := fmt.Sprintf("  %-8s %9s %8s %9s %9s %9s %9s %7s %8s %11s %11s %18s %6s %10s",
			"target", "req/s", "MB/s", "p50", "p75", "p90", "p99", "errors", "checked", "srv CPU/req", "wrk CPU/req", "origin warm/runs", "load", "vs varnish")
		if r.Rounds > 1 {
			head += "  rounds (req/s)"
		}
		fmt.Fprintln(w, head)
		for _, row := range rows {
			fmt.Fprintln(w, row)
		}
	}

	if len(r.Comparisons) > 0 {
		fmt.Fprintf(w, "\nours / varnish (goal for hits: ≥ %s the requests/s and a p99 no worse):\n", benchfmt.Ratio(GoalRatio))
		fmt.Fprintf(w, "  %-16s %8s %10s %12s %10s %14s  %s\n", "scenario", "req/s", "p99 ours", "p99 varnish", "p99 ratio", "checked req/s", "verdict")
		for _, c := range r.Comparisons {
			p99 := "-"
			if c.OursP99Us > 0 && c.PeerP99Us > 0 {
				p99 = benchfmt.Ratio(c.OursP99Us / c.PeerP99Us)
			}
			v := c.Verdict
			if c.Why != "" {
				v += " (" + c.Why + ")"
			}
			chk := "-"
			if c.OursChecked > 0 && c.PeerChecked > 0 {
				chk = benchfmt.Ratio(c.OursChecked / c.PeerChecked)
			}
			fmt.Fprintf(w, "  %-16s %8s %10s %12s %10s %14s  %s\n", c.Scenario, benchfmt.Ratio(c.Ratio),
				benchfmt.Micros(c.OursP99Us), benchfmt.Micros(c.PeerP99Us), p99, chk, v)
		}
	}

	fmt.Fprintf(w, "\ngoals: %s\n", benchrun.Summary(r.Goals))
	benchrun.WriteGoals(w, r.Goals)
	benchrun.WriteEnd(w, r.Notes, r.Errors, r.Seconds)
}

// describe says what a scenario's requests are.
func describe(s Scenario, objects int) string {
	if s.Kind == Revalidate {
		return fmt.Sprintf("GET with If-None-Match (the ETag) of %d cached objects of %s; 304 expected, without an origin fetch",
			objects, benchfmt.Bytes(s.Size))
	}
	return fmt.Sprintf("GET of %d cached objects of %s; 200 and the bytes expected", objects, benchfmt.Bytes(s.Size))
}

// row is one result's line of its table.
func (r *Report) row(res Result) string {
	line := fmt.Sprintf("  %-8s %9s %8s %9s %9s %9s %9s %7d %8d %11s %11s %18s %6.2f",
		res.Target, benchfmt.Rate(res.ReqPerSec), benchfmt.Rate(res.MBps), benchfmt.Micros(res.P50Us), benchfmt.Micros(res.P75Us),
		benchfmt.Micros(res.P90Us), benchfmt.Micros(res.P99Us), res.Errors, res.Checked,
		benchfmt.Micros(res.ServerCPUPerReq), benchfmt.Micros(res.WrkCPUPerReq),
		fmt.Sprintf("%d / %d", res.WarmFetches, res.Fetches), res.Load)
	vs := ""
	if res.Target == Ours {
		for _, c := range r.Comparisons {
			if c.Scenario == res.Scenario {
				vs = benchfmt.Ratio(c.Ratio)
			}
		}
	}
	line += fmt.Sprintf(" %10s", vs)
	if r.Rounds > 1 {
		var rs []string
		for _, s := range res.Rounds {
			if s.Requests == 0 {
				rs = append(rs, "failed")
			} else {
				rs = append(rs, benchfmt.Rate(s.ReqPerSec))
			}
		}
		line += "  " + strings.Join(rs, ", ")
	}
	line = strings.TrimRight(line, " ")
	for _, s := range res.Rounds {
		if s.Errors > 0 {
			line += fmt.Sprintf("\n           round %d: %d errors: %s", s.Round, s.Errors, s.FirstError)
		}
		if len(s.FetchedPaths) > 0 {
			var ps []string
			for _, p := range sortedPaths(s.FetchedPaths) {
				ps = append(ps, fmt.Sprintf("%s ×%d", p, s.FetchedPaths[p]))
			}
			line += fmt.Sprintf("\n           round %d: fetched from the origin while timed: %s", s.Round, strings.Join(ps, ", "))
		}
	}
	return line
}

// sortedPaths are the paths of m, sorted.
func sortedPaths(m map[string]int64) []string {
	ps := make([]string, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}
