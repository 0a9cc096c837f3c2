package erasure

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized tests (0: from the clock)")

// testRand returns a seeded generator and logs the seed, so a failure can be
// replayed with -seed.
func testRand(t testing.TB) *rand.Rand {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with go test -run '%s' -seed=%d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func mustNew(t testing.TB, k, m int) *Code {
	t.Helper()
	c, err := New(k, m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// clone deep-copies st.
func clone(st *Stripe) *Stripe {
	cp := *st
	cp.Shards = make([][]byte, len(st.Shards))
	for i, s := range st.Shards {
		cp.Shards[i] = slices.Clone(s)
	}
	cp.Sums = slices.Clone(st.Sums)
	return &cp
}

func flipBit(rng *rand.Rand, s []byte) {
	bit := rng.IntN(len(s) * 8)
	s[bit/8] ^= 1 << (bit % 8)
}

// subsets calls fn with every subset of 0..n-1 of at most max elements.
func subsets(n, max int, fn func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		fn(cur)
		if len(cur) == max {
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		k, m int
		err  string // substring; "" means valid
	}{
		{1, 0, ""},
		{4, 2, ""},
		{8, 3, ""},
		{256, 0, ""},
		{1, 255, ""},
		{0, 2, "erasure: code 0+2: need at least 1 data shard"},
		{-1, 2, "need at least 1 data shard"},
		{4, -1, "erasure: code 4+-1: parity shards cannot be negative"},
		{200, 57, "erasure: code 200+57: 257 shards, at most 256"},
		{1 << 62, 1 << 62, "at most 256"},
	} {
		t.Run(fmt.Sprintf("%d+%d", tc.k, tc.m), func(t *testing.T) {
			c, err := New(tc.k, tc.m)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New(%d, %d) = %v, want error containing %q", tc.k, tc.m, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.K() != tc.k || c.M() != tc.m || c.Shards() != tc.k+tc.m || c.String() != fmt.Sprintf("%d+%d", tc.k, tc.m) {
				t.Fatalf("got K %d M %d Shards %d %s", c.K(), c.M(), c.Shards(), c)
			}
		})
	}
}

// TestReconstructEveryDamage encodes random data with random codes and
// sizes, then for every set of at most m shards and every mix of missing and
// corrupt among them (one random mix for the random codes, to bound the
// time) checks that Verify reports it, Reconstruct rebuilds
// exactly those shards, ReconstructData rebuilds the data shards among them,
// and Join gives back the original bytes.
func TestReconstructEveryDamage(t *testing.T) {
	rng := testRand(t)
	type config struct {
		k, m, dataLen, shardSize int
		everyMix                 bool // every mix of missing and corrupt, or one random mix per set
	}
	configs := []config{
		{1, 0, 0, 0, true}, {1, 1, 1, 0, true}, {1, 4, 5, 0, true}, {2, 1, 0, 3, true},
		{4, 2, 4 * 16, 16, true}, {4, 2, 63, 16, true}, {8, 3, 1, 0, true}, {10, 4, 333, 0, true},
	}
	for range 10 {
		k, m := 1+rng.IntN(10), rng.IntN(5)
		var dataLen int
		switch rng.IntN(4) {
		case 0:
			dataLen = 0
		case 1:
			dataLen = 1
		default:
			dataLen = rng.IntN(k * 40)
		}
		shardSize := 0
		if rng.IntN(2) == 0 {
			shardSize = max(1, (dataLen+k-1)/k) + rng.IntN(8)
		}
		configs = append(configs, config{k, m, dataLen, shardSize, false})
	}
	for _, cf := range configs {
		t.Run(fmt.Sprintf("%d+%d/%dB/shard%d", cf.k, cf.m, cf.dataLen, cf.shardSize), func(t *testing.T) {
			c := mustNew(t, cf.k, cf.m)
			data := randBytes(rng, cf.dataLen)
			st, err := c.Encode(data, cf.shardSize)
			if err != nil {
				t.Fatal(err)
			}
			st.ID = rng.Uint64()
			if err := c.Verify(st); err != nil {
				t.Fatalf("fresh stripe: %v", err)
			}
			if got, _ := c.Join(nil, st); !bytes.Equal(got, data) {
				t.Fatalf("Join of fresh stripe differs")
			}
			n := c.Shards()
			cases := 0
			subsets(n, cf.m, func(lost []int) {
				mixes := []int{rng.IntN(1 << len(lost))}
				if cf.everyMix {
					mixes = make([]int, 1<<len(lost))
					for mix := range mixes {
						mixes[mix] = mix
					}
				}
				for _, mix := range mixes {
					cases++
					damaged := clone(st)
					var corrupt []int
					for j, i := range lost {
						switch {
						case mix&(1<<j) != 0:
							flipBit(rng, damaged.Shards[i])
							corrupt = append(corrupt, i)
						case rng.IntN(2) == 0:
							damaged.Shards[i] = nil
						default:
							damaged.Shards[i] = damaged.Shards[i][:0] // rebuilt in place
						}
					}
					what := fmt.Sprintf("lost %v corrupt %v", lost, corrupt)
					err := c.Verify(damaged)
					if len(lost) == 0 && err != nil || len(lost) > 0 && !errors.Is(err, ErrDamaged) {
						t.Fatalf("%s: Verify = %v", what, err)
					}
					dataCopy := clone(damaged)

					rebuilt, err := c.Reconstruct(damaged)
					if err != nil {
						t.Fatalf("%s: Reconstruct: %v", what, err)
					}
					if !slices.Equal(rebuilt, lost) && !(len(lost) == 0 && rebuilt == nil) {
						t.Fatalf("%s: rebuilt %v", what, rebuilt)
					}
					for i := range n {
						if !bytes.Equal(damaged.Shards[i], st.Shards[i]) {
							t.Fatalf("%s: shard %d differs after Reconstruct", what, i)
						}
					}
					if err := c.Verify(damaged); err != nil {
						t.Fatalf("%s: Verify after Reconstruct: %v", what, err)
					}
					if got, err := c.Join(nil, damaged); err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s: Join after Reconstruct: %v, equal %v", what, err, bytes.Equal(got, data))
					}

					rebuilt, err = c.ReconstructData(dataCopy)
					if err != nil {
						t.Fatalf("%s: ReconstructData: %v", what, err)
					}
					var lostData []int
					for _, i := range lost {
						if i < cf.k {
							lostData = append(lostData, i)
						}
					}
					if !slices.Equal(rebuilt, lostData) {
						t.Fatalf("%s: ReconstructData rebuilt %v, want %v", what, rebuilt, lostData)
					}
					if got, err := c.Join([]byte("prefix"), dataCopy); err != nil || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], data) {
						t.Fatalf("%s: Join after ReconstructData: %v", what, err)
					}
				}
			})
			t.Logf("%d damage cases", cases)
		})
	}
}

