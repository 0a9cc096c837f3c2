package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// Speculation: a running map or reduce that has run SpeculateAfter times
// the median of its stage's finished tasks (and at least speculateMin)
// gets a twin on another node once the stage has no pending tasks left to
// give a free slot to, and at least half of the stage (or 10 tasks) has
// finished, so that the median means something.
const (
	SpeculateAfter = 1.5
	speculateMin   = time.Second
)

// SlotsPerCore is how many attempts a node holds per core: it runs one per
// core (its Workers) and keeps the next ones queued, so that when a task
// ends the next is already there. The control plane's round trip (the
// report committed, the scheduler's next batch committed) takes 20-40 ms
// here; with three queued behind each worker, tasks as short as 10 ms (a
// 5 MB map) never leave a core idle.
const SlotsPerCore = 4

// Reconcile is the scheduler: it compares the jobs' desired state with the
// members and returns the commands that move the cluster toward it. It is a
// pure function of s; the leader proposes what it returns and calls it again
// after they are applied.
//
// A round first repairs: a running attempt whose node is dead (or came back
// without its data) fails, and a finished map whose output was on such a
// node is lost (to be re-run). Only a round with nothing to repair assigns,
// in one batch: merges of the outputs a node has collected, pending tasks of
// each running job's current stage on the live nodes with free slots
// (SlotsPerCore times a member's Cores, less its running attempts),
// round-robin, jobs in submission order, and then twins of stragglers.
//
// Its cost grows with the running attempts and the live members, not with
// the job's size: the job index (counts, running set, pending cursor,
// finished outputs per node) spares it a pass over every task.
func Reconcile(s *State, now time.Time) []Command {
	gone := func(node string, incarnation int32) (bool, string) {
		m, ok := s.Members[node]
		switch {
		case !ok:
			return true, fmt.Sprintf("node %s left the cluster", node)
		case !m.Alive:
			return true, fmt.Sprintf("node %s died", node)
		case int32(m.Incarnation) != incarnation:
			return true, fmt.Sprintf("node %s restarted without its data", node)
		}
		return false, ""
	}
	free := map[string]int{}
	for id, m := range s.Members {
		if m.Alive {
			free[id] = max(m.Cores, 1) * SlotsPerCore
		}
	}
	var repairs []Command
	jobs := s.JobIDs()
	for _, id := range jobs {
		j := s.Jobs[id]
		if j.Done() {
			continue
		}
		// By node: the attempts of a live node only count against its
		// slots; only a gone node's are looked at one by one.
		x := j.index()
		for _, key := range sortedNodeIncs(x.runningOn) {
			on := x.runningOn[key]
			lost, why := gone(key.node, key.inc)
			if !lost {
				free[key.node] -= len(on)
				continue
			}
			for _, r := range sortedRefs(on) {
				_, attempt := j.attemptOf(r)
				repairs = append(repairs, Command{Type: CmdTaskFailed, Job: j.ID, Kind: r.kind, Index: r.index, Node: key.node, Attempt: int(attempt),
					Error: why + " while running the task", NotOurFault: true})
			}
		}
		if j.Stage == StageCommit {
			continue
		}
		var stale []nodeInc
		for _, key := range sortedNodeIncs(x.doneOn) {
			if lost, _ := gone(key.node, key.inc); lost {
				stale = append(stale, key)
			}
		}
		for _, key := range stale {
			_, why := gone(key.node, key.inc)
			merges := map[int]bool{}
			for i := range j.Maps {
				t := &j.Maps[i]
				if t.State != TaskDone || t.Node != key.node || t.NodeIncarnation != key.inc {
					continue
				}
				switch {
				case t.Merge > 0 && j.Merges[t.Merge-1].State == TaskDone:
					// One command loses the merge's output and with it
					// every map it holds.
					if m := int(t.Merge); !merges[m] {
						merges[m] = true
						repairs = append(repairs, Command{Type: CmdMapLost, Job: j.ID, Kind: KindMerge, Index: m - 1, Node: key.node, Error: why})
					}
				default:
					repairs = append(repairs, Command{Type: CmdMapLost, Job: j.ID, Kind: KindMap, Index: i, Node: key.node, Error: why})
				}
			}
		}
	}
	if len(repairs) > 0 {
		return batch(repairs, now)
	}
	nodes := make([]string, 0, len(free))
	for id, f := range free {
		if f > 0 {
			nodes = append(nodes, id)
		}
	}
	sort.Strings(nodes)
	sl := &slots{free: free, nodes: nodes}
	var cmds []Command
	for _, id := range jobs {
		j := s.Jobs[id]
		if j.Done() || sl.empty() {
			continue
		}
		switch j.Stage {
		case StageMap:
			cmds = giveUpMerges(j, now, cmds)
			cmds = assignMerges(j, sl, cmds)
			cmds = assignPending(j, KindMap, sl, cmds)
			cmds = speculate(j, KindMap, sl, now, cmds)
		case StageReduce:
			cmds = assignPending(j, KindReduce, sl, cmds)
			cmds = speculate(j, KindReduce, sl, now, cmds)
		}
	}
	return batch(cmds, now)
}

