package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM adapts State to raft.FSM: Raft orders the commands, Apply changes the
// state. Readers use Read; OnApply (if set) is called after every applied
// entry, outside the lock, so nodes can react to new assignments.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	OnApply func()
}

// NewFSM returns an FSM over an empty state.
func NewFSM() *FSM { return &FSM{state: NewState()} }

// Apply implements raft.FSM. Entries at or below the last applied index
// (replayed after a restart) are skipped. The result is Apply's error.
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
		err = Apply(f.state, c)
	} else {
		err = fmt.Errorf("%w: undecodable entry %d: %v", ErrRejected, l.Index, err)
	}
	f.state.Index = l.Index
	f.mu.Unlock()
	if f.OnApply != nil {
		f.OnApply()
	}
	return err
}

// Read calls fn with the state under a read lock; fn must not keep it.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Snapshot implements raft.FSM: the state as JSON.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state)
	if err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s := NewState()
	if err := json.NewDecoder(rc).Decode(s); err != nil {
		return fmt.Errorf("coordinator: restore snapshot: %w", err)
	}
	if s.Members == nil {
		s.Members = map[string]*Member{}
	}
	if s.Jobs == nil {
		s.Jobs = map[string]*Job{}
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
