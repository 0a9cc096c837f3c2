package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"engine/coordinator"
)

// startGossip starts memberlist on the gossip address: it is how the leader
// learns which members are alive.
func (n *Node) startGossip() error {
	host, port, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("node: gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	p, _ := strconv.Atoi(port)
	c := memberlist.DefaultLANConfig()
	c.Name = n.id
	c.BindAddr, c.BindPort = host, p
	c.AdvertiseAddr, c.AdvertisePort = "", 0
	// Failure detection in about 2-4 RaftTimeouts on a LAN.
	c.ProbeInterval = n.cfg.RaftTimeout / 2
	c.ProbeTimeout = n.cfg.RaftTimeout / 4
	c.SuspicionMult = 2
	c.GossipInterval = n.cfg.RaftTimeout / 5
	c.PushPullInterval = 10 * n.cfg.RaftTimeout
	c.LogOutput = io.Discard
	c.Delegate = nodeDelegate{n}
	// Gossip is encrypted and authenticated with the cluster's key: a
	// process without it can neither join nor be heard.
	c.SecretKey = n.ident.GossipKey
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	ml, err := memberlist.Create(c)
	if err != nil {
		return fmt.Errorf("node: gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	n.ml = ml
	return nil
}

func (n *Node) gossipAddr() string {
	a := n.ml.LocalNode().FullAddress()
	return a.Addr
}

// JoinRequest is what a node sends to join (or re-join) the cluster.
type JoinRequest struct {
	Member coordinator.Member `json:"member"`
	// Fresh: the node's data directory is new, so outputs it held before
	// (under the same id) are gone.
	Fresh bool `json:"fresh"`
}

// JoinResponse lists the members' gossip addresses to join.
type JoinResponse struct {
	Gossip []string `json:"gossip"`
	Leader string   `json:"leader"`
	// Index is the leader's applied index: the joiner acts on the state
	// (runs tasks) only once it has applied that far, not on the old
	// states it passes through while replaying its log.
	Index uint64 `json:"index"`
}

func (n *Node) self() coordinator.Member {
	return coordinator.Member{
		ID: n.id, RaftID: n.raftID, APIAddr: n.Addr(), RaftAddr: n.raft.Addr(), GossipAddr: n.gossipAddr(),
		ShuffleAddr: n.shuffleLn.Addr().String(), DataDir: n.cfg.DataDir, Cores: n.cfg.Workers,
	}
}

// registerLoop makes this node a member of the cluster: through --join the
// first time, else through whoever leads (itself after a bootstrap). It
// retries until it succeeds; the first failure against --join is logged
// with the reason.
func (n *Node) registerLoop() {
	req := JoinRequest{Member: n.self(), Fresh: n.fresh}
	backoff := 100 * time.Millisecond
	warned := false
	for n.ctx.Err() == nil {
		resp, err := n.register(req)
		if err == nil {
			if err := n.raft.Start(); err != nil {
				n.log.Error("start Raft", "err", err)
				return
			}
			if len(resp.Gossip) > 0 {
				if _, err := n.ml.Join(resp.Gossip); err != nil {
					n.log.Warn("gossip join", "err", err)
				}
			}
			n.caughtUpAt.Store(resp.Index)
			n.regOnce.Do(func() { close(n.registered) })
			n.log.Info("member of the cluster", "leader", resp.Leader)
			return
		}
		if errors.Is(err, ErrNameInUse) {
			n.log.Error("join refused", "err", err)
			n.joinErr.Store(&err)
			n.regOnce.Do(func() { close(n.registered) })
			return
		}
		if !warned && backoff >= time.Second {
			n.log.Warn("cannot join the cluster yet", "err", err)
			warned = true
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (n *Node) register(req JoinRequest) (JoinResponse, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if n.raft.IsLeader() {
		return n.handleJoin(ctx, req)
	}
	if _, addr := n.leaderPeer(); addr != "" {
		return n.peerClient(addr).Join(ctx, req)
	}
	if n.cfg.Join != "" {
		// The member named by --join tells (to a holder of the client
		// token, over TLS under the cluster CA) who leads; any member
		// forwards a join to the leader.
		c := n.peerClient(strings.TrimPrefix(strings.TrimPrefix(n.cfg.Join, "http://"), "https://"))
		c.Token = n.ident.ClientToken
		st, err := c.Status(ctx)
		if err != nil {
			return JoinResponse{}, err
		}
		for _, m := range st.Members {
			if m.Leader && m.ShuffleAddr != "" {
				return n.peerClient(m.ShuffleAddr).Join(ctx, req)
			}
		}
		for _, m := range st.Members {
			if m.ID == st.ID && m.ShuffleAddr != "" {
				return n.peerClient(m.ShuffleAddr).Join(ctx, req)
			}
		}
		return JoinResponse{}, fmt.Errorf("%s knows no leader yet", n.cfg.Join)
	}
	return JoinResponse{}, fmt.Errorf("no leader yet")
}

// leaderPeer returns the leader's member id and internal address (its
// peer API), if known.
func (n *Node) leaderPeer() (string, string) {
	raftID, _ := n.raft.Leader()
	if raftID == "" {
		return "", ""
	}
	var id, addr string
	n.fsm.Read(func(s *coordinator.State) {
		for _, m := range s.Members {
			if m.RaftID == raftID {
				id, addr = m.ID, m.ShuffleAddr
			}
		}
	})
	return id, addr
}

// handleJoin runs on the leader: it adds the node to Raft and records the
// member. A new Raft server (a new node, or a node back with an empty data
// directory) joins as a non-voter; the leader promotes it once it has caught
// up (maintainVoters). A known server keeps its role, at its new address if
// it moved.
func (n *Node) handleJoin(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	if !n.raft.IsLeader() {
		_, addr := n.leaderPeer()
		if addr == "" || addr == n.shuffleLn.Addr().String() {
			return JoinResponse{}, fmt.Errorf("node %s: %w: no leader to join through", n.id, coordinator.ErrNoQuorum)
		}
		return n.peerClient(addr).Join(ctx, req)
	}
	m := req.Member
	if m.ID == "" || m.RaftID == "" || m.RaftAddr == "" {
		return JoinResponse{}, errors.New("node: join without an id, Raft id or Raft address")
	}
	// A node's Raft servers are named after it (ID.random): it may take
	// back or replace only its own.
	if !strings.HasPrefix(m.RaftID, m.ID+".") {
		return JoinResponse{}, fmt.Errorf("node: Raft id %q is not one of node %s's", m.RaftID, m.ID)
	}
	servers, err := n.raft.Servers()
	if err != nil {
		return JoinResponse{}, err
	}
	var known *coordinator.Server
	for i, s := range servers {
		if s.ID == m.RaftID {
			known = &servers[i]
		}
	}
	if known == nil {
		if err := n.nameInUse(m); err != nil {
			return JoinResponse{}, err
		}
	}
	switch {
	case known != nil && known.Addr == m.RaftAddr:
		m.Voter = known.Voter
	case known != nil:
		// A restart on other ports: adding it again records the address.
		if known.Voter {
			err = n.raft.AddVoter(m.RaftID, m.RaftAddr)
		} else {
			err = n.raft.AddNonvoter(m.RaftID, m.RaftAddr)
		}
		m.Voter = known.Voter
	default:
		// Earlier incarnations of this node leave the configuration:
		// their logs are gone.
		for _, s := range servers {
			if strings.HasPrefix(s.ID, m.ID+".") {
				if rerr := n.raft.RemoveServer(s.ID); rerr != nil {
					return JoinResponse{}, fmt.Errorf("node: remove %s's old Raft server %s: %w", m.ID, s.ID, rerr)
				}
			}
		}
		err = n.raft.AddNonvoter(m.RaftID, m.RaftAddr)
	}
	if err != nil {
		return JoinResponse{}, fmt.Errorf("node: add %s to Raft: %w", m.ID, err)
	}
	var old *coordinator.Member
	n.fsm.Read(func(s *coordinator.State) {
		if o := s.Members[m.ID]; o != nil {
			c := *o
			old = &c
		}
	})
	if old != nil {
		m.Incarnation = old.Incarnation
		if req.Fresh {
			m.Incarnation++
		}
	}
	n.leader.joined(m.ID) // before the member exists: no liveness verdict in between
	if err := n.propose(ctx, coordinator.Command{Type: coordinator.CmdMemberUpsert, Time: time.Now(), Member: &m}); err != nil {
		return JoinResponse{}, err
	}
	resp := JoinResponse{Leader: n.id}
	n.fsm.Read(func(s *coordinator.State) {
		resp.Index = s.Index
		for _, id := range s.MemberIDs() {
			if id != m.ID && s.Members[id].Alive {
				resp.Gossip = append(resp.Gossip, s.Members[id].GossipAddr)
			}
		}
	})
	return resp, nil
}

// ErrNameInUse refuses a join under the name of a member that is alive at
// another address.
var ErrNameInUse = errors.New("node: name in use")

// nameInUse refuses a new Raft server that takes the name of a member gossip
// sees alive at another address: two processes would run one node's tasks.
// A node that restarts at its own address (after losing its data) is let in.
func (n *Node) nameInUse(m coordinator.Member) error {
	var old *coordinator.Member
	n.fsm.Read(func(s *coordinator.State) {
		if o := s.Members[m.ID]; o != nil {
			c := *o
			old = &c
		}
	})
	if old == nil || old.GossipAddr == m.GossipAddr {
		return nil
	}
	for _, g := range n.ml.Members() {
		if g.Name == m.ID && g.State == memberlist.StateAlive && g.FullAddress().Addr == old.GossipAddr {
			return fmt.Errorf("%w: a node named %s is already running at %s (API %s); give this one another --name, or stop that one first", ErrNameInUse, m.ID, old.GossipAddr, old.APIAddr)
		}
	}
	return nil
}

// propose replicates a command through the leader: directly on the leader,
// through the leader's API elsewhere. It retries while there is no leader,
// until ctx ends.
func (n *Node) propose(ctx context.Context, c coordinator.Command) error {
	backoff := 20 * time.Millisecond
	for {
		var err error
		if n.raft.IsLeader() {
			err = n.raft.Propose(ctx, c)
		} else if id, addr := n.leaderPeer(); addr != "" && id != n.id {
			err = n.peerClient(addr).Propose(ctx, c)
		} else {
			err = &coordinator.NotLeaderError{}
		}
		if err == nil || errors.Is(err, coordinator.ErrRejected) || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, coordinator.ErrNotLeader) || errors.Is(err, coordinator.ErrNoQuorum) {
				return fmt.Errorf("%w: %v (is a majority of the Raft voters up?)", coordinator.ErrNoQuorum, err)
			}
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// retryable: errors that a new leader or a moment may cure.
func retryable(err error) bool {
	var re *remoteError
	if errors.As(err, &re) {
		return re.status >= 500 || re.status == 421
	}
	return true
}
