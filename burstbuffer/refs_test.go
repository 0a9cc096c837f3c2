package burstbuffer

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Staging walks beneath the backing directory without following symlinks
// or opening FIFOs: a symlink to a directory outside is not followed (the
// root daemon would drain or purge files it names), and a FIFO does not
// block the walk.
func TestRefsUnderStaysBeneath(t *testing.T) {
	backing, outside := t.TempDir(), t.TempDir()
	for _, p := range []string{"a/1", "a/b/2", "3"} {
		os.MkdirAll(filepath.Join(backing, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(backing, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(backing, "a", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(backing, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(backing, "a", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{BackingDir: backing}}
	refs, err := s.refsUnder("/")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 3 {
		t.Fatalf("refsUnder(/): %d files, want the 3 regular files beneath the root", len(refs))
	}
	if refs, err := s.refsUnder("/a"); err != nil || len(refs) != 2 {
		t.Fatalf("refsUnder(/a): %d files, %v; want 2", len(refs), err)
	}
	if refs, err := s.refsUnder("/a/escape"); err == nil && len(refs) > 0 {
		t.Fatal("refsUnder followed a symlink to a directory outside the backing directory")
	}
	if _, err := s.refsUnder("../outside"); err == nil {
		t.Fatal("refsUnder accepted a path above the namespace")
	}
}
