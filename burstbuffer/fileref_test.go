package burstbuffer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"engine/namespace"
)

// A handle from the peer protocol opens only regular files beneath the
// backing root: a handle of a file elsewhere on the same file system (the
// attack: POST truncate with a foreign handle, as root) is refused.
func TestOpenRefOnlyBeneathRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: open_by_handle_at needs CAP_DAC_READ_SEARCH (root)")
	}
	base := t.TempDir()
	root, outside := filepath.Join(base, "backing"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "bucket"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inside, victim := filepath.Join(root, "bucket", "obj"), filepath.Join(outside, "victim")
	for _, p := range []string{inside, victim} {
		if err := os.WriteFile(p, []byte("content"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	refOf := func(p string) FileRef {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ref, err := RefOf(f)
		if err != nil {
			t.Skipf("skipping: %v", err)
		}
		return ref
	}
	rf, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()

	f, err := openRef(rf, refOf(inside), os.O_WRONLY)
	if err != nil {
		t.Fatalf("handle of a file beneath the root: %v", err)
	}
	f.Close()

	for _, p := range []string{victim, outside, root, filepath.Join(root, "bucket")} {
		f, err := openRef(rf, refOf(p), os.O_WRONLY)
		if err == nil {
			f.Truncate(0)
			f.Close()
			t.Errorf("handle of %s opened for writing", p)
		} else if !errors.Is(err, namespace.ErrNotBeneath) {
			t.Errorf("handle of %s: got %v, want namespace.ErrNotBeneath", p, err)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "content" {
		t.Errorf("victim outside the root: %q %v", b, err)
	}

	bad := refOf(inside)
	bad.Handle = nil
	if _, err := openRef(rf, bad, os.O_RDONLY); err == nil {
		t.Error("empty handle opened")
	}
}
