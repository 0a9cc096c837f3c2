package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"engine/coordinator"
)

// leaderState is what only the leader loop uses.
type leaderState struct {
	mu struct {
		sync.Mutex
		joinedAt map[string]time.Time
	}
	since      time.Time   // when this node became leader
	lastRejoin time.Time   // last gossip re-join attempt
	rejoining  atomic.Bool // a gossip re-join is in flight
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
			n.jobs.NewTerm()
			n.leader.since = time.Now()
			n.log.Info("leading the cluster")
		}
		n.syncLiveness()
		n.rejoinGossip()
		n.maintainVoters()
		n.jobs.Lead(n.ctx)
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

// maintainVoters keeps MaxVoters voters: it promotes live non-voters that
// have caught up with the leader's log — in place of voters that are dead,
// or while there are too few — and re-adds live members that fell out of
// the configuration (a healed partition).
func (n *Node) maintainVoters() {
	servers, err := n.raft.Servers()
	if err != nil {
		return
	}
	inConfig := map[string]bool{}
	var dead, spare []string
	voters := 0
	var leaderIndex uint64
	byRaft := map[string]coordinator.Member{}
	n.fsm.Read(func(s *coordinator.State) {
		leaderIndex = s.Index
		for _, m := range s.Members {
			byRaft[m.RaftID] = *m
		}
	})
	for _, sv := range servers {
		inConfig[sv.ID] = true
		m, ok := byRaft[sv.ID]
		alive := ok && m.Alive
		switch {
		case sv.Voter && !alive && sv.ID != n.raftID:
			dead = append(dead, sv.ID)
		case sv.Voter:
			voters++
		case alive:
			spare = append(spare, sv.ID)
		}
	}
	for id, m := range byRaft {
		if m.Alive && !inConfig[id] {
			if err := n.raft.AddNonvoter(id, m.RaftAddr); err == nil {
				n.log.Info("re-added a live member to Raft as a non-voter", "member", m.ID)
			}
		}
	}
	for _, id := range spare {
		if len(dead) == 0 && voters >= n.cfg.MaxVoters {
			return
		}
		m := byRaft[id]
		if !n.caughtUpPeer(m, leaderIndex) {
			continue
		}
		if err := n.raft.AddVoter(id, m.RaftAddr); err != nil {
			return
		}
		n.log.Info("promoted a caught-up non-voter", "member", m.ID)
		voters++
		if len(dead) > 0 {
			if err := n.raft.RemoveServer(dead[0]); err != nil {
				return
			}
			n.log.Info("removed a dead voter", "raft_id", dead[0])
			dead = dead[1:]
		}
	}
}

// caughtUpPeer asks a member how far it has applied the log.
func (n *Node) caughtUpPeer(m coordinator.Member, leaderIndex uint64) bool {
	ctx, cancel := context.WithTimeout(n.ctx, time.Second)
	defer cancel()
	st, err := n.peerClient(m.ShuffleAddr).peerStatus(ctx)
	return err == nil && st.Applied+16 >= leaderIndex
}

// rejoinGossip asks gossip to meet again the members the state calls dead:
// after a network partition heals, memberlist on each side has given up on
// the other and would not probe it again.
func (n *Node) rejoinGossip() {
	if time.Since(n.leader.lastRejoin) < 5*time.Second {
		return
	}
	n.leader.lastRejoin = time.Now()
	var addrs []string
	n.fsm.Read(func(s *coordinator.State) {
		for _, m := range s.Members {
			if !m.Alive && m.ID != n.id {
				addrs = append(addrs, m.GossipAddr)
			}
		}
	})
	if len(addrs) == 0 || !n.leader.rejoining.CompareAndSwap(false, true) {
		return
	}
	n.goFunc(func() {
		defer n.leader.rejoining.Store(false)
		n.ml.Join(addrs)
	})
}

func withTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d)
}
