// Package burstbuffer is the erasure-coded burst buffer: small writes of any
// size at any offset are packed into stripes, whose k+m shards go to k+m
// shard stores (flash.Store, an append-only log per flash directory) on
// distinct nodes; a drainer writes each file's buffered bytes to the
// backing file system as whole, aligned chunks. Package fuse mounts it.
//
// # Names and data
//
// The namespace is the backing directory: names, modes, owners and links
// are the backing file system's (a shared POSIX file system in production),
// so every node sees a new file at once. The buffer holds only file data,
// keyed by the backing file's kernel file handle (FileRef), which survives
// renames and hard links and goes stale when the inode is freed.
//
// # Writes and durability
//
// WriteAt copies the bytes into this node's open stripe (k × ShardSize of
// data) and records the write with a version from a hybrid logical clock.
// A full stripe is encoded (package erasure) and its shards stored without
// waiting for fdatasync; Sync seals the open stripe, stores its shards
// durably (each store group-commits fdatasyncs), makes durable the stores
// that got earlier stripes, and returns: every write it covers is on k+m
// shards. Each shard carries the stripe's Meta (code, placement, the
// writes it holds), so the shards are the truth.
//
// Once its k+m shards are stored, a stripe's meta is applied to this
// node's index and published to every live node (close-to-open: a node
// that opens a file after another node's close or fsync reads its bytes).
//
// # Index
//
// Every node keeps the whole extent index in memory (Index: per file, the
// newest version of every byte → stripe and position), rebuilt at start
// from its own shards and from every live peer's Dump (metas, shard
// inventory, tombstones, dead stripes). Pebble keeps the durable part:
// tombstones of drained pieces and dead stripes, so a resurrected old shard
// never overrides newer data. Applying is idempotent and order-free.
//
// # Reads
//
// ReadAt reads buffered extents over the backing file, plus this node's
// writes not yet published. A shard read is checked against its CRC32C;
// a missing or corrupt shard is rebuilt from k others (Reconstruct) and
// written back (repair); a stripe with shards on a node that left is
// rebuilt onto live nodes by its owner (heal).
//
// # Drain
//
// Each file has a drain owner among the live nodes (rendezvous hashing).
// The owner reads the file's newest bytes for every DrainChunk-aligned
// chunk the buffered extents touch, writes whole chunks (only the file's
// last chunk may be short) with pwrite, fsyncs, then drops the drained
// pieces everywhere (tombstones, fsynced); a stripe left with no live
// bytes is dead and its shards are deleted, freeing log segments.
//
// # Peers
//
// Handler serves HTTPTransport's calls; node mounts it on the mutual-TLS
// internal port; NewHTTPTransportTLS calls it with the node's certificate. Every Meta from a peer, a Dump or a stored shard passes
// Meta.Validate before it is applied, peer arguments are bounds-checked
// (400 when not), and every background goroutine recovers from a panic
// and fails only its own unit of work.
package burstbuffer
