package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sys/unix"

	"engine/burstbuffer"
	bbfuse "engine/burstbuffer/fuse"
	"engine/cache"
	"engine/coordinator"
	"engine/internal/pki"
	"engine/jobs"
	"engine/s3"
	"engine/shuffle"
	"engine/sortjob"
)

// Config configures a node. Zero fields take defaults.
type Config struct {
	// DataDir holds the node's id, Raft log and snapshots, and job scratch
	// space. Required.
	DataDir string
	// Name is the node's id in the cluster; default: the one saved in
	// DataDir/node-id, or a new random one.
	Name string
	// API is the HTTP API's address; default 127.0.0.1:7070. The other
	// ports default to the API port +1 (Raft), +2 (gossip) and +3 (the
	// internal port: shuffle service), or to ephemeral ports when the API
	// port is 0.
	API                               string
	RaftAddr, GossipAddr, ShuffleAddr string
	// Join is the API address of any member of the cluster to join. Empty:
	// a node with no Raft state bootstraps a new one-node cluster.
	Join string
	// JoinToken is the cluster's join token (the first node's
	// DATA/join-token): a new node with Join needs it to get its
	// certificate. Not needed once the node has one.
	JoinToken string
	// JoinTimeout bounds getting a certificate through Join; default 30s.
	JoinTimeout time.Duration
	// ClientToken, on the node that makes a new cluster, is the client
	// API's token; default a new random one. It is kept in DATA/token.
	ClientToken string
	// IORoots, if set, confine the paths jobs read (--input) and write
	// (--output) to these directories: a job naming another path is
	// refused at submit, and a node refuses to run a task whose paths
	// lie elsewhere. Empty: any absolute path.
	IORoots []string
	// APINames are host names, besides the API address's host, IP
	// addresses and localhost, that clients may call the API by.
	APINames []string
	// MaxVoters is the number of Raft voters; later nodes are non-voters.
	// Default 3.
	MaxVoters int
	// Workers is the number of tasks run at once; default GOMAXPROCS.
	Workers int
	// Memory is the default per-job memory budget in bytes.
	Memory int64
	// RaftTimeout is Raft's heartbeat and election timeout and memberlist's
	// failure detection scale; default 500ms.
	RaftTimeout time.Duration
	// Edge runs an edge cache on the node.
	Edge *Edge
	// BurstBuffer, with a flash directory, runs the node's part of the
	// burst buffer.
	BurstBuffer *BurstBuffer
	// S3, with an address, serves the burst buffer's namespace as S3.
	S3     *S3
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.DataDir == "" {
		return errors.New("node: no data directory configured (--data DIR)")
	}
	if c.API == "" {
		c.API = "127.0.0.1:7070"
	}
	for i, r := range c.IORoots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("node: --io-root %q: give an absolute directory", r)
		}
		c.IORoots[i] = filepath.Clean(r)
	}
	if c.MaxVoters <= 0 {
		c.MaxVoters = 3
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Memory <= 0 {
		c.Memory = sortjob.DefaultMemory()
	}
	if c.RaftTimeout <= 0 {
		c.RaftTimeout = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	host, port, err := net.SplitHostPort(c.API)
	if err != nil {
		return fmt.Errorf("node: API address %q: %w", c.API, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("node: API address %q: give an address the other nodes can reach (such as 10.0.0.5:7070), not a wildcard: it is also the address this node advertises", c.API)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("node: API address %q: bad port", c.API)
	}
	derive := func(addr *string, off int) {
		if *addr != "" {
			return
		}
		if p == 0 {
			*addr = net.JoinHostPort(host, "0")
		} else {
			*addr = net.JoinHostPort(host, strconv.Itoa(p+off))
		}
	}
	derive(&c.RaftAddr, 1)
	derive(&c.GossipAddr, 2)
	derive(&c.ShuffleAddr, 3)
	for _, a := range []struct{ flag, addr string }{{"--raft", c.RaftAddr}, {"--gossip", c.GossipAddr}, {"--internal", c.ShuffleAddr}} {
		h, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("node: %s address %q: %w", a.flag, a.addr, err)
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("node: %s address %q: give an address the other nodes can reach, not a wildcard: it is also the address this node advertises", a.flag, a.addr)
		}
	}
	return nil
}

// Node is one running engine node: every node runs every service.
type Node struct {
	cfg    Config
	id     string
	raftID string
	// newRaft: this data directory has no Raft identity yet (a new node, or
	// one whose data was wiped).
	newRaft bool
	fresh   bool // the data directory was new: any old outputs of this id are gone
	log     *slog.Logger
	lock    *os.File

	ident      *pki.Identity
	apiLn      net.Listener
	srv        *http.Server
	shuffleLn  net.Listener // the internal port
	peerMux    *peerMux
	peerSrv    *http.Server // the peer API, on the internal port
	peerHTTP   *http.Client // its client
	fetcher    *shuffle.Fetcher
	shuffleSrv *shuffle.Server
	fsm        *coordinator.FSM
	raft       *coordinator.Raft
	ml         *memberlist.Memberlist
	jobs       *jobs.Manager
	leader     leaderState // used by the leader loop (and joins on the leader)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kick    chan struct{} // the FSM changed: wake the leader loop and the executor
	changed struct {
		sync.Mutex
		ch chan struct{} // closed and replaced at every change
	}
	registered  chan struct{} // closed once this node is a member in the state
	regOnce     sync.Once
	caughtUpAt  atomic.Uint64         // the state index this node must reach before it acts
	joinErr     atomic.Pointer[error] // why the cluster refused this node, for good
	certRefused atomic.Int64          // when a wrong join token was last logged (UnixNano)

	bbMu   sync.Mutex
	bb     *burstbuffer.Service
	s3srv  *s3.Server
	s3ln   net.Listener
	mounts []*bbfuse.Server

	meta    atomic.Pointer[gossipMeta] // this node's endpoints, gossiped
	edge    *cache.Server
	edgeLn  net.Listener
	edgeURL string
	edgeLog *os.File
}

// Open starts a node: it locks the data directory, starts the shuffle
// service, Raft, gossip and the API, and joins (or bootstraps) the cluster
// in the background; WaitReady waits for that.
func Open(cfg Config) (*Node, error) {
	n, err := start(cfg)
	if err != nil {
		if n != nil {
			n.Close()
		}
		return nil, err
	}
	return n, nil
}

// start starts the node; on error the caller closes what it returns.
func start(cfg Config) (n *Node, err error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data directory: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n = &Node{cfg: cfg, log: cfg.Logger, lock: lock, kick: make(chan struct{}, 1), registered: make(chan struct{})}
	n.changed.ch = make(chan struct{})
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.loadID(); err != nil {
		return n, err
	}
	n.log = cfg.Logger.With("node", n.id)

	// The cluster identity: CA, secrets, this node's certificate.
	jt := cfg.JoinTimeout
	if jt <= 0 {
		jt = 30 * time.Second
	}
	ictx, icancel := context.WithTimeout(n.ctx, jt)
	err = n.setupIdentity(ictx)
	icancel()
	if err != nil {
		return n, err
	}
	n.peerHTTP = newPeerHTTP(n.ident.ClientConfig(), 30*time.Second)
	shuffleTLS := n.ident.ClientConfig(protoShuffle)
	n.fetcher = &shuffle.Fetcher{TLS: shuffleTLS}

	// The internal port, mutual TLS: the peer API, the shuffle service and
	// edge peer traffic, told apart by ALPN.
	if n.shuffleLn, err = net.Listen("tcp", cfg.ShuffleAddr); err != nil {
		return n, fmt.Errorf("node: internal port listen on %s: %w", cfg.ShuffleAddr, err)
	}
	protos := []string{protoHTTP, protoShuffle}
	if cfg.Edge != nil {
		protos = append(protos, protoEdge)
	}
	n.peerMux = newPeerMux(n.shuffleLn, n.ident.ServerConfig(), n.log, protos...)
	n.goFunc(n.peerMux.serve)
	n.shuffleSrv = shuffle.NewServer(jobs.Locator(cfg.DataDir), n.log)
	n.goFunc(func() { n.shuffleSrv.Serve(n.peerMux.listener(protoShuffle)) })
	n.peerSrv = &http.Server{Handler: n.peerHandler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return n.ctx }}
	n.goFunc(func() {
		if err := n.peerSrv.Serve(n.peerMux.listener(protoHTTP)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("peer API server", "err", err)
		}
	})

	// Raft.
	n.fsm = coordinator.NewFSM()
	n.fsm.OnApply = n.onApply
	n.fsm.Logger = n.log
	// Jobs, before Raft applies anything: every change kicks its executor.
	n.jobs = jobs.New(n.ctx, jobs.Config{Node: n.id, DataDir: cfg.DataDir, Workers: cfg.Workers, Memory: cfg.Memory,
		State: n.fsm, Propose: jobs.ProposerFunc(n.propose), Fetcher: n.fetcher, Segments: n.shuffleSrv,
		Ready: n.caughtUp, Changes: n.changes, CheckPath: n.checkPath, Log: n.log})
	n.raft, err = coordinator.OpenRaft(coordinator.RaftConfig{
		ID: n.raftID, Dir: filepath.Join(cfg.DataDir, "raft"), Bind: cfg.RaftAddr,
		Bootstrap: cfg.Join == "", FSM: n.fsm, Logger: n.log, Timeout: cfg.RaftTimeout,
		ServerTLS: n.ident.ServerConfig(), ClientTLS: n.ident.ClientConfig(),
		// A new server joining a cluster starts Raft once the leader has
		// added it (see coordinator.RaftConfig.Deferred).
		Deferred: cfg.Join != "" && n.newRaft,
	})
	if err != nil {
		return n, err
	}

	// Gossip.
	if err := n.startGossip(); err != nil {
		return n, err
	}

	// The client API: a bearer token, over HTTP or HTTPS.
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return n, fmt.Errorf("node: API listen on %s: %w", cfg.API, err)
	}
	apiTLS := n.ident.ServerConfig()
	apiTLS.ClientAuth = tls.NoClientCert
	n.apiLn = newAPIListener(ln, apiTLS)
	n.srv = &http.Server{Handler: n.authorize(n.handler()), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return n.ctx }}
	n.goFunc(func() {
		if err := n.srv.Serve(n.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server", "err", err)
		}
	})

	if err := n.startBurstBuffer(); err != nil {
		return n, err
	}
	if err := n.startS3(); err != nil {
		return n, err
	}
	if err := n.startEdge(); err != nil {
		return n, err
	}
	n.publishMeta()

	n.goFunc(n.jobs.Run)
	n.goFunc(n.leaderLoop)
	n.goFunc(n.registerLoop)
	if os.Getenv("ENGINE_DEBUG_NODE") != "" {
		n.log.Info("node started", "api", n.Addr(), "raft", n.raft.Addr(), "gossip", n.gossipAddr(), "shuffle", n.shuffleLn.Addr().String())
	}
	return n, nil
}

