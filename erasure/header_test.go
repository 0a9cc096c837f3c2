package erasure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func sampleHeaders() []ShardHeader {
	sums := func(n int) []uint32 {
		s := make([]uint32, n)
		for i := range s {
			s[i] = uint32(i)*0x9e3779b9 + 1
		}
		return s
	}
	return []ShardHeader{
		{K: 1, M: 0, Index: 0, ShardSize: 1, DataLen: 0, StripeID: 0, Sums: sums(1)},
		{K: 4, M: 2, Index: 5, ShardSize: 1 << 20, DataLen: 4<<20 - 3, StripeID: 7, Sums: sums(6)},
		{K: 8, M: 3, Index: 2, ShardSize: 4096, DataLen: 1, StripeID: math.MaxUint64, Sums: sums(11)},
		{K: 255, M: 1, Index: 255, ShardSize: MaxShardSize, DataLen: 255 * MaxShardSize, StripeID: 1 << 40, Sums: sums(256)},
		{K: 1, M: 255, Index: 100, ShardSize: 3, DataLen: 3, StripeID: 42, Sums: sums(256)},
	}
}

func TestShardHeaderRoundTrip(t *testing.T) {
	for _, h := range sampleHeaders() {
		t.Run(fmt.Sprintf("%d+%d/%d", h.K, h.M, h.Index), func(t *testing.T) {
			b, err := MarshalShardHeader(&h)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != ShardHeaderSize(h.K, h.M) {
				t.Fatalf("%d bytes, ShardHeaderSize says %d", len(b), ShardHeaderSize(h.K, h.M))
			}
			stored := append(slices.Clone(b), "payload follows"...)
			got, n, err := ParseShardHeader(stored)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) {
				t.Fatalf("parsed %d bytes, wrote %d", n, len(b))
			}
			if got.K != h.K || got.M != h.M || got.Index != h.Index || got.ShardSize != h.ShardSize ||
				got.DataLen != h.DataLen || got.StripeID != h.StripeID || !slices.Equal(got.Sums, h.Sums) {
				t.Fatalf("got %+v\nwant %+v", got, h)
			}
			again, err := AppendShardHeader([]byte("x"), &got)
			if err != nil || !bytes.Equal(again[1:], b) {
				t.Fatalf("re-marshal differs: %v", err)
			}
		})
	}
}

// TestShardHeaderBitFlips flips every bit of encoded headers in turn; each
// must be rejected, as must every truncation.
func TestShardHeaderBitFlips(t *testing.T) {
	for _, h := range sampleHeaders() {
		b, err := MarshalShardHeader(&h)
		if err != nil {
			t.Fatal(err)
		}
		for bit := range len(b) * 8 {
			flipped := slices.Clone(b)
			flipped[bit/8] ^= 1 << (bit % 8)
			// Room after the header, so a flip that grows k+m is not
			// rejected merely for being short.
			flipped = append(flipped, make([]byte, 1100)...)
			if _, _, err := ParseShardHeader(flipped); !errors.Is(err, ErrHeader) {
				t.Fatalf("%d+%d: bit %d flipped: err %v, want ErrHeader", h.K, h.M, bit, err)
			}
		}
		for n := range len(b) {
			if _, _, err := ParseShardHeader(b[:n]); !errors.Is(err, ErrHeader) {
				t.Fatalf("%d+%d: first %d bytes: err %v, want ErrHeader", h.K, h.M, n, err)
			}
		}
	}
}

