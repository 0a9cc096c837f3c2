package edgebench

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

// stopLimit bounds how long a server gets to exit after SIGTERM.
const stopLimit = 30 * time.Second

// server is a running server process in its own process group; its
// output goes to a log file.
type server struct {
	cmd     *exec.Cmd
	logf    *os.File
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // cmd.Wait's, once done is closed
	mu      sync.Mutex
	stopped bool
}

// startServer starts args[0] with args[1:]; watch, if set, sees every
// line of its output (stdout and stderr).
func startServer(args, env []string, logPath string, watch func(string)) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("edgebench: %w", err)
	}
	s := &server{logf: logf, logPath: logPath, done: make(chan struct{})}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Env = env
	// Its own process group: a Ctrl-C at the terminal is ours to act on
	// (stop it, remove the work directory), stop can kill what it forked
	// (varnishd's cache process), and it dies with us.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w := &lineWatcher{w: logf, fn: watch}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("edgebench: start %s: %w", args[0], err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the process to exit, SIGKILL after
// 30 s; then it kills whatever is left of its process group.
func (s *server) stop() error {
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
	if s.exited() {
		return fmt.Errorf("it had exited already: %v", s.waitErr)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopLimit)
	defer timer.Stop()
	select {
	case <-s.done:
		return nil
	case <-timer.C:
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("it did not exit within %v of SIGTERM: killed", stopLimit)
	}
}

// log is the server's output so far.
func (s *server) log() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// logTail is the end of the server's log.
func (s *server) logTail() string {
	if s == nil {
		return ""
	}
	return tail(s.log(), 15)
}

func tail(s string, n int) string {
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
