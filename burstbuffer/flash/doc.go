// Package flash is the burst buffer's storage on a node's flash: an
// append-only record log, and a store of erasure-coded shards on top of it
// (one Store per flash directory).
//
// # Log
//
// A Log is a directory of segment files seg-%08d.log, rolled when the next
// batch would pass LogOptions.SegmentSize (64 MiB by default). A record is a
// 40-byte header (magic, version, type, file id, file offset, payload length,
// sequence, CRC32C of header and payload; see record.go) followed by its
// payload. Sequences are assigned by Append, start at 1, and increase by one
// in log order.
//
//   - Append writes records and returns their Locations. They are not
//     durable yet.
//   - Sync returns nil only once every record appended before the call is
//     durable (fdatasync). One goroutine owns fdatasync; Sync callers queue
//     on a channel and every caller that queued while an fdatasync ran is
//     served by the next single fdatasync (group commit). A failed
//     fdatasync is sticky: every later Sync fails.
//   - A segment is fdatasynced before the next one is created (and the
//     directory is synced), so a crash can tear only the last segment.
//   - Read returns a record's payload after checking its header against the
//     Location and its CRC; a mismatch is ErrCorrupt, never wrong bytes.
//     ReadAt reads part of a payload without those checks.
//   - Open scans every segment. The first torn or corrupt record of the last
//     segment ends the log: the file is truncated there (reported in
//     Recovery) and appends continue from that point, reusing the lost
//     sequences. A bad record in an earlier segment is ErrCorrupt. Segment
//     numbers may have gaps. The last segment is fdatasynced, so what Open
//     recovered is durable.
//   - RemoveSegment deletes a segment other than the current one (the
//     caller knows nothing in it is needed). Reads racing with it complete
//     or fail with ErrNotFound.
//
// # Store
//
// A Store keeps shards, opaque payloads keyed by (stripe, shard index), as
// TypeShard records in its own Log, with an in-memory index rebuilt by
// OpenStore (the newest record of a key wins).
//
//	s, err := flash.OpenStore(dir, flash.StoreOptions{})
//	err = s.Put(ctx, stripe, idx, shard)    // durable on return; Puts share fdatasyncs
//	shard, err = s.Get(stripe, idx)         // CRC checked; ErrNotFound, ErrCorrupt
//	n, err := s.ReadAt(stripe, idx, p, off) // no CRC check: verify your own checksum
//	s.Delete(stripe)                        // frees segments left with no live shard
//
// What a caller must know:
//
//   - OpenStore never gives up good shards for a bad record: a record with
//     a bad CRC is skipped and counted, a segment ends at an unreadable
//     header with the rest of it left unread, a torn last segment is left
//     as it is and appends go to a new one, and missing segment files are
//     fine. Scan likewise skips shards that fail their CRC: other shards of
//     the stripe survive on other nodes.
//   - Deletes are not logged. Delete removes the segment files that no
//     longer hold a live shard (never the current one); a deleted shard in a
//     segment that is still partly live comes back after a restart. Callers
//     drop, after OpenStore, the stripes they no longer reference, and never
//     reuse a stripe id. Space is freed a segment at a time, with no
//     compaction.
//   - Segments hold users' data: a log's directory is made (or tightened
//     to) 0700 and its segment files 0600. A panic in the background
//     syncer fails that batch's Syncs with an error instead of the process.
package flash
