// Package sortjob runs a GraySort-style sort job on one node: plan, sample,
// map (generate or read each split, partition and sort it), reduce (merge
// every map's segment of a partition into part-NNNNN), validate (valsort over
// every output partition, combined in order and compared with the input's
// record count and checksum), and commit (the validated files appear in the
// output directory with _SUCCESS last).
//
// MakePlan is the planning code for any size and node count; it refuses a
// job past the limits in limits.go (MaxRecords, MaxMapTasks, MaxPartitions,
// ...) with an error naming the limit, and computes every size without
// overflow. Plan.Validate is the same bound and consistency check without
// I/O, applied by the coordinator to every replicated plan. Run executes a
// plan's tasks with a bounded number of workers within a memory budget.
// Nothing is left behind on failure or cancellation: map outputs, temporary
// output and any output directory the job created are removed, and the input
// is only ever read.
package sortjob