func TestShardHeaderInvalid(t *testing.T) {
	good := ShardHeader{K: 4, M: 2, Index: 1, ShardSize: 16, DataLen: 64, StripeID: 9, Sums: make([]uint32, 6)}
	for _, tc := range []struct {
		name   string
		change func(h *ShardHeader)
		want   string
	}{
		{"k zero", func(h *ShardHeader) { h.K = 0 }, "code 0+2"},
		{"m negative", func(h *ShardHeader) { h.M = -1 }, "code 4+-1"},
		{"too many shards", func(h *ShardHeader) { h.K, h.M = 250, 7 }, "code 250+7"},
		{"index past end", func(h *ShardHeader) { h.Index = 6 }, "index outside 0..5"},
		{"index negative", func(h *ShardHeader) { h.Index = -1 }, "index outside"},
		{"shard size zero", func(h *ShardHeader) { h.ShardSize = 0 }, "shard size 0"},
		{"shard size huge", func(h *ShardHeader) { h.ShardSize = MaxShardSize + 1 }, "shard size"},
		{"data too long", func(h *ShardHeader) { h.DataLen = 65 }, "data length 65 does not fit in 4 shards of 16 bytes"},
		{"data negative", func(h *ShardHeader) { h.DataLen = -1 }, "data length -1"},
		{"sums short", func(h *ShardHeader) { h.Sums = h.Sums[:5] }, "5 checksums for 6 shards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good
			tc.change(&h)
			_, err := MarshalShardHeader(&h)
			if !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrHeader containing %q", err, tc.want)
			}
		})
	}
	// Fields out of range, with a valid header checksum: caught after it.
	b, _ := MarshalShardHeader(&good)
	b[6] = 9 // index 9 of 6
	b = reseal(b[:len(b)-4])
	if _, _, err := ParseShardHeader(b); !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), "index outside") {
		t.Fatalf("index 9 with a good checksum: %v", err)
	}
	for _, junk := range [][]byte{nil, []byte("ECSH"), bytes.Repeat([]byte{0}, 100), []byte(strings.Repeat("ECSH\x02", 20))} {
		if _, _, err := ParseShardHeader(junk); !errors.Is(err, ErrHeader) {
			t.Fatalf("%q: %v", junk, err)
		}
	}
}

// reseal appends the header checksum to hand-edited header bytes.
func reseal(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, Checksum(b))
}

// TestStoredShards stores each shard as header+payload, loses and damages
// some, and reassembles the stripe from what is left.
func TestStoredShards(t *testing.T) {
	rng := testRand(t)
	c := mustNew(t, 8, 3)
	data := randBytes(rng, 10000)
	st, err := c.Encode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.ID = 1234
	var stored [][]byte
	for i := range st.Shards {
		h := c.ShardHeader(st, i)
		b, err := MarshalShardHeader(&h)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, append(b, st.Shards[i]...))
	}
	stored[1] = nil                          // lost with its node
	flipBit(rng, stored[3][80:])             // payload corrupt on disk (header is 80 bytes)
	stored[4] = stored[4][:len(stored[4])-1] // truncated

	got := &Stripe{}
	for i, b := range stored {
		if b == nil {
			continue
		}
		h, n, err := ParseShardHeader(b)
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
		if n != 80 {
			t.Fatalf("8+3 header is %d bytes", n)
		}
		payload := b[n:]
		perr := h.CheckPayload(payload)
		if (i == 3 || i == 4) != (perr != nil) || perr != nil && !errors.Is(perr, ErrDamaged) {
			t.Fatalf("shard %d: CheckPayload = %v", i, perr)
		}
		err = c.PutShard(got, &h, payload)
		if i == 4 {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("truncated shard: PutShard = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("shard %d: PutShard: %v", i, err)
		}
	}
	rebuilt, err := c.Reconstruct(got)
	if err != nil || !slices.Equal(rebuilt, []int{1, 3, 4}) {
		t.Fatalf("Reconstruct = %v, %v", rebuilt, err)
	}
	if out, err := c.Join(nil, got); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("Join: %v", err)
	}

	// A shard of another stripe, or another encoding, is refused.
	other, _ := c.Encode(data[:9000], 0)
	other.ID = 1234
	h := c.ShardHeader(other, 1)
	if err := c.PutShard(got, &h, other.Shards[1]); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("foreign shard: %v", err)
	}
	other.ID = 99
	h = c.ShardHeader(other, 1)
	if err := c.PutShard(got, &h, other.Shards[1]); !errors.Is(err, ErrStripe) {
		t.Fatalf("shard of stripe 99: %v", err)
	}
	c42 := mustNew(t, 4, 2)
	if err := c42.PutShard(&Stripe{}, &h, other.Shards[1]); !errors.Is(err, ErrStripe) {
		t.Fatalf("8+3 header into 4+2 code: %v", err)
	}
}

func FuzzParseShardHeader(f *testing.F) {
	for _, h := range sampleHeaders()[:3] {
		b, err := MarshalShardHeader(&h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("ECSH\x01\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseShardHeader(b)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v does not wrap ErrHeader", err)
			}
			return
		}
		if n != ShardHeaderSize(h.K, h.M) || n > len(b) {
			t.Fatalf("n = %d for %d+%d in %d bytes", n, h.K, h.M, len(b))
		}
		again, err := MarshalShardHeader(&h)
		if err != nil {
			t.Fatalf("parsed header does not marshal: %v", err)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-marshal differs from input")
		}
	})
}
