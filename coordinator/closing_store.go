package coordinator

import (
	"sync"

	"github.com/hashicorp/raft"
)

// raftStore is the log and stable store Raft is given: a raftboltdb
// store whose Close waits for the calls in progress and after which calls
// never return.
//
// Raft's heartbeat fast path runs on the transport's goroutines, outside
// the loop Shutdown stops: a heartbeat that arrives during shutdown can
// save the current term after Shutdown returned, and Raft panics when that
// fails ("failed to save current term: database not open",
// hashicorp/raft#717), which took a stopping node down with a panic
// instead of a clean exit. A call after Close belongs to a node that is
// stopping: it waits for the process to end (or the goroutine to be
// abandoned) rather than answer an error Raft cannot take.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

type closingStore struct {
	mu     sync.RWMutex
	closed bool
	s      raftStore
	never  chan struct{} // never closed
}

func newClosingStore(s raftStore) *closingStore {
	return &closingStore{s: s, never: make(chan struct{})}
}

// enter holds off Close until leave; after Close it never returns.
func (c *closingStore) enter() {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		<-c.never
	}
}

func (c *closingStore) leave() { c.mu.RUnlock() }

func (c *closingStore) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.s.Close()
}

func (c *closingStore) FirstIndex() (uint64, error) {
	c.enter()
	defer c.leave()
	return c.s.FirstIndex()
}

func (c *closingStore) LastIndex() (uint64, error) {
	c.enter()
	defer c.leave()
	return c.s.LastIndex()
}

func (c *closingStore) GetLog(index uint64, log *raft.Log) error {
	c.enter()
	defer c.leave()
	return c.s.GetLog(index, log)
}

func (c *closingStore) StoreLog(log *raft.Log) error {
	c.enter()
	defer c.leave()
	return c.s.StoreLog(log)
}

func (c *closingStore) StoreLogs(logs []*raft.Log) error {
	c.enter()
	defer c.leave()
	return c.s.StoreLogs(logs)
}

func (c *closingStore) DeleteRange(min, max uint64) error {
	c.enter()
	defer c.leave()
	return c.s.DeleteRange(min, max)
}

func (c *closingStore) Set(key []byte, val []byte) error {
	c.enter()
	defer c.leave()
	return c.s.Set(key, val)
}

func (c *closingStore) Get(key []byte) ([]byte, error) {
	c.enter()
	defer c.leave()
	return c.s.Get(key)
}

func (c *closingStore) SetUint64(key []byte, val uint64) error {
	c.enter()
	defer c.leave()
	return c.s.SetUint64(key, val)
}

func (c *closingStore) GetUint64(key []byte) (uint64, error) {
	c.enter()
	defer c.leave()
	return c.s.GetUint64(key)
}
