// Package shuffle is a Spark-style sort-based shuffle for fixed-size
// GraySort records (100 bytes, 10-byte key).
//
// The map side (Mapper.Map) reads one split, sorts compact (key, index)
// entries with a radix pass plus an in-bucket quicksort, and writes one data
// file in key order plus one index file that gives, for every reduce
// partition, the byte range of its segment and a CRC32C of it. A split larger
// than the mapper's sort buffer is sorted in runs that are spilled and merged,
// so memory stays within the buffer whatever the split size.
//
// The reduce side (Reduce) reads its segment from every map output with
// read-ahead, verifies each segment's length and checksum, k-way merges them
// with a loser tree, and writes one output partition that it fsyncs before
// returning. Reading, merging and writing run concurrently.
//
// Map outputs cross the network through a shuffle service: every node runs a
// Server (NewServer with a Locator that maps a job and map id to the files,
// then Serve on a listener), which answers requests for (job, map,
// partition, offset) by sending the segment straight from the data file with
// sendfile, one goroutine per connection on Go's netpoller, so it keeps
// serving while the node's CPUs run tasks. The protocol is in protocol.go. A
// ReduceInput with Addr set is fetched from that server by a Fetcher
// (ReduceTask.Fetcher, default DefaultFetcher), which pools connections per
// address: the segment streams into two read-ahead blocks per input (so a
// reduce holds at most fan-in × 2 × BlockSize bytes of fetched data), is
// merged as it arrives, is checked against the index's length and CRC32C,
// and is resumed from the last byte received when a connection fails. A
// segment that cannot be fetched fails the reduce with a *FetchError, on
// which the coordinator marks the map output lost and runs the map again.
//
// Range partitioning uses a Partitioner built from sampled keys
// (NewPartitioner): partition p holds the keys k with
// split[p-1] <= k < split[p], so concatenating the reduce outputs in
// partition order gives one globally sorted sequence.
//
// The package knows nothing of nodes or Raft; its inputs are readers, file
// paths and shuffle service addresses, and a job is only an id that names
// map outputs on the wire.
package shuffle
