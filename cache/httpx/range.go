package httpx

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Range is one satisfiable byte range of a representation: Length bytes
// starting at offset Start. Ranges returned by ParseRange always have
// 0 <= Start, Length > 0 and Start+Length <= size.
type Range struct {
	Start, Length int64
}

// End returns the offset of the last byte of r, as in "bytes Start-End/size".
func (r Range) End() int64 { return r.Start + r.Length - 1 }

// MaxRanges is the largest number of range-specs ParseRange accepts in one
// Range header. A header with more is ignored (the full representation is
// served with 200), as RFC 9110 §14.2 allows for requests that look like
// a denial-of-service attempt.
const MaxRanges = 64

// ErrUnsatisfiable is returned by ParseRange when a valid Range header
// selects no byte of the representation. The response is
// 416 (Range Not Satisfiable) with Content-Range: UnsatisfiedContentRange(size).
var ErrUnsatisfiable = errors.New("httpx: range not satisfiable")

// ParseRange parses a Range header value (RFC 9110 §14.2) against a
// representation of size bytes.
//
//   - (nil, nil): ignore the header and serve 200 with the full
//     representation. This is the result for an empty header, a unit other
//     than "bytes" (case-insensitive), any syntactically invalid range-spec
//     (including first-pos > last-pos), more than MaxRanges range-specs, a
//     negative (unknown) size, and an empty representation that a suffix
//     range selects in full (a 206 cannot describe zero bytes).
//   - (ranges, nil): the satisfiable ranges in request order: "a-b" (b is
//     clamped to size-1), "a-", and suffix "-n" (the last n bytes, the whole
//     representation when n >= size). Unsatisfiable specs (a >= size, "-0")
//     are dropped. If any two satisfiable ranges overlap or touch, all of
//     them are instead sorted and merged, so no byte is sent twice
//     (RFC 9110 §15.3.7 allows coalescing); the result is then ascending.
//   - (nil, ErrUnsatisfiable): no range-spec is satisfiable.
//
// Numbers too large for int64 are valid and saturate. Whitespace around the
// comma-separated elements and empty elements are tolerated. The work done
// is bounded by len(h) and MaxRanges; the only allocation is the result.
func ParseRange(h string, size int64) ([]Range, error) {
	var buf [MaxRanges]Range
	rs, err := parseRange(&buf, h, size)
	if len(rs) == 0 {
		return nil, err
	}
	out := make([]Range, len(rs))
	copy(out, rs)
	return out, nil
}

// AppendRange is ParseRange appending to dst, for callers that reuse a
// buffer and want no allocation. If the header is to be ignored it returns
// dst unchanged and a nil error.
func AppendRange(dst []Range, h string, size int64) ([]Range, error) {
	var buf [MaxRanges]Range
	rs, err := parseRange(&buf, h, size)
	return append(dst, rs...), err
}

func parseRange(buf *[MaxRanges]Range, h string, size int64) ([]Range, error) {
	h = trimOWS(h)
	const unit = "bytes="
	if size < 0 || len(h) < len(unit) || !strings.EqualFold(h[:len(unit)], unit) {
		return nil, nil
	}
	s := h[len(unit):]
	specs, n := 0, 0
	emptySuffix := false // a satisfiable suffix-range of an empty representation
	for s != "" {
		var elem string
		if i := strings.IndexByte(s, ','); i >= 0 {
			elem, s = s[:i], s[i+1:]
		} else {
			elem, s = s, ""
		}
		elem = trimOWS(elem)
		if elem == "" {
			continue // RFC 9110 §5.6.1: empty list elements are allowed
		}
		if specs++; specs > MaxRanges {
			return nil, nil
		}
		dash := strings.IndexByte(elem, '-')
		if dash < 0 {
			return nil, nil
		}
		first, last := elem[:dash], elem[dash+1:]
		if first == "" { // suffix-range = "-" suffix-length
			l, ok := parseDigits(last)
			switch {
			case !ok:
				return nil, nil
			case l == 0: // unsatisfiable (RFC 9110 §14.1.1)
			case size == 0:
				emptySuffix = true
			default:
				l = min(l, size)
				buf[n] = Range{Start: size - l, Length: l}
				n++
			}
			continue
		}
		a, ok := parseDigits(first)
		if !ok {
			return nil, nil
		}
		end := size - 1
		if last != "" {
			b, ok := parseDigits(last)
			if !ok || b < a {
				return nil, nil
			}
			end = min(end, b)
		}
		if a >= size {
			continue // unsatisfiable
		}
		buf[n] = Range{Start: a, Length: end - a + 1}
		n++
	}
	switch {
	case specs == 0:
		return nil, nil // "bytes=" with no range-spec is invalid
	case n == 0 && emptySuffix:
		return nil, nil
	case n == 0:
		return nil, ErrUnsatisfiable
	}
	return coalesce(buf[:n]), nil
}

// coalesce returns rs unchanged if no two ranges overlap or touch, and
// otherwise sorts and merges them in place.
func coalesce(rs []Range) []Range {
	if len(rs) < 2 || !overlapping(rs) {
		return rs
	}
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Start <= last.Start+last.Length { // overlaps or touches
			last.Length = max(last.Length, r.Start+r.Length-last.Start)
			continue
		}
		out = append(out, r)
	}
	return out
}

// overlapping reports whether any two ranges overlap or are adjacent.
// len(rs) <= MaxRanges, so the quadratic scan is bounded.
func overlapping(rs []Range) bool {
	for i, a := range rs {
		for _, b := range rs[i+1:] {
			if a.Start <= b.Start+b.Length && b.Start <= a.Start+a.Length {
				return true
			}
		}
	}
	return false
}

// ContentRange returns the Content-Range value for r of a representation
// of size bytes: "bytes Start-End/size".
func ContentRange(r Range, size int64) string {
	var b [64]byte
	return string(AppendContentRange(b[:0], r, size))
}

// AppendContentRange appends ContentRange(r, size) to dst.
func AppendContentRange(dst []byte, r Range, size int64) []byte {
	dst = append(dst, "bytes "...)
	dst = strconv.AppendInt(dst, r.Start, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, r.End(), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, size, 10)
}

// UnsatisfiedContentRange returns the Content-Range value of a 416
// response: "bytes */size" (RFC 9110 §14.4).
func UnsatisfiedContentRange(size int64) string {
	return "bytes */" + strconv.FormatInt(size, 10)
}
