package coordinator

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// FSM adapts State to raft.FSM: Raft orders the commands, Apply changes the
// state. Readers use Read; OnApply (if set) is called after every applied
// entry, outside the lock, so nodes can react to new assignments. Logger
// (default: discard) receives invalid entries and recovered panics; set
// both before Raft starts.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	statsMu sync.Mutex
	stats   SnapshotStats
	localMu sync.Mutex // ApplyLocal's entries, one at a time
	OnApply func()
	Logger  *slog.Logger
}

// NewFSM returns an FSM over an empty state.
func NewFSM() *FSM { return &FSM{state: NewState()} }

// Apply implements raft.FSM. Entries at or below the last applied index
// (replayed after a restart) are skipped. The result is Apply's error. An
// entry that cannot be decoded, is invalid, or panics while it is applied is
// rejected: its index counts as applied, the state is left as before it
// (for a panic, see applyLocked), and the error is the result, on every node
// and at every replay of the log, so a poison entry cannot stop the cluster.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	f.mu.Lock()
	if l.Index <= f.state.Index {
		f.mu.Unlock()
		return nil
	}
	if err == nil {
		err = f.applyLocked(l.Index, c)
	} else {
		err = fmt.Errorf("%w: undecodable entry %d: %v", ErrRejected, l.Index, err)
		f.logger().Warn("coordinator: undecodable log entry", "index", l.Index, "err", err)
	}
	f.state.Index = l.Index
	f.mu.Unlock()
	if f.OnApply != nil {
		f.OnApply()
	}
	return err
}

// applyLocked applies one decoded entry, turning a panic into a rejection.
// A panic would be a bug: Validate bounds every field, and Apply makes
// every check before its first change to the state, after which it only
// assigns to what the checks found. Should one slip through the checks, the
// state is as before the entry; should one come after the first change, the
// entry is left as far as it got, and since Apply is deterministic (no
// clock, no map iteration, no I/O) it gets exactly as far on every node
// running the same code, so the nodes' states still agree.
func (f *FSM) applyLocked(index uint64, c Command) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: entry %d (%s) panicked and is rejected: %v", ErrRejected, index, c.Type, r)
			f.logger().Error("coordinator: applying a log entry panicked; it is skipped", "index", index, "type", c.Type, "job", c.Job, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if err := c.Validate(); err != nil {
		f.logger().Warn("coordinator: invalid log entry rejected", "index", index, "type", c.Type, "err", err)
		return err
	}
	return apply(f.state, c)
}

func (f *FSM) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// Read calls fn with the state under a read lock; fn must not keep it.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// SnapshotStats describes the last snapshot this FSM took.
type SnapshotStats struct {
	Bytes int64         `json:"bytes"`
	Took  time.Duration `json:"took"`
	At    time.Time     `json:"at,omitzero"`
	Index uint64        `json:"index"`
}

// LastSnapshot returns what the last snapshot took (zero before the first).
func (f *FSM) LastSnapshot() SnapshotStats {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	return f.stats
}

// Snapshot implements raft.FSM: the state in the compact snapshot encoding
// (snapshot.go), encoded under the read lock so that it is consistent;
// Persist only writes the bytes out.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	var buf bytes.Buffer
	f.mu.RLock()
	n, err := encodeState(&buf, f.state)
	index := f.state.Index
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	f.statsMu.Lock()
	f.stats = SnapshotStats{Bytes: n, Took: time.Since(start), At: time.Now(), Index: index}
	f.statsMu.Unlock()
	return snapshot(buf.Bytes()), nil
}

// Restore implements raft.FSM. A snapshot that does not decode, or whose
// counts are beyond the limits of a job, is refused and the state is kept.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := decodeState(rc)
	if err != nil {
		f.logger().Error("coordinator: snapshot refused", "err", err)
		return fmt.Errorf("coordinator: restore snapshot: %w", err)
	}
	// A null entry would panic every reader; drop it.
	for id, m := range s.Members {
		if m == nil {
			f.logger().Error("coordinator: snapshot holds a null member; dropped", "member", id)
			delete(s.Members, id)
		}
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	if f.OnApply != nil {
		f.OnApply()
	}
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// ApplyLocal applies c as the next entry of a log that only this process
// keeps: a one-node cluster without Raft (jobs.RunLocal, tests). It returns
// Apply's error.
func (f *FSM) ApplyLocal(c Command) error {
	f.localMu.Lock()
	defer f.localMu.Unlock()
	var next uint64
	f.Read(func(s *State) { next = s.Index + 1 })
	res := f.Apply(&raft.Log{Index: next, Type: raft.LogCommand, Data: c.Encode()})
	if err, ok := res.(error); ok {
		return err
	}
	return nil
}
