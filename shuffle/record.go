package shuffle

import (
	"bytes"
	"encoding/binary"
)

const (
	// RecordSize is the size of one record in bytes.
	RecordSize = 100
	// KeySize is the size of the sort key at the start of each record.
	KeySize = 10
)

// Key is a record's sort key.
type Key [KeySize]byte

// keyParts splits a key into the big-endian integers that order it: the first
// eight bytes and the last two.
func keyParts(k []byte) (uint64, uint16) {
	_ = k[KeySize-1]
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint16(k[8:])
}

// CompareKeys orders two records (or keys) by their first KeySize bytes.
func CompareKeys(a, b []byte) int {
	return bytes.Compare(a[:KeySize], b[:KeySize])
}
