package coordinator

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// RaftConfig configures a node's Raft.
type RaftConfig struct {
	ID        string // server id: the node id
	Dir       string // raft.db (log and stable store) and snapshots/
	Bind      string // listen address HOST:PORT
	Advertise string // address other nodes dial; default Bind
	// Bootstrap makes this node a one-voter cluster if it has no Raft state
	// yet. Nodes that join an existing cluster must not bootstrap.
	Bootstrap bool
	FSM       *FSM
	Logger    *slog.Logger
	// Timeout is the heartbeat and election timeout; default 500ms.
	Timeout time.Duration
	// Deferred opens the stores and listens on the transport, but starts
	// Raft only when Start is called. A node with no Raft state that joins a
	// cluster starts Raft once the leader has added it: with an empty
	// configuration, Raft would grant its vote to any candidate — even one
	// with a stale log, if a wiped voter comes back at its old address.
	Deferred bool
	// ServerTLS and ClientTLS, both set, carry Raft over mutual TLS (the
	// cluster CA's): a peer without a certificate of the cluster is
	// refused at the handshake. Both nil: plain TCP.
	ServerTLS, ClientTLS *tls.Config
}

// Raft is one node's Raft: hashicorp/raft with a bbolt log and stable
// store, file snapshots and a TCP transport, behind a context-taking API.
type Raft struct {
	tr    *raft.NetworkTransport
	store *closingStore
	snaps raft.SnapshotStore
	rc    *raft.Config
	fsm   *FSM
	cfg   RaftConfig

	mu sync.RWMutex
	r  *raft.Raft // nil until started
}

// get returns the running Raft, or nil before Start.
func (r *Raft) get() *raft.Raft {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.r
}

// Start starts a Deferred Raft; it is a no-op on a running one.
func (r *Raft) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r != nil {
		return nil
	}
	rr, err := raft.NewRaft(r.rc, r.fsm, r.store, r.store, r.snaps, r.tr)
	if err != nil {
		return fmt.Errorf("coordinator: raft: %w", err)
	}
	r.r = rr
	return nil
}

// ErrNotLeader is returned by Propose on a follower; NotLeaderError says
// who leads.
var ErrNotLeader = errors.New("coordinator: not the leader")

// ErrNoQuorum is returned when no leader can be found in time: a majority
// of the voters is not reachable.
var ErrNoQuorum = errors.New("coordinator: no quorum")

