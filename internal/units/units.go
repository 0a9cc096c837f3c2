// Package units parses and prints byte counts the way every command of the
// engine takes them: decimal units are powers of 10 (1GB = 10^9 bytes, as
// GraySort counts), KiB..PiB powers of 2, case-insensitive, with optional
// underscores (1_000MB).
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// suffixes in match order: longer suffixes first, so "kib" is not read as
// "b" after "ki".
var suffixes = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"pib", 1 << 50},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"pb", 1e15},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"p", 1e15},
	{"b", 1},
}

// Normalize lowercases s and drops spaces at the ends and underscores.
func Normalize(s string) string {
	return strings.ToLower(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
}

// Split cuts a normalized size into its number and its unit's multiplier;
// ok is false when it ends in no unit.
func Split(in string) (num string, mult float64, ok bool) {
	for _, u := range suffixes {
		if strings.HasSuffix(in, u.suffix) {
			return strings.TrimSpace(strings.TrimSuffix(in, u.suffix)), u.mult, true
		}
	}
	return in, 1, false
}

// ParseBytes parses a byte count such as 2GB, 512MiB or 1e9B.
func ParseBytes(s string) (int64, error) {
	num, mult, ok := Split(Normalize(s))
	if !ok {
		return 0, fmt.Errorf("%q has no unit: give bytes such as 2GB or 512MiB", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a byte count such as 2GB or 512MiB", s)
	}
	return int64(v * mult), nil
}

// Format prints a byte count with a decimal unit (GB = 10^9 bytes) and
// three significant digits at most.
func Format(n int64) string {
	f := float64(n)
	for _, u := range []struct {
		s string
		m float64
	}{{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if f >= u.m {
			return strconv.FormatFloat(f/u.m, 'f', prec(f/u.m), 64) + " " + u.s
		}
	}
	return fmt.Sprintf("%d B", n)
}

// FormatExact prints n bytes so that ParseBytes reads back exactly n: in
// the largest unit that divides it.
func FormatExact(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MB", 1e6}, {"MiB", 1 << 20}, {"kB", 1e3}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func prec(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	default:
		return 2
	}
}
