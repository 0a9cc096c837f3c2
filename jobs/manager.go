package jobs

import (
	"context"
	"log/slog"
	"sync"

	"engine/coordinator"
	"engine/shuffle"
)

// StateReader reads the replicated state (coordinator.FSM).
type StateReader interface {
	Read(fn func(s *coordinator.State))
}

// Proposer replicates a command and returns Apply's outcome; on a follower
// it forwards the command to the leader.
type Proposer interface {
	Propose(ctx context.Context, c coordinator.Command) error
}

// ProposerFunc adapts a function to Proposer.
type ProposerFunc func(ctx context.Context, c coordinator.Command) error

// Propose calls f.
func (f ProposerFunc) Propose(ctx context.Context, c coordinator.Command) error { return f(ctx, c) }

// SegmentLookup returns a partition's segments of outputs on this node
// (shuffle.Server.Segments).
type SegmentLookup interface {
	Segments(job string, partition int, ids []shuffle.OutputID) ([]shuffle.SegmentInfo, error)
}

// Config is what a Manager needs of its node.
type Config struct {
	// Node is this node's member id.
	Node string
	// DataDir holds the jobs' scratch (DataDir/jobs/ID) and the measured
	// sort rate.
	DataDir string
	// Workers is how many tasks this node runs at once; Memory the
	// default memory budget of a job.
	Workers int
	Memory  int64
	State   StateReader
	Propose Proposer
	// Fetcher fetches remote shuffle segments; Segments looks up this
	// node's own (shuffle.Server: its index cache serves both).
	Fetcher  *shuffle.Fetcher
	Segments SegmentLookup
	// Ready reports whether this node may act on the state: a member that
	// has applied the log as far as the leader had when it joined (before
	// that, the assignments it sees are history). Nil: always.
	Ready func() bool
	// Changes returns a channel closed at the next state change.
	Changes func() <-chan struct{}
	// CheckPath refuses a path a job names that this node must not use
	// (not absolute and clean, or outside its --io-root); what names it
	// in the error. Nil: every absolute path is allowed.
	CheckPath func(what, path string) error
	Log       *slog.Logger
}

// Manager runs jobs on one node. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	id      string
	log     *slog.Logger
	fsm     StateReader
	fetcher *shuffle.Fetcher
	ctx     context.Context
	kick    chan struct{}
	exec    *executor

	leadMu  sync.Mutex
	cleaned map[string]bool // ended jobs whose cleanup ran in this term
}

// New returns a manager whose work ends with ctx; Run starts its executor.
func New(ctx context.Context, cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Changes == nil {
		never := make(chan struct{})
		cfg.Changes = func() <-chan struct{} { return never }
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	m := &Manager{cfg: cfg, id: cfg.Node, log: cfg.Log, fsm: cfg.State, fetcher: cfg.Fetcher, kick: make(chan struct{}, 1), ctx: ctx}
	m.exec = newExecutor(m)
	return m
}

// Run runs the executor until the manager's context ends: it starts the
// attempts the state assigns to this node, cancels those it no longer does,
// and removes the scratch of ended jobs. Close waits for the attempts to end.
func (n *Manager) Run() { n.exec.run() }

// Kick tells the executor that the state changed.
func (n *Manager) Kick() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Close waits for running attempts and frees the kept sort buffers; call it
// after Run has returned.
func (n *Manager) Close() { n.exec.close() }

func (n *Manager) propose(ctx context.Context, c coordinator.Command) error {
	return n.cfg.Propose.Propose(ctx, c)
}

func (n *Manager) changes() <-chan struct{} { return n.cfg.Changes() }
