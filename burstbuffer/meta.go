package burstbuffer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

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

// Bounds on what a Meta may say. A meta comes from a peer (publish, a
// resync's Dump) or from a shard a peer stored here: Validate holds every
// one to them before the node acts on it.
const (
	// MaxShardSize bounds a stripe's shard size (Config.ShardSize too).
	MaxShardSize = 16 << 20
	// maxHandle is the kernel's MAX_HANDLE_SZ: the longest file handle.
	maxHandle = 128
	// maxDone bounds Meta.Done (a writer lists at most this many).
	maxDone = 4096
	// maxGen bounds Meta.Gen (one more per repair that moves shards).
	maxGen = 1 << 30
	// maxName bounds a node name in a meta.
	maxName = 1024
	// maxVersion bounds a write's version (nanoseconds since 1970: the
	// year 2116). Versions raise this node's clock (observe): far below
	// 2^63, its own versions can never overflow after a peer's high one.
	maxVersion = 1 << 62
)

// Validate checks that m is a stripe this node can act on safely: a code
// the erasure package supports, a shard size in 1..MaxShardSize, data that
// fits the stripe's data shards, one store for each of the k+m shards, and
// writes of files the meta lists, each inside the data, in data order,
// with file ranges that end before 2^63 and versions in 1..2^62. A file's id must be the one its
// handle gives (MakeRef). It does not check what the stores hold.
func (m *Meta) Validate() error {
	if m == nil {
		return errors.New("burstbuffer: meta: missing (null)")
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("burstbuffer: stripe %016x meta: %w", m.Stripe, err)
	}
	return nil
}

func (m *Meta) validate() error {
	switch {
	case m.K < 1 || m.M < 0 || m.K > erasure.MaxShards || m.M > erasure.MaxShards || m.K+m.M > erasure.MaxShards:
		return fmt.Errorf("code %d+%d: need k >= 1, m >= 0, k+m <= %d", m.K, m.M, erasure.MaxShards)
	case m.ShardSize < 1 || m.ShardSize > MaxShardSize:
		return fmt.Errorf("shard size %d: must be 1..%d bytes", m.ShardSize, MaxShardSize)
	case m.DataLen < 0 || int64(m.DataLen) > int64(m.K)*int64(m.ShardSize) || int64(m.DataLen) > math.MaxUint32:
		return fmt.Errorf("data length %d: must be 0..%d (k x shard size, at most 2^32-1)", m.DataLen, min(int64(m.K)*int64(m.ShardSize), math.MaxUint32))
	case m.Gen < 0 || m.Gen > maxGen:
		return fmt.Errorf("generation %d: must be 0..%d", m.Gen, maxGen)
	case len(m.Writer) > maxName:
		return fmt.Errorf("writer name of %d bytes: at most %d", len(m.Writer), maxName)
	case len(m.Stores) != m.K+m.M:
		return fmt.Errorf("%d stores for a %d+%d code: need one per shard", len(m.Stores), m.K, m.M)
	case len(m.Done) > maxDone:
		return fmt.Errorf("%d done stripes: at most %d", len(m.Done), maxDone)
	case len(m.Files) > len(m.Writes):
		return fmt.Errorf("%d files for %d writes: every file must have a write", len(m.Files), len(m.Writes))
	}
	for i, r := range m.Stores {
		if r.Node == "" || len(r.Node) > maxName || r.Store < 0 || r.Store >= erasure.MaxShards {
			return fmt.Errorf("shard %d: store %q/%d: need a node name and a store 0..%d", i, r.Node, r.Store, erasure.MaxShards-1)
		}
	}
	files := make(map[uint64]bool, len(m.Files))
	for _, f := range m.Files {
		if err := checkFileRef(f); err != nil {
			return err
		}
		if files[f.ID] {
			return fmt.Errorf("file %016x listed twice", f.ID)
		}
		files[f.ID] = true
	}
	var next uint64 // the first data byte the next write may use
	for i, w := range m.Writes {
		end := uint64(w.Pos) + uint64(w.Len)
		switch {
		case !files[w.File]:
			return fmt.Errorf("write %d: file %016x is not in the meta's files", i, w.File)
		case w.Len == 0:
			return fmt.Errorf("write %d: empty", i)
		case end > uint64(m.DataLen):
			return fmt.Errorf("write %d: data bytes %d..%d past the stripe's %d", i, w.Pos, end, m.DataLen)
		case uint64(w.Pos) < next:
			return fmt.Errorf("write %d: data bytes %d..%d overlap the previous write's (which end at %d)", i, w.Pos, end, next)
		case w.Off > math.MaxInt64-uint64(w.Len):
			return fmt.Errorf("write %d: file range %d+%d ends past 2^63-1", i, w.Off, w.Len)
		case w.Version == 0 || w.Version > maxVersion:
			return fmt.Errorf("write %d: version %d: must be 1..2^62 (a clock reading in nanoseconds)", i, w.Version)
		}
		next = end
	}
	return nil
}

