package fuse

import (
	"os"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"engine/namespace"
)

// dirSyncs records the backing directories the mount fsyncs.
type dirSyncs struct {
	mu   sync.Mutex
	rels []string
}

func (r *dirSyncs) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.rels
	r.rels = nil
	slices.Sort(out)
	return out
}

// TestFsyncMakesNameDurable: the first fsync of a file the mount created
// fsyncs its parent directory on the backing file system, and the parents
// the mount created on the way (mkdir -p a/b; create a/b/f: a/b, a and
// the root); later fsyncs of the file sync no directory (fsync-each speed).
// A file renamed into another directory gets that directory synced at its
// next fsync; a file the mount did not create gets none. Before, no
// directory was ever synced: after a power cut the name of an fsynced file
// could be missing, and the drain dropped its data as a deleted file's.
func TestFsyncMakesNameDurable(t *testing.T) {
	tm := mount(t)
	rec := &dirSyncs{}
	tm.srv.dirSync = func(d *namespace.Dir) error {
		rec.mu.Lock()
		rec.rels = append(rec.rels, d.Rel())
		rec.mu.Unlock()
		return d.Sync()
	}
	if err := os.MkdirAll(tm.path("a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(tm.path("a/b/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("create synced directories %q before any fsync", got)
	}
	for i := 0; i < 3; i++ {
		if _, err := f.WriteString("data"); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		want := []string(nil)
		if i == 0 {
			want = []string{"", "a", "a/b"}
		}
		if got := rec.take(); !slices.Equal(got, want) {
			t.Fatalf("fsync %d synced directories %q, want %q", i+1, got, want)
		}
	}
	// Renamed into another (existing) directory: that one, once.
	if err := os.Mkdir(tm.path("c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // nothing new for f
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("fsync after an unrelated mkdir synced %q", got)
	}
	if err := unix.Rename(tm.path("a/b/f"), tm.path("c/f")); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{"", "c"}, nil} {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); !slices.Equal(got, want) {
			t.Fatalf("fsync %d after the rename synced %q, want %q", i+1, got, want)
		}
	}
	// A file that was there before (not made by the mount): none.
	if err := os.WriteFile(tm.backing+"/old", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := os.OpenFile(tm.path("old"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.WriteString("y")
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("fsync of a file the mount did not create synced %q", got)
	}
}
