package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testNode struct {
	id, dir, addr string
	fsm           *FSM
	raft          *Raft
}

func startNode(t *testing.T, n *testNode, bootstrap bool) {
	t.Helper()
	n.fsm = NewFSM()
	r, err := OpenRaft(RaftConfig{ID: n.id, Dir: n.dir, Bind: n.addr, Bootstrap: bootstrap, FSM: n.fsm})
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaderOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.raft != nil && n.raft.IsLeader() {
			return n
		}
	}
	return nil
}

func members(n *testNode) int {
	var k int
	n.fsm.Read(func(s *State) { k = len(s.Members) })
	return k
}

// Three real Raft nodes on loopback: commands replicate, a killed leader is
// replaced, a restarted node catches up from its own log and snapshots.
func TestRaftReplicatesAndFailsOver(t *testing.T) {
	nodes := make([]*testNode, 3)
	for i := range nodes {
		nodes[i] = &testNode{id: fmt.Sprintf("n%d", i), dir: t.TempDir(), addr: freeAddr(t)}
	}
	startNode(t, nodes[0], true)
	waitFor(t, "bootstrap leader", func() bool { return nodes[0].raft.IsLeader() })
	for _, n := range nodes[1:] {
		startNode(t, n, false)
		if err := nodes[0].raft.AddVoter(n.id, n.addr); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				n.raft.Close()
			}
		}
	}()
	ctx := context.Background()
	for i, n := range nodes {
		if err := nodes[0].raft.Propose(ctx, Command{Type: CmdMemberUpsert, Member: &Member{ID: n.id, Cores: i + 1}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitFor(t, n.id+" to apply", func() bool { return members(n) == 3 })
	}
	// A follower refuses to propose and names the leader.
	var nl *NotLeaderError
	if err := nodes[1].raft.Propose(ctx, Command{Type: CmdMemberAlive, ID: "n0"}); !errors.As(err, &nl) || nl.LeaderID != "n0" {
		t.Fatalf("propose on a follower: %v", err)
	}
	// A rejected command comes back as an error from Propose.
	if err := nodes[0].raft.Propose(ctx, Command{Type: CmdMemberAlive, ID: "nobody"}); !errors.Is(err, ErrRejected) {
		t.Fatalf("rejected command: %v", err)
	}
	// Snapshot, then stop the leader.
	if err := nodes[0].raft.r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	nodes[0].raft.Close()
	nodes[0].raft = nil
	var l *testNode
	waitFor(t, "a new leader", func() bool { l = leaderOf(nodes); return l != nil })
	if err := l.raft.Propose(ctx, Command{Type: CmdMemberAlive, ID: "n0", Alive: false}); err != nil {
		t.Fatal(err)
	}
	// The old leader restarts from its directory and catches up.
	startNode(t, nodes[0], true)
	waitFor(t, "n0 to catch up", func() bool {
		var dead bool
		nodes[0].fsm.Read(func(s *State) { m := s.Members["n0"]; dead = m != nil && !m.Alive })
		return dead
	})
}

func TestProposeWithoutQuorumFailsInTime(t *testing.T) {
	a := &testNode{id: "a", dir: t.TempDir(), addr: freeAddr(t)}
	startNode(t, a, true)
	defer a.raft.Close()
	waitFor(t, "leader", a.raft.IsLeader)
	// Add a voter that never starts: the cluster has 2 voters and 1 alive.
	go a.raft.AddVoter("ghost", freeAddr(t))
	waitFor(t, "leadership lost", func() bool { return !a.raft.IsLeader() })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.raft.Propose(ctx, Command{Type: CmdMemberUpsert, Member: &Member{ID: "x"}})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("propose without quorum: %v after %s", err, time.Since(start))
	}
}
