package gensort

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"runtime"
	"sync"
)

// Summary is what valsort reports for one file or partition.
type Summary struct {
	Records        uint64
	Checksum       Sum
	Duplicates     uint64           // records whose key equals the previous record's key
	Unordered      uint64           // records whose key is less than the previous record's key
	FirstUnordered uint64           // 0-based index of the first unordered record; meaningful when Unordered > 0
	First, Last    [RecordSize]byte // first and last record; meaningful when Records > 0
}

// Ordered reports whether every record's key is >= the previous one's.
func (s Summary) Ordered() bool { return s.Unordered == 0 }

// compareKeys compares the KeySize-byte keys at the start of a and b.
func compareKeys(a, b []byte) int { return bytes.Compare(a[:KeySize], b[:KeySize]) }

// merge appends the summary of the records that follow s's records.
func (s *Summary) merge(p *Summary) {
	if p.Records == 0 {
		return
	}
	if s.Records == 0 {
		*s = *p
		return
	}
	switch c := compareKeys(s.Last[:], p.First[:]); {
	case c == 0:
		s.Duplicates++
	case c > 0:
		if s.Unordered == 0 {
			s.FirstUnordered = s.Records
		}
		s.Unordered++
	}
	if s.Unordered == 0 && p.Unordered > 0 {
		s.FirstUnordered = s.Records + p.FirstUnordered
	}
	s.Unordered += p.Unordered
	s.Duplicates += p.Duplicates
	s.Records += p.Records
	s.Checksum.Add(p.Checksum)
	s.Last = p.Last
}

// Merge combines per-partition summaries, in order, into the summary of
// their concatenation. Empty partitions are skipped; the boundary between
// consecutive non-empty partitions counts as a duplicate when the keys are
// equal and as an unordered record when the key decreases.
func Merge(parts []Summary) Summary {
	var s Summary
	for i := range parts {
		s.merge(&parts[i])
	}
	return s
}

// scanner accumulates a Summary over whole records.
type scanner struct {
	s      Summary
	prevHi uint64 // key bytes 0-7 of the previous record, big-endian
	prevLo uint16 // key bytes 8-9
}

// scan adds the whole records in b (len(b) a multiple of RecordSize).
func (sc *scanner) scan(b []byte) {
	if len(b) == 0 {
		return
	}
	s := &sc.s
	records, dups, unordered, first := s.Records, s.Duplicates, s.Unordered, s.FirstUnordered
	sumLo, sumHi := s.Checksum.Lo, s.Checksum.Hi
	ph, pl := sc.prevHi, sc.prevLo
	if records == 0 {
		copy(s.First[:], b[:RecordSize])
		ph = binary.BigEndian.Uint64(b[0:8])
		pl = binary.BigEndian.Uint16(b[8:10])
		sumLo = uint64(crc32.ChecksumIEEE(b[:RecordSize]))
		records = 1
		b = b[RecordSize:]
	}
	last := len(b) - RecordSize
	for i := 0; i+RecordSize <= len(b); i += RecordSize {
		r := b[i : i+RecordSize : i+RecordSize]
		var carry uint64
		sumLo, carry = bits.Add64(sumLo, uint64(crc32.ChecksumIEEE(r)), 0)
		sumHi += carry
		kh := binary.BigEndian.Uint64(r[0:8])
		kl := binary.BigEndian.Uint16(r[8:10])
		if kh < ph || (kh == ph && kl < pl) {
			if unordered == 0 {
				first = records
			}
			unordered++
		} else if kh == ph && kl == pl {
			dups++
		}
		ph, pl = kh, kl
		records++
	}
	if last >= 0 {
		copy(s.Last[:], b[last:])
	} else {
		// b held only the first record.
		s.Last = s.First
	}
	s.Records, s.Duplicates, s.Unordered, s.FirstUnordered = records, dups, unordered, first
	s.Checksum = Sum{Hi: sumHi, Lo: sumLo}
	sc.prevHi, sc.prevLo = ph, pl
}

// Validator computes a Summary over a stream written in chunks of any size
// (records may straddle writes). The zero value is ready to use.
type Validator struct {
	sc    scanner
	part  [RecordSize]byte // a partial record carried between writes
	npart int
}

// NewValidator returns an empty Validator.
func NewValidator() *Validator { return new(Validator) }

