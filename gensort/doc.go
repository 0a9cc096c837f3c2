// Package gensort reimplements the Sort Benchmark's gensort 1.5 record
// generator and valsort validator (http://www.ordinal.com/gensort.html),
// byte for byte, in pure Go.
//
// Contract:
//   - Generator produces exactly the records of gensort 1.5 (binary, -a
//     ascii, and -s skewed variants); record n depends only on n, so any
//     range can be generated independently and concatenated.
//   - A record is RecordSize (100) bytes; its key is the first KeySize (10)
//     bytes, compared as unsigned bytes (memcmp order).
//   - A checksum (Sum) is the 128-bit sum of the CRC32 (IEEE) of every
//     record; it is what gensort -c and valsort print.
//   - Validator/ValidateFile summarize a record stream (count, checksum,
//     duplicate and unordered keys, first/last record); Merge combines
//     per-partition summaries in order into the summary of the whole.
//   - RunGensort and RunValsort accept the reference tools' command lines.
//
// The algorithm (a 128-bit linear congruential generator with skip-ahead,
// a 10-deep queue of random numbers per binary record, and the skew
// scheme) follows the published gensort 1.5 description; the skew tables
// are not copied but derived at start-up from records 0..128, which is
// what they are.
package gensort
