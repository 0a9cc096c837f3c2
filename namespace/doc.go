// Package namespace does file-system work as root beneath one directory
// (the backing directory) without ever following a symbolic link or
// leaving that directory, whatever users change in it at the same time.
//
//	root, err := namespace.OpenRoot("/data/backing")
//	defer root.Close()
//	f, err := root.Open("bucket/key", unix.O_RDONLY, 0)
//	err = root.Chmod("bucket/key", 0o640)
//
// Contract:
//   - A Root or Dir is an O_PATH descriptor of a directory; every operation
//     names a path relative to it. Paths are resolved by openat2 with
//     RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS: a symlink
//     anywhere in a path is ELOOP, a ".." or absolute path that would leave
//     the directory is EXDEV. The last component is acted on through the
//     parent's descriptor with a *at call that does not follow it (unlinkat,
//     renameat2, mkdirat, fchownat AT_SYMLINK_NOFOLLOW, ...) or through an
//     O_PATH|O_NOFOLLOW descriptor of it (chmod, utimes): nothing a user
//     swaps in between two calls is followed.
//   - Any path the kernel accepts below the root works: a path longer than
//     PATH_MAX-1 is resolved in pieces, each beneath the last.
//   - Errors are *os.PathError naming the full path (root + relative) and
//     wrapping the errno, so errors.Is(err, unix.ELOOP) and friends work.
//   - Publish writes a new file under a temporary name and renames it into
//     place: readers see the old file or the whole new one.
//   - Contains says whether a file opened some other way (a kernel file
//     handle from a peer) lies beneath the root; callers refuse it if not.
//   - ChmodFile, ChownFile, UtimesFile and StatFile act on an open
//     descriptor, O_PATH ones included, never on a name.
//
// The package does no permission checks of its own: callers (the FUSE
// mount, with default_permissions; S3, with its own policy) decide who may
// ask for what.
package namespace