// TestTooFewShards loses m+1 shards (missing or corrupt) and expects
// ErrTooFewShards with the counts, and the corrupt shards dropped.
func TestTooFewShards(t *testing.T) {
	rng := testRand(t)
	for _, km := range [][2]int{{1, 0}, {3, 0}, {1, 1}, {4, 2}, {8, 3}, {6, 4}} {
		k, m := km[0], km[1]
		t.Run(fmt.Sprintf("%d+%d", k, m), func(t *testing.T) {
			c := mustNew(t, k, m)
			data := randBytes(rng, rng.IntN(k*50)+1)
			st, err := c.Encode(data, 0)
			if err != nil {
				t.Fatal(err)
			}
			st.ID = 7
			n := k + m
			subsets(n, m+1, func(lost []int) {
				if len(lost) != m+1 {
					return
				}
				for _, dataOnly := range []bool{false, true} {
					damaged := clone(st)
					var corrupt []int
					for _, i := range lost {
						if rng.IntN(2) == 0 {
							flipBit(rng, damaged.Shards[i])
							corrupt = append(corrupt, i)
						} else {
							damaged.Shards[i] = nil
						}
					}
					reconstruct := c.Reconstruct
					if dataOnly {
						reconstruct = c.ReconstructData
					}
					rebuilt, err := reconstruct(damaged)
					if dataOnly && lost[0] >= k {
						// Only parity lost: the data shards are whole.
						if err != nil || rebuilt != nil {
							t.Fatalf("lost %v: ReconstructData = %v, %v", lost, rebuilt, err)
						}
						continue
					}
					if !errors.Is(err, ErrTooFewShards) {
						t.Fatalf("lost %v (corrupt %v): err %v, want ErrTooFewShards", lost, corrupt, err)
					}
					want := fmt.Sprintf("erasure: stripe 7: %d of %d shards usable, %d needed to reconstruct (%d+%d; ", n-m-1, n, k, k, m)
					if !strings.HasPrefix(err.Error(), want) {
						t.Fatalf("error %q, want prefix %q", err, want)
					}
					for _, i := range corrupt {
						if len(damaged.Shards[i]) != 0 {
							t.Fatalf("corrupt shard %d not dropped", i)
						}
					}
				}
			})
		})
	}
}

