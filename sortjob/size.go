package sortjob

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RecordSize is the size of one GraySort record in bytes.
const RecordSize = 100

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"pib", 1 << 50},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"pb", 1e15},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"p", 1e15},
	{"b", 1},
}

// ParseSize parses a job size into a record count. Bytes take decimal units
// as GraySort does (1TB = 10^12 bytes; KiB..PiB are binary) and must be a
// whole number of 100-byte records; a record count ends in "rec" or
// "records" and may use a decimal multiplier ("10Mrec" = 10,000,000 records).
func ParseSize(s string) (int64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	in = strings.ReplaceAll(in, "_", "")
	if in == "" {
		return 0, fmt.Errorf("size is empty: give bytes such as 1GB or a record count such as 10000000rec")
	}
	records := false
	for _, suf := range []string{"records", "record", "recs", "rec"} {
		if strings.HasSuffix(in, suf) {
			in, records = strings.TrimSpace(strings.TrimSuffix(in, suf)), true
			break
		}
	}
	num, mult := in, 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(in, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(in, u.suffix)), u.mult
			break
		}
	}
	if !records && mult == 1 && num == in {
		return 0, fmt.Errorf("size %q has no unit: give bytes such as 1GB (10^9 bytes) or a record count such as %srec", s, in)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("size %q is not a number with a unit such as 1GB, 100TB or 10Mrec", s)
	}
	total := v * mult
	if !records {
		total /= RecordSize
	}
	n, err := recordsOf(s, total)
	if err != nil {
		return 0, err
	}
	if records {
		if math.Abs(total-float64(n)) > 1e-6*max(1, total) {
			return 0, fmt.Errorf("size %q is not a whole number of records", s)
		}
		return n, nil
	}
	bytes := int64(math.Round(v * mult))
	if math.Abs(v*mult-float64(bytes)) > 1e-6*max(1, v*mult) || bytes%RecordSize != 0 {
		return 0, fmt.Errorf("size %q = %d bytes is not a whole number of %d-byte records; use %dB or %drec", s, bytes, RecordSize, bytes/RecordSize*RecordSize, bytes/RecordSize)
	}
	return bytes / RecordSize, nil
}

// ParseBytes parses a byte count such as 2GB, 512MiB or 1e9B (decimal units
// are powers of 10, KiB..PiB powers of 2).
func ParseBytes(s string) (int64, error) {
	in := strings.ToLower(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
	num, mult := in, 0.0
	for _, u := range byteUnits {
		if strings.HasSuffix(in, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(in, u.suffix)), u.mult
			break
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("%q has no unit: give bytes such as 2GB or 512MiB", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a byte count such as 2GB or 512MiB", s)
	}
	return int64(v * mult), nil
}

// FormatBytes prints a byte count with a decimal unit (GB = 10^9 bytes).
func FormatBytes(n int64) string {
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
