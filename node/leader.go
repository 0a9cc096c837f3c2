package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"engine/coordinator"
	"engine/sortjob"
)

// leaderState is what only the leader loop uses.
type leaderState struct {
	mu struct {
		sync.Mutex
		joinedAt map[string]time.Time
	}
	cleaned map[string]bool // jobs whose ended-job cleanup ran
	since   time.Time       // when this node became leader
}

func (l *leaderState) joined(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.joinedAt == nil {
		l.mu.joinedAt = map[string]time.Time{}
	}
	l.mu.joinedAt[id] = time.Now()
}

func (l *leaderState) recentlyJoined(id string, grace time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.mu.joinedAt[id]) < grace
}

// leaderLoop runs on every node and acts while the node leads: it keeps the
// members' liveness in the state, replaces dead voters, runs the scheduler
// (Reconcile) and proposes its commands, and commits finished jobs.
func (n *Node) leaderLoop() {
	tick := time.NewTicker(n.cfg.RaftTimeout / 2)
	defer tick.Stop()
	leading := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.kick:
		case <-tick.C:
		}
		if !n.raft.IsLeader() {
			leading = false
			continue
		}
		if !leading {
			// Apply everything committed before acting on the state.
			if err := n.raft.Barrier(5 * time.Second); err != nil {
				continue
			}
			leading = true
			n.leader.cleaned = map[string]bool{}
			n.leader.since = time.Now()
			n.log.Info("leading the cluster")
		}
		n.syncLiveness()
		n.replaceDeadVoters()
		n.schedule()
		n.finishJobs()
	}
}

// syncLiveness records in the state which members gossip sees alive.
func (n *Node) syncLiveness() {
	alive := map[string]bool{n.id: true}
	for _, m := range n.ml.Members() {
		if m.State == memberlist.StateAlive || m.State == memberlist.StateSuspect {
			alive[m.Name] = true
		}
	}
	// A new leader's gossip has not met every member yet (after a whole
	// cluster restart it has met none): give them time before calling
	// anyone dead, or their finished map outputs would be re-run for
	// nothing.
	settling := time.Since(n.leader.since) < 10*n.cfg.RaftTimeout
	var cmds []coordinator.Command
	n.fsm.Read(func(s *coordinator.State) {
		for _, id := range s.MemberIDs() {
			m := s.Members[id]
			want := alive[id] || n.leader.recentlyJoined(id, 10*n.cfg.RaftTimeout) || (settling && m.Alive)
			if m.Alive != want {
				cmds = append(cmds, coordinator.Command{Type: coordinator.CmdMemberAlive, Time: time.Now(), ID: id, Alive: want})
			}
		}
	})
	for _, c := range cmds {
		if err := n.raft.Propose(n.ctx, c); err != nil {
			return
		}
		n.log.Info("member liveness", "member", c.ID, "alive", c.Alive)
	}
}

// replaceDeadVoters promotes a live non-voter in place of a voter that has
// been dead for a while, so the cluster keeps MaxVoters voters.
func (n *Node) replaceDeadVoters() {
	servers, err := n.raft.Servers()
	if err != nil {
		return
	}
	var dead, spare []string
	voters := 0
	n.fsm.Read(func(s *coordinator.State) {
		for _, sv := range servers {
			m := s.Members[sv.ID]
			alive := m != nil && m.Alive
			switch {
			case sv.Voter && !alive && sv.ID != n.id:
				dead = append(dead, sv.ID)
			case sv.Voter:
				voters++
			case alive:
				spare = append(spare, sv.ID)
			}
		}
	})
	for len(spare) > 0 && (len(dead) > 0 || voters < n.cfg.MaxVoters) {
		id := spare[0]
		spare = spare[1:]
		var addr string
		n.fsm.Read(func(s *coordinator.State) { addr = s.Members[id].RaftAddr })
		if err := n.raft.AddVoter(id, addr); err != nil {
			return
		}
		n.log.Info("promoted a non-voter", "member", id)
		voters++
		if len(dead) > 0 {
			if err := n.raft.RemoveServer(dead[0]); err != nil {
				return
			}
			n.log.Info("removed a dead voter", "member", dead[0])
			dead = dead[1:]
		}
	}
}

// schedule proposes what Reconcile returns.
func (n *Node) schedule() {
	var cmds []coordinator.Command
	n.fsm.Read(func(s *coordinator.State) { cmds = coordinator.Reconcile(s, time.Now()) })
	for _, c := range cmds {
		err := n.raft.Propose(n.ctx, c)
		if errors.Is(err, coordinator.ErrRejected) {
			continue
		}
		if err != nil {
			return
		}
		if c.Type != coordinator.CmdTaskAssign {
			n.log.Info("repair", "type", c.Type, "job", c.Job, "kind", c.Kind, "index", c.Index, "node", c.Node, "why", c.Error)
		}
	}
}

// finishJobs commits jobs whose reduces are all done, and cleans up after
// jobs that failed or were cancelled.
func (n *Node) finishJobs() {
	var commit []*coordinator.Job
	var ended []*coordinator.Job
	n.fsm.Read(func(s *coordinator.State) {
		for _, id := range s.JobIDs() {
			j := s.Jobs[id]
			switch {
			case j.State == coordinator.JobRunning && j.Stage == coordinator.StageCommit:
				commit = append(commit, cloneJob(j))
			case (j.State == coordinator.JobFailed || j.State == coordinator.JobCancelled) && !n.leader.cleaned[id]:
				ended = append(ended, cloneJob(j))
			}
		}
	})
	for _, j := range commit {
		n.commitJob(j)
	}
	for _, j := range ended {
		if out := j.Spec.Output; out != "" {
			sortjob.RemoveUncommitted(out)
			os.RemoveAll(filepath.Join(out, ".engine-"+j.ID))
			if j.OutputCreated {
				os.Remove(out) // only if empty
			}
		}
		n.leader.cleaned[j.ID] = true
	}
}

func withTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d)
}
