package fuse

import (
	"fmt"
	"os"
	"testing"
)

// BenchmarkMetadata: create, stat, chmod and unlink of an empty file three
// directories deep, through the mount (the cost of resolving each request
// beneath the backing root and checking the inode).
func BenchmarkMetadata(b *testing.B) {
	tm := mount(b)
	dir := tm.path("a/b/c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		p := fmt.Sprintf("%s/f%d", dir, i)
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		if _, err := os.Stat(p); err != nil {
			b.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			b.Fatal(err)
		}
	}
}
