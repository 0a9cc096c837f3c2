// Package sortjob is a GraySort-style sort's plan and its task steps: plan
// (MakePlan, for any size and node count), sample (the range partitioner),
// map (RunMap: generate or read a split, partition and sort it), reduce
// (RunReduce: merge a partition's segments into part-NNNNN), validate
// (ValidatePart: valsort over an output partition; MakeCheck combines the
// partitions' summaries in order and compares them with the input's record
// count and checksum), and commit (CommitOutput: the validated files appear
// in the output directory with _SUCCESS last).
//
// MakePlan refuses a job past the limits in limits.go (MaxRecords,
// MaxMapTasks, MaxPartitions, MaxTasks, ...) with an error naming the limit,
// and computes every size without overflow. Plan.Validate is the same bound
// and consistency check without I/O, applied by the coordinator to every
// replicated plan. The job's lifecycle (which node runs which step, retries,
// the commit) is package jobs'; sortjob runs no lifecycle of its own.
package sortjob
