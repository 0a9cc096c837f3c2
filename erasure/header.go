package erasure

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// ErrHeader: bytes that are not a valid shard header.
var ErrHeader = errors.New("erasure: bad shard header")

// ShardHeader describes one stored shard so that it can be checked alone and
// its stripe reassembled from any k stored shards.
//
// Encoding (little-endian), 36 + 4(k+m) bytes:
//
//	0   4  magic "ECSH"
//	4   1  version (1)
//	5   1  flags (0)
//	6   2  index of this shard, 0 ≤ index < k+m
//	8   2  k
//	10  2  m
//	12  4  shard size in bytes
//	16  8  data length in bytes, ≤ k × shard size
//	24  8  stripe id
//	32  4  CRC32C of each of the k+m shards
//	… 4  CRC32C of all the bytes above
type ShardHeader struct {
	K, M      int
	Index     int      // this shard's place in the stripe
	ShardSize int      // bytes of every shard of the stripe
	DataLen   int      // Stripe.DataLen
	StripeID  uint64   // Stripe.ID
	Sums      []uint32 // Stripe.Sums: all k+m; Sums[Index] is this payload's
}

const (
	headerMagic   = "ECSH"
	headerVersion = 1
	headerFixed   = 32 // bytes before the checksums
)

// ShardHeaderSize is the encoded size of the header of a k+m shard.
func ShardHeaderSize(k, m int) int { return headerFixed + 4*(k+m) + 4 }

// ShardHeader describes shard i of st.
func (c *Code) ShardHeader(st *Stripe, i int) ShardHeader {
	return ShardHeader{K: c.k, M: c.m, Index: i, ShardSize: len(st.Shards[i]), DataLen: st.DataLen, StripeID: st.ID, Sums: st.Sums}
}

func (h *ShardHeader) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: stripe %d shard %d: %s", ErrHeader, h.StripeID, h.Index, fmt.Sprintf(format, args...))
	}
	switch {
	case h.K < 1 || h.M < 0 || h.K > MaxShards || h.M > MaxShards || h.K+h.M > MaxShards:
		return bad("code %d+%d: want k ≥ 1, m ≥ 0, k+m ≤ %d", h.K, h.M, MaxShards)
	case h.Index < 0 || h.Index >= h.K+h.M:
		return bad("index outside 0..%d (%d+%d)", h.K+h.M-1, h.K, h.M)
	case h.ShardSize < 1 || h.ShardSize > MaxShardSize:
		return bad("shard size %d, want 1 to %d", h.ShardSize, MaxShardSize)
	case h.DataLen < 0 || h.DataLen > h.K*h.ShardSize:
		return bad("data length %d does not fit in %d shards of %d bytes", h.DataLen, h.K, h.ShardSize)
	case len(h.Sums) != h.K+h.M:
		return bad("%d checksums for %d shards", len(h.Sums), h.K+h.M)
	}
	return nil
}

// AppendShardHeader appends the encoding of h to dst. It fails on a header
// that ParseShardHeader would reject.
func AppendShardHeader(dst []byte, h *ShardHeader) ([]byte, error) {
	if err := h.check(); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = slices.Grow(dst, ShardHeaderSize(h.K, h.M))
	dst = append(dst, headerMagic...)
	dst = append(dst, headerVersion, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Index))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.K))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.M))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.ShardSize))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.DataLen))
	dst = binary.LittleEndian.AppendUint64(dst, h.StripeID)
	for _, s := range h.Sums {
		dst = binary.LittleEndian.AppendUint32(dst, s)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli)), nil
}

// MarshalShardHeader encodes h.
func MarshalShardHeader(h *ShardHeader) ([]byte, error) { return AppendShardHeader(nil, h) }

