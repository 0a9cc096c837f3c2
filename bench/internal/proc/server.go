package proc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopLimit bounds how long a server gets to exit after SIGTERM.
const StopLimit = 30 * time.Second

// Server is a running server process in its own process group; its
// output goes to a log file. Its methods are safe for concurrent use.
type Server struct {
	cmd     *exec.Cmd
	logf    *os.File
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // cmd.Wait's, once done is closed
	mu      sync.Mutex
	stopped bool
}

// Start starts args[0] with args[1:] and environment env, its output
// (stdout and stderr) going to the file logPath; watch, if set, sees
// every line of it.
func Start(args, env []string, logPath string, watch func(line string)) (*Server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	s := &Server{logf: logf, logPath: logPath, done: make(chan struct{})}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Env = env
	// Its own process group: a Ctrl-C at the terminal is ours to act on
	// (stop it, remove the work directory), Stop can kill what it forked
	// (varnishd's cache process), and it dies with us.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w := &lineWatcher{w: logf, fn: watch}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// Done is closed once the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is how the process ended (exec.Cmd.Wait's error), once Done is
// closed.
func (s *Server) Err() error {
	<-s.done
	return s.waitErr
}

// Exited says whether the process has exited.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Pid is the process' id (0 for a nil Server).
func (s *Server) Pid() int {
	if s == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop sends SIGTERM and waits for the process to exit, SIGKILL to its
// process group after StopLimit; then it kills whatever is left of its
// process group. It fails if the process had exited before, or had to be
// killed. Only the first call does anything; a nil Server is stopped
// already.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	defer s.logf.Close()
	pgid := s.cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	if s.Exited() {
		return fmt.Errorf("it had exited already: %v", s.waitErr)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopLimit)
	defer timer.Stop()
	select {
	case <-s.done:
		return nil
	case <-timer.C:
		// The group, not the process alone: a child left holding the
		// log pipe open would keep Wait, and done, waiting.
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("it did not exit within %v of SIGTERM: killed", StopLimit)
	}
}

// Log is the server's output so far (or why it cannot be read).
func (s *Server) Log() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// LogTail is the last 15 lines of the server's log ("" for a nil
// Server).
func (s *Server) LogTail() string {
	if s == nil {
		return ""
	}
	return Tail(s.Log(), 15)
}

// Tail is the last n lines of s, "(no output)" if they are blank.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t := strings.Join(lines, "\n")
	if strings.TrimSpace(t) == "" {
		return "(no output)"
	}
	return t
}

// lineWatcher copies a process' output to w and shows fn every line.
type lineWatcher struct {
	mu  sync.Mutex
	w   *os.File
	fn  func(string)
	buf []byte
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if l.fn == nil {
		return n, err
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[:0]
	}
	return n, err
}
