package edgebench

import (
	"fmt"
	"strings"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
)

// Verdicts.
const (
	Pass = benchrun.Pass
	Fail = benchrun.Fail
	NA   = benchrun.NA
)

// result finds target's figures for a scenario; nil when it did not run.
func (r *Report) result(target, scenario string) *Result {
	for i := range r.Results {
		res := &r.Results[i]
		if res.Target == target && res.Scenario == scenario {
			return res
		}
	}
	return nil
}

// notMeasured says why target has no figures.
func (r *Report) notMeasured(target string) string {
	for _, t := range r.Targets {
		if t.Name == target && t.Skipped != "" {
			return target + ": " + t.Skipped
		}
		if t.Name == target {
			return target + " not measured"
		}
	}
	return target + " not measured (not among the targets)"
}

// judge compares ours with Varnish for every scenario and sets the goals
// (the hit scenarios').
func (r *Report) judge() {
	r.Comparisons, r.Goals = nil, nil
	for _, s := range r.Scenarios {
		c := compare(s, r.result(Ours, s.Name), r.result(Varnish, s.Name))
		switch {
		case r.result(Ours, s.Name) == nil:
			c.Why = r.notMeasured(Ours)
		case r.result(Varnish, s.Name) == nil:
			c.Why = r.notMeasured(Varnish)
		}
		r.Comparisons = append(r.Comparisons, c)
		if c.HasGoal {
			r.Goals = append(r.Goals, goal(s, c))
		}
	}
}

// compare judges ours against Varnish in scenario s: the ratio of their
// requests/s in each round both completed requests and the median of
// those; for hits the verdict is ratio ≥ GoalRatio and ours' p99 ≤
// Varnish's, with no error and no origin fetch on ours in the timed runs.
func compare(s Scenario, ours, peer *Result) Comparison {
	c := Comparison{Scenario: s.Name, HasGoal: s.Kind == Hit, Verdict: NA}
	if ours == nil || peer == nil {
		if ours != nil {
			c.Ours, c.OursP99Us = ours.ReqPerSec, ours.P99Us
		}
		if peer != nil {
			c.Peer, c.PeerP99Us = peer.ReqPerSec, peer.P99Us
		}
		return c
	}
	c.Ours, c.Peer, c.OursP99Us, c.PeerP99Us = ours.ReqPerSec, peer.ReqPerSec, ours.P99Us, peer.P99Us
	c.OursChecked, c.PeerChecked = ours.CheckedReqPerSec, peer.CheckedReqPerSec
	for _, o := range ours.Rounds {
		for _, p := range peer.Rounds {
			if p.Round == o.Round && o.Requests > 0 && p.Requests > 0 && p.ReqPerSec > 0 {
				c.RoundRatios = append(c.RoundRatios, o.ReqPerSec/p.ReqPerSec)
			}
		}
	}
	switch {
	case len(c.RoundRatios) > 0:
		c.Ratio = benchrun.Median(c.RoundRatios)
	case c.Ours > 0 && c.Peer > 0:
		c.Ratio = c.Ours / c.Peer
	}
	var why []string
	switch {
	case c.Peer == 0:
		c.Why = "varnish completed no request"
	case c.Ours == 0:
		c.Verdict, c.Why = Fail, "ours completed no request"
	case ours.Errors > 0:
		c.Verdict, c.Why = Fail, fmt.Sprintf("ours had %d errors", ours.Errors)
	case !c.HasGoal:
		c.Why = "no goal: reported"
	default:
		ok := true
		if c.Ratio < GoalRatio {
			ok = false
			why = append(why, fmt.Sprintf("requests/s %s < %s", benchfmt.Ratio(c.Ratio), benchfmt.Ratio(GoalRatio)))
		}
		if c.OursP99Us > c.PeerP99Us {
			ok = false
			why = append(why, fmt.Sprintf("p99 %s > varnish's %s", benchfmt.Micros(c.OursP99Us), benchfmt.Micros(c.PeerP99Us)))
		}
		if ours.Fetches > 0 {
			ok = false
			why = append(why, fmt.Sprintf("ours fetched %d times from the origin in the timed runs: not all hits", ours.Fetches))
		}
		c.Verdict = Fail
		if ok {
			c.Verdict = Pass
		}
	}
	if peer.Errors > 0 {
		why = append(why, fmt.Sprintf("varnish had %d errors", peer.Errors))
	}
	if peer.Fetches > 0 {
		why = append(why, fmt.Sprintf("varnish fetched %d times from the origin in the timed runs", peer.Fetches))
	}
	if len(why) > 0 {
		c.Why = strings.Join(append(nonEmpty(c.Why), why...), "; ")
	}
	return c
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// goal is the project's target for one hit scenario.
func goal(s Scenario, c Comparison) Goal {
	g := Goal{
		Name:    fmt.Sprintf("hits of %s (%s)", benchfmt.Bytes(s.Size), s.Name),
		Want:    fmt.Sprintf("ours ≥ %s Varnish's requests/s, and ours' p99 ≤ Varnish's", benchfmt.Ratio(GoalRatio)),
		Verdict: c.Verdict,
	}
	switch {
	case c.Ratio > 0:
		g.Got = fmt.Sprintf("ours %.0f req/s = %s Varnish's %.0f req/s; p99 ours %s, Varnish %s",
			c.Ours, benchfmt.Ratio(c.Ratio), c.Peer, benchfmt.Micros(c.OursP99Us), benchfmt.Micros(c.PeerP99Us)) +
			benchfmt.RoundRatios(c.RoundRatios)
		if c.Why != "" {
			g.Got += "; " + c.Why
		}
	default:
		g.Got = c.Why
	}
	return g
}
