package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"engine/internal/pki"
)

// LocalCluster is N engined processes on 127.0.0.1, for trying the cluster
// on one machine and for tests: node i lives in Dir/node-i (data, log and
// engined.pid), and Dir/cluster.json keeps the ports so that a restart finds
// the same Raft addresses.
type LocalCluster struct {
	Dir   string      `json:"dir"`
	Nodes []LocalNode `json:"nodes"`
	// Namespace: every node runs the burst buffer (its own flash in its
	// directory, the shared backing directory DIR/backing), serves S3
	// with the keys in DIR/credentials, and runs an edge cache in front of
	// the cluster's S3 endpoints (admin token in DIR/edge-token).
	Namespace bool `json:"namespace,omitempty"`
}

// LocalNode is one process of a LocalCluster.
type LocalNode struct {
	Name                        string `json:"name"`
	API, Raft, Gossip, Internal string `json:"-"`
	Ports                       [4]int `json:"ports"` // API, Raft, gossip, internal
	PID                         int    `json:"pid,omitempty"`
	// S3Port is the S3 endpoint's port (with Namespace); S3 its address.
	S3Port int    `json:"s3_port,omitempty"`
	S3     string `json:"-"`
	// EdgePort is the edge cache's port (with Namespace); Edge its address.
	EdgePort int    `json:"edge_port,omitempty"`
	Edge     string `json:"-"`
}

// LocalConfig says what StartLocal starts.
type LocalConfig struct {
	Nodes   int
	Dir     string
	Engined string   // path of the engined binary
	Args    []string // extra engined flags for every node
	Timeout time.Duration
	// Namespace runs the burst buffer and an S3 endpoint on every node
	// (see LocalCluster.Namespace).
	Namespace bool
	// ClientToken is the client API's token for a new cluster; default a
	// new random one. It is kept in Dir/token.
	ClientToken string
}

func (n *LocalNode) fill() {
	n.API = "127.0.0.1:" + strconv.Itoa(n.Ports[0])
	n.Raft = "127.0.0.1:" + strconv.Itoa(n.Ports[1])
	n.Gossip = "127.0.0.1:" + strconv.Itoa(n.Ports[2])
	n.Internal = "127.0.0.1:" + strconv.Itoa(n.Ports[3])
	if n.S3Port != 0 {
		n.S3 = "127.0.0.1:" + strconv.Itoa(n.S3Port)
	}
	if n.EdgePort != 0 {
		n.Edge = "127.0.0.1:" + strconv.Itoa(n.EdgePort)
	}
}

// Backing is the cluster's shared backing directory (with Namespace).
func (c *LocalCluster) Backing() string { return filepath.Join(c.Dir, "backing") }

// CredentialsFile is the S3 credentials file (with Namespace).
func (c *LocalCluster) CredentialsFile() string { return filepath.Join(c.Dir, "credentials") }

// TokenFile holds the cluster's client token (0600).
func (c *LocalCluster) TokenFile() string { return filepath.Join(c.Dir, "token") }

// JoinTokenFile holds the cluster's join token (0600), copied from the
// first node once it has made the cluster.
func (c *LocalCluster) JoinTokenFile() string { return filepath.Join(c.Dir, "join-token") }

// CAFile is the cluster CA's certificate.
func (c *LocalCluster) CAFile() string { return filepath.Join(c.Dir, "ca.crt") }

// Token returns the client token.
func (c *LocalCluster) Token() string {
	b, _ := os.ReadFile(c.TokenFile())
	return strings.TrimSpace(string(b))
}

// Client returns a client of node i's API with the cluster's token.
func (c *LocalCluster) Client(i int) *Client {
	cl := NewClient(c.Nodes[i].API)
	cl.Token = c.Token()
	return cl
}

