package coordinator

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// slowStore is a raftStore whose SetUint64 waits for release.
type slowStore struct {
	raftStore
	entered, release chan struct{}
	order            chan string
}

func (s *slowStore) SetUint64(key []byte, val uint64) error {
	close(s.entered)
	<-s.release
	s.order <- "set"
	return nil
}

func (s *slowStore) Close() error { s.order <- "close"; return nil }

// TestClosingStoreWaitsForCallsInProgress: Close waits for a call that
// is running (a heartbeat saving the term while Raft shuts down).
func TestClosingStoreWaitsForCallsInProgress(t *testing.T) {
	s := &slowStore{entered: make(chan struct{}), release: make(chan struct{}), order: make(chan string, 2)}
	c := newClosingStore(s)
	go c.SetUint64([]byte("CurrentTerm"), 2)
	<-s.entered
	closed := make(chan error)
	go func() { closed <- c.Close() }()
	close(s.release)
	<-closed
	if a, b := <-s.order, <-s.order; a != "set" || b != "close" {
		t.Fatalf("order %s, %s: want the call in progress to end before the store closes", a, b)
	}
}

// TestClosingStoreCallAfterCloseNeverFails: after Close a call does not
// return an error (hashicorp/raft panics on a failed term save: #717).
// The bolt store alone answers "database not open".
func TestClosingStoreCallAfterCloseNeverFails(t *testing.T) {
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	var _ raft.StableStore = bolt
	c := newClosingStore(bolt)
	if err := c.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bolt.SetUint64([]byte("CurrentTerm"), 2); err == nil {
		t.Fatal("the bolt store took a write after Close; the test would prove nothing")
	}
	got := make(chan error, 1)
	go func() { got <- c.SetUint64([]byte("CurrentTerm"), 2) }()
	select {
	case err := <-got:
		t.Fatalf("a term save after Close returned (%v): Raft panics on its error", err)
	case <-time.After(200 * time.Millisecond):
	}
}
