package shuffle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// SegmentInfo locates one reduce partition's bytes in a map output data file.
type SegmentInfo struct {
	Offset int64  // byte offset in the data file
	Length int64  // bytes; a multiple of RecordSize
	CRC    uint32 // CRC32C of the segment's bytes
}

// Records returns the number of records in the segment.
func (s SegmentInfo) Records() int64 { return s.Length / RecordSize }

// Index is the index file of one map output: one SegmentInfo per reduce
// partition, in partition order, covering the data file end to end.
//
// Encoding (little-endian):
//
//	magic    [8]byte "ENGSHIX1"
//	count    uint32  number of partitions
//	reserved uint32  zero
//	count ×  { offset uint64; length uint64; crc32c uint32; reserved uint32 }
//	crc      uint32  CRC32C of all preceding bytes
type Index struct {
	Segments []SegmentInfo
}

const (
	indexMagic      = "ENGSHIX1"
	indexHeaderSize = 16
	indexEntrySize  = 24
	// maxPartitions bounds the partition count an index may declare.
	maxPartitions = 1 << 24
)

// ErrCorruptIndex reports an index file that fails its checks.
var ErrCorruptIndex = errors.New("corrupt index")

// DataBytes returns the size of the data file the index describes.
func (x *Index) DataBytes() int64 {
	if len(x.Segments) == 0 {
		return 0
	}
	last := x.Segments[len(x.Segments)-1]
	return last.Offset + last.Length
}

// MarshalBinary encodes the index.
func (x *Index) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, indexHeaderSize+len(x.Segments)*indexEntrySize+4)
	b = append(b, indexMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(x.Segments)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, s := range x.Segments {
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Length))
		b = binary.LittleEndian.AppendUint32(b, s.CRC)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes and checks an index: magic, size, checksum, and
// segments that are contiguous from offset 0 and whole records long.
func (x *Index) UnmarshalBinary(b []byte) error {
	if len(b) < indexHeaderSize+4 || string(b[:8]) != indexMagic {
		return fmt.Errorf("%w: not an index (%d bytes, bad magic or too short)", ErrCorruptIndex, len(b))
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > maxPartitions {
		return fmt.Errorf("%w: %d partitions, more than the limit of %d", ErrCorruptIndex, n, maxPartitions)
	}
	want := indexHeaderSize + int(n)*indexEntrySize + 4
	if len(b) != want {
		return fmt.Errorf("%w: %d bytes for %d partitions, want %d", ErrCorruptIndex, len(b), n, want)
	}
	body := b[:len(b)-4]
	if got, sum := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != sum {
		return fmt.Errorf("%w: checksum %08x, stored %08x", ErrCorruptIndex, got, sum)
	}
	segs := make([]SegmentInfo, n)
	var off int64
	for i := range segs {
		e := b[indexHeaderSize+i*indexEntrySize:]
		s := SegmentInfo{
			Offset: int64(binary.LittleEndian.Uint64(e)),
			Length: int64(binary.LittleEndian.Uint64(e[8:])),
			CRC:    binary.LittleEndian.Uint32(e[16:]),
		}
		if s.Offset != off || s.Length < 0 || s.Length%RecordSize != 0 || s.Offset+s.Length < s.Offset {
			return fmt.Errorf("%w: segment %d at %d+%d does not follow the previous one at %d or is not whole records", ErrCorruptIndex, i, s.Offset, s.Length, off)
		}
		off += s.Length
		segs[i] = s
	}
	x.Segments = segs
	return nil
}

// ReadIndex reads and checks an index file.
func ReadIndex(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shuffle: %w", err)
	}
	var x Index
	if err := x.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("shuffle: index %s: %w", path, err)
	}
	return &x, nil
}

// writeIndex writes an index file atomically (temporary file, fsync optional,
// rename), so a reader never sees a partial index.
func writeIndex(path string, x *Index) error {
	b, _ := x.MarshalBinary()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