func TestErrorMessage(t *testing.T) {
	c := mustNew(t, 4, 2)
	st, err := c.Encode([]byte("hello, stripe"), 0)
	if err != nil {
		t.Fatal(err)
	}
	st.ID = 7
	st.Shards[0], st.Shards[4] = nil, nil
	st.Shards[2][0] ^= 1
	_, err = c.Reconstruct(st)
	const want = "erasure: stripe 7: 3 of 6 shards usable, 4 needed to reconstruct (4+2; missing 0, 4; corrupt 2): find more of its shards, or its data is lost"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestBitFlip flips one bit in each shard in turn: Verify must name the
// shard and Reconstruct must repair it (or, with m = 0, refuse).
func TestBitFlip(t *testing.T) {
	rng := testRand(t)
	for _, km := range [][2]int{{1, 0}, {3, 0}, {1, 1}, {4, 2}, {8, 3}, {10, 4}} {
		k, m := km[0], km[1]
		t.Run(fmt.Sprintf("%d+%d", k, m), func(t *testing.T) {
			c := mustNew(t, k, m)
			data := randBytes(rng, k*100-rng.IntN(100))
			st, err := c.Encode(data, 100)
			if err != nil {
				t.Fatal(err)
			}
			for i := range k + m {
				for _, bit := range []int{0, 100*8 - 1, rng.IntN(100 * 8)} {
					damaged := clone(st)
					damaged.Shards[i][bit/8] ^= 1 << (bit % 8)
					err := c.Verify(damaged)
					if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), fmt.Sprintf("corrupt %d:", i)) {
						t.Fatalf("shard %d bit %d: Verify = %v", i, bit, err)
					}
					rebuilt, err := c.Reconstruct(damaged)
					if m == 0 {
						if !errors.Is(err, ErrTooFewShards) {
							t.Fatalf("shard %d bit %d: Reconstruct with m=0: %v", i, bit, err)
						}
						continue
					}
					if err != nil || !slices.Equal(rebuilt, []int{i}) {
						t.Fatalf("shard %d bit %d: Reconstruct = %v, %v", i, bit, rebuilt, err)
					}
					if !bytes.Equal(damaged.Shards[i], st.Shards[i]) {
						t.Fatalf("shard %d bit %d: not repaired", i, bit)
					}
				}
			}
		})
	}
}

// TestInconsistent changes a shard and recomputes its checksum, as a buggy
// writer would: Verify sees parity that does not match, and a Reconstruct
// that uses the changed shard finds the rebuilt shard wrong.
func TestInconsistent(t *testing.T) {
	rng := testRand(t)
	c := mustNew(t, 4, 2)
	st, err := c.Encode(randBytes(rng, 4000), 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Shards[0][5] ^= 0x40
	st.Sums[0] = Checksum(st.Shards[0])
	if err := c.Verify(st); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Verify = %v, want ErrInconsistent", err)
	}
	st.Shards[1] = st.Shards[1][:0]
	if _, err := c.Reconstruct(st); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Reconstruct = %v, want ErrInconsistent", err)
	}
	if len(st.Shards[1]) != 0 {
		t.Fatalf("wrongly rebuilt shard left in place")
	}
}