// checkFileRef checks a file reference from a peer: a handle of 1..128
// bytes (MAX_HANDLE_SZ) whose id is the one MakeRef gives it.
func checkFileRef(r FileRef) error {
	if len(r.Handle) == 0 || len(r.Handle) > maxHandle {
		return fmt.Errorf("file %016x: handle of %d bytes: must be 1..%d", r.ID, len(r.Handle), maxHandle)
	}
	if id := MakeRef(r.Type, r.Handle).ID; id != r.ID {
		return fmt.Errorf("file %016x: its handle is file %016x's", r.ID, id)
	}
	return nil
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

// checkShardRange checks the arguments of a range read of a shard (a
// peer's GET range): shard idx of a k+m stripe with shards of shardSize
// bytes, n bytes at off.
func checkShardRange(idx, k, m, shardSize, off, n int) error {
	switch {
	case k < 1 || m < 0 || k > erasure.MaxShards || m > erasure.MaxShards || k+m > erasure.MaxShards:
		return fmt.Errorf("burstbuffer: range read: code %d+%d: need k >= 1, m >= 0, k+m <= %d", k, m, erasure.MaxShards)
	case idx < 0 || idx >= k+m:
		return fmt.Errorf("burstbuffer: range read: shard %d of a %d+%d stripe: must be 0..%d", idx, k, m, k+m-1)
	case shardSize < 1 || shardSize > MaxShardSize:
		return fmt.Errorf("burstbuffer: range read: shard size %d: must be 1..%d bytes", shardSize, MaxShardSize)
	case off < 0 || n < 0 || off > shardSize-n:
		return fmt.Errorf("burstbuffer: range %d+%d outside a %d-byte shard", off, n, shardSize)
	}
	return nil
}

// checkShardPayload checks a shard payload a peer sends to be stored as
// shard idx of stripe: it parses, its meta is valid and names that stripe,
// and its erasure header agrees with the meta and holds a whole shard.
// (The shard's checksum is checked when it is read.)
func checkShardPayload(p []byte, stripe uint64, idx int) error {
	meta, h, shard, err := parsePayload(p, true)
	if err != nil {
		return err
	}
	if err := meta.Validate(); err != nil {
		return err
	}
	switch {
	case meta.Stripe != stripe || h.StripeID != stripe || h.Index != idx:
		return fmt.Errorf("%w: holds stripe %016x (meta %016x) shard %d, sent as stripe %016x shard %d", errPayload, h.StripeID, meta.Stripe, h.Index, stripe, idx)
	case h.K != meta.K || h.M != meta.M || h.ShardSize != meta.ShardSize || h.DataLen != meta.DataLen:
		return fmt.Errorf("%w: stripe %016x: header says %d+%d, %d-byte shards, %d data bytes; meta says %d+%d, %d, %d", errPayload, stripe, h.K, h.M, h.ShardSize, h.DataLen, meta.K, meta.M, meta.ShardSize, meta.DataLen)
	case len(shard) != h.ShardSize:
		return fmt.Errorf("%w: stripe %016x shard %d: %d shard bytes, header says %d", errPayload, stripe, idx, len(shard), h.ShardSize)
	}
	return nil
}

// rangeReader reads part of a stored payload (flash.Store.ReadAt).
type rangeReader func(p []byte, off int64) (int, error)

// readShardRange reads n bytes at off of shard idx of a stripe whose
// shards are shardSize bytes in a k+m code, from a stored payload, and
// checks the 4 KiB blocks it read against their checksums.
func readShardRange(read rangeReader, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, layout, error) {
	var l layout
	if err := checkShardRange(idx, k, m, shardSize, off, n); err != nil {
		return nil, l, err
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
