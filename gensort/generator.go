package gensort

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// RecordSize is the size in bytes of one gensort record.
const RecordSize = 100

// KeySize is the size in bytes of a record's sort key (its first bytes).
const KeySize = 10

// Options selects the gensort record flavour.
type Options struct {
	ASCII bool // gensort -a: printable keys and payload, records end in "\r\n"
	Skew  bool // gensort -s: skewed key distribution
}

// queueLen is the number of consecutive random numbers a binary record
// is built from (one for the key, one for each following 10-byte part).
const queueLen = 10

// batchRecs is how many records Fill produces per inner batch.
const batchRecs = 256

// partXOR holds, for parts 1..9 of a binary record, the constants xor'ed
// into the 128-bit random number before its top 10 bytes are taken.
// Only the top 16 bits of the low word are ever used.
var partXOR = [queueLen][2]uint64{
	{0, 0},
	{0xF0E8E4E2E1D8D4D2, 0xD1CC000000000000},
	{0xCAC9C6C5C3B8B4B2, 0xB1AC000000000000},
	{0xAAA9A6A5A39C9A99, 0x9695000000000000},
	{0x938E8D8B87787472, 0x716C000000000000},
	{0x6A696665635C5A59, 0x5655000000000000},
	{0x534E4D4B473C3A39, 0x3635000000000000},
	{0x332E2D2B271E1D1B, 0x170F000000000000},
	{0xC8C4C2C198949291, 0x8CE0000000000000},
	{0x170F332E2D2B271E, 0x1D1B000000000000},
}

// Skew tables: for skew index i (0..128) the 6 key bytes that may replace
// the start of a skewed key. They are exactly the first 6 key bytes of the
// unskewed record number i, so they are computed rather than tabulated.
var (
	skewBin   [129]uint64  // the random's high word; its top 48 bits are the key bytes
	skewASCII [129][6]byte // the first 6 ascii key characters
)

func init() {
	x := randFor(u128{})
	var key [KeySize]byte
	for i := range skewBin {
		skewBin[i] = x.hi
		asciiKey(key[:], x)
		copy(skewASCII[i][:], key[:6])
		x = step(x)
	}
}

// skewIndex is gensort's skew index for record number n: the number of
// significant bits of n, except that a record number whose top nibble (of
// its most significant non-zero 64-bit half) is non-zero maps to 64 or 128.
func skewIndex(n u128) int {
	if n.hi == 0 {
		if n.lo>>60 != 0 {
			return 64
		}
		return bits.Len64(n.lo)
	}
	if n.hi>>60 != 0 {
		return 128
	}
	return 64 + bits.Len64(n.hi)
}

// Generator produces gensort records numbered Start, Start+1, ...; it is
// not safe for concurrent use.
type Generator struct {
	opts Options
	pos  u128 // number of the next record to generate
	// q[0:queueLen-1] holds the random numbers of records pos..pos+8;
	// the rest is scratch for a batch.
	q [batchRecs + queueLen - 1]u128
}

// NewGenerator returns a generator whose first record is number start.
func NewGenerator(start uint64, opts Options) *Generator {
	g := &Generator{opts: opts}
	g.Seek(start)
	return g
}

// Seek repositions the generator so the next record generated is number n.
func (g *Generator) Seek(n uint64) {
	g.pos = u128{0, n}
	x := randFor(g.pos)
	for i := 0; i < queueLen-1; i++ {
		g.q[i] = x
		x = step(x)
	}
}

// Position returns the number of the next record to be generated.
func (g *Generator) Position() uint64 { return g.pos.lo }

// Options returns the options the generator was created with.
func (g *Generator) Options() Options { return g.opts }

// Fill writes len(p)/RecordSize whole records into p and advances the
// generator. len(p) must be a multiple of RecordSize.
func (g *Generator) Fill(p []byte) {
	if len(p)%RecordSize != 0 {
		panic(fmt.Sprintf("gensort: Generator.Fill: buffer length %d is not a multiple of %d", len(p), RecordSize))
	}
	for len(p) > 0 {
		n := min(len(p)/RecordSize, batchRecs)
		// Extend the queue so q[0:n+9] are the randoms of pos..pos+n+8.
		q := g.q[:n+queueLen-1]
		x := q[queueLen-2]
		for i := queueLen - 1; i < len(q); i++ {
			x = step(x)
			q[i] = x
		}
		b := p[:n*RecordSize]
		switch {
		case g.opts.ASCII:
			fillASCII(b, q, g.pos, g.opts.Skew)
		default:
			fillBinary(b, q, g.pos, g.opts.Skew)
		}
		copy(g.q[:queueLen-1], q[n:])
		g.pos = add128(g.pos, u128{0, uint64(n)})
		p = p[n*RecordSize:]
	}
}

// put10 stores the top 10 bytes of (hi, lo) big-endian.
func put10(b []byte, hi, lo uint64) {
	_ = b[9]
	binary.BigEndian.PutUint64(b, hi)
	binary.BigEndian.PutUint16(b[8:], uint16(lo>>48))
}

