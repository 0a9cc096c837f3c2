package s3

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirSyncsShared: commits that ask while a directory's fsync runs all
// wait for the next one, and it serves them all; an fsync's error reaches
// every commit it served.
func TestDirSyncsShared(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var calls atomic.Int32
	fail := errors.New("injected fsync failure")
	fsync := func() error {
		if calls.Add(1) == 1 {
			<-release // the first sync runs until every other commit asked
			return nil
		}
		return fail
	}
	g := groupSync{stop: make(chan struct{})}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- g.do(ctx, dir, fsync) }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 63
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- g.do(ctx, dir, fsync)
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		g.mu.Lock()
		queued := len(g.keys[dir])
		g.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d commits queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first commit: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, fail) {
			t.Fatalf("a commit served by the failing fsync got %v", err)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d fsyncs for 1 + %d commits, want 2", got, n)
	}
}
