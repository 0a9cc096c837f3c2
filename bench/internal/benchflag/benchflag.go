// Package benchflag parses the values of the benchmarks' flags that
// list things: object sizes and targets. Its errors say what is wrong
// with the value; the caller names the flag ("--sizes: …").
//
//	sizes, err := benchflag.Sizes("1KiB,64KiB", 16<<20, [2]string{"1KiB", "64KiB"}, "")
//	targets, err := benchflag.Targets("varnish", []string{"ours", "varnish"})
package benchflag

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"engine/bench/internal/benchfmt"
	"engine/internal/units"
)

// Sizes parses comma-separated object sizes such as "64KiB,1MiB" (KiB
// = 1024 bytes; empty items are skipped): each 1 byte to max, none
// twice. examples are two sizes the errors suggest; why, if set, says
// in the error for a size over max why that is the limit.
func Sizes(s string, max int64, examples [2]string, why string) ([]int64, error) {
	eg1, eg2 := examples[0], examples[1]
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := units.ParseBytes(f)
		if err != nil {
			if _, nerr := strconv.ParseInt(f, 10, 64); nerr == nil {
				return nil, fmt.Errorf("%q has no unit: give sizes such as %s or %s (or 512B)", f, eg1, eg2)
			}
			return nil, fmt.Errorf("%q is not a size such as %s or %s", f, eg1, eg2)
		}
		switch {
		case n < 1:
			return nil, fmt.Errorf("%q: objects need at least 1 byte", f)
		case n > max && why != "":
			return nil, fmt.Errorf("%q is over %s (%s)", f, benchfmt.Bytes(max), why)
		case n > max:
			return nil, fmt.Errorf("%q is over %s", f, benchfmt.Bytes(max))
		case slices.Contains(out, n):
			return nil, fmt.Errorf("%q given twice", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no sizes in %q: give sizes such as %s,%s", s, eg1, eg2)
	}
	return out, nil
}

// Targets parses a comma-separated subset of all, in the order given
// (case and spaces do not matter; empty items are skipped): none
// unknown, none twice.
func Targets(s string, all []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch {
		case f == "":
			continue
		case !slices.Contains(all, f):
			return nil, fmt.Errorf("unknown target %q: use %s", f, strings.Join(all, ", "))
		case slices.Contains(out, f):
			return nil, fmt.Errorf("%q given twice", f)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no targets in %q: use %s", s, strings.Join(all, ", "))
	}
	return out, nil
}
