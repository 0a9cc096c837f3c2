package flash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record header layout (little endian), HeaderSize bytes:
//
//	off len field
//	  0   4 magic     (Magic)
//	  4   1 version   (Version)
//	  5   1 type      (RecordType)
//	  6   2 reserved  (must be zero)
//	  8   8 file id
//	 16   8 file offset
//	 24   4 payload length
//	 28   8 sequence
//	 36   4 CRC32C (Castagnoli) of header bytes [0,36) followed by the payload
const (
	HeaderSize = 40
	Magic      = uint32(0xB0FFB0FF)
	Version    = uint8(1)

	// MaxPayload bounds a single record's payload.
	MaxPayload = 1 << 30
)

// RecordType says what a record means to the index.
type RecordType uint8

const (
	// TypeWrite is data written to a file at an offset.
	TypeWrite RecordType = 1
	// TypeNoop is padding / a marker; the index ignores it.
	TypeNoop RecordType = 2
	// TypeShard is one erasure-coded shard kept by a Store: File is the
	// stripe, Offset the shard index within it.
	TypeShard RecordType = 3
)

// known reports whether t is a record type this version writes and reads.
func (t RecordType) known() bool {
	return t == TypeWrite || t == TypeNoop || t == TypeShard
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a record that fails its magic, version, bounds or CRC check.
var ErrCorrupt = errors.New("flash: corrupt record")

// Record is one unit appended to the log. Seq is assigned by the log.
type Record struct {
	Type   RecordType
	File   uint64
	Offset uint64
	Data   []byte
}

// Header is a decoded record header.
type Header struct {
	Type   RecordType
	File   uint64
	Offset uint64
	Length uint32
	Seq    uint64
	CRC    uint32
}

// encodeHeader writes h (without CRC) into b[:HeaderSize]; the CRC is computed
// over the header prefix and payload and stored. It returns the CRC.
func encodeHeader(b []byte, h Header, payload []byte) uint32 {
	_ = b[HeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], Magic)
	b[4] = Version
	b[5] = byte(h.Type)
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint64(b[8:], h.File)
	binary.LittleEndian.PutUint64(b[16:], h.Offset)
	binary.LittleEndian.PutUint32(b[24:], h.Length)
	binary.LittleEndian.PutUint64(b[28:], h.Seq)
	c := crc32.Update(0, castagnoli, b[:36])
	c = crc32.Update(c, castagnoli, payload)
	binary.LittleEndian.PutUint32(b[36:], c)
	return c
}

// DecodeHeader parses and sanity-checks a record header. It does not check
// the CRC, which covers the payload too; see checkCRC.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short header (%d bytes)", ErrCorrupt, len(b))
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != Magic {
		return Header{}, fmt.Errorf("%w: bad magic %#x", ErrCorrupt, m)
	}
	if b[4] != Version {
		return Header{}, fmt.Errorf("%w: unknown version %d", ErrCorrupt, b[4])
	}
	if b[6] != 0 || b[7] != 0 {
		return Header{}, fmt.Errorf("%w: reserved bytes set", ErrCorrupt)
	}
	h := Header{
		Type:   RecordType(b[5]),
		File:   binary.LittleEndian.Uint64(b[8:]),
		Offset: binary.LittleEndian.Uint64(b[16:]),
		Length: binary.LittleEndian.Uint32(b[24:]),
		Seq:    binary.LittleEndian.Uint64(b[28:]),
		CRC:    binary.LittleEndian.Uint32(b[36:]),
	}
	if !h.Type.known() {
		return Header{}, fmt.Errorf("%w: unknown type %d", ErrCorrupt, h.Type)
	}
	if h.Length > MaxPayload {
		return Header{}, fmt.Errorf("%w: length %d too large", ErrCorrupt, h.Length)
	}
	if h.Offset+uint64(h.Length) < h.Offset {
		return Header{}, fmt.Errorf("%w: file range overflows", ErrCorrupt)
	}
	if h.Seq == 0 {
		return Header{}, fmt.Errorf("%w: zero sequence", ErrCorrupt)
	}
	return h, nil
}

// checkCRC verifies the CRC of a header b[:HeaderSize] and its payload.
func checkCRC(hdr []byte, payload []byte, want uint32) bool {
	c := crc32.Update(0, castagnoli, hdr[:36])
	c = crc32.Update(c, castagnoli, payload)
	return c == want
}
