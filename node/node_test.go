package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"engine/gensort"
	"engine/sortjob"
)

func open(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.API == "" {
		cfg.API = "127.0.0.1:0"
	}
	if cfg.Memory == 0 {
		cfg.Memory = 256 << 20
	}
	if cfg.RaftTimeout == 0 {
		cfg.RaftTimeout = 100 * time.Millisecond
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

func wait(t *testing.T, c *Client, id string) JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := Follow(ctx, c, id, nilWriter{}, FollowOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestSingleNodeJobAndHistoryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	n := open(t, Config{DataDir: dir})
	c := n.client()
	ctx := context.Background()
	st, err := c.SubmitSort(ctx, sortjob.Spec{Records: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, c, st.ID)
	want := gensort.ChecksumRecords(0, 20_000, gensort.Options{}).String()
	if st.State != StateSucceeded || st.Report == nil || !st.Report.Check.Passed || st.Report.Check.OutputChecksum != want {
		t.Fatalf("job: %+v", st)
	}
	// A bad spec is refused at submission with the reason.
	_, err = c.SubmitSort(ctx, sortjob.Spec{Input: filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("bad spec: %v", err)
	}
	if _, err := c.Job(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no job "nope"`) {
		t.Fatalf("unknown job: %v", err)
	}
	// The data directory is locked while the node runs.
	if _, err := Open(Config{DataDir: dir, API: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on one data dir: %v", err)
	}
	n.Close()

	// The job history is in the Raft state: it survives a restart.
	n = open(t, Config{DataDir: dir})
	defer n.Close()
	jobs, err := n.client().Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].ID != st.ID || jobs[0].State != StateSucceeded || jobs[0].Report == nil {
		t.Fatalf("history after restart: %v %+v", err, jobs)
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "jobs")); len(des) != 0 {
		t.Errorf("scratch left behind: %v", des)
	}
}

func TestCancelRunningJobCleansUp(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	n := open(t, Config{DataDir: dir})
	defer n.Close()
	c := n.client()
	ctx := context.Background()
	st, err := c.SubmitSort(ctx, sortjob.Spec{Records: 20_000_000, Output: out}) // 2 GB: long enough to cancel
	if err != nil {
		t.Fatal(err)
	}
	for {
		s, _ := c.Job(ctx, st.ID)
		if s.Progress != nil && s.Progress.Phase == "map" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Cancel(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	st = wait(t, c, st.ID)
	if st.State != StateCancelled || !strings.Contains(st.Error, "cancelled") {
		t.Fatalf("cancelled job: %+v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(out)
		des, _ := os.ReadDir(filepath.Join(dir, "jobs"))
		if os.IsNotExist(err) && len(des) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after cancel: output %v, scratch %v", err, des)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster opens n nodes: the first bootstraps, the others join it.
func startCluster(t *testing.T, count int) []*Node {
	t.Helper()
	var nodes []*Node
	for i := 0; i < count; i++ {
		cfg := Config{DataDir: t.TempDir(), Name: fmt.Sprintf("n%d", i), Workers: 2}
		if i > 0 {
			cfg.Join = nodes[0].Addr()
			cfg.JoinToken = nodes[0].ident.JoinToken()
		}
		nodes = append(nodes, open(t, cfg))
	}
	// Wait until every node sees every member alive.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			st := n.Status()
			alive := 0
			for _, m := range st.Members {
				if m.Alive {
					alive++
				}
			}
			ok = ok && alive == count && st.Leader != ""
		}
		if ok {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster of %d did not form: %+v", count, nodes[0].Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three nodes in one process, over real TCP: a job submitted to a follower
// runs on every node, shuffles across the network, and validates; the same
// with a node stopped in the middle of the map stage.
func TestThreeNodeClusterSortAndNodeLoss(t *testing.T) {
	nodes := startCluster(t, 3)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	var follower *Node
	for _, n := range nodes {
		if !n.raft.IsLeader() {
			follower = n
		}
	}
	c := follower.client()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	st, err := c.SubmitSort(ctx, sortjob.Spec{Records: 300_000, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, c, st.ID)
	if st.State != StateSucceeded || !st.Report.Check.Passed {
		t.Fatalf("cluster job: %s %s %+v", st.State, st.Error, st.Report)
	}
	if len(st.Report.Nodes) != 3 || st.Report.ShuffleBytes == 0 {
		t.Fatalf("the job did not run on every node with a network shuffle: %+v", st.Report.Nodes)
	}
	if _, err := os.Stat(filepath.Join(out, sortjob.SuccessName)); err != nil {
		t.Fatal(err)
	}

	// Again, stopping a non-leader once the map stage is under way.
	st, err = c.SubmitSort(ctx, sortjob.Spec{Records: 2_000_000, Partitions: 6})
	if err != nil {
		t.Fatal(err)
	}
	var victim int
	for i, n := range nodes {
		if !n.raft.IsLeader() && n != follower {
			victim = i
		}
	}
	for {
		s, _ := c.Job(ctx, st.ID)
		if s.Progress != nil && s.Progress.TasksDone > 0 || s.Done() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	nodes[victim].Close()
	nodes[victim] = nil
	st = wait(t, c, st.ID)
	if st.State != StateSucceeded || !st.Report.Check.Passed {
		t.Fatalf("job after losing a node: %s %s", st.State, st.Error)
	}
	t.Logf("re-run attempts after losing a node: %d", st.Retries)
}

// Voters up to MaxVoters, non-voters after; a dead voter is replaced by a
// live non-voter.
func TestDeadVoterIsReplaced(t *testing.T) {
	nodes := startCluster(t, 4)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	voters := func(n *Node) (v []string, non []string) {
		servers, err := n.raft.Servers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.Voter {
				v = append(v, s.ID)
			} else {
				non = append(non, s.ID)
			}
		}
		return v, non
	}
	var leader *Node
	for _, n := range nodes {
		if n.raft.IsLeader() {
			leader = n
		}
	}
	v, non := voters(leader)
	if len(v) != 3 || len(non) != 1 {
		t.Fatalf("4 nodes: voters %v, non-voters %v; want 3 and 1", v, non)
	}
	// Stop a voter that is not the leader.
	var victim string
	for i, n := range nodes {
		if n.ID() != leader.ID() && n.ID() != non[0] {
			victim = n.ID()
			n.Close()
			nodes[i] = nil
			break
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, _ := voters(leader)
		promoted, gone := false, true
		for _, id := range v {
			promoted = promoted || id == non[0]
			gone = gone && id != victim
		}
		if promoted && gone && len(v) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("voters %v: want %s promoted in place of the dead %s", v, non[0], victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A second process under the name of a live member is refused, and says
// why, instead of taking over that member's place in Raft.
func TestJoinUnderALiveMembersNameIsRefused(t *testing.T) {
	nodes := startCluster(t, 2)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	n, err := Open(Config{DataDir: t.TempDir(), Name: "n1", API: "127.0.0.1:0", Join: nodes[0].Addr(), JoinToken: nodes[0].ident.JoinToken(),
		RaftTimeout: 100 * time.Millisecond, Memory: 256 << 20})
	if err == nil {
		// Refused at the join (the certificate was issued before the
		// other n1 was seen alive).
		defer n.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = n.WaitReady(ctx)
	}
	if !errors.Is(err, ErrNameInUse) || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("joining as a live member's name: %v, want ErrNameInUse", err)
	}
	// The live n1 is still a voter, untouched.
	servers, _ := nodes[0].raft.Servers()
	for _, s := range servers {
		if strings.HasPrefix(s.ID, "n1.") && s.ID != nodes[1].raftID {
			t.Fatalf("the impostor was added to Raft: %+v", servers)
		}
	}
}

// client is a client of n's API with the cluster's token.
func (n *Node) client() *Client {
	c := NewClient(n.Addr())
	c.Token = n.ClientToken()
	return c
}
