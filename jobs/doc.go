// Package jobs is a sort job's cluster lifecycle on one node: submission
// (plan, checks, sampling, the replicated submit), the executor that runs the
// map, merge and reduce attempts the replicated state assigns to this node
// and reports them, and the leader's part: scheduling (coordinator.Reconcile
// proposed in batches), the commit of a finished job (the check against the
// input, the move of the validated parts, _SUCCESS) and the cleanup of ended
// jobs.
//
// It needs from its node only a way to read the replicated state and a way
// to propose a command (StateReader, Proposer), plus the node's settings
// (Config). The daemon, the embedded single node of `enginectl submit sort`
// and the dry run's calibration sort all run jobs through it.
package jobs