// batch wraps commands in batches of at most MaxBatch.
func batch(cmds []Command, now time.Time) []Command {
	if len(cmds) == 0 {
		return nil
	}
	var out []Command
	for len(cmds) > 0 {
		n := min(len(cmds), MaxBatch)
		out = append(out, Command{Type: CmdBatch, Time: now, Batch: cmds[:n:n]})
		cmds = cmds[n:]
	}
	return out
}

// slots hands out the free task slots of the live members round-robin, so
// that a wave spreads over every node.
type slots struct {
	free  map[string]int
	nodes []string // members with a free slot, by id
	next  int
}

func (s *slots) empty() bool { return len(s.nodes) == 0 }

// take returns a node with a free slot and uses the slot: the next one in
// turn that is not avoid, or avoid when it is the only one. "" when none.
func (s *slots) take(avoid string) string {
	if node := s.takeOther(avoid); node != "" {
		return node
	}
	if s.takeOn(avoid) {
		return avoid
	}
	return ""
}

// takeOther is take without falling back to avoid.
func (s *slots) takeOther(avoid string) string {
	for k := 0; k < len(s.nodes); k++ {
		i := (s.next + k) % len(s.nodes)
		if s.nodes[i] != avoid {
			node := s.nodes[i]
			s.use(i)
			return node
		}
	}
	return ""
}

// takeOn uses a slot of node, if it has one.
func (s *slots) takeOn(node string) bool {
	i := sort.SearchStrings(s.nodes, node)
	if i == len(s.nodes) || s.nodes[i] != node {
		return false
	}
	s.use(i)
	return true
}

func (s *slots) use(i int) {
	node := s.nodes[i]
	s.free[node]--
	if s.free[node] > 0 {
		s.next = i + 1
		return
	}
	s.nodes = append(s.nodes[:i], s.nodes[i+1:]...)
	s.next = i
}

// assignMerges starts a merge on every node with a free slot that holds
// MergeGroup unclaimed map outputs, or, once every map is done, two or more.
func assignMerges(j *Job, sl *slots, cmds []Command) []Command {
	g := j.Plan.MergeGroup
	if g <= 0 || j.MergesCut {
		return cmds
	}
	x := j.index()
	allDone := x.count[KindMap][TaskDone] == len(j.Maps)
	next := len(j.Merges)
	for _, node := range slices.Sorted(maps.Keys(x.unmerged)) {
		// Listing a node's outputs costs their number: only for a node
		// with a merge due and a free slot to run it on.
		if n := len(x.unmerged[node]); n < g && !(allDone && n >= 2) || sl.free[node] <= 0 {
			continue
		}
		maps := j.Unmerged(node)
		for len(maps) >= g || (allDone && len(maps) >= 2) {
			if !sl.takeOn(node) {
				break
			}
			n := min(len(maps), g)
			cmds = append(cmds, Command{Type: CmdTaskAssign, Job: j.ID, Kind: KindMerge, Index: next, Node: node, Attempt: 1, Maps: maps[:n:n]})
			next++
			maps = maps[n:]
		}
	}
	return cmds
}

