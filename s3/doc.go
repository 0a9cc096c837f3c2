// Package s3 serves the burst buffer's namespace over the S3 protocol:
// a bucket is a top-level directory of the backing file system, an object
// a regular file under it, written through the burst buffer and renamed
// into place when durable.
//
//	srv, err := s3.New(s3.Config{Root: backing, Data: bb, Creds: creds, NodeID: nodeID})
//	go srv.ListenAndServe("127.0.0.1:9000")
//	defer srv.Close()
//
// Every request is authenticated by AWS Signature Version 4 (Verifier),
// which covers every x-amz-* header the request carries; unsigned
// requests may only read public-read buckets. Paths are opened beneath
// their bucket without following symlinks, and only regular files are
// read. The store reaches the namespace through a small file-system
// interface (fileSys: in production the machine's, through package
// namespace; in tests a crashable in-memory one over pebble's vfs, with
// errorfs). docs/s3.md describes what is served.
package s3
