// Package shuffle is a Spark-style sort-based shuffle for fixed-size
// GraySort records (100 bytes, 10-byte key).
//
// The map side (Mapper.Map) reads one split, sorts compact (key, index)
// entries with a radix pass plus an in-bucket quicksort, and writes one data
// file in key order plus one index file that gives, for every reduce
// partition, the byte range of its segment and a CRC32C of it. A split larger
// than the mapper's sort buffer is sorted in runs that are spilled and merged,
// so memory stays within the buffer whatever the split size. Outputs are
// named by an OutputID (kind, task index, attempt), so two attempts of a
// task never write the same files.
//
// MergeOutputs consolidates the outputs on one node: per partition, a k-way
// merge of every input's segment into one segment of a new output of the
// same format, reading each input once sequentially and checking every
// segment's CRC32C; a bad input is reported as a *CorruptInputError naming
// it. A reduce then reads one segment per merged output instead of one per
// map.
//
// The reduce side (Reduce) reads its segment from every output with
// read-ahead, verifies each segment's length and checksum, k-way merges them
// with a loser tree, and writes one output partition that it fsyncs before
// returning. Reading, merging and writing run concurrently.
//
// Outputs cross the network through a shuffle service: every node runs a
// Server (NewServer with a Locator that maps a job and output id to the
// files, then Serve on a listener), which answers requests for (job, output,
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
// which the coordinator marks the output lost and runs its task again.
// Fetcher.Segments reads the SegmentInfo of many outputs of one partition in
// one round trip; Reduce uses it for remote inputs whose segment it does
// not know, and skips the empty ones.
//
// Range partitioning uses a Partitioner built from sampled keys
// (NewPartitioner): partition p holds the keys k with
// split[p-1] <= k < split[p], so concatenating the reduce outputs in
// partition order gives one globally sorted sequence.
//
// The package knows nothing of nodes or Raft; its inputs are readers, file
// paths and shuffle service addresses, and a job is only an id that names
// outputs on the wire.
package shuffle
