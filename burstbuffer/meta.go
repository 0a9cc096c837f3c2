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
}

// Shard payload layout (what a store keeps for one shard):
//
//	0   4  magic "BBS1"
//	4   4  meta length
//	8   4  CRC32C of the meta
//	12  …  meta (JSON)
//	…   …  erasure shard header (checksums of all k+m shards)
//	…   …  shard bytes
const payloadMagic = "BBS1"

var errPayload = errors.New("burstbuffer: bad shard payload")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func encodePayload(metaJSON []byte, h *erasure.ShardHeader, shard []byte) ([]byte, error) {
	out := make([]byte, 12, 12+len(metaJSON)+erasure.ShardHeaderSize(h.K, h.M)+len(shard))
	copy(out, payloadMagic)
	binary.BigEndian.PutUint32(out[4:], uint32(len(metaJSON)))
	binary.BigEndian.PutUint32(out[8:], crc32.Checksum(metaJSON, crcTable))
	out = append(out, metaJSON...)
	out, err := erasure.AppendShardHeader(out, h)
	if err != nil {
		return nil, err
	}
	return append(out, shard...), nil
}

// parsePayload splits a shard payload. The meta is checked against its
// CRC; the shard against the header's checksum only if verify is set.
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
	return meta, h, p[12+ml+n:], nil
}

func jsonMeta(m *Meta) ([]byte, error) { return json.Marshal(m) }