func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// loadID reads the node id from the data directory, or makes one.
func (n *Node) loadID() error {
	path := filepath.Join(n.cfg.DataDir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		n.id = strings.TrimSpace(string(b))
		if n.cfg.Name != "" && n.cfg.Name != n.id {
			return fmt.Errorf("node: data directory %s belongs to node %q, not %q; use that name or another directory", n.cfg.DataDir, n.id, n.cfg.Name)
		}
	case os.IsNotExist(err):
		n.fresh = true
		n.id = n.cfg.Name
		if n.id == "" {
			var r [4]byte
			rand.Read(r[:])
			n.id = "node-" + hex.EncodeToString(r[:])
		}
		if err := os.WriteFile(path, []byte(n.id+"\n"), 0o644); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	default:
		return fmt.Errorf("node: %w", err)
	}
	if err := coordinator.ValidID("node", n.id); err != nil || len(n.id) > maxNodeName {
		return fmt.Errorf("node: bad node name %q: use up to %d letters, digits, '.', '-' and '_', not starting with '.'", n.id, maxNodeName)
	}
	// The Raft server id belongs to this data directory.
	rpath := filepath.Join(n.cfg.DataDir, "raft-id")
	if b, err := os.ReadFile(rpath); err == nil {
		n.raftID = strings.TrimSpace(string(b))
	} else {
		var r [4]byte
		rand.Read(r[:])
		n.raftID = n.id + "." + hex.EncodeToString(r[:])
		n.newRaft = true
		if err := os.WriteFile(rpath, []byte(n.raftID+"\n"), 0o644); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	return nil
}

// maxNodeName bounds a node name: the Raft id adds '.' and 8 hex digits
// to it within coordinator's id limit.
const maxNodeName = 119

// lockDataDir takes an exclusive lock on DataDir/LOCK so that two processes
// never share a data directory.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		owner := strings.TrimSpace(string(b))
		if owner == "" {
			owner = "unknown"
		}
		return nil, fmt.Errorf("node: data directory %s is in use by another engine process (pid %s); stop it or use another --data directory", dir, owner)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Addr returns the API's address.
func (n *Node) Addr() string { return n.apiLn.Addr().String() }

// onApply runs after every FSM change.
func (n *Node) onApply() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
	n.jobs.Kick()
	n.changed.Lock()
	close(n.changed.ch)
	n.changed.ch = make(chan struct{})
	n.changed.Unlock()
}

