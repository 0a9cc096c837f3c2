package sortjob

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"engine/internal/units"
)

// RecordSize is the size of one GraySort record in bytes.
const RecordSize = 100

// ParseSize parses a job size into a record count. Bytes take decimal units
// as GraySort does (1TB = 10^12 bytes; KiB..PiB are binary) and must be a
// whole number of 100-byte records; a record count ends in "rec" or
// "records" and may use a decimal multiplier ("10Mrec" = 10,000,000 records).
func ParseSize(s string) (int64, error) {
	in := units.Normalize(s)
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
	num, mult, hasUnit := units.Split(in)
	if !records && !hasUnit {
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
