package erasure

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/reedsolomon"
)

const (
	// DefaultK and DefaultM are the code a cluster uses unless configured:
	// 4 data shards and 2 parity shards, surviving the loss of any 2.
	DefaultK = 4
	DefaultM = 2

	// MaxShards bounds k+m (Reed–Solomon over GF(2^8)).
	MaxShards = 256
	// MaxShardSize bounds the size of one shard, in bytes.
	MaxShardSize = 1 << 30
)

var (
	// ErrDamaged: some shards are missing or do not match their checksums.
	// Reconstruct rebuilds up to m of them.
	ErrDamaged = errors.New("erasure: shards missing or corrupt")
	// ErrTooFewShards: fewer than k shards are usable, so nothing can be
	// rebuilt from this stripe.
	ErrTooFewShards = errors.New("erasure: too few shards to reconstruct")
	// ErrInconsistent: every shard matches its own checksum, but the shards
	// do not form one encoding (parity does not match the data, or a rebuilt
	// shard does not match the checksum it was encoded with).
	ErrInconsistent = errors.New("erasure: shards do not form one stripe")
	// ErrStripe: the stripe does not fit the code (shard count, sizes, data
	// length): a caller's mistake, not damage.
	ErrStripe = errors.New("erasure: malformed stripe")
)

// Code is a k+m Reed–Solomon code: k data shards, m parity shards, any k of
// which give back the data. A Code is immutable and safe for concurrent use.
type Code struct {
	k, m int
	enc  reedsolomon.Encoder
}

// New returns the k+m code: k ≥ 1 data shards, m ≥ 0 parity shards,
// k+m ≤ MaxShards.
func New(k, m int) (*Code, error) {
	switch {
	case k < 1:
		return nil, fmt.Errorf("erasure: code %d+%d: need at least 1 data shard", k, m)
	case m < 0:
		return nil, fmt.Errorf("erasure: code %d+%d: parity shards cannot be negative", k, m)
	case k > MaxShards || m > MaxShards || k+m > MaxShards:
		return nil, fmt.Errorf("erasure: code %d+%d: %d shards, at most %d", k, m, k+m, MaxShards)
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("erasure: code %d+%d: %w", k, m, err)
	}
	return &Code{k: k, m: m, enc: enc}, nil
}

// K is the number of data shards.
func (c *Code) K() int { return c.k }

// M is the number of parity shards: how many lost shards a stripe survives.
func (c *Code) M() int { return c.m }

// Shards is k+m, the number of shards in a stripe.
func (c *Code) Shards() int { return c.k + c.m }

// String gives the code as "k+m".
func (c *Code) String() string { return strconv.Itoa(c.k) + "+" + strconv.Itoa(c.m) }

// Stripe is one encoded unit: k data shards then m parity shards, all of one
// size, with the CRC32C of each. A shard that is nil or of length zero is
// missing; one of length zero with capacity for a whole shard is rebuilt in
// place by Reconstruct, without allocating.
type Stripe struct {
	ID      uint64   // caller-given; named in errors and shard headers
	Shards  [][]byte // k data shards, then m parity shards
	Sums    []uint32 // Sums[i] is the CRC32C (Checksum) of Shards[i] as encoded
	DataLen int      // bytes of data in the data shards; the rest is zero padding
}

// MinShardSize is the smallest shard size whose k data shards hold dataLen
// bytes (at least 1).
func (c *Code) MinShardSize(dataLen int) int {
	return max(1, (dataLen+c.k-1)/c.k)
}

// NewStripe allocates a stripe of k+m shards of shardSize bytes, in one
// buffer, to be filled (Fill, or writes straight into the data shards),
// encoded with EncodeInto and reused for stripe after stripe.
func (c *Code) NewStripe(shardSize int) (*Stripe, error) {
	if shardSize < 1 || shardSize > MaxShardSize {
		return nil, fmt.Errorf("%w: shard size %d, must be 1 to %d bytes", ErrStripe, shardSize, MaxShardSize)
	}
	n := c.k + c.m
	buf := make([]byte, n*shardSize)
	st := &Stripe{Shards: make([][]byte, n), Sums: make([]uint32, n)}
	for i := range st.Shards {
		st.Shards[i] = buf[i*shardSize : (i+1)*shardSize : (i+1)*shardSize]
	}
	return st, nil
}

