// Package node assembles one engine node: it locks its data directory, joins
// the cluster (Raft, gossip, mTLS), runs the jobs the cluster assigns it
// through package jobs with the node's workers and memory budget, runs the
// burst buffer, S3 and edge services, and serves the HTTP API that enginectl
// talks to.
//
//	n, err := node.Open(node.Config{DataDir: dir, API: "127.0.0.1:7070"})
//	...
//	defer n.Close()
//
// Client is the API's Go client; Follow renders a job's progress until it
// ends. enginectl without a cluster address runs a Node in-process on a
// loopback port and uses the same Client.
package node