// changes returns a channel closed at the next state change.
func (n *Node) changes() <-chan struct{} {
	n.changed.Lock()
	defer n.changed.Unlock()
	return n.changed.ch
}

// caughtUp reports whether this node is a member and has applied the state
// up to where the leader was when it joined.
func (n *Node) caughtUp() bool {
	select {
	case <-n.registered:
	default:
		return false
	}
	if n.joinErr.Load() != nil {
		return false
	}
	var idx uint64
	n.fsm.Read(func(s *coordinator.State) { idx = s.Index })
	return idx >= n.caughtUpAt.Load()
}

// WaitReady waits until the node is a member of a cluster with a leader.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.registered:
	case <-ctx.Done():
		id, _ := n.raft.Leader()
		if id == "" {
			return fmt.Errorf("node %s: no Raft leader: %w (is a majority of the voters up?)", n.id, coordinator.ErrNoQuorum)
		}
		return fmt.Errorf("node %s: not yet a member of the cluster: %w", n.id, ctx.Err())
	}
	if e := n.joinErr.Load(); e != nil {
		return *e
	}
	for {
		ch := n.changes()
		if n.caughtUp() {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("node %s: still replaying the cluster state: %w", n.id, ctx.Err())
		}
	}
}

// Close stops the node: running tasks are cancelled (their attempts are
// re-run elsewhere or after a restart), services stop, the data directory
// is released.
func (n *Node) Close() error {
	var errs []error
	errs = append(errs, n.unmountAll())
	if n.s3srv != nil {
		errs = append(errs, n.s3srv.Close())
	}
	errs = append(errs, n.closeEdge())
	n.cancel()
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := n.srv.Shutdown(ctx); err != nil {
			n.srv.Close() // long polls end with n.ctx; drop what remains
		}
		cancel()
	}
	if n.peerSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := n.peerSrv.Shutdown(ctx); err != nil {
			n.peerSrv.Close()
		}
		cancel()
	}
	if bb := n.BurstBuffer(); bb != nil {
		// After the APIs (peers' calls end) and before gossip (its last
		// stripes still go to the other nodes).
		errs = append(errs, bb.Close())
	}
	if n.ml != nil {
		n.ml.Leave(200 * time.Millisecond)
		errs = append(errs, n.ml.Shutdown())
	}
	if n.shuffleSrv != nil {
		errs = append(errs, n.shuffleSrv.Close())
	}
	if n.peerMux != nil {
		n.peerMux.close()
	}
	n.wg.Wait()
	if n.jobs != nil {
		n.jobs.Close()
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Close())
	}
	n.lock.Close()
	return errors.Join(errs...)
}
