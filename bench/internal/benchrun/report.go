package benchrun

import (
	"fmt"
	"io"
	"slices"
)

// Verdicts.
const (
	Pass = "PASS"
	Fail = "FAIL"
	NA   = "n/a" // not judged: a side was not measured, or there is no goal
)

// Verdict is Pass if ok, else Fail.
func Verdict(ok bool) string {
	if ok {
		return Pass
	}
	return Fail
}

// Goal is one of the project's targets and how a run did.
type Goal struct {
	Name    string `json:"name"`
	Want    string `json:"want"`
	Got     string `json:"got"`
	Verdict string `json:"verdict"` // PASS, FAIL or n/a
}

// Summary counts the goals: "2 of 3 met (1 not measured)".
func Summary(goals []Goal) string {
	met, judged := 0, 0
	for _, g := range goals {
		if g.Verdict != NA {
			judged++
		}
		if g.Verdict == Pass {
			met++
		}
	}
	return fmt.Sprintf("%d of %d met (%d not measured)", met, judged, len(goals)-judged)
}

// WriteGoals writes the goals, two lines each: the verdict, the name and
// what it wants, then what the run got.
func WriteGoals(w io.Writer, goals []Goal) {
	for _, g := range goals {
		fmt.Fprintf(w, "  %-4s  %s: want %s\n        got %s\n", g.Verdict, g.Name, g.Want, g.Got)
	}
}

// WriteEnd writes the end of a report: the notes and the errors, if any,
// and how long the run took in all.
func WriteEnd(w io.Writer, notes, errors []string, seconds float64) {
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	if len(errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, e := range errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\n(%.0fs in all)\n", seconds)
}

// Median is the median of v (the mean of the middle two for an even
// count), 0 for none. v is left as it is.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
