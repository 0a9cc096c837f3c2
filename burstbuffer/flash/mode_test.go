package flash

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// checkPrivate fails unless dir is 0700 and every file in it 0600 or
// stricter: segments hold users' data.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := fi.Mode().Perm(); p&0o077 != 0 {
		t.Errorf("store directory %s is %#o, want 0700", dir, p)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // a spare segment renamed meanwhile
		}
		n++
		if p := fi.Mode().Perm(); p&0o077 != 0 {
			t.Errorf("%s is %#o, want 0600", e.Name(), p)
		}
	}
	if n == 0 {
		t.Fatalf("no files in %s", dir)
	}
}

// TestStoreFilesPrivate: segment files (and spares) are 0600 in a 0700
// directory, and a store made by an older version (0644 segments, a 0755
// directory) is tightened when it is opened.
func TestStoreFilesPrivate(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store-0")
	opts := StoreOptions{SegmentSize: 8192, Preallocate: true}
	s := mustOpenStore(t, dir, opts)
	for i := 0; i < 20; i++ {
		if err := s.Put(ctx, uint64(i), 0, payload(i, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)

	// As an older version left it.
	os.Chmod(dir, 0o755)
	for _, id := range segFiles(t, dir) {
		os.Chmod(filepath.Join(dir, segName(id)), 0o644)
	}
	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	checkPrivate(t, dir)
}
