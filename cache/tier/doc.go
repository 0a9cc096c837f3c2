// Package tier is the edge cache's storage: a memory tier (Memory, whole
// objects as byte slices) and a disk tier (Disk, one file per object that
// survives restarts), each bounded in bytes and evicting with S3-FIFO. An
// object is a key (any bytes), an opaque meta (the server's encoded response
// headers) and a body. All methods are safe for concurrent use.
//
//	m := tier.NewMemory(1 << 30)
//	m.Put(key, meta, body)
//	meta, body, ok := m.Get(key) // shared slices: read-only
//
//	d, err := tier.OpenDisk("/var/cache/engine", 100<<30)
//	w, err := d.Create(key, meta) // stream the body from the origin
//	defer w.Abort()               // no-op after Commit
//	io.Copy(w, resp)
//	err = w.Commit()              // visible atomically, replacing key's entry
//	o, ok := d.Get(key)           // o.ReadAt, or sendfile from o.File() at o.BodyOffset()
//	defer o.Close()
//
// # Why S3-FIFO
//
// S3-FIFO (Yang et al., SOSP'23) keeps a small FIFO (10% of the bytes) where
// new objects start, a main FIFO (90%) for objects hit while in small, and a
// ghost FIFO of key hashes recently evicted from small, so a returning key
// goes straight to main. CDN traffic is full of one-hit wonders and scans
// (crawlers, prefetchers, a client walking a bucket): under S3-FIFO they only
// cycle through small and never push the hot set out of main, where an LRU
// would lose it. A hit only bumps a 2-bit counter, with no list move and no
// lock, so hits cost less CPU and contend less than under LRU or ARC.
//
// # Sizes and admission
//
// Memory counts key+meta+body and refuses objects larger than its small
// queue. Disk counts whole files (32-byte header, key, meta, body) and
// refuses an object larger than its limit (ErrTooLarge); an object larger
// than the small queue is admitted and flushes small, never main.
//
// # Disk
//
// Files are named by the key's SHA-256 and a generation, fanned out into
// 256 directories; the header holds the full key, the meta's and body's
// lengths and CRC32Cs. A fill is written to a temp file and renamed into
// place at Commit; UpdateMeta writes a copy and renames it. Nothing is
// fsynced: after a crash an entry may be lost, but a torn or zeroed file is
// caught by its size and checksums and deleted, never served. OpenDisk
// reads headers only; a rebuilt entry's body CRC is checked at its first
// Get. Rebuilt entries start in main with frequency 0, in modification-time
// order, since S3-FIFO state is not persisted. Delete and DeletePrefix sync
// the directories they touch (and any whose files were evicted or replaced
// since their last sync), and discard fills of the keys in progress: a
// purged entry never comes back after a power cut, though an older version
// of a key that was replaced may.
//
// All file access goes through a small file-system interface: the
// machine's (OpenDisk), or any pebble vfs.FS (OpenDiskFS), on which the
// tests crash the tier with vfs.NewCrashableMem and inject errors with
// errorfs.
package tier
