package gensort

import "math/bits"

// u128 is an unsigned 128-bit integer.
type u128 struct{ hi, lo uint64 }

// The gensort LCG: x' = a*x + c mod 2^128.
var (
	lcgA = u128{0x2360ed051fc65da4, 0x4385df649fccf645}
	lcgC = u128{0x4a696d4772617952, 0x4950202020202001} // "JimGrayRIP" ...
)

func mul128(x, y u128) u128 {
	hi, lo := bits.Mul64(x.lo, y.lo)
	hi += x.lo*y.hi + x.hi*y.lo
	return u128{hi, lo}
}

func add128(x, y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}
}

// step advances the LCG once.
func step(x u128) u128 {
	hi, lo := bits.Mul64(x.lo, lcgA.lo)
	hi += x.lo*lcgA.hi + x.hi*lcgA.lo
	lo, carry := bits.Add64(lo, lcgC.lo, 0)
	hi += lcgC.hi + carry
	return u128{hi, lo}
}

// lcgPow[i] holds (a_i, c_i) such that applying the LCG 2^i times is
// x -> a_i*x + c_i.
var lcgPow = func() (t [128][2]u128) {
	a, c := lcgA, lcgC
	for i := range t {
		t[i] = [2]u128{a, c}
		// f∘f(x) = a(ax+c)+c = a²x + (ac+c)
		c = add128(mul128(a, c), c)
		a = mul128(a, a)
	}
	return t
}()

// skipAhead returns the LCG state after n steps from 0.
func skipAhead(n u128) u128 {
	var x u128
	for i := 0; i < 128; i++ {
		w := n.lo
		if i >= 64 {
			w = n.hi
		}
		if w>>(i&63)&1 != 0 {
			p := &lcgPow[i]
			x = add128(mul128(p[0], x), p[1])
		}
	}
	return x
}

// randFor returns the random number of record n: the LCG advanced n+1
// times from 0.
func randFor(n u128) u128 { return step(skipAhead(n)) }

func (x u128) inc() u128 {
	lo, carry := bits.Add64(x.lo, 1, 0)
	return u128{x.hi + carry, lo}
}
