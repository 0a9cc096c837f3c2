package node

import (
	"context"
	"time"

	"engine/jobs"
	"engine/sortjob"
)

// JobStatus is a job as the API shows it (jobs.JobStatus).
type JobStatus = jobs.JobStatus

// Job states as the API shows them.
const (
	StateRunning   = jobs.StateRunning
	StateSucceeded = jobs.StateSucceeded
	StateFailed    = jobs.StateFailed
	StateCancelled = jobs.StateCancelled
)

// ErrNoJob reports an unknown job id.
var ErrNoJob = jobs.ErrNoJob

// Submit plans a sort for the live members and replicates it (jobs.Manager.Submit).
func (n *Node) Submit(ctx context.Context, spec sortjob.Spec) (JobStatus, error) {
	return n.jobs.Submit(ctx, spec)
}

// Job returns a job's status with its progress.
func (n *Node) Job(id string) (JobStatus, bool) { return n.jobs.Job(id) }

// Jobs returns every job, oldest first.
func (n *Node) Jobs() []JobStatus { return n.jobs.Jobs() }

// WaitJob returns a job's status once it has ended or after at most wait.
func (n *Node) WaitJob(ctx context.Context, id string, wait time.Duration) (JobStatus, bool) {
	return n.jobs.WaitJob(ctx, id, wait)
}

// Cancel cancels a running job.
func (n *Node) Cancel(ctx context.Context, id string) (JobStatus, error) {
	return n.jobs.Cancel(ctx, id)
}
