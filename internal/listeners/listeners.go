// Package listeners keeps the listeners a server was given, so that
// closing the server also stops a Serve that had not yet handed its
// listener to fasthttp (whose Shutdown only closes the listeners it has).
package listeners

import (
	"net"
	"sync"
)

// Set is the listeners of one server. The zero Set is ready.
type Set struct {
	mu     sync.Mutex
	lns    []net.Listener
	closed bool
}

// Add records ln and reports true; after Close it closes ln and reports
// false: the caller must not serve on it.
func (s *Set) Add(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return false
	}
	s.lns = append(s.lns, ln)
	return true
}

// Close closes every listener added and those added later.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
}
