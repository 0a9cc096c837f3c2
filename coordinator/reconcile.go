package coordinator

import (
	"fmt"
	"time"
)

// Reconcile is the scheduler: it compares the jobs' desired state with the
// members and returns the commands that move the cluster toward it. It is a
// pure function of s; the leader proposes what it returns and calls it again
// after they are applied.
//
// A round first repairs: a running task whose node is dead (or came back
// without its data) fails its attempt, and a finished map whose output was on
// such a node is lost (to be re-run). Only a round with nothing to repair
// assigns: pending tasks of each running job's current stage go to the live
// node with the most free slots (a member's Cores, less its running tasks),
// jobs in submission order.
func Reconcile(s *State, now time.Time) []Command {
	var repairs []Command
	free := map[string]int{}
	for id, m := range s.Members {
		if m.Alive {
			free[id] = max(m.Cores, 1)
		}
	}
	gone := func(node string, incarnation int) (bool, string) {
		m, ok := s.Members[node]
		switch {
		case !ok:
			return true, fmt.Sprintf("node %s left the cluster", node)
		case !m.Alive:
			return true, fmt.Sprintf("node %s died", node)
		case m.Incarnation != incarnation:
			return true, fmt.Sprintf("node %s restarted without its data", node)
		}
		return false, ""
	}
	jobs := s.JobIDs()
	for _, id := range jobs {
		j := s.Jobs[id]
		if j.Done() {
			continue
		}
		for _, ts := range [][]Task{j.Maps, j.Reduces} {
			for _, t := range ts {
				switch t.State {
				case TaskRunning:
					if lost, why := gone(t.Node, t.NodeIncarnation); lost {
						repairs = append(repairs, Command{Type: CmdTaskFailed, Time: now, Job: j.ID, Kind: t.Kind, Index: t.Index, Node: t.Node, Attempt: t.Attempt,
							Error: why + " while running the task", NotOurFault: true})
					} else {
						free[t.Node]--
					}
				case TaskDone:
					if t.Kind != KindMap || j.Stage == StageCommit {
						continue
					}
					if lost, why := gone(t.Node, t.NodeIncarnation); lost {
						repairs = append(repairs, Command{Type: CmdMapLost, Time: now, Job: j.ID, Index: t.Index, Node: t.Node, Error: why})
					}
				}
			}
		}
	}
	if len(repairs) > 0 {
		return repairs
	}
	var cmds []Command
	for _, id := range jobs {
		j := s.Jobs[id]
		if j.Done() {
			continue
		}
		var ts []Task
		switch j.Stage {
		case StageMap:
			ts = j.Maps
		case StageReduce:
			ts = j.Reduces
		default:
			continue
		}
		for _, t := range ts {
			if t.State != TaskPending {
				continue
			}
			node := mostFree(free, t.FailedOn)
			if node == "" {
				return cmds
			}
			free[node]--
			cmds = append(cmds, Command{Type: CmdTaskAssign, Time: now, Job: j.ID, Kind: t.Kind, Index: t.Index, Node: node, Attempt: t.Attempt + 1})
		}
	}
	return cmds
}

// mostFree returns the node with the most free slots (ties to the smallest
// id), avoiding the node named avoid unless it is the only one with a free
// slot; "" when no node has a free slot.
func mostFree(free map[string]int, avoid string) string {
	best, n := "", 0
	for id, f := range free {
		if id == avoid {
			continue
		}
		if f > n || (f == n && f > 0 && id < best) {
			best, n = id, f
		}
	}
	if best == "" && free[avoid] > 0 {
		return avoid
	}
	return best
}