// EnsureToken writes Dir/token, the client token, unless it exists:
// tok, or a new random one if tok is "".
func (c *LocalCluster) EnsureToken(tok string) error {
	if _, err := os.Stat(c.TokenFile()); err == nil {
		return nil
	}
	if tok == "" {
		tok = randomKey(48, "abcdefghijklmnopqrstuvwxyz0123456789")
	}
	if err := pki.CheckToken(tok); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(c.TokenFile(), []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// awaitJoinToken waits for node i, which makes the cluster, to write its
// join token and CA, and copies them to Dir.
func (c *LocalCluster) awaitJoinToken(ctx context.Context, i int) error {
	data := filepath.Join(c.NodeDir(i), "data")
	for {
		jt, err1 := os.ReadFile(filepath.Join(data, pki.JoinTokenFile))
		ca, err2 := os.ReadFile(filepath.Join(data, pki.Dir, "ca.crt"))
		if err1 == nil && err2 == nil && pki.Exists(data) {
			if err := os.WriteFile(c.JoinTokenFile(), jt, 0o600); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			if err := os.WriteFile(c.CAFile(), ca, 0o644); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			return nil
		}
		if pid := readPID(c.NodeDir(i)); pid <= 0 || !ProcessAlive(pid) {
			return fmt.Errorf("cluster: %s exited before making the cluster (log: %s)", c.Nodes[i].Name, filepath.Join(c.NodeDir(i), "engined.log"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s made no join token: %w", c.Nodes[i].Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// EdgeTokenFile holds the edges' admin token (with Namespace).
func (c *LocalCluster) EdgeTokenFile() string { return filepath.Join(c.Dir, "edge-token") }

// ensureNamespace makes the backing directory, the credentials file (a
// new random key pair, the first time) and every node's S3 port.
func (c *LocalCluster) ensureNamespace(used map[int]bool) error {
	if err := os.MkdirAll(c.Backing(), 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if _, err := os.Stat(c.CredentialsFile()); os.IsNotExist(err) {
		ak, sk := randomKey(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), randomKey(40, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+")
		line := "# S3 access keys of the local cluster: ACCESS_KEY SECRET_KEY\n" + ak + " " + sk + "\n"
		if err := os.WriteFile(c.CredentialsFile(), []byte(line), 0o600); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	if _, err := os.Stat(c.EdgeTokenFile()); os.IsNotExist(err) {
		token := randomKey(32, "abcdefghijklmnopqrstuvwxyz0123456789")
		if err := os.WriteFile(c.EdgeTokenFile(), []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	for i := range c.Nodes {
		for _, port := range []*int{&c.Nodes[i].S3Port, &c.Nodes[i].EdgePort} {
			if *port == 0 {
				p, err := freePort(used)
				if err != nil {
					return err
				}
				*port = p
			}
		}
	}
	return nil
}

func randomKey(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// NodeDir returns node i's directory.
func (c *LocalCluster) NodeDir(i int) string { return filepath.Join(c.Dir, c.Nodes[i].Name) }

// StartLocal starts (or restarts, keeping each node's data and ports) a
// local cluster and waits until every node is a live member with a leader.
func StartLocal(ctx context.Context, cfg LocalConfig) (*LocalCluster, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c, err := LoadLocal(cfg.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if c == nil {
		if cfg.Nodes < 1 {
			return nil, errors.New("cluster: --nodes must be at least 1")
		}
		c = &LocalCluster{Dir: cfg.Dir}
		used := map[int]bool{}
		for i := 0; i < cfg.Nodes; i++ {
			n := LocalNode{Name: fmt.Sprintf("node-%d", i)}
			for k := range n.Ports {
				p, err := freePort(used)
				if err != nil {
					return nil, err
				}
				n.Ports[k] = p
			}
			c.Nodes = append(c.Nodes, n)
		}
	} else if cfg.Nodes > 0 && cfg.Nodes != len(c.Nodes) {
		return nil, fmt.Errorf("cluster: %s holds a %d-node cluster; start it with --nodes %d, or use another --dir", cfg.Dir, len(c.Nodes), len(c.Nodes))
	}
	if cfg.Namespace {
		c.Namespace = true
	}
	if c.Namespace {
		used := map[int]bool{}
		for _, n := range c.Nodes {
			for _, p := range n.Ports {
				used[p] = true
			}
			used[n.S3Port] = true
			used[n.EdgePort] = true
		}
		if err := c.ensureNamespace(used); err != nil {
			return nil, err
		}
	}
	for i := range c.Nodes {
		c.Nodes[i].fill()
		if pid := readPID(c.NodeDir(i)); pid > 0 && ProcessAlive(pid) {
			return nil, fmt.Errorf("cluster: %s is already running (pid %d); stop it first with: enginectl cluster down --dir %s", c.Nodes[i].Name, pid, cfg.Dir)
		}
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	if err := c.EnsureToken(cfg.ClientToken); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// The node that makes the cluster (node 0 the first time) starts
	// first: the others join with the token it makes.
	first := -1
	if _, err := os.Stat(c.JoinTokenFile()); err != nil {
		first = 0
		if err := c.Start(0, cfg.Engined, cfg.Args...); err != nil {
			c.Stop(10 * time.Second)
			return nil, err
		}
		if err := c.awaitJoinToken(wctx, 0); err != nil {
			c.Stop(10 * time.Second)
			return nil, err
		}
	}
	for i := range c.Nodes {
		if i == first {
			continue
		}
		if err := c.Start(i, cfg.Engined, cfg.Args...); err != nil {
			c.Stop(10 * time.Second)
			return nil, err
		}
	}
	if err := c.WaitReady(wctx); err != nil {
		c.Stop(10 * time.Second)
		return nil, err
	}
	return c, nil
}

// Start starts node i's process. Node 0 bootstraps the cluster the first
// time; every other node (and node 0 when it has no data but the others
// have) joins through a peer.
func (c *LocalCluster) Start(i int, engined string, extra ...string) error {
	n := &c.Nodes[i]
	dir := c.NodeDir(i)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	args := []string{"--data", data, "--name", n.Name, "--api", n.API, "--raft", n.Raft, "--gossip", n.Gossip, "--internal", n.Internal}
	_, statErr := os.Stat(filepath.Join(data, "node-id"))
	fresh := os.IsNotExist(statErr)
	if i > 0 {
		args = append(args, "--join", c.Nodes[0].API)
	} else if fresh && len(c.Nodes) > 1 && c.hasData(1) {
		args = append(args, "--join", c.Nodes[1].API)
	}
	if j := slices.Index(args, "--join"); j >= 0 {
		// The node joins with the join token of the node that made the
		// cluster; wait for it if that node has just been started.
		if _, err := os.Stat(c.JoinTokenFile()); err != nil {
			from := 0
			if args[j+1] == c.Nodes[1].API {
				from = 1
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := c.awaitJoinToken(ctx, from)
			cancel()
			if err != nil {
				return err
			}
		}
		args = append(args, "--token", c.JoinTokenFile())
	} else {
		if err := c.EnsureToken(""); err != nil {
			return err
		}
		args = append(args, "--client-token", c.TokenFile())
	}
	if c.Namespace {
		args = append(args, "--flash", filepath.Join(dir, "flash"), "--backing", c.Backing(),
			"--s3", n.S3, "--credentials", c.CredentialsFile(),
			"--edge", n.Edge, "--edge-admin-token", c.EdgeTokenFile())
	}
	args = append(args, extra...)
	logf, err := os.OpenFile(filepath.Join(dir, "engined.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(engined, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives enginectl, not killed by its Ctrl-C
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start %s: %w", n.Name, err)
	}
	n.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if it exits while we run
	if err := os.WriteFile(filepath.Join(dir, "engined.pid"), []byte(strconv.Itoa(n.PID)+"\n"), 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return c.save()
}

func (c *LocalCluster) hasData(i int) bool {
	_, err := os.Stat(filepath.Join(c.NodeDir(i), "data", "node-id"))
	return err == nil
}

// WaitReady waits until every node answers, is ready, and sees all nodes
// alive under one leader.
func (c *LocalCluster) WaitReady(ctx context.Context) error {
	var last error
	for {
		last = c.ready(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: not ready: %w (node logs: %s/node-*/engined.log)", last, c.Dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *LocalCluster) ready(ctx context.Context) error {
	for i, n := range c.Nodes {
		if pid := readPID(c.NodeDir(i)); pid <= 0 || !ProcessAlive(pid) {
			return fmt.Errorf("%s is not running", n.Name)
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.Client(i).Status(qctx)
		cancel()
		if err != nil {
			return err
		}
		if !st.Ready || st.Leader == "" {
			return fmt.Errorf("%s has no leader or is not a member yet", n.Name)
		}
		live := 0
		for _, m := range st.Members {
			if m.Alive {
				live++
			}
		}
		if live < len(c.Nodes) {
			return fmt.Errorf("%s sees %d of %d members alive", n.Name, live, len(c.Nodes))
		}
	}
	return nil
}

// Addr returns the API address of the first running node.
func (c *LocalCluster) Addr() string {
	for i, n := range c.Nodes {
		if pid := readPID(c.NodeDir(i)); pid > 0 && ProcessAlive(pid) {
			return n.API
		}
	}
	return c.Nodes[0].API
}

// Kill sends sig to node i's process; it does not wait for it to exit.
func (c *LocalCluster) Kill(i int, sig syscall.Signal) error {
	pid := readPID(c.NodeDir(i))
	if pid <= 0 {
		return fmt.Errorf("cluster: %s has no pid file", c.Nodes[i].Name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("cluster: signal %s (pid %d): %w", c.Nodes[i].Name, pid, err)
	}
	return nil
}

// Stop stops every node: SIGTERM, then SIGKILL for any still running after
// grace. Data is kept; StartLocal on the same directory restarts it.
func (c *LocalCluster) Stop(grace time.Duration) error {
	var pids []int
	for i := range c.Nodes {
		if pid := readPID(c.NodeDir(i)); pid > 0 && ProcessAlive(pid) {
			syscall.Kill(pid, syscall.SIGTERM)
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(grace)
	for _, pid := range pids {
		for ProcessAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if ProcessAlive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for i := range c.Nodes {
		os.Remove(filepath.Join(c.NodeDir(i), "engined.pid"))
	}
	return nil
}

// LoadLocal reads Dir/cluster.json.
func LoadLocal(dir string) (*LocalCluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		return nil, err
	}
	var c LocalCluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cluster: %s/cluster.json: %w", dir, err)
	}
	c.Dir = dir
	for i := range c.Nodes {
		c.Nodes[i].fill()
	}
	return &c, nil
}

func (c *LocalCluster) save() error {
	b, _ := json.MarshalIndent(c, "", "  ")
	tmp := filepath.Join(c.Dir, "cluster.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.Dir, "cluster.json"))
}

func readPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "engined.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ProcessAlive reports whether pid is a running process (not a zombie
// waiting to be reaped).
func ProcessAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the ")" that ends the command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// freePort returns a TCP port free on 127.0.0.1 and not in used.
func freePort(used map[int]bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("cluster: find a free port: %w", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !used[p] {
			used[p] = true
			return p, nil
		}
	}
	return 0, errors.New("cluster: no free port found")
}
