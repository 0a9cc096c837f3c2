package erasure

import (
	"fmt"
	"testing"
)

// The benchmarks compare this package with the bare library call it wraps,
// on 1 MiB shards, so the cost of the checksums is visible. GB/s counts data
// bytes (k shards) per second; run with -cpu 1 for per-core figures.

var benchCodes = [][2]int{{4, 2}, {8, 3}}

const benchShard = 1 << 20

func benchStripe(b *testing.B, k, m int) (*Code, *Stripe) {
	c := mustNew(b, k, m)
	st, err := c.NewStripe(benchShard)
	if err != nil {
		b.Fatal(err)
	}
	for i := range st.Shards[:k] {
		for j := range st.Shards[i] {
			st.Shards[i][j] = byte(i*131 + j*7 + j>>9)
		}
	}
	st.DataLen = k * benchShard
	if err := c.EncodeInto(st); err != nil {
		b.Fatal(err)
	}
	return c, st
}

func reportGBs(b *testing.B, k int) {
	b.ReportMetric(float64(k*benchShard)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkEncode(b *testing.B) {
	for _, km := range benchCodes {
		k, m := km[0], km[1]
		b.Run(fmt.Sprintf("%d+%d/library", k, m), func(b *testing.B) {
			c, st := benchStripe(b, k, m)
			b.SetBytes(int64(k * benchShard))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.enc.Encode(st.Shards); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, k)
		})
		b.Run(fmt.Sprintf("%d+%d/checksums", k, m), func(b *testing.B) {
			_, st := benchStripe(b, k, m)
			b.SetBytes(int64(k * benchShard))
			b.ReportAllocs()
			for b.Loop() {
				sumShards(st.Shards, allShards(k+m), st.Sums, benchShard)
			}
			reportGBs(b, k)
		})
		b.Run(fmt.Sprintf("%d+%d/erasure", k, m), func(b *testing.B) {
			c, st := benchStripe(b, k, m)
			b.SetBytes(int64(k * benchShard))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.EncodeInto(st); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, k)
		})
	}
}

// BenchmarkReconstruct loses data shards 0 and 1 and rebuilds them in place.
// The library only recomputes them; Reconstruct also checks the k+m-2
// shards it reads and the 2 it rebuilds.
func BenchmarkReconstruct(b *testing.B) {
	for _, km := range benchCodes {
		k, m := km[0], km[1]
		for _, variant := range []string{"library", "erasure", "library-data", "erasure-data"} {
			b.Run(fmt.Sprintf("%d+%d/%s", k, m, variant), func(b *testing.B) {
				c, st := benchStripe(b, k, m)
				b.SetBytes(int64(k * benchShard))
				b.ReportAllocs()
				for b.Loop() {
					st.Shards[0], st.Shards[1] = st.Shards[0][:0], st.Shards[1][:0]
					var err error
					switch variant {
					case "library":
						err = c.enc.Reconstruct(st.Shards)
					case "library-data":
						err = c.enc.ReconstructData(st.Shards)
					case "erasure":
						_, err = c.Reconstruct(st)
					case "erasure-data":
						_, err = c.ReconstructData(st)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				reportGBs(b, k)
				if err := c.Verify(st); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkVerify is a scrub: every checksum and the parity.
func BenchmarkVerify(b *testing.B) {
	for _, km := range benchCodes {
		k, m := km[0], km[1]
		b.Run(fmt.Sprintf("%d+%d", k, m), func(b *testing.B) {
			c, st := benchStripe(b, k, m)
			b.SetBytes(int64(k * benchShard))
			for b.Loop() {
				if err := c.Verify(st); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, k)
		})
	}
}
