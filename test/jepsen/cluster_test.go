package jepsen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"engine/node"
)

// cluster is n engined processes with the burst buffer and an S3 endpoint
// each, sharing one backing directory. With network namespaces (root, the
// ip command) every node lives in its own namespace on a bridge in the
// test's namespace, and a partition cuts a node off from its peers (not
// from the test's clients) with tc filters; without them the nodes listen
// on 127.0.0.1 and there are no partitions (kills and pauses only).
type cluster struct {
	t       *testing.T
	dir     string
	backing string
	creds   string
	netns   bool
	prefix  string // namespace, link and bridge name prefix
	subnet  string
	bridge  string
	nodes   []*enode

	closed, tailsShown bool
}

type enode struct {
	i                           int
	name, ns, hostIf, ip        string
	api, raft, gossip, internal string
	s3                          string // HOST:PORT
	mu                          sync.Mutex
	cmd                         *exec.Cmd
	done                        chan struct{}
	paused                      bool
	cut                         bool // partitioned from its peers
	// mnt is where the node mounts the namespace (FUSE), "" for none. With
	// network namespaces the mount lives in the node's mount namespace
	// (ip netns exec makes one): the test reaches it through
	// /proc/PID/root.
	mnt string
	// down is set while the nemesis has the node killed: clients of its
	// mount issue nothing then.
	down atomic.Bool
}

// mountPath is the node's mount as the test reaches it.
func (nd *enode) mountPath() string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.ns == "" || nd.cmd == nil {
		return nd.mnt
	}
	return fmt.Sprintf("/proc/%d/root%s", nd.cmd.Process.Pid, nd.mnt)
}

// lazyUnmount detaches a mount left by a killed node (loopback mode).
func lazyUnmount(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exec.CommandContext(ctx, "umount", "-l", dir).Run()
}

// slowIP, when set, hears of ip commands that took over a second.
var slowIP func(args []string, took time.Duration)