// Fill copies data into the data shards of st and sets st.DataLen; the
// padding is zeroed by EncodeInto. It fails if data does not fit.
func (c *Code) Fill(st *Stripe, data []byte) error {
	size, err := c.shape(st)
	if err != nil {
		return err
	}
	if len(data) > c.k*size {
		return c.errorf(st, ErrStripe, "%d bytes do not fit in %d data shards of %d bytes (%s)", len(data), c.k, size, c)
	}
	for i, rest := 0, data; len(rest) > 0; i++ {
		rest = rest[copy(st.Shards[i], rest):]
	}
	st.DataLen = len(data)
	return nil
}

// Encode copies data into a new stripe of shardSize-byte shards (0 means
// MinShardSize(len(data))), computes the parity and the checksums. Set the
// returned stripe's ID before writing headers.
func (c *Code) Encode(data []byte, shardSize int) (*Stripe, error) {
	if shardSize == 0 {
		shardSize = c.MinShardSize(len(data))
	}
	st, err := c.NewStripe(shardSize)
	if err != nil {
		return nil, err
	}
	if err := c.Fill(st, data); err != nil {
		return nil, err
	}
	if err := c.EncodeInto(st); err != nil {
		return nil, err
	}
	return st, nil
}

// EncodeInto finishes a stripe whose data shards the caller has filled:
// it zeroes the data shards past st.DataLen, overwrites the parity shards and
// sets st.Sums (reusing its capacity). It does not allocate buffers; st's
// shards must all be present and of one size.
func (c *Code) EncodeInto(st *Stripe) error {
	size, err := c.shape(st)
	if err != nil {
		return err
	}
	if st.DataLen < 0 || st.DataLen > c.k*size {
		return c.errorf(st, ErrStripe, "data length %d does not fit in %d data shards of %d bytes (%s)", st.DataLen, c.k, size, c)
	}
	for i := st.DataLen / size; i < c.k; i++ {
		clear(st.Shards[i][max(0, st.DataLen-i*size):])
	}
	if c.m > 0 {
		if err := c.enc.Encode(st.Shards); err != nil {
			return c.errorf(st, ErrStripe, "encode: %v", err)
		}
	}
	n := c.k + c.m
	if cap(st.Sums) < n {
		st.Sums = make([]uint32, n)
	}
	st.Sums = st.Sums[:n]
	sumShards(st.Shards, allShards(n), st.Sums, size)
	return nil
}

// shape checks that st has k+m shards, all present and of one size, and
// returns that size. It is the precondition of encoding.
func (c *Code) shape(st *Stripe) (int, error) {
	n := c.k + c.m
	if len(st.Shards) != n {
		return 0, c.errorf(st, ErrStripe, "%d shards, a %s stripe has %d", len(st.Shards), c, n)
	}
	size := len(st.Shards[0])
	if size < 1 || size > MaxShardSize {
		return 0, c.errorf(st, ErrStripe, "shard 0 is %d bytes, shards are 1 to %d bytes", size, MaxShardSize)
	}
	for i, s := range st.Shards {
		if len(s) != size {
			return 0, c.errorf(st, ErrStripe, "shard %d is %d bytes, shard 0 is %d: the shards of a stripe have one size", i, len(s), size)
		}
	}
	return size, nil
}