// giveUpMerges stops waiting for straggling merges once every map is
// done: a merge running SpeculateAfter times the median merge of its size
// (the median time per merged map, times its maps; at least speculateMin)
// is given up, and the reduces read its maps' own
// outputs. A merge cannot have a twin elsewhere (its inputs are on its
// node), and the reduce stage waits for every merge: one slow disk would
// hold the whole job.
func giveUpMerges(j *Job, now time.Time, cmds []Command) []Command {
	x := j.index()
	if j.Plan.MergeGroup <= 0 || x.count[KindMerge][TaskRunning] == 0 || x.count[KindMap][TaskDone] < len(j.Maps) || x.took[KindMerge].n == 0 {
		return cmds
	}
	perMap := float64(x.took[KindMerge].median()) * SpeculateAfter
	merges := map[taskRef]struct{}{}
	for r := range x.running {
		if r.kind == KindMerge {
			merges[r] = struct{}{}
		}
	}
	for _, r := range sortedRefs(merges) {
		t := &j.Merges[r.index]
		limit := max(time.Duration(perMap*float64(len(j.MergeMaps[r.index]))), speculateMin)
		if now.Sub(time.Unix(0, t.Started)) >= limit {
			cmds = append(cmds, Command{Type: CmdTaskFailed, Job: j.ID, Kind: KindMerge, Index: r.index, Node: t.Node, Attempt: int(t.Attempt),
				Error:       fmt.Sprintf("merge %d given up after %s (the median merge took %s): the reduces read its maps' outputs", r.index, now.Sub(time.Unix(0, t.Started)).Round(time.Millisecond), time.Duration(x.took[KindMerge].median())),
				NotOurFault: true, GiveUp: true})
		}
	}
	return cmds
}

// assignPending gives the pending tasks of a kind to free slots, from the
// lowest index up.
func assignPending(j *Job, kind Kind, sl *slots, cmds []Command) []Command {
	x := j.index()
	ts := j.Tasks(kind)
	left := x.count[kind][TaskPending]
	for i := x.low[kind]; i < len(ts) && left > 0 && !sl.empty(); i++ {
		t := &ts[i]
		if t.State != TaskPending {
			continue
		}
		left--
		node := sl.take(t.failedOn())
		cmds = append(cmds, Command{Type: CmdTaskAssign, Job: j.ID, Kind: kind, Index: i, Node: node, Attempt: int(t.Attempts) + 1})
	}
	return cmds
}

// speculate starts twins of the stage's stragglers on other nodes' free
// slots (see SpeculateAfter).
func speculate(j *Job, kind Kind, sl *slots, now time.Time, cmds []Command) []Command {
	x := j.index()
	ts := j.Tasks(kind)
	if sl.empty() || x.count[kind][TaskPending] > 0 || x.took[kind].n < max(1, min(10, len(ts)/2)) {
		return cmds
	}
	limit := max(time.Duration(float64(x.took[kind].median())*SpeculateAfter), speculateMin)
	for _, r := range j.running() {
		if sl.empty() {
			break
		}
		if r.kind != kind || r.twin {
			continue
		}
		t := &ts[r.index]
		if t.Twin != nil || t.Attempts >= maxTotalAttempts || now.Sub(time.Unix(0, t.Started)) < limit {
			continue
		}
		node := sl.takeOther(t.Node)
		if node == "" {
			break // the only free slots are on the straggler's own node
		}
		cmds = append(cmds, Command{Type: CmdTaskAssign, Job: j.ID, Kind: kind, Index: r.index, Node: node, Attempt: int(t.Attempts) + 1, Speculative: true})
	}
	return cmds
}

// sortedNodeIncs returns m's keys by node, then incarnation.
func sortedNodeIncs[V any](m map[nodeInc]V) []nodeInc {
	out := make([]nodeInc, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(a, b int) bool {
		return out[a].node < out[b].node || out[a].node == out[b].node && out[a].inc < out[b].inc
	})
	return out
}
