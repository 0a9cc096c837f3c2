// Package benchfmt writes the benchmarks' figures for people: ratios,
// rates, durations and sizes, the same way in every report.
package benchfmt

import (
	"fmt"
	"strings"
)

// Ratio is v as "1.23×", "-" when there is none (v ≤ 0).
func Ratio(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// RoundRatios says, after a ratio that is the median of the rounds'
// ratios v, what those were: " (median of 3 rounds' ratios: 1.23×,
// 0.98×, 1.10×)"; "" for a single round.
func RoundRatios(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = Ratio(x)
	}
	return fmt.Sprintf(" (median of %d rounds' ratios: %s)", len(v), strings.Join(s, ", "))
}

// Rate is a rate for a table (requests/s, MB/s): whole from 100 up,
// else to one decimal; "-" for 0.
func Rate(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// Micros is a duration of us microseconds in a readable unit ("-" for 0).
func Micros(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	}
	return fmt.Sprintf("%.0f µs", us)
}

// Bytes is a size in a readable unit: 64 KiB, 1.5 MiB, 2 GiB.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// SizeLabel is a size for names, keys and paths: 1KiB, 64KiB, 1MiB,
// 1000B.
func SizeLabel(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
