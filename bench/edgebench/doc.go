// Package edgebench measures the node's edge cache (engined --edge, a CDN
// node in front of an HTTP origin) against Varnish on the same machine,
// with the same origin, the same objects and the same load generator, in
// one run:
//
//   - ours: engined --edge with --origin the harness' origin, its cache
//     under the work directory with 256 MiB of memory;
//   - varnish: varnishd (Debian package varnish) with -s malloc,256m and a
//     VCL that names the origin as its backend and nothing else, so it
//     caches as the origin's Cache-Control says (Varnish's built-in VCL).
//
// The origin is an HTTP server in this process on 127.0.0.1: Objects
// objects of each size (1 KiB and 64 KiB by default; random bytes from a
// fixed seed), each with a strong ETag, a Last-Modified and
// "Cache-Control: public, max-age=31536000, immutable"; it answers
// If-None-Match with 304 and counts every fetch, so the report can say
// how many requests each cache sent it.
//
// The load generator is wrk (Debian package wrk), run as
// "wrk -t2 -c64 -dDURATION --latency -s SCRIPT URL", with a Lua script
// generated per scenario that rotates over the objects' paths. A timed
// run is judged by wrk's counts: socket errors, statuses of 400 and more,
// and the bytes it read per response, which must fit the scenario and
// match the checked run's. A checked run (CheckDuration, 2 s) follows
// every timed run: the same load, with a Lua response() that checks every
// response's status and size. It is left out of the timed runs because it
// makes wrk copy every body into Lua, about 20 µs of wrk's CPU per 64 KiB
// response here, about half of a cache's work for it, a tax on both
// caches alike that hides the difference between them. The scenarios:
// hits of each size (every object cached, 200 expected) and revalidations
// (If-None-Match with the object's ETag, 304 expected from the cache
// without an origin fetch). Before each timed run the objects are fetched
// once through the target (untimed, checked byte for byte). The targets
// alternate run by run, the first rotating, with a pause between runs.
//
// The targets (issue "edge cache"): ours ≥ 1.30× Varnish's requests/s for
// hits of both sizes, with a p99 latency no worse than Varnish's. The
// report gives both, their ratios (the 304 ratio too, without a goal),
// the origin fetches of every run and the CPU time per request of each
// cache (its whole process tree: varnishd's manager and its cache
// process, from /proc) and of wrk (its resource usage). It is a ratio against the peer
// measured in the same invocation, never a timed assertion.
//
// Use:
//
//	rep, err := edgebench.Run(ctx, edgebench.Config{
//		Engined: "/usr/local/bin/engined",
//		Out:     os.Stdout,
//	})
//	// rep is JSON-marshalable; it is non-nil whenever the origin
//	// started, also when err reports a failed run.
package edgebench