// Write adds p to the stream. It never fails.
func (v *Validator) Write(p []byte) (int, error) {
	n := len(p)
	if v.npart > 0 {
		c := copy(v.part[v.npart:], p)
		v.npart += c
		p = p[c:]
		if v.npart < RecordSize {
			return n, nil
		}
		v.sc.scan(v.part[:])
		v.npart = 0
	}
	whole := len(p) / RecordSize * RecordSize
	v.sc.scan(p[:whole])
	v.npart = copy(v.part[:], p[whole:])
	return n, nil
}

// Summary returns the summary of the whole records written so far. It
// returns an error (and the summary of the whole records) if a partial
// trailing record is pending.
func (v *Validator) Summary() (Summary, error) {
	if v.npart != 0 {
		return v.sc.s, fmt.Errorf("partial trailing record: %d bytes left over after %d whole records (stream length is not a multiple of %d)",
			v.npart, v.sc.s.Records, RecordSize)
	}
	return v.sc.s, nil
}

// ioChunk is the size of one file read or write: the largest multiple of
// RecordSize not above 4 MiB, so chunks always start on a record boundary.
const ioChunk = (4 << 20) / RecordSize * RecordSize

// maxWorkers bounds the goroutines used to generate or validate one file.
const maxWorkers = 4

func numWorkers(chunks int64) int {
	w := min(runtime.GOMAXPROCS(0), maxWorkers)
	if int64(w) > chunks {
		w = int(chunks)
	}
	return max(w, 1)
}

// ValidateFile reads the file at path with large sequential reads and
// returns its Summary. Big files are validated in parallel in ioChunk
// pieces whose summaries are merged in order. Errors name the file; a
// file whose size is not a multiple of RecordSize is an error that gives
// the offset of the partial trailing record and the file size.
func ValidateFile(ctx context.Context, path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Summary{}, err
	}
	if !st.Mode().IsRegular() {
		return validateStream(ctx, path, f)
	}
	size := st.Size()
	if rem := size % RecordSize; rem != 0 {
		return Summary{}, fmt.Errorf("%s: partial trailing record: %d bytes left over at offset %d (file size %d is not a multiple of %d)",
			path, rem, size-rem, size, RecordSize)
	}
	chunks := (size + ioChunk - 1) / ioChunk
	workers := numWorkers(chunks)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		s   Summary
		err error
	}
	outs := make([]chan result, workers)
	var wg sync.WaitGroup
	for w := range outs {
		outs[w] = make(chan result, 2)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, min(ioChunk, size))
			for k := int64(w); k < chunks; k += int64(workers) {
				var res result
				if err := ctx.Err(); err != nil {
					res.err = err
				} else {
					off := k * ioChunk
					b := buf[:min(ioChunk, size-off)]
					if n, err := f.ReadAt(b, off); err != nil && !(err == io.EOF && n == len(b)) {
						if err == io.EOF {
							err = fmt.Errorf("file shrank to %d bytes while being read (was %d)", off+int64(n), size)
						}
						res.err = fmt.Errorf("%s: read at offset %d: %w", path, off, err)
					} else {
						var sc scanner
						sc.scan(b)
						res.s = sc.s
					}
				}
				select {
				case outs[w] <- res:
				case <-ctx.Done():
					return
				}
				if res.err != nil {
					return
				}
			}
		}(w)
	}
	var total Summary
	var firstErr error
	for k := int64(0); k < chunks; k++ {
		var res result
		select {
		case res = <-outs[k%int64(workers)]:
		case <-ctx.Done():
			res.err = ctx.Err()
		}
		if res.err != nil {
			firstErr = res.err
			break
		}
		total.merge(&res.s)
	}
	cancel()
	wg.Wait()
	if firstErr != nil {
		if errors.Is(firstErr, context.Canceled) || errors.Is(firstErr, context.DeadlineExceeded) {
			firstErr = fmt.Errorf("%s: validation interrupted: %w", path, firstErr)
		}
		return Summary{}, firstErr
	}
	return total, nil
}

// validateStream validates a non-regular file (pipe, device) sequentially.
func validateStream(ctx context.Context, path string, r io.Reader) (Summary, error) {
	v := NewValidator()
	buf := make([]byte, ioChunk)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return Summary{}, fmt.Errorf("%s: validation interrupted: %w", path, err)
		}
		n, err := io.ReadFull(r, buf)
		v.Write(buf[:n])
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return Summary{}, fmt.Errorf("%s: read at offset %d: %w", path, off, err)
		}
	}
	s, err := v.Summary()
	if err != nil {
		rem := off % RecordSize
		return Summary{}, fmt.Errorf("%s: partial trailing record: %d bytes left over at offset %d (stream length %d is not a multiple of %d)",
			path, rem, off-rem, off, RecordSize)
	}
	return s, nil
}
