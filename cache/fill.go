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

	mu   sync.Mutex
	cond sync.Cond
	body []byte // bytes so far
	seen int    // of which readers may see: all but bytes added by addQuiet, until finish
	done bool   // body complete (or failed: bodyErr)
	berr error  // the body broke off: readers fail
}

func newFill(key string) *fill {
	f := &fill{key: key, head: make(chan struct{})}
	f.cond.L = &f.mu
	return f
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
// still to come and fails if the fill breaks off.
func (f *fill) reader(off, n int64) io.Reader {
	return &fillReader{f: f, off: off, end: off + n}
}

type fillReader struct {
	f        *fill
	off, end int64
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
