// Package erasure cuts data into Reed–Solomon k+m stripes
// (klauspost/reedsolomon) and keeps a CRC32C per shard, so that any shard can
// be checked alone and up to m missing or corrupt shards can be rebuilt.
//
// A Code (New(k, m)) is immutable and safe for concurrent use. A Stripe holds
// k data shards then m parity shards of one size, their checksums, the number
// of data bytes, and a caller-given id. Encode copies data into a new stripe.
// For stripe after stripe, allocate once with NewStripe, write the data into
// its data shards (or Fill), and EncodeInto computes parity and checksums in
// place, allocating no buffers.
//
// Verify checks every checksum and the parity. Reconstruct and ReconstructData
// check the shards present, drop the corrupt ones, rebuild the missing ones
// and check what they rebuilt against its checksum: after either returns nil,
// the shards it promises are present and correct, and Join returns the
// original bytes. Errors name the stripe and wrap ErrDamaged (Reconstruct
// repairs it), ErrTooFewShards (more than m shards gone), ErrInconsistent
// (shards that match their checksums but not each other) or ErrStripe (a
// caller's mistake).
//
// A shard stored on its own carries a ShardHeader (MarshalShardHeader,
// ParseShardHeader, CheckPayload): the code, its index, the sizes, the stripe
// id and the checksums of all k+m shards, itself covered by a CRC32C, so any
// k stored shards give back the stripe and its checksums (PutShard).
//
// The package knows nothing of files or nodes: where shards are kept and how
// they travel is the caller's business.
package erasure