// NotLeaderError names the current leader (empty when there is none).
type NotLeaderError struct {
	LeaderID, LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "coordinator: not the leader, and no leader is known"
	}
	return fmt.Sprintf("coordinator: not the leader; the leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// OpenRaft starts Raft. It returns once Raft is running, not once it has a
// leader.
func OpenRaft(cfg RaftConfig) (*Raft, error) {
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Bind
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("coordinator: raft dir: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{cfg.Logger}})
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"), BoltOptions: &bbolt.Options{Timeout: 2 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft log %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	store := newClosingStore(bolt)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("coordinator: raft snapshots: %w", err)
	}
	var adv net.Addr // nil: the listener's address (for port 0)
	if a, err := net.ResolveTCPAddr("tcp", cfg.Advertise); err != nil {
		store.Close()
		return nil, fmt.Errorf("coordinator: raft advertise address %q: %w", cfg.Advertise, err)
	} else if a.Port != 0 {
		adv = a
	}
	tr, err := newTransport(cfg, adv, raft.NetworkTransportConfig{Logger: hl, MaxPool: 4, Timeout: 5 * time.Second})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("coordinator: raft listen on %s: %w", cfg.Bind, err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.Timeout
	rc.ElectionTimeout = cfg.Timeout
	rc.LeaderLeaseTimeout = cfg.Timeout / 2
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = 2048
	rc.SnapshotInterval = 30 * time.Second
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			tr.Close()
			store.Close()
			return nil, fmt.Errorf("coordinator: raft state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: tr.LocalAddr(), Suffrage: raft.Voter}}}
			if err := raft.BootstrapCluster(rc, store, store, snaps, tr, conf); err != nil {
				tr.Close()
				store.Close()
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
		}
	}
	r := &Raft{tr: tr, store: store, snaps: snaps, rc: rc, fsm: cfg.FSM, cfg: cfg}
	if !cfg.Deferred {
		if err := r.Start(); err != nil {
			tr.Close()
			store.Close()
			return nil, err
		}
	}
	return r, nil
}

// Addr is the Raft transport's address.
func (r *Raft) Addr() string { return string(r.tr.LocalAddr()) }

// IsLeader reports whether this node leads.
func (r *Raft) IsLeader() bool {
	rr := r.get()
	return rr != nil && rr.State() == raft.Leader
}

// Leader returns the leader's id and Raft address, empty if unknown.
func (r *Raft) Leader() (id, addr string) {
	rr := r.get()
	if rr == nil {
		return "", ""
	}
	a, i := rr.LeaderWithID()
	return string(i), string(a)
}

// Propose replicates a command and applies it, returning Apply's error. On
// a follower it returns a *NotLeaderError.
func (r *Raft) Propose(ctx context.Context, c Command) error {
	rr := r.get()
	if rr == nil || rr.State() != raft.Leader {
		id, addr := r.Leader()
		return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := rr.Apply(c.Encode(), timeout)
	// Wait for the outcome or the context, whichever comes first; the
	// waiting goroutine ends when Raft resolves the future (it always does,
	// at the latest when Raft shuts down).
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("coordinator: propose %s: %w (it may still be applied)", c.Type, ctx.Err())
	}
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			id, addr := r.Leader()
			return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
		}
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return fmt.Errorf("%w: the command was not committed within %s", ErrNoQuorum, timeout.Round(time.Millisecond))
		}
		return fmt.Errorf("coordinator: propose %s: %w", c.Type, err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// Barrier waits until every committed entry is applied on this node (the
// leader calls it after gaining leadership, before acting on the state).
func (r *Raft) Barrier(timeout time.Duration) error {
	rr := r.get()
	if rr == nil {
		return ErrNotLeader
	}
	return rr.Barrier(timeout).Error()
}

// AddVoter adds (or promotes) a server as a voter.
func (r *Raft) AddVoter(id, addr string) error {
	rr := r.get()
	if rr == nil {
		return ErrNotLeader
	}
	return rr.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second).Error()
}

// AddNonvoter adds a server that replicates the log without voting.
func (r *Raft) AddNonvoter(id, addr string) error {
	rr := r.get()
	if rr == nil {
		return ErrNotLeader
	}
	return rr.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second).Error()
}

// RemoveServer removes a server from the configuration.
func (r *Raft) RemoveServer(id string) error {
	rr := r.get()
	if rr == nil {
		return ErrNotLeader
	}
	return rr.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error()
}

// Server is one entry of the Raft configuration.
type Server struct {
	ID, Addr string
	Voter    bool
}

// Servers returns the Raft configuration.
func (r *Raft) Servers() ([]Server, error) {
	rr := r.get()
	if rr == nil {
		return nil, errors.New("coordinator: raft not started")
	}
	f := rr.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Stats returns Raft's state, term and indexes for status displays.
func (r *Raft) Stats() map[string]string {
	rr := r.get()
	if rr == nil {
		return map[string]string{"state": "Joining", "term": "0"}
	}
	return rr.Stats()
}

// Close shuts Raft down and closes its stores.
func (r *Raft) Close() error {
	var err error
	if rr := r.get(); rr != nil {
		err = rr.Shutdown().Error()
	}
	r.tr.Close()
	if cerr := r.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// slogWriter forwards hclog's lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		msg := strings.TrimSpace(string(line))
		if msg == "" {
			continue
		}
		level := slog.LevelInfo
		switch {
		case strings.Contains(msg, "[ERROR]"):
			level = slog.LevelError
		case strings.Contains(msg, "[WARN]"):
			level = slog.LevelWarn
		}
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// SnapshotInfo describes the newest snapshot on disk.
type SnapshotInfo struct {
	Bytes int64  `json:"bytes"`
	Index uint64 `json:"index"`
}

// LatestSnapshot returns the newest snapshot this node keeps; ok is false
// when it has none yet.
func (r *Raft) LatestSnapshot() (SnapshotInfo, bool) {
	metas, err := r.snaps.List()
	if err != nil || len(metas) == 0 {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{Bytes: metas[0].Size, Index: metas[0].Index}, true
}
