// Package fuse mounts the burst buffer as a POSIX file system.
//
// The namespace is the backing directory itself: names, directories,
// modes, owners, hard links, symlinks, times and extended attributes are
// read and changed there directly, through package namespace. Only file
// data goes through Data: writes are buffered by Data.WriteAt, reads come from
// Data.ReadAt (buffered extents over the backing file), the size a stat
// reports is Data.Size, truncation is Data.Truncate, and fsync and close are
// Data.Sync.
//
//	srv, err := fuse.Mount(ctx, "/mnt/bb", "/data/backing", svc, fuse.Options{})
//	...
//	defer srv.Wait()
//	defer srv.Unmount()
//
// Consistency:
//   - read-your-writes on one node: a write is visible to every reader of
//     the same mount as soon as write(2) returns;
//   - close-to-open between nodes: close(2) and fsync(2) return only once
//     the file's writes are durable (Data.Sync), and open(2) drops the
//     kernel's cached pages, so a node that opens a file after another node
//     closed it reads the closed data. The kernel never caches the names or
//     attributes of regular files, so sizes and renames made by other nodes
//     are seen at once; names of directories and symlinks are cached for
//     Options.EntryTimeout.
//   - mtime follows writes to within a second while a file is being
//     written (the backing file's mtime is set at most once a second per
//     file) and exactly at close and fsync.
//
// copy_file_range is copied through READ and WRITE, so through the buffer;
// fallocate is not supported (EOPNOTSUPP); SEEK_DATA and SEEK_HOLE see the
// whole file as data with one hole at its end.
//
// The server runs as root (it chowns new files to their creator) and mounts
// with default_permissions, so the kernel checks mode bits against the
// caller before a request reaches the server. The server therefore never
// acts on a backing path string: a node is resolved from its path in the
// mount beneath the backing root with no symlink followed (openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) and checked to be the inode the
// kernel checked permissions on (else ESTALE); the operation then acts on
// that descriptor, or on its parent directory's descriptor and one name. A
// symlink or directory swapped into a path after the kernel looked it up
// is refused, never followed. Paths are relative to the backing root, so
// any path the kernel takes (4,095 bytes from the mount root) works,
// whatever the length of the backing directory's own path.
package fuse
