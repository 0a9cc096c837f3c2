// Package s3bench measures the node's S3 endpoint against a peer S3
// server on the same machine, with the same data and the same load
// generator, in one run (issue 5, "S3-compatible endpoint"):
//
//   - ours: engined --s3 over a one-node burst buffer (erasure coded 4+2
//     over six flash stores; a PUT returns once its bytes are fsynced);
//   - versitygw: the Versity S3 gateway (github.com/versity/versitygw, a
//     Go S3 gateway) with its posix backend over a directory on the same
//     file system. It is looked for in PATH, then in the cache directory
//     ($HOME/.cache/engine-bench/bin), else built there with go install.
//
// The load generator is minio-go v7 in this process, one client and one
// http.Transport per target, sized for the largest concurrency. Every
// target gets the same runs: PUT of distinct keys and GET of random keys
// from a set filled beforehand (the fill is not timed), for each object
// size (64 KiB and 1 MiB by default) at each concurrency (1, 16 and 64
// clients by default), for a fixed time and at most a fixed number of
// operations per run. The targets alternate run by run, the first
// rotating, so the machine's noise hits both alike; between runs the
// bench drains ours' burst buffer, syncs the page cache and waits for
// both servers to go idle. Every GET is checked byte for byte and every
// ETag against the MD5 of the bytes.
//
// The target is ours ≥ the peer's rate (1.0×) for PUT and GET at every
// size and concurrency: the report gives both rates, their ratio and a
// PASS/FAIL per cell. It is a ratio against the peer measured in the same
// invocation, never a timed assertion.
//
// Use:
//
//	rep, err := s3bench.Run(ctx, s3bench.Config{
//		Engined: "/usr/local/bin/engined",
//		Out:     os.Stdout,
//	})
//	// rep is JSON-marshalable; it is non-nil whenever the servers
//	// started, also when err reports a failed run.
package s3bench
