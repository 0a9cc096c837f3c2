package burstbuffer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"engine/erasure"
)

// StoreRef names one shard store: a flash directory of a node.
type StoreRef struct {
	Node  string `json:"n"`
	Store int    `json:"s"`
}

func (r StoreRef) String() string { return fmt.Sprintf("%s/store-%d", r.Node, r.Store) }

// Meta describes a stripe: its code and size, where its k+m shards are,
// and the writes its data holds. Every shard carries the meta of its
// stripe, so the shards are the truth the index is rebuilt from.
type Meta struct {
	Stripe    uint64     `json:"id"`
	Writer    string     `json:"w"`
	Gen       int        `json:"g,omitempty"` // placement generation: raised when a repair moves shards
	K         int        `json:"k"`
	M         int        `json:"m"`
	ShardSize int        `json:"ss"`
	DataLen   int        `json:"dl"`
	Stores    []StoreRef `json:"st"` // Stores[i] holds shard i
	Files     []FileRef  `json:"f"`
	Writes    []Write    `json:"wr"` // Write.File is a file id of Files
	// Done lists the writer's stripes whose k+m shards were all stored
	// since its previous stripe: after a restart, a stripe named here that
	// has fewer than k shards left was acknowledged and is lost (its bytes
	// read as EIO), not an unfinished write to forget.
	Done []uint64 `json:"d,omitempty"`
}

// Shard payload layout (what a store keeps for one shard):
//
//	0   4  magic "BBS2"
//	4   4  meta length
//	8   4  CRC32C of the meta
//	12  …  meta (JSON)
//	…   …  erasure shard header (checksums of all k+m whole shards)
//	…   …  CRC32C of each 4 KiB block of the shard (the last may be short)
//	…   …  shard bytes
//
// The block checksums let a small read check only the blocks it reads; a
// rebuild checks whole shards against the header.
const (
	payloadMagic = "BBS2"
	blockSize    = 4096
)

var errPayload = errors.New("burstbuffer: bad shard payload")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func numBlocks(shardSize int) int { return (shardSize + blockSize - 1) / blockSize }

func encodePayload(metaJSON []byte, h *erasure.ShardHeader, shard []byte) ([]byte, error) {
	nb := numBlocks(len(shard))
	out := make([]byte, 12, 12+len(metaJSON)+erasure.ShardHeaderSize(h.K, h.M)+4*nb+len(shard))
	copy(out, payloadMagic)
	binary.BigEndian.PutUint32(out[4:], uint32(len(metaJSON)))
	binary.BigEndian.PutUint32(out[8:], crc32.Checksum(metaJSON, crcTable))
	out = append(out, metaJSON...)
	out, err := erasure.AppendShardHeader(out, h)
	if err != nil {
		return nil, err
	}
	for b := 0; b < nb; b++ {
		out = binary.BigEndian.AppendUint32(out, crc32.Checksum(shard[b*blockSize:min((b+1)*blockSize, len(shard))], crcTable))
	}
	return append(out, shard...), nil
}

// parsePayload splits a shard payload. The meta is checked against its
// CRC if wanted; the shard is not checked.
func parsePayload(p []byte, wantMeta bool) (*Meta, erasure.ShardHeader, []byte, error) {
	var h erasure.ShardHeader
	if len(p) < 12 || string(p[:4]) != payloadMagic {
		return nil, h, nil, fmt.Errorf("%w: no magic", errPayload)
	}
	ml := int(binary.BigEndian.Uint32(p[4:]))
	if ml > len(p)-12 {
		return nil, h, nil, fmt.Errorf("%w: meta length %d past the end", errPayload, ml)
	}
	mj := p[12 : 12+ml]
	var meta *Meta
	if wantMeta {
		if crc32.Checksum(mj, crcTable) != binary.BigEndian.Uint32(p[8:]) {
			return nil, h, nil, fmt.Errorf("%w: meta checksum mismatch", errPayload)
		}
		meta = new(Meta)
		if err := json.Unmarshal(mj, meta); err != nil {
			return nil, h, nil, fmt.Errorf("%w: meta: %v", errPayload, err)
		}
	}
	h, n, err := erasure.ParseShardHeader(p[12+ml:])
	if err != nil {
		return nil, h, nil, err
	}
	rest := p[12+ml+n:]
	if skip := 4 * numBlocks(h.ShardSize); skip <= len(rest) {
		rest = rest[skip:]
	} else {
		return nil, h, nil, fmt.Errorf("%w: block checksums past the end", errPayload)
	}
	return meta, h, rest, nil
}

// rangeReader reads part of a stored payload (flash.Store.ReadAt).
type rangeReader func(p []byte, off int64) (int, error)

// readShardRange reads n bytes at off of shard idx of a stripe whose
// shards are shardSize bytes in a k+m code, from a stored payload, and
// checks the 4 KiB blocks it read against their checksums.
func readShardRange(read rangeReader, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, layout, error) {
	var l layout
	if off < 0 || n < 0 || off+n > shardSize {
		return nil, l, fmt.Errorf("burstbuffer: range %d+%d outside a %d-byte shard", off, n, shardSize)
	}
	var pre [12]byte
	if _, err := read(pre[:], 0); err != nil {
		return nil, l, err
	}
	if string(pre[:4]) != payloadMagic {
		return nil, l, fmt.Errorf("%w: no magic", errPayload)
	}
	hdrOff := 12 + int64(binary.BigEndian.Uint32(pre[4:]))
	hs := erasure.ShardHeaderSize(k, m)
	nb := numBlocks(shardSize)
	b0, b1 := off/blockSize, (off+n-1)/blockSize
	if n == 0 {
		return nil, l, nil
	}
	meta := make([]byte, hs+4*nb)
	if _, err := read(meta, hdrOff); err != nil {
		return nil, l, err
	}
	h, _, err := erasure.ParseShardHeader(meta[:hs])
	if err != nil {
		return nil, l, err
	}
	if h.StripeID != stripe || h.Index != idx || h.ShardSize != shardSize {
		return nil, l, fmt.Errorf("%w: holds stripe %016x shard %d of %d bytes, want %016x shard %d of %d", errPayload, h.StripeID, h.Index, h.ShardSize, stripe, idx, shardSize)
	}
	dataOff := hdrOff + int64(hs+4*nb)
	lo, hi := b0*blockSize, min((b1+1)*blockSize, shardSize)
	buf := make([]byte, hi-lo)
	if _, err := read(buf, dataOff+int64(lo)); err != nil {
		return nil, l, err
	}
	sums := meta[hs:]
	if err := checkBlocks(buf, sums, stripe, idx, b0, b1); err != nil {
		return nil, l, err
	}
	return buf[off-lo : off-lo+n], layout{shardSize: shardSize, dataOff: dataOff, sums: sums}, nil
}

// checkBlocks checks blocks b0..b1 of a shard, read into buf, against sums.
func checkBlocks(buf, sums []byte, stripe uint64, idx, b0, b1 int) error {
	for b := b0; b <= b1; b++ {
		blk := buf[(b-b0)*blockSize : min((b-b0+1)*blockSize, len(buf))]
		want := binary.BigEndian.Uint32(sums[4*b:])
		if got := crc32.Checksum(blk, crcTable); got != want {
			return fmt.Errorf("%w: stripe %016x shard %d block %d: checksum %#08x, stored %#08x", erasure.ErrDamaged, stripe, idx, b, got, want)
		}
	}
	return nil
}