func TestMalformed(t *testing.T) {
	c := mustNew(t, 4, 2)
	good, err := c.Encode([]byte("some data"), 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(st *Stripe)
		op    func(st *Stripe) error
	}{
		{"too few shards", func(st *Stripe) { st.Shards = st.Shards[:5] }, c.EncodeInto},
		{"sizes differ", func(st *Stripe) { st.Shards[3] = st.Shards[3][:7] }, c.EncodeInto},
		{"missing shard", func(st *Stripe) { st.Shards[1] = nil }, c.EncodeInto},
		{"data too long", func(st *Stripe) { st.DataLen = 33 }, c.EncodeInto},
		{"negative data length", func(st *Stripe) { st.DataLen = -1 }, c.EncodeInto},
		{"verify data too long", func(st *Stripe) { st.DataLen = 33 }, c.Verify},
		{"verify sums", func(st *Stripe) { st.Sums = st.Sums[:2] }, c.Verify},
		{"reconstruct sums", func(st *Stripe) { st.Sums = nil }, func(st *Stripe) error { _, err := c.Reconstruct(st); return err }},
		{"join count", func(st *Stripe) { st.Shards = st.Shards[:4] }, func(st *Stripe) error { _, err := c.Join(nil, st); return err }},
		{"fill too long", func(st *Stripe) {}, func(st *Stripe) error { return c.Fill(st, make([]byte, 33)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := clone(good)
			tc.spoil(st)
			if err := tc.op(st); !errors.Is(err, ErrStripe) || !strings.HasPrefix(err.Error(), "erasure: ") {
				t.Fatalf("got %v, want ErrStripe", err)
			}
		})
	}
	if _, err := c.NewStripe(0); !errors.Is(err, ErrStripe) {
		t.Fatalf("NewStripe(0) = %v", err)
	}
	if _, err := c.Encode(make([]byte, 100), 8); !errors.Is(err, ErrStripe) {
		t.Fatalf("Encode of 100 bytes into 4x8 = %v", err)
	}
	st := clone(good)
	st.Shards[2] = nil
	if _, err := c.Join(nil, st); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Join with a data shard missing = %v, want ErrDamaged", err)
	}
}

// TestEncodeIntoReuse encodes stripe after stripe into one buffer full of
// leftovers: the result must equal a fresh Encode, and EncodeInto must not
// allocate beyond what the library does.
func TestEncodeIntoReuse(t *testing.T) {
	rng := testRand(t)
	c := mustNew(t, 4, 2)
	st, err := c.NewStripe(64)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		for _, s := range st.Shards {
			copy(s, randBytes(rng, len(s))) // leftovers
		}
		data := randBytes(rng, rng.IntN(4*64+1))
		if err := c.Fill(st, data); err != nil {
			t.Fatal(err)
		}
		if err := c.EncodeInto(st); err != nil {
			t.Fatal(err)
		}
		want, err := c.Encode(data, 64)
		if err != nil {
			t.Fatal(err)
		}
		for i := range st.Shards {
			if !bytes.Equal(st.Shards[i], want.Shards[i]) || st.Sums[i] != want.Sums[i] {
				t.Fatalf("%d bytes: shard %d differs from a fresh Encode", len(data), i)
			}
		}
	}
	// The library allocates a little per Encode; EncodeInto adds nothing.
	for _, size := range []int{64, 1 << 20} {
		st, err := c.NewStripe(size)
		if err != nil {
			t.Fatal(err)
		}
		lib := testing.AllocsPerRun(20, func() { _ = c.enc.Encode(st.Shards) })
		ours := testing.AllocsPerRun(20, func() {
			if err := c.EncodeInto(st); err != nil {
				t.Fatal(err)
			}
		})
		if ours > lib {
			t.Errorf("%d-byte shards: EncodeInto allocates %v times per stripe, the library's Encode %v", size, ours, lib)
		}
	}
}

// TestLargeShards goes through the parallel checksum path (more than
// parallelMin bytes) and checks it against the serial one.
func TestLargeShards(t *testing.T) {
	rng := testRand(t)
	c := mustNew(t, 4, 2)
	size := parallelMin / 2
	data := randBytes(rng, 4*size-17)
	st, err := c.Encode(data, size)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range st.Shards {
		if st.Sums[i] != Checksum(s) {
			t.Fatalf("shard %d: sum %#x, want %#x", i, st.Sums[i], Checksum(s))
		}
	}
	want := clone(st)
	flipBit(rng, st.Shards[1])
	flipBit(rng, st.Shards[5])
	if err := c.Verify(st); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "corrupt 1, 5") {
		t.Fatalf("Verify = %v", err)
	}
	if rebuilt, err := c.Reconstruct(st); err != nil || !slices.Equal(rebuilt, []int{1, 5}) {
		t.Fatalf("Reconstruct = %v, %v", rebuilt, err)
	}
	for i := range st.Shards {
		if !bytes.Equal(st.Shards[i], want.Shards[i]) {
			t.Fatalf("shard %d not repaired", i)
		}
	}
}

// TestConcurrentUse shares one Code between goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	c := mustNew(t, 4, 2)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 20 {
				data := randBytes(rng, rng.IntN(20000))
				st, err := c.Encode(data, 0)
				if err != nil {
					t.Error(err)
					return
				}
				j := rng.IntN(6)
				st.Shards[j] = nil
				flipBit(rng, st.Shards[(j+1+rng.IntN(5))%6])
				if _, err := c.Reconstruct(st); err != nil && !errors.Is(err, ErrTooFewShards) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
