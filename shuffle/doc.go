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
// Range partitioning uses a Partitioner built from sampled keys
// (NewPartitioner): partition p holds the keys k with
// split[p-1] <= k < split[p], so concatenating the reduce outputs in
// partition order gives one globally sorted sequence.
//
// The package knows nothing of jobs, nodes or Raft; its inputs are readers
// and file paths.
package shuffle
