package cache

import (
	"io"
	"sync"
	"sync/atomic"
)

// fill is one fetch of an object from a peer or the origin, shared by every
// request that missed on its key while it runs (request coalescing). The
// body accumulates in memory as it arrives; readers stream it from there,
// waiting for bytes not yet arrived.
type fill struct {
	key  string
	head chan struct{} // closed once the response's status and headers are known (or the fetch failed)

	// Set before head is closed, read-only after.
	status    int        // the response's status; 0 when the fetch failed
	meta      *entryMeta // the entry to store; nil when the response is not shareable
	metaBytes []byte
	hdr       []byte        // for status != 200: headers to relay
	err       error         // the fetch failed before a response
	size      int64         // the response's Content-Length (-1: unknown)
	direct    io.ReadCloser // a response not for sharing: the starter's alone
	peer      bool          // filled from a peer edge
	gaveUp    atomic.Bool   // the starter stopped waiting for the head
	purged    atomic.Bool   // purged while running: not stored

	// refs counts who holds the body: the fill while it runs, and each
	// request answering from it; the last release frees its room in the
	// fill budget (reserved bytes, under mu).
	refs     atomic.Int64
	budget   *fillBudget
	reserved int64

	mu   sync.Mutex
	cond sync.Cond
	body []byte // bytes so far
	seen int    // of which readers may see: all but bytes added by addQuiet, until finish
	done bool   // body complete (or failed: bodyErr)
	berr error  // the body broke off: readers fail
}

func newFill(key string, budget *fillBudget) *fill {
	f := &fill{key: key, head: make(chan struct{}), budget: budget}
	f.cond.L = &f.mu
	f.refs.Store(1) // the fill's own
	return f
}

// hold takes a reference on f's body for a request answering from it.
func (f *fill) hold() { f.refs.Add(1) }

// release drops a reference; the last one gives the fill's bytes and its
// slot back to the budget.
func (f *fill) release() {
	if f.refs.Add(-1) == 0 {
		f.mu.Lock()
		n := f.reserved
		f.reserved = 0
		f.mu.Unlock()
		f.budget.free(n, false)
	}
}

// grow reserves room in the budget for a body of n bytes and makes the
// body's capacity n (appends never reallocate past what is reserved):
// false when the budget has no room.
func (f *fill) grow(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= f.reserved {
		return true
	}
	if !f.budget.take(n - f.reserved) {
		return false
	}
	f.reserved = n
	body := make([]byte, len(f.body), n)
	copy(body, f.body)
	f.body = body
	return true
}

// room is the body bytes reserved.
func (f *fill) room() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reserved
}

// fillBudget bounds the fills running at once and the body bytes they
// (and the requests still answering from a finished fill) hold in memory.
type fillBudget struct {
	mu                 sync.Mutex
	bytes, fills       int64
	maxBytes, maxFills int64
}

// start takes a fill slot: false when maxFills run.
func (b *fillBudget) start() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fills >= b.maxFills {
		return false
	}
	b.fills++
	return true
}

// take reserves n body bytes: false when they do not fit.
func (b *fillBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bytes+n > b.maxBytes {
		return false
	}
	b.bytes += n
	return true
}

// free gives back n bytes, and a fill slot if slot.
func (b *fillBudget) free(n int64, slot bool) {
	b.mu.Lock()
	b.bytes -= n
	if slot {
		b.fills--
	}
	b.mu.Unlock()
}

// inFlight returns the bytes and fills held.
func (b *fillBudget) inFlight() (bytes, fills int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes, b.fills
}

// abandon says the request that started f will not read its answer: a
// response that cannot be shared, meant for that request alone, is
// closed as soon as it comes (by runFill, or here if it came already).
func (f *fill) abandon() {
	f.gaveUp.Store(true)
	select {
	case <-f.head:
		if f.direct != nil {
			f.direct.Close()
		}
	default:
	}
}

// add appends body bytes and wakes readers.
func (f *fill) add(p []byte) {
	f.mu.Lock()
	f.body = append(f.body, p...)
	f.seen = len(f.body)
	f.mu.Unlock()
	f.cond.Broadcast()
}

// addQuiet appends the last body bytes without letting readers see them:
// finish will.
func (f *fill) addQuiet(p []byte) {
	f.mu.Lock()
	f.body = append(f.body, p...)
	f.mu.Unlock()
}

// bytes returns the body so far.
func (f *fill) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.body
}

// finish marks the body complete, or broken off with err.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done, f.berr = true, err
	f.seen = len(f.body)
	f.mu.Unlock()
	f.cond.Broadcast()
}

// complete waits for the whole body.
func (f *fill) complete() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.done {
		f.cond.Wait()
	}
	return f.body, f.berr
}

// reader returns a reader of n body bytes from off, which waits for bytes
// still to come and fails if the fill breaks off; Close calls done.
func (f *fill) reader(off, n int64, done func()) io.ReadCloser {
	return &fillReader{f: f, off: off, end: off + n, done: done}
}

type fillReader struct {
	f        *fill
	off, end int64
	done     func()
}

func (r *fillReader) Close() error {
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return nil
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	f := r.f
	f.mu.Lock()
	for int64(f.seen) <= r.off && !f.done {
		f.cond.Wait()
	}
	if int64(f.seen) <= r.off {
		err := f.berr
		f.mu.Unlock()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n := copy(p, f.body[r.off:min(int64(f.seen), r.end)])
	f.mu.Unlock()
	r.off += int64(n)
	return n, nil
}

// ReadAt reads body bytes at off, waiting for them to arrive; at the end
// of a complete body it returns io.EOF, and the fill's error if it broke
// off.
func (f *fill) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for int64(f.seen) < off+int64(len(p)) && !f.done {
		f.cond.Wait()
	}
	if off >= int64(f.seen) {
		if f.berr != nil {
			return 0, f.berr
		}
		return 0, io.EOF
	}
	n := copy(p, f.body[off:f.seen])
	if n < len(p) {
		if f.berr != nil {
			return n, f.berr
		}
		return n, io.EOF
	}
	return n, nil
}
