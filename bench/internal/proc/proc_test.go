package proc

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	for in, want := range map[string]string{"a\nb\nc\n": "b\nc", "a\nb": "a\nb", "": "(no output)", " \n\n": "(no output)"} {
		if got := Tail(in, 2); got != want {
			t.Errorf("Tail(%q, 2) = %q, want %q", in, got, want)
		}
	}
}

// TestServer starts a shell that prints two lines and waits for SIGTERM.
func TestServer(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "sh.log")
	var mu sync.Mutex
	var lines []string
	ready := make(chan struct{})
	watch := func(l string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, l)
		if l == "READY" {
			close(ready)
		}
	}
	s, err := Start([]string{"/bin/sh", "-c", `echo one; echo READY >&2; trap 'exit 0' TERM; while :; do sleep 0.05; done`}, nil, logPath, watch)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-s.Done():
		t.Fatalf("exited: %v: %s", s.Err(), s.LogTail())
	case <-time.After(10 * time.Second):
		t.Fatalf("no READY line: %s", s.LogTail())
	}
	if s.Exited() || s.Pid() <= 0 {
		t.Fatalf("exited %v, pid %d", s.Exited(), s.Pid())
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(lines, ",") != "one,READY" || s.Log() != "one\nREADY\n" {
		t.Errorf("watched %q, logged %q", lines, s.Log())
	}
}

func TestStopAfterExit(t *testing.T) {
	s, err := Start([]string{"/bin/sh", "-c", "exit 3"}, nil, filepath.Join(t.TempDir(), "sh.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "had exited already: exit status 3") {
		t.Errorf("Stop: %v", err)
	}
	var none *Server
	if none.Stop() != nil || none.LogTail() != "" || none.Pid() != 0 {
		t.Error("a nil Server is not stopped already")
	}
}

func TestStartFails(t *testing.T) {
	dir := t.TempDir()
	if _, err := Start([]string{filepath.Join(dir, "none")}, nil, filepath.Join(dir, "x.log"), nil); err == nil || !strings.HasPrefix(err.Error(), "start ") {
		t.Errorf("Start of no binary: %v", err)
	}
	if _, err := Start([]string{"/bin/true"}, nil, filepath.Join(dir, "no", "x.log"), nil); err == nil {
		t.Error("Start with no log directory succeeded")
	}
}

func TestBinaries(t *testing.T) {
	self, _ := os.Executable()
	if !IsExecutable(self) || IsExecutable(t.TempDir()) || IsExecutable(filepath.Join(t.TempDir(), "none")) {
		t.Error("IsExecutable")
	}
	if v := BinaryVersion(self); !strings.Contains(v, "go1.") {
		t.Errorf("BinaryVersion of this test = %q", v)
	}
	if v := BinaryVersion("/bin/sh"); v != "" {
		t.Errorf("BinaryVersion(/bin/sh) = %q, want none", v)
	}
	if _, err := FindEngined("/nonexistent"); err == nil || err.Error() != "engined /nonexistent: not an executable file" {
		t.Errorf("FindEngined: %v", err)
	}
	if p, err := FindEngined(self); err != nil || p != self {
		t.Errorf("FindEngined(%s) = %s, %v", self, p, err)
	}
	if addr, err := FreeAddr(); err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeAddr = %s, %v", addr, err)
	}
}
