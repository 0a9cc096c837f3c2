package gensort

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// SummarySize is the size in bytes of one encoded Summary.
//
// Encoding (all integers little-endian):
//
//	offset size  field
//	     0    4  magic "GSUM"
//	     4    2  version (1)
//	     6    2  encoded size (260)
//	     8    8  Records
//	    16    8  Checksum.Hi
//	    24    8  Checksum.Lo
//	    32    8  Duplicates
//	    40    8  Unordered
//	    48    8  FirstUnordered
//	    56  100  First record
//	   156  100  Last record
//	   256    4  CRC32-C (Castagnoli) of bytes 0..255
//
// A summary file (valsort -o) is one encoded Summary; several concatenated
// in partition order are checked as one whole by valsort -s. This format is
// this package's own: it is not the reference valsort's native-endian C
// struct dump.
const SummarySize = 260

const (
	summaryMagic   = "GSUM"
	summaryVersion = 1
	summaryCRCOff  = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// check reports whether s is internally consistent.
func (s *Summary) check() error {
	if s.Records == 0 {
		if s.Duplicates != 0 || s.Unordered != 0 || s.FirstUnordered != 0 || !s.Checksum.IsZero() ||
			s.First != [RecordSize]byte{} || s.Last != [RecordSize]byte{} {
			return errors.New("inconsistent summary: no records but non-zero counts, checksum or records")
		}
		return nil
	}
	pairs := s.Records - 1 // adjacent record pairs
	if s.Duplicates > pairs || s.Unordered > pairs-s.Duplicates {
		return fmt.Errorf("inconsistent summary: %d duplicates + %d unordered exceed %d adjacent pairs of %d records",
			s.Duplicates, s.Unordered, pairs, s.Records)
	}
	if s.Unordered == 0 && s.FirstUnordered != 0 {
		return fmt.Errorf("inconsistent summary: first unordered record %d but no unordered records", s.FirstUnordered)
	}
	if s.Unordered != 0 && (s.FirstUnordered == 0 || s.FirstUnordered >= s.Records) {
		return fmt.Errorf("inconsistent summary: first unordered record %d out of range 1..%d", s.FirstUnordered, s.Records-1)
	}
	if s.Records == 1 && s.First != s.Last {
		return errors.New("inconsistent summary: one record but first and last records differ")
	}
	return nil
}

// MarshalBinary encodes s in the SummarySize-byte format documented at
// SummarySize. It fails only for an internally inconsistent summary.
func (s Summary) MarshalBinary() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b := make([]byte, SummarySize)
	copy(b[0:4], summaryMagic)
	binary.LittleEndian.PutUint16(b[4:6], summaryVersion)
	binary.LittleEndian.PutUint16(b[6:8], SummarySize)
	binary.LittleEndian.PutUint64(b[8:16], s.Records)
	binary.LittleEndian.PutUint64(b[16:24], s.Checksum.Hi)
	binary.LittleEndian.PutUint64(b[24:32], s.Checksum.Lo)
	binary.LittleEndian.PutUint64(b[32:40], s.Duplicates)
	binary.LittleEndian.PutUint64(b[40:48], s.Unordered)
	binary.LittleEndian.PutUint64(b[48:56], s.FirstUnordered)
	copy(b[56:156], s.First[:])
	copy(b[156:256], s.Last[:])
	binary.LittleEndian.PutUint32(b[summaryCRCOff:], crc32.Checksum(b[:summaryCRCOff], castagnoli))
	return b, nil
}

// UnmarshalBinary decodes one SummarySize-byte summary, rejecting wrong
// lengths, foreign data, unknown versions, corruption (checksum mismatch)
// and inconsistent contents. s is unchanged on error.
func (s *Summary) UnmarshalBinary(b []byte) error {
	if len(b) != SummarySize {
		return fmt.Errorf("summary is %d bytes, want %d (truncated or not a gensort summary)", len(b), SummarySize)
	}
	if string(b[0:4]) != summaryMagic {
		return fmt.Errorf("not a gensort summary: bad magic %q, want %q", b[0:4], summaryMagic)
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != summaryVersion {
		return fmt.Errorf("unsupported summary version %d, want %d", v, summaryVersion)
	}
	if n := binary.LittleEndian.Uint16(b[6:8]); n != SummarySize {
		return fmt.Errorf("summary header says %d bytes, want %d", n, SummarySize)
	}
	if got, want := crc32.Checksum(b[:summaryCRCOff], castagnoli), binary.LittleEndian.Uint32(b[summaryCRCOff:]); got != want {
		return fmt.Errorf("corrupt summary: checksum %08x, stored %08x", got, want)
	}
	var t Summary
	t.Records = binary.LittleEndian.Uint64(b[8:16])
	t.Checksum.Hi = binary.LittleEndian.Uint64(b[16:24])
	t.Checksum.Lo = binary.LittleEndian.Uint64(b[24:32])
	t.Duplicates = binary.LittleEndian.Uint64(b[32:40])
	t.Unordered = binary.LittleEndian.Uint64(b[40:48])
	t.FirstUnordered = binary.LittleEndian.Uint64(b[48:56])
	copy(t.First[:], b[56:156])
	copy(t.Last[:], b[156:256])
	if err := t.check(); err != nil {
		return err
	}
	*s = t
	return nil
}

// ReadSummaries reads a concatenation of encoded summaries until EOF.
// A trailing partial summary or any invalid summary is an error.
func ReadSummaries(r io.Reader) ([]Summary, error) {
	var out []Summary
	buf := make([]byte, SummarySize)
	for i := 0; ; i++ {
		n, err := io.ReadFull(r, buf)
		if err == io.EOF {
			return out, nil
		}
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("truncated summary %d at offset %d: only %d of %d bytes", i, int64(i)*SummarySize, n, SummarySize)
		}
		if err != nil {
			return nil, fmt.Errorf("reading summary %d: %w", i, err)
		}
		var s Summary
		if err := s.UnmarshalBinary(buf); err != nil {
			return nil, fmt.Errorf("summary %d at offset %d: %w", i, int64(i)*SummarySize, err)
		}
		out = append(out, s)
	}
}
