// Package burstbuffer is the node-local flash tier of the burst buffer: an
// append-only record log and an extent index over it. (Stripes, erasure
// coding, shard placement, drain and the FUSE mount build on this later.)
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
//   - Open scans every segment. The first torn or corrupt record of the last
//     segment ends the log: the file is truncated there (reported in
//     Recovery) and appends continue from that point, reusing the lost
//     sequences. A bad record in an earlier segment is ErrCorrupt.
//
// # Index
//
// An Index is a Pebble database mapping (file id, offset) to the extent of
// log bytes that holds the newest data there: (segment, record offset,
// offset within the payload, length, sequence). Extents of a file never
// overlap; applying a write deletes, trims or splits the older extents it
// covers. Lookup returns the pieces covering a range in file order,
// unwritten ranges as holes. Apply stores the extents of a batch of records
// and the last applied sequence in one Pebble batch (committed without
// fsync), so replaying records at or below it is a no-op.
//
// The log is the truth. Rebuild replays the log's records after the index's
// applied sequence, in sequence order; an index that is ahead of its log
// (its batches survived a crash that tore the log's unsynced tail) is reset
// and rebuilt from the whole log. A fresh Index rebuilt from a log equals the
// one maintained incrementally.
package burstbuffer
