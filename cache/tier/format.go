package tier

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A disk entry is one file:
//
//	offset  size  field
//	0       8     magic "ectier01"
//	8       4     key length (little endian)
//	12      4     meta length
//	16      8     body length
//	24      4     CRC32C of the body
//	28      4     CRC32C of bytes 0..28, the key and the meta
//	32      …     key, meta, body
//
// The file's size must be exactly 32 + key + meta + body.
const (
	headerSize = 32
	maxKeyLen  = 64 << 10
	maxMetaLen = 1 << 20
)

var (
	fileMagic  = [8]byte{'e', 'c', 't', 'i', 'e', 'r', '0', '1'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// header is a parsed fixed header.
type header struct {
	keyLen  int
	metaLen int
	bodyLen int64
	bodyCRC uint32
	hdrCRC  uint32
}

func (h header) fileSize() int64 {
	return headerSize + int64(h.keyLen) + int64(h.metaLen) + h.bodyLen
}

func (h header) bodyOffset() int64 { return headerSize + int64(h.keyLen) + int64(h.metaLen) }

// encodeHeader fills b[:headerSize] for key, meta and a body of bodyLen
// bytes with CRC32C bodyCRC.
func encodeHeader(b []byte, key string, meta []byte, bodyLen int64, bodyCRC uint32) {
	copy(b[0:8], fileMagic[:])
	binary.LittleEndian.PutUint32(b[8:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(meta)))
	binary.LittleEndian.PutUint64(b[16:], uint64(bodyLen))
	binary.LittleEndian.PutUint32(b[24:], bodyCRC)
	c := crc32.Update(0, castagnoli, b[:28])
	c = crc32.Update(c, castagnoli, []byte(key))
	c = crc32.Update(c, castagnoli, meta)
	binary.LittleEndian.PutUint32(b[28:], c)
}

var errNotOurs = errors.New("not a cache entry (bad magic)")

// parseHeader checks the fixed header in b (at least headerSize bytes)
// against a file of fileSize bytes.
func parseHeader(b []byte, fileSize int64) (header, error) {
	if len(b) < headerSize || !bytes.Equal(b[:8], fileMagic[:]) {
		return header{}, errNotOurs
	}
	h := header{
		keyLen:  int(binary.LittleEndian.Uint32(b[8:])),
		metaLen: int(binary.LittleEndian.Uint32(b[12:])),
		bodyCRC: binary.LittleEndian.Uint32(b[24:]),
		hdrCRC:  binary.LittleEndian.Uint32(b[28:]),
	}
	bodyLen := binary.LittleEndian.Uint64(b[16:])
	if h.keyLen > maxKeyLen || h.metaLen > maxMetaLen || bodyLen > 1<<62 {
		return header{}, fmt.Errorf("implausible lengths key %d meta %d body %d", h.keyLen, h.metaLen, bodyLen)
	}
	h.bodyLen = int64(bodyLen)
	if h.fileSize() != fileSize {
		return header{}, fmt.Errorf("torn: header says %d bytes, file has %d", h.fileSize(), fileSize)
	}
	return h, nil
}

// checkKeyMeta verifies the header CRC over the fixed header in fixed and
// the key and meta in km (keyLen+metaLen bytes), and returns key and meta.
func (h header) checkKeyMeta(fixed, km []byte) (key string, meta []byte, err error) {
	if len(km) != h.keyLen+h.metaLen {
		return "", nil, fmt.Errorf("short header: %d of %d key and meta bytes", len(km), h.keyLen+h.metaLen)
	}
	c := crc32.Update(0, castagnoli, fixed[:28])
	c = crc32.Update(c, castagnoli, km)
	if c != h.hdrCRC {
		return "", nil, fmt.Errorf("header checksum %08x, want %08x", c, h.hdrCRC)
	}
	return string(km[:h.keyLen]), km[h.keyLen:], nil
}
