package burstbuffer

import (
	"fmt"
	"runtime/debug"
)

// recovered, deferred directly in a goroutine or a unit of background work
// (a drain of a file, a drain window, a stripe write, a resync, a reap),
// turns a panic into a logged error: that unit fails (into *err when err
// is not nil) and the node goes on, instead of the whole process dying
// with it. A panic is a bug or input no check caught; the log has its
// stack.
func (s *Service) recovered(what string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.stats.panics.Add(1)
	s.log.Error("burstbuffer: "+what+" panicked; that work is failed and the node goes on", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if err != nil {
		*err = fmt.Errorf("burstbuffer: %s panicked: %v", what, r)
	}
}

// hooks are test hooks into background work; nil in production.
type hooks struct {
	// drainWindow is called by a drain worker before it writes a window
	// at off of a file.
	drainWindow func(file, off uint64)
	// drainBusy is called each time a drain or a truncation finds the
	// backing file's drain lock held by another drain.
	drainBusy func(file uint64)
}
