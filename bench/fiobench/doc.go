// Package fiobench measures the burst buffer's POSIX mount with fio (the
// Debian package) against the floor and the ceiling it is judged by, in one
// run:
//
//   - direct: a directory on the backing file system itself (the ceiling);
//   - loopback: go-fuse's plain loopback file system (fs.NewLoopbackRoot)
//     mounted in this process over a second backing directory: the floor
//     any FUSE file system pays;
//   - ours: "enginectl mount" over a third backing directory, a subprocess.
//
// Every target runs the same jobs: 4 KiB random writes (O_DIRECT, iodepth
// 32), 4 KiB random writes with an fsync after each, 1 MiB sequential
// writes (O_DIRECT, iodepth 8), 4 KiB random reads (O_DIRECT, iodepth 32)
// and file creates (a Go loop of open(O_CREAT|O_EXCL) and close). The
// order is job-major and target-minor, rotating which target goes first
// each round, so machine noise hits all three alike.
//
// After the jobs, ours is drained ("enginectl bb sync /") and its counters
// read ("enginectl bb status --json"): the drain rate is compared with the
// direct target's 1 MiB sequential write rate, and the histogram of write
// sizes the drain sent to the backing file system is checked for whole
// aligned chunks and for 4 KiB writes.
//
// Use:
//
//	rep, err := fiobench.Run(ctx, fiobench.Config{
//		Enginectl: "/usr/local/bin/enginectl",
//		Out:       os.Stdout,
//	})
//	// rep is JSON-marshalable; it is non-nil even when err reports a
//	// failed job, so it can be saved either way.
package fiobench