// Verify checks every shard against its checksum and the parity against the
// data. It returns an error wrapping ErrDamaged when shards are missing or
// corrupt (Reconstruct repairs up to m), ErrInconsistent when they all match
// their checksums but not each other, or ErrStripe.
func (c *Code) Verify(st *Stripe) error {
	var sv survey
	if err := c.survey(st, allShards(c.k+c.m), &sv); err != nil {
		return err
	}
	if damaged := sv.missing.count() + sv.corrupt.count(); damaged > 0 {
		what := "Reconstruct repairs them"
		if damaged > c.m {
			what = fmt.Sprintf("more than the %d that %s can rebuild", c.m, c)
		}
		return c.errorf(st, ErrDamaged, "%s: %s", sv.describe(), what)
	}
	if err := c.checkDataLen(st, sv.size); err != nil {
		return err
	}
	if c.m > 0 {
		ok, err := c.enc.Verify(st.Shards)
		if err != nil {
			return c.errorf(st, ErrStripe, "verify: %v", err)
		}
		if !ok {
			return c.errorf(st, ErrInconsistent, "every shard matches its checksum but the parity does not match the data (%s): the checksums were computed over shards that were not encoded together; re-encode the stripe from its source", c)
		}
	}
	return nil
}

// Reconstruct makes st whole: it checks every present shard against its
// checksum, drops the corrupt ones (sets them to length zero), rebuilds every
// missing or dropped shard from k good ones, and checks the rebuilt shards
// against their checksums. It returns the indices it rebuilt (nil when st was
// whole). With more than m shards gone it returns an error wrapping
// ErrTooFewShards and leaves the corrupt shards dropped. st.Sums must hold the
// checksums of all k+m shards (from any one ShardHeader).
func (c *Code) Reconstruct(st *Stripe) ([]int, error) { return c.reconstruct(st, false) }

// ReconstructData is Reconstruct for reading: it promises only the data
// shards. When they are all present and match their checksums, the parity
// shards are not read; otherwise it checks the parity shards too, drops the
// corrupt ones and rebuilds only the data shards (dropped or missing parity
// shards stay missing).
func (c *Code) ReconstructData(st *Stripe) ([]int, error) { return c.reconstruct(st, true) }

func (c *Code) reconstruct(st *Stripe, dataOnly bool) ([]int, error) {
	n := c.k + c.m
	var sv survey
	if dataOnly {
		// Read the parity shards only if a data shard needs them.
		if err := c.survey(st, shardRange(0, c.k), &sv); err != nil {
			return nil, err
		}
		if sv.missing.empty() && sv.corrupt.empty() {
			return nil, c.checkDataLen(st, sv.size)
		}
		if err := c.survey(st, shardRange(c.k, n), &sv); err != nil {
			return nil, err
		}
	} else if err := c.survey(st, allShards(n), &sv); err != nil {
		return nil, err
	}
	for i := range n {
		if sv.corrupt.has(i) {
			st.Shards[i] = st.Shards[i][:0]
		}
	}
	if usable := sv.good.count(); usable < c.k {
		return nil, &stripeError{id: st.ID, err: ErrTooFewShards, msg: fmt.Sprintf(
			"%d of %d shards usable, %d needed to reconstruct (%s; %s): find more of its shards, or its data is lost",
			usable, n, c.k, c, sv.describe())}
	}
	if err := c.checkDataLen(st, sv.size); err != nil {
		return nil, err
	}
	rebuild := sv.missing.union(sv.corrupt)
	if dataOnly {
		rebuild = rebuild.intersect(shardRange(0, c.k))
	}
	if rebuild.empty() {
		return nil, nil
	}
	var err error
	if dataOnly {
		err = c.enc.ReconstructData(st.Shards)
	} else {
		err = c.enc.Reconstruct(st.Shards)
	}
	if err != nil {
		return nil, c.errorf(st, ErrStripe, "reconstruct (%s): %v", c, err)
	}
	if bad := badShards(st.Shards, st.Sums, rebuild, sv.size); !bad.empty() {
		for i := range n {
			if rebuild.has(i) {
				st.Shards[i] = st.Shards[i][:0]
			}
		}
		return nil, c.errorf(st, ErrInconsistent, "rebuilt shards %s do not match their checksums although the %d shards used match theirs (%s): the shards or checksums come from different stripes", bad, sv.good.count(), c)
	}
	return rebuild.list(), nil
}