// ParseShardHeader decodes the header at the start of b and returns it with
// its length (the payload follows). It rejects anything AppendShardHeader
// would not write: wrong magic, version or flags, a short buffer, a header
// checksum that does not match, or fields out of range.
func ParseShardHeader(b []byte) (ShardHeader, int, error) {
	fail := func(format string, args ...any) (ShardHeader, int, error) {
		return ShardHeader{}, 0, fmt.Errorf("%w: %s", ErrHeader, fmt.Sprintf(format, args...))
	}
	if len(b) < headerFixed+4 {
		return fail("%d bytes, a header has at least %d", len(b), headerFixed+4)
	}
	if string(b[:4]) != headerMagic {
		return fail("magic %q, want %q: not an erasure shard", b[:4], headerMagic)
	}
	if b[4] != headerVersion {
		return fail("version %d, this build reads version %d", b[4], headerVersion)
	}
	if b[5] != 0 {
		return fail("flags %#x, this build knows none", b[5])
	}
	le := binary.LittleEndian
	k, m := int(le.Uint16(b[8:])), int(le.Uint16(b[10:]))
	if k < 1 || k+m > MaxShards {
		return fail("code %d+%d: want k ≥ 1, k+m ≤ %d", k, m, MaxShards)
	}
	n := ShardHeaderSize(k, m)
	if len(b) < n {
		return fail("%d bytes, a %d+%d header has %d", len(b), k, m, n)
	}
	if got, want := crc32.Checksum(b[:n-4], castagnoli), le.Uint32(b[n-4:]); got != want {
		return fail("header checksum %#08x, stored %#08x: header corrupt", got, want)
	}
	dataLen := le.Uint64(b[16:])
	if dataLen > uint64(MaxShards*MaxShardSize) {
		return fail("data length %d", dataLen)
	}
	h := ShardHeader{
		K: k, M: m,
		Index:     int(le.Uint16(b[6:])),
		ShardSize: int(le.Uint32(b[12:])),
		DataLen:   int(dataLen),
		StripeID:  le.Uint64(b[24:]),
		Sums:      make([]uint32, k+m),
	}
	for i := range h.Sums {
		h.Sums[i] = le.Uint32(b[headerFixed+4*i:])
	}
	if err := h.check(); err != nil {
		return ShardHeader{}, 0, err
	}
	return h, n, nil
}

// CheckPayload checks a shard's payload against the header: its size and
// its checksum. The error wraps ErrDamaged.
func (h *ShardHeader) CheckPayload(p []byte) error {
	if len(p) != h.ShardSize {
		return fmt.Errorf("%w: stripe %d shard %d: payload is %d bytes, header says %d: truncated or overwritten", ErrDamaged, h.StripeID, h.Index, len(p), h.ShardSize)
	}
	if got := Checksum(p); got != h.Sums[h.Index] {
		return fmt.Errorf("%w: stripe %d shard %d: payload checksum %#08x, header says %#08x: corrupt; rebuild it with Reconstruct", ErrDamaged, h.StripeID, h.Index, got, h.Sums[h.Index])
	}
	return nil
}

// PutShard places a stored shard (its parsed header and payload) into st for
// Reconstruct. The first shard put into a stripe with no shards sets its ID,
// DataLen and Sums; later ones must agree with them. The payload is kept, not
// copied, and is not checked here (Reconstruct checks it); one of the wrong
// size is refused.
func (c *Code) PutShard(st *Stripe, h *ShardHeader, payload []byte) error {
	n := c.k + c.m
	if h.K != c.k || h.M != c.m {
		return fmt.Errorf("%w: stripe %d shard %d: header is for a %d+%d code, this is %s", ErrStripe, h.StripeID, h.Index, h.K, h.M, c)
	}
	if err := h.check(); err != nil {
		return err
	}
	if len(payload) != h.ShardSize {
		return fmt.Errorf("%w: stripe %d shard %d: payload is %d bytes, header says %d: truncated or overwritten; leave it out and Reconstruct", ErrDamaged, h.StripeID, h.Index, len(payload), h.ShardSize)
	}
	empty := true
	for _, s := range st.Shards {
		if len(s) > 0 {
			empty = false
			break
		}
	}
	if empty {
		if len(st.Shards) != n {
			st.Shards = make([][]byte, n)
		}
		st.ID, st.DataLen = h.StripeID, h.DataLen
		st.Sums = append(st.Sums[:0], h.Sums...)
	} else {
		size := 0
		for _, s := range st.Shards {
			size = max(size, len(s))
		}
		switch {
		case len(st.Shards) != n:
			return c.errorf(st, ErrStripe, "%d shards, a %s stripe has %d", len(st.Shards), c, n)
		case h.StripeID != st.ID:
			return c.errorf(st, ErrStripe, "shard %d is from stripe %d", h.Index, h.StripeID)
		case h.DataLen != st.DataLen || h.ShardSize != size || !slices.Equal(h.Sums, st.Sums):
			return c.errorf(st, ErrInconsistent, "shard %d's header disagrees with the shards already put (data length %d vs %d, shard size %d vs %d, or checksums): a stale or foreign copy; leave it out",
				h.Index, h.DataLen, st.DataLen, h.ShardSize, size)
		}
	}
	st.Shards[h.Index] = payload
	return nil
}
