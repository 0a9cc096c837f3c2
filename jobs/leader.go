package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"engine/coordinator"
	"engine/sortjob"
)

// NewTerm tells the manager that this node has just become the leader:
// the cleanup of ended jobs runs again (the last leader may have died
// midway).
func (n *Manager) NewTerm() {
	n.leadMu.Lock()
	n.cleaned = map[string]bool{}
	n.leadMu.Unlock()
}

// Lead runs one round of the leader's work on jobs: it proposes what the
// scheduler (coordinator.Reconcile) returns, commits jobs whose reduces are
// all done, and cleans up after jobs that failed or were cancelled. The
// node calls it from its leader loop, only while it leads.
func (n *Manager) Lead(ctx context.Context) {
	n.schedule(ctx)
	n.finishJobs(ctx)
}

// schedule proposes what Reconcile returns.
func (n *Manager) schedule(ctx context.Context) {
	var cmds []coordinator.Command
	n.fsm.Read(func(s *coordinator.State) { cmds = coordinator.Reconcile(s, time.Now()) })
	for _, c := range cmds {
		// A batch is applied command by command: a rejected one (the
		// state moved on since Reconcile read it) leaves the others in.
		err := n.propose(ctx, c)
		if err != nil && !errors.Is(err, coordinator.ErrRejected) {
			return
		}
		for _, c := range append(c.Batch, c) {
			if c.Type != coordinator.CmdTaskAssign && c.Type != coordinator.CmdBatch {
				n.log.Info("repair", "type", c.Type, "job", c.Job, "kind", c.Kind, "index", c.Index, "node", c.Node, "why", c.Error)
			}
			if c.Speculative {
				n.log.Info("speculative attempt", "job", c.Job, "kind", c.Kind, "index", c.Index, "node", c.Node, "attempt", c.Attempt)
			}
		}
	}
}

// finishJobs commits jobs whose reduces are all done, and cleans up after
// jobs that failed or were cancelled.
func (n *Manager) finishJobs(ctx context.Context) {
	var commit []*coordinator.Job
	var ended []*coordinator.Job
	n.fsm.Read(func(s *coordinator.State) {
		for _, id := range s.JobIDs() {
			j := s.Jobs[id]
			switch {
			case j.State == coordinator.JobRunning && j.Stage == coordinator.StageCommit:
				commit = append(commit, j.Clone())
			case (j.State == coordinator.JobFailed || j.State == coordinator.JobCancelled) && !n.isCleaned(id):
				ended = append(ended, j.Clone())
			}
		}
	})
	for _, j := range commit {
		n.commitJob(j)
	}
	for _, j := range ended {
		if out := j.Spec.Output; out != "" {
			os.RemoveAll(sortjob.TempDir(out, j.ID))
			// Parts a failed commit may have moved, and the directory the
			// job made, go only while no other job writes there: a user
			// often resubmits to the same --output.
			if !n.outputInUse(out, j.ID) {
				sortjob.RemoveUncommitted(out)
				if j.OutputCreated {
					os.Remove(out) // only if empty
				}
			}
		}
		n.setCleaned(j.ID)
	}
}

// outputInUse reports whether a job other than except that is running, or
// was submitted later, writes to out.
func (n *Manager) outputInUse(out, except string) bool {
	used := false
	n.fsm.Read(func(s *coordinator.State) {
		mine := s.Jobs[except]
		for id, j := range s.Jobs {
			if id == except || filepath.Clean(j.Spec.Output) != filepath.Clean(out) {
				continue
			}
			if !j.Done() || mine == nil || j.Submitted.After(mine.Submitted) {
				used = true
			}
		}
	})
	return used
}

func (n *Manager) isCleaned(id string) bool {
	n.leadMu.Lock()
	defer n.leadMu.Unlock()
	return n.cleaned[id]
}

func (n *Manager) setCleaned(id string) {
	n.leadMu.Lock()
	defer n.leadMu.Unlock()
	if n.cleaned == nil {
		n.cleaned = map[string]bool{}
	}
	n.cleaned[id] = true
}