func (c *Code) checkDataLen(st *Stripe, size int) error {
	if st.DataLen < 0 || st.DataLen > c.k*size {
		return c.errorf(st, ErrStripe, "data length %d does not fit in %d data shards of %d bytes (%s)", st.DataLen, c.k, size, c)
	}
	return nil
}

// Join appends the stripe's data (st.DataLen bytes of its data shards) to dst.
// It needs every data shard present and does not check checksums: call
// Verify, Reconstruct or ReconstructData first.
func (c *Code) Join(dst []byte, st *Stripe) ([]byte, error) {
	if len(st.Shards) != c.k+c.m {
		return dst, c.errorf(st, ErrStripe, "%d shards, a %s stripe has %d", len(st.Shards), c, c.k+c.m)
	}
	size := len(st.Shards[0])
	for i, s := range st.Shards[:c.k] {
		if len(s) == 0 {
			return dst, c.errorf(st, ErrDamaged, "data shard %d is missing: call ReconstructData first", i)
		}
		if len(s) != size {
			return dst, c.errorf(st, ErrStripe, "data shard %d is %d bytes, shard 0 is %d: the shards of a stripe have one size", i, len(s), size)
		}
	}
	if err := c.checkDataLen(st, size); err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, st.DataLen)
	for i, rest := 0, st.DataLen; rest > 0; i++ {
		t := min(rest, size)
		dst = append(dst, st.Shards[i][:t]...)
		rest -= t
	}
	return dst, nil
}

// survey sorts the shards in want into good (present, matching its
// checksum), corrupt and missing, adding to sv. The good shards must have one
// size, which it records in sv.size.
type survey struct {
	size                   int
	good, corrupt, missing shardSet
}

func (c *Code) survey(st *Stripe, want shardSet, sv *survey) error {
	n := c.k + c.m
	if len(st.Shards) != n {
		return c.errorf(st, ErrStripe, "%d shards, a %s stripe has %d", len(st.Shards), c, n)
	}
	if len(st.Sums) != n {
		return c.errorf(st, ErrStripe, "%d checksums for %d shards (%s)", len(st.Sums), n, c)
	}
	var present shardSet
	size := 0
	for i, s := range st.Shards {
		if !want.has(i) {
			continue
		}
		if len(s) == 0 {
			sv.missing.add(i)
		} else {
			present.add(i)
			size = max(size, len(s))
		}
	}
	bad := badShards(st.Shards, st.Sums, present, size)
	for i, s := range st.Shards {
		switch {
		case !present.has(i):
		case bad.has(i):
			sv.corrupt.add(i)
		case sv.size == 0:
			sv.size = len(s)
			sv.good.add(i)
		case len(s) != sv.size:
			return c.errorf(st, ErrInconsistent, "shard %d is %d bytes and another is %d, both matching their checksums: they are not from one stripe", i, len(s), sv.size)
		default:
			sv.good.add(i)
		}
	}
	return nil
}

func (sv *survey) describe() string {
	var parts []string
	if !sv.missing.empty() {
		parts = append(parts, "missing "+sv.missing.String())
	}
	if !sv.corrupt.empty() {
		parts = append(parts, "corrupt "+sv.corrupt.String())
	}
	if len(parts) == 0 {
		return "none missing or corrupt"
	}
	return strings.Join(parts, "; ")
}

// stripeError names the stripe; Unwrap gives the sentinel to test with
// errors.Is.
type stripeError struct {
	id  uint64
	err error
	msg string
}

func (e *stripeError) Error() string {
	return "erasure: stripe " + strconv.FormatUint(e.id, 10) + ": " + e.msg
}

func (e *stripeError) Unwrap() error { return e.err }

func (c *Code) errorf(st *Stripe, sentinel error, format string, args ...any) error {
	return &stripeError{id: st.ID, err: sentinel, msg: fmt.Sprintf(format, args...)}
}
