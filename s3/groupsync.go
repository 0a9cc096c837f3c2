package s3

import (
	"context"
	"errors"
	"sync"
)

// groupSync shares syncs among concurrent commits. A commit that asks while
// a sync of its key runs waits for the next one, which starts after the
// commit's own writes and serves every commit that asked in the meantime.
// The keys: allData for the burst buffer's SyncAll (concurrent PUTs share
// their stripes' shard fdatasyncs instead of sealing a stripe each), and a
// directory's path for its fsync (uploads renaming into one directory
// share one).
type groupSync struct {
	mu   sync.Mutex
	keys map[string][]syncWaiter // key → waiters for its next sync; present while a runner works on it
	stop chan struct{}           // closed when the endpoint stops: waiters give up
}

// allData is the key of the burst buffer's SyncAll.
const allData = "\x00all"

type syncWaiter struct {
	sync func() error // what the waiter asks for; a round runs its first waiter's
	done chan error
}

var errStopped = errors.New("s3: the endpoint is stopping")

// do runs sync, or waits for a sync of key that starts after the call (any
// waiter's: they must do the same). It returns early when ctx ends or the
// endpoint stops; the sync goes on without it, so sync must not use what
// the caller frees when do returns.
func (g *groupSync) do(ctx context.Context, key string, sync func() error) error {
	w := syncWaiter{sync: sync, done: make(chan error, 1)}
	g.mu.Lock()
	if g.keys == nil {
		g.keys = map[string][]syncWaiter{}
	}
	waiters, running := g.keys[key]
	g.keys[key] = append(waiters, w)
	g.mu.Unlock()
	if !running {
		go g.run(key)
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return errStopped
	}
}

// run syncs key while commits wait for it.
func (g *groupSync) run(key string) {
	for {
		g.mu.Lock()
		waiters := g.keys[key]
		if len(waiters) == 0 {
			delete(g.keys, key)
			g.mu.Unlock()
			return
		}
		g.keys[key] = waiters[:0:0]
		g.mu.Unlock()
		err := waiters[0].sync()
		for _, w := range waiters {
			w.done <- err
		}
	}
}
