package s3bench

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

// result finds target's figures for an op, size and concurrency; nil
// when it did not run.
func (r *Report) result(target, op string, size int64, conc int) *Result {
	for i := range r.Results {
		res := &r.Results[i]
		if res.Target == target && res.Op == op && res.Size == size && res.Concurrency == conc {
			return res
		}
	}
	return nil
}

// judge compares ours with the peer for every op, size and concurrency
// and sets the goals.
func (b *bench) judge() { b.rep.judge() }

func (r *Report) judge() {
	r.Comparisons, r.Goals = nil, nil
	for _, size := range r.Sizes {
		for _, op := range AllOps {
			for _, conc := range r.Concurrency {
				c := compare(r.result(Ours, op, size, conc), r.result(Versitygw, op, size, conc))
				c.Op, c.Size, c.Concurrency = op, size, conc
				r.Comparisons = append(r.Comparisons, c)
				r.Goals = append(r.Goals, goal(c))
			}
		}
	}
}

// compare judges ours against the peer: the ratio of their ops/s in each
// round both completed operations, the median of those, and the verdict
// ratio ≥ GoalRatio, with no error on ours.
func compare(ours, peer *Result) Comparison {
	var c Comparison
	switch {
	case ours == nil:
		c.Verdict, c.Why = NA, "ours not measured"
		return c
	case peer == nil:
		c.Ours, c.Verdict, c.Why = ours.OpsPerSec, NA, "the peer not measured"
		return c
	}
	c.Ours, c.Peer = ours.OpsPerSec, peer.OpsPerSec
	for _, o := range ours.Rounds {
		for _, p := range peer.Rounds {
			if p.Round == o.Round && o.Ops > 0 && p.Ops > 0 {
				c.RoundRatios = append(c.RoundRatios, o.OpsPerSec/p.OpsPerSec)
			}
		}
	}
	switch {
	case len(c.RoundRatios) > 0:
		c.Ratio = benchrun.Median(c.RoundRatios)
	case c.Ours > 0 && c.Peer > 0:
		c.Ratio = c.Ours / c.Peer
	}
	switch {
	case c.Peer == 0:
		c.Verdict, c.Why = NA, "the peer completed no operation"
	case c.Ours == 0:
		c.Verdict, c.Why = Fail, "ours completed no operation"
	case ours.Errors > 0:
		c.Verdict, c.Why = Fail, fmt.Sprintf("ours had %d errors", ours.Errors)
	default:
		c.Verdict = benchrun.Verdict(c.Ratio >= GoalRatio)
		if peer.Errors > 0 {
			c.Why = fmt.Sprintf("the peer had %d errors", peer.Errors)
		}
	}
	return c
}

// goal is the project's target for one comparison.
func goal(c Comparison) Goal {
	g := Goal{
		Name:    fmt.Sprintf("%s %s, %d client%s", c.Op, benchfmt.Bytes(c.Size), c.Concurrency, plural(c.Concurrency)),
		Want:    fmt.Sprintf("ours ≥ %.2f× versitygw's ops/s", GoalRatio),
		Verdict: c.Verdict,
	}
	switch {
	case c.Ratio > 0:
		g.Got = fmt.Sprintf("ours %.1f ops/s = %.2f× versitygw %.1f ops/s", c.Ours, c.Ratio, c.Peer) + benchfmt.RoundRatios(c.RoundRatios)
		if c.Why != "" {
			g.Got += "; " + c.Why
		}
	default:
		g.Got = c.Why
	}
	return g
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
