package s3

import (
	"os"
	"sync"
)

// dirSyncs shares directory fsyncs among concurrent commits: uploads that
// rename into one directory at once are made durable by one fsync of it
// instead of one each. A commit that asks while a sync of its directory
// runs waits for the next one, which starts after its rename and serves
// every commit that asked in the meantime.
type dirSyncs struct {
	mu   sync.Mutex
	dirs map[string][]dirSyncWaiter // directory → waiters for its next sync; present while a sync runner works on it

	fsync func(*os.File) error // (*os.File).Sync; tests hold it
}

type dirSyncWaiter struct {
	d    *os.File // the directory, open; kept open by its waiter until done
	done chan error
}

// sync fsyncs the directory d (open for reading) or waits for a sync of it
// that starts after the call.
func (g *dirSyncs) sync(d *os.File) error {
	w := dirSyncWaiter{d: d, done: make(chan error, 1)}
	key := d.Name()
	g.mu.Lock()
	if g.dirs == nil {
		g.dirs = map[string][]dirSyncWaiter{}
	}
	waiters, running := g.dirs[key]
	g.dirs[key] = append(waiters, w)
	g.mu.Unlock()
	if !running {
		go g.run(key)
	}
	return <-w.done
}

// run syncs key's directory while commits wait for it.
func (g *dirSyncs) run(key string) {
	for {
		g.mu.Lock()
		waiters := g.dirs[key]
		if len(waiters) == 0 {
			delete(g.dirs, key)
			g.mu.Unlock()
			return
		}
		g.dirs[key] = waiters[:0:0]
		g.mu.Unlock()
		fsync := g.fsync
		if fsync == nil {
			fsync = (*os.File).Sync
		}
		err := fsync(waiters[0].d)
		for _, w := range waiters {
			w.done <- err
		}
	}
}