func ipCmd(args ...string) error {
	t0 := time.Now()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if took := time.Since(t0); took > time.Second && slowIP != nil {
		slowIP(args, took)
	}
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newCluster prepares n nodes (not started). The caller defers close.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	c.backing = filepath.Join(c.dir, "backing")
	c.creds = filepath.Join(c.dir, "credentials")
	os.MkdirAll(c.backing, 0o755)
	if err := os.WriteFile(c.creds, []byte("# jepsen\n"+accessKey+" "+secretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.setupNetns(n); err != nil {
		t.Logf("no network namespaces here (%v): nodes on 127.0.0.1, partitions replaced by pauses (SIGSTOP/SIGCONT)", err)
		c.netns = false
		used := map[int]bool{}
		for i := 0; i < n; i++ {
			nd := &enode{i: i, name: fmt.Sprintf("node-%d", i), ip: "127.0.0.1"}
			addrs := []*string{&nd.api, &nd.raft, &nd.gossip, &nd.internal, &nd.s3}
			for _, a := range addrs {
				p, err := freePort(used)
				if err != nil {
					t.Fatal(err)
				}
				*a = "127.0.0.1:" + strconv.Itoa(p)
			}
			c.nodes = append(c.nodes, nd)
		}
	}
	return c
}

func freePort(used map[int]bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !used[p] {
			used[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("jepsen: no free port")
}

func (c *cluster) setupNetns(n int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (iproute2)")
	}
	pid := os.Getpid()
	c.prefix = fmt.Sprintf("jp%d", pid%100000)
	c.subnet = fmt.Sprintf("10.214.%d", 10+pid%240)
	c.bridge = c.prefix + "br"
	probe := c.prefix + "n0"
	if err := ipCmd("netns", "add", probe); err != nil {
		return err
	}
	ipCmd("netns", "del", probe)
	if err := ipCmd("link", "add", c.bridge, "type", "bridge"); err != nil {
		return err
	}
	c.netns = true
	steps := [][]string{
		{"addr", "add", c.subnet + ".254/24", "dev", c.bridge},
		{"link", "set", c.bridge, "up"},
	}
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("%s.%d", c.subnet, i+1)
		nd := &enode{i: i, name: fmt.Sprintf("node-%d", i), ns: fmt.Sprintf("%sn%d", c.prefix, i), hostIf: fmt.Sprintf("%sh%d", c.prefix, i),
			ip: ip, api: ip + ":7070", raft: ip + ":7071", gossip: ip + ":7072", internal: ip + ":7073", s3: ip + ":9000"}
		c.nodes = append(c.nodes, nd)
		in := fmt.Sprintf("%sc%d", c.prefix, i)
		steps = append(steps,
			[]string{"netns", "add", nd.ns},
			[]string{"link", "add", nd.hostIf, "type", "veth", "peer", "name", in, "netns", nd.ns},
			[]string{"link", "set", nd.hostIf, "master", c.bridge, "up"},
			[]string{"-n", nd.ns, "addr", "add", nd.ip + "/24", "dev", in},
			[]string{"-n", nd.ns, "link", "set", in, "up"},
			[]string{"-n", nd.ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			c.closeNet()
			c.nodes = nil
			return err
		}
	}
	return nil
}

// start starts node i (node 0 makes the cluster, the others join it).
func (c *cluster) start(i int) {
	t := c.t
	t.Helper()
	nd := c.nodes[i]
	dir := filepath.Join(c.dir, nd.name)
	os.MkdirAll(dir, 0o755)
	args := []string{"--data", filepath.Join(dir, "data"), "--name", nd.name,
		"--api", nd.api, "--raft", nd.raft, "--gossip", nd.gossip, "--internal", nd.internal, "--workers", "1",
		"--flash", filepath.Join(dir, "flash"), "--flash-size", "512MiB", "--backing", c.backing,
		"--s3", nd.s3, "--credentials", c.creds}
	if i > 0 {
		args = append(args, "--join", c.nodes[0].api, "--token", filepath.Join(c.dir, c.nodes[0].name, "data", "join-token"))
	}
	if nd.mnt != "" {
		if !c.netns {
			lazyUnmount(nd.mnt) // the killed process's mount
		}
		os.MkdirAll(nd.mnt, 0o755)
		args = append(args, "--mount", nd.mnt)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "engined.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== jepsen: start %s\n", time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if c.netns {
		// ip netns exec executes engined in place: the pid is engined's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", nd.ns, enginedBin()}, args...)...)
	} else {
		cmd = exec.Command(enginedBin(), args...)
	}
	cmd.Env = append(os.Environ(), "ENGINE_TOKEN="+testToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the test binary if it dies (a timeout), not left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", nd.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	nd.mu.Lock()
	nd.cmd, nd.done, nd.paused = cmd, done, false
	nd.mu.Unlock()
}

// kill SIGKILLs node i and waits for it to exit.
func (c *cluster) kill(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (c *cluster) pause(i int, stop bool) {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	nd.cmd.Process.Signal(sig)
	nd.paused = stop
}

// partition cuts node i off from every other node, both directions, or
// heals that cut. The test's clients still reach every node through the
// bridge. It works in the test's namespace only, on the host ends of the
// veth pairs: each gets an htb root whose u32 filters send IP packets
// between node i and a peer to a class whose queue (pfifo limit 0) drops
// everything. (This machine has neither iptables nor nft, nor tc's drop
// action or netem. Blackhole routes inside the namespaces would do too;
// tc works from the test's namespace alone.)
func (c *cluster) partition(i int, cut bool) error {
	a := c.nodes[i]
	for j, nd := range c.nodes {
		dev := nd.hostIf
		if !cut {
			if err := tcCmd("qdisc", "del", "dev", dev, "root"); err != nil {
				return err
			}
			continue
		}
		steps := [][]string{
			{"qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "2"},
			{"class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "1gbit"},
			{"class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", "100gbit"},
			{"qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "pfifo", "limit", "0"},
		}
		// Packets leave a host end towards its node: to node i, drop
		// those from its peers; to a peer, drop those from node i.
		var from []string
		if j == i {
			for k, p := range c.nodes {
				if k != i {
					from = append(from, p.ip)
				}
			}
		} else {
			from = []string{a.ip}
		}
		for _, ip := range from {
			steps = append(steps, []string{"filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
				"match", "ip", "src", ip + "/32", "flowid", "1:1"})
		}
		for _, st := range steps {
			if err := tcCmd(st...); err != nil {
				return err
			}
		}
	}
	a.cut = cut
	return nil
}

func tcCmd(args ...string) error {
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (c *cluster) client(i int) *node.Client {
	cl := node.NewClient(c.nodes[i].api)
	cl.Token = testToken
	return cl
}

// ready reports whether every node is ready, sees every node alive and
// one leader.
func (c *cluster) ready() (bool, string) {
	leaders := map[string]bool{}
	for i, nd := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.client(i).Status(ctx)
		cancel()
		if err != nil {
			return false, nd.name + ": " + err.Error()
		}
		live := 0
		for _, m := range st.Members {
			if m.Alive {
				live++
			}
		}
		if !st.Ready || st.Leader == "" || live != len(c.nodes) {
			return false, fmt.Sprintf("%s: ready %v, leader %q, %d of %d members alive", nd.name, st.Ready, st.Leader, live, len(c.nodes))
		}
		leaders[st.Leader] = true
	}
	return len(leaders) == 1, fmt.Sprintf("leaders %v", leaders)
}

// waitReady polls ready (and probe, when given) until both hold or
// timeout passes; it returns the last reason on timeout.
func (c *cluster) waitReady(timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := c.ready()
		if ok && probe != nil {
			if err := probe(); err != nil {
				ok, why = false, err.Error()
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after %s: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// close stops the processes and removes the namespaces (once; it may be
// called again); when the test has failed it logs the nodes' log tails.
func (c *cluster) close() {
	if !c.closed {
		c.closed = true
		c.stop()
	}
	if c.t.Failed() && !c.tailsShown {
		c.tailsShown = true
		for _, nd := range c.nodes {
			b, _ := os.ReadFile(filepath.Join(c.dir, nd.name, "engined.log"))
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(lines) > 20 {
				lines = lines[len(lines)-20:]
			}
			c.t.Logf("%s log (tail):\n%s", nd.name, strings.Join(lines, "\n"))
		}
	}
}

func (c *cluster) stop() {
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil && nd.cmd.Process != nil {
			if nd.paused {
				nd.cmd.Process.Signal(syscall.SIGCONT)
			}
			nd.cmd.Process.Signal(syscall.SIGTERM)
		}
		nd.mu.Unlock()
	}
	for _, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		select {
		case <-nd.done:
		case <-time.After(10 * time.Second):
			nd.cmd.Process.Kill()
			<-nd.done
		}
	}
	if c.netns {
		c.closeNet()
	}
	for _, nd := range c.nodes {
		if nd.mnt != "" && !c.netns {
			lazyUnmount(nd.mnt)
		}
	}
}

// keepLogs copies the nodes' logs to dir (kept after the test).
func (c *cluster) keepLogs(dir string) []string {
	os.MkdirAll(dir, 0o755)
	var out []string
	for _, nd := range c.nodes {
		if b, err := os.ReadFile(filepath.Join(c.dir, nd.name, "engined.log")); err == nil {
			p := filepath.Join(dir, nd.name+".log")
			if os.WriteFile(p, b, 0o644) == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// artifactDir is where a failed run keeps what explains it:
// $ENGINE_ARTIFACTS (CI keeps it) or the temporary directory.
func artifactDir(name string) string {
	base := os.Getenv("ENGINE_ARTIFACTS")
	if base == "" {
		base = os.TempDir()
	}
	return filepath.Join(base, name)
}

func (c *cluster) closeNet() {
	for _, nd := range c.nodes {
		ipCmd("netns", "del", nd.ns) // removes the veth pair and routes too
		ipCmd("link", "del", nd.hostIf)
	}
	ipCmd("link", "del", c.bridge)
}
