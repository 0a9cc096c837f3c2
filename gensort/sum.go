package gensort

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"strconv"
)

// Sum is the 128-bit sum of per-record CRC32s that gensort -c and valsort
// print as the checksum.
type Sum struct{ Hi, Lo uint64 }

// Add adds o to s (mod 2^128).
func (s *Sum) Add(o Sum) {
	var carry uint64
	s.Lo, carry = bits.Add64(s.Lo, o.Lo, 0)
	s.Hi += o.Hi + carry
}

// AddCRC adds one record's CRC32 to s.
func (s *Sum) AddCRC(crc uint32) {
	var carry uint64
	s.Lo, carry = bits.Add64(s.Lo, uint64(crc), 0)
	s.Hi += carry
}

// IsZero reports whether s is zero.
func (s Sum) IsZero() bool { return s.Hi == 0 && s.Lo == 0 }

// String returns s in lowercase hex without leading zeros ("0" for zero),
// the way gensort and valsort print it.
func (s Sum) String() string {
	if s.Hi == 0 {
		return strconv.FormatUint(s.Lo, 16)
	}
	return fmt.Sprintf("%x%016x", s.Hi, s.Lo)
}

// ParseSum parses a checksum as printed by String (1 to 32 hex digits,
// either case).
func ParseSum(str string) (Sum, error) {
	if str == "" {
		return Sum{}, errors.New("parse checksum: empty string")
	}
	if len(str) > 32 {
		return Sum{}, fmt.Errorf("parse checksum %q: more than 32 hex digits", str)
	}
	var s Sum
	for i := 0; i < len(str); i++ {
		c := str[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return Sum{}, fmt.Errorf("parse checksum %q: invalid hex digit %q", str, c)
		}
		s.Hi = s.Hi<<4 | s.Lo>>60
		s.Lo = s.Lo<<4 | uint64(d)
	}
	return s, nil
}

// RecordCRC returns the CRC32 (IEEE) of one record; len(rec) must be
// RecordSize.
func RecordCRC(rec []byte) uint32 {
	if len(rec) != RecordSize {
		panic(fmt.Sprintf("gensort: RecordCRC: record length %d, want %d", len(rec), RecordSize))
	}
	return crc32.ChecksumIEEE(rec)
}

// SumRecords returns the sum of the CRCs of the records in p; len(p) must
// be a multiple of RecordSize.
func SumRecords(p []byte) Sum {
	if len(p)%RecordSize != 0 {
		panic(fmt.Sprintf("gensort: SumRecords: buffer length %d is not a multiple of %d", len(p), RecordSize))
	}
	var s Sum
	for len(p) >= RecordSize {
		s.AddCRC(crc32.ChecksumIEEE(p[:RecordSize]))
		p = p[RecordSize:]
	}
	return s
}

// MarshalText prints s as String does.
func (s Sum) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses s as ParseSum does.
func (s *Sum) UnmarshalText(b []byte) error {
	v, err := ParseSum(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