func fillBinary(p []byte, q []u128, pos u128, skew bool) {
	n := len(p) / RecordSize
	for j := 0; j < n; j++ {
		w := q[j : j+queueLen : j+queueLen]
		r := p[j*RecordSize : j*RecordSize+RecordSize : j*RecordSize+RecordSize]
		kh := w[0].hi
		if skew {
			// Replace the top skewBits bits (0..48) of the key with the
			// same bits of the skew entry for this record number.
			if sb := uint(w[0].lo>>32) & 0x3F; sb != 0 && sb <= 48 {
				m := ^uint64(0) << (64 - sb)
				kh = kh&^m | skewBin[skewIndex(add128(pos, u128{0, uint64(j)}))]&m
			}
		}
		put10(r[0:10], kh, w[0].lo)
		put10(r[10:20], w[1].hi^partXOR[1][0], w[1].lo^partXOR[1][1])
		put10(r[20:30], w[2].hi^partXOR[2][0], w[2].lo^partXOR[2][1])
		put10(r[30:40], w[3].hi^partXOR[3][0], w[3].lo^partXOR[3][1])
		put10(r[40:50], w[4].hi^partXOR[4][0], w[4].lo^partXOR[4][1])
		put10(r[50:60], w[5].hi^partXOR[5][0], w[5].lo^partXOR[5][1])
		put10(r[60:70], w[6].hi^partXOR[6][0], w[6].lo^partXOR[6][1])
		put10(r[70:80], w[7].hi^partXOR[7][0], w[7].lo^partXOR[7][1])
		put10(r[80:90], w[8].hi^partXOR[8][0], w[8].lo^partXOR[8][1])
		put10(r[90:100], w[9].hi^partXOR[9][0], w[9].lo^partXOR[9][1])
	}
}

// asciiKey writes the 10 printable key characters for random x.
func asciiKey(k []byte, x u128) {
	_ = k[9]
	h := x.hi
	for i := 0; i < 8; i++ {
		d := h / 95
		k[i] = ' ' + byte(h-d*95)
		h = d
	}
	l := x.lo
	d := l / 95
	k[8] = ' ' + byte(l-d*95)
	k[9] = ' ' + byte(d%95)
}

// hex8 returns the 8 uppercase hex digits of x as a big-endian word.
func hex8(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000FFFF0000FFFF
	v = (v | v<<8) & 0x00FF00FF00FF00FF
	v = (v | v<<4) & 0x0F0F0F0F0F0F0F0F
	// nibble >= 10 gets 'A'-10 instead of '0': an extra 7.
	over := ((v + 0x0606060606060606) >> 4) & 0x0101010101010101
	return v + 0x3030303030303030 + over*7
}

// rep4 maps a nibble to its uppercase hex digit repeated 4 times.
var rep4 = func() (t [16]uint32) {
	for i := range t {
		c := uint32("0123456789ABCDEF"[i])
		t[i] = c * 0x01010101
	}
	return t
}()

func fillASCII(p []byte, q []u128, pos u128, skew bool) {
	n := len(p) / RecordSize
	rec := pos
	hiA, hiB := hex8(uint32(rec.hi>>32)), hex8(uint32(rec.hi))
	for j := 0; j < n; j++ {
		x := q[j]
		r := p[j*RecordSize : j*RecordSize+RecordSize : j*RecordSize+RecordSize]
		asciiKey(r[0:10], x)
		r[10], r[11] = ' ', ' '
		binary.BigEndian.PutUint64(r[12:20], hiA)
		binary.BigEndian.PutUint64(r[20:28], hiB)
		binary.BigEndian.PutUint64(r[28:36], hex8(uint32(rec.lo>>32)))
		binary.BigEndian.PutUint64(r[36:44], hex8(uint32(rec.lo)))
		r[44], r[45] = ' ', ' '
		l := x.lo
		binary.LittleEndian.PutUint32(r[46:50], rep4[l>>48&15])
		binary.LittleEndian.PutUint32(r[50:54], rep4[l>>44&15])
		binary.LittleEndian.PutUint32(r[54:58], rep4[l>>40&15])
		binary.LittleEndian.PutUint32(r[58:62], rep4[l>>36&15])
		binary.LittleEndian.PutUint32(r[62:66], rep4[l>>32&15])
		binary.LittleEndian.PutUint32(r[66:70], rep4[l>>28&15])
		binary.LittleEndian.PutUint32(r[70:74], rep4[l>>24&15])
		binary.LittleEndian.PutUint32(r[74:78], rep4[l>>20&15])
		binary.LittleEndian.PutUint32(r[78:82], rep4[l>>16&15])
		binary.LittleEndian.PutUint32(r[82:86], rep4[l>>12&15])
		binary.LittleEndian.PutUint32(r[86:90], rep4[l>>8&15])
		binary.LittleEndian.PutUint32(r[90:94], rep4[l>>4&15])
		binary.LittleEndian.PutUint32(r[94:98], rep4[l&15])
		r[98], r[99] = '\r', '\n'
		if skew {
			// Replace the first 0..6 key characters with the skew entry's.
			if c := int(l>>32) & 7; c != 0 && c <= 6 {
				copy(r[:c], skewASCII[skewIndex(rec)][:c])
			}
		}
		var carry uint64
		rec.lo, carry = bits.Add64(rec.lo, 1, 0)
		if carry != 0 {
			rec.hi++
			hiA, hiB = hex8(uint32(rec.hi>>32)), hex8(uint32(rec.hi))
		}
	}
}
