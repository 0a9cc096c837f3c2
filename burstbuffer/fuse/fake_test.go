package fuse

import (
	"context"
	"io"
	"os"
	"sync"

	"engine/burstbuffer"
)

// fakeData is an in-memory Data: per file, the written extents in write
// order over the backing file, which it never writes. A test can tell a
// write that went through the buffer (visible through the mount, absent
// from the backing file) from one that bypassed it.
type fakeData struct {
	mu    sync.Mutex
	files map[uint64]*fakeFile
}

type fakeFile struct {
	exts  []fakeExtent // later extents win
	syncs int
}

type fakeExtent struct {
	off int64
	b   []byte
}

func newFakeData() *fakeData { return &fakeData{files: make(map[uint64]*fakeFile)} }

func (d *fakeData) fileLocked(ref burstbuffer.FileRef) *fakeFile {
	f := d.files[ref.ID]
	if f == nil {
		f = &fakeFile{}
		d.files[ref.ID] = f
	}
	return f
}

func (f *fakeFile) end() int64 {
	var end int64
	for _, e := range f.exts {
		end = max(end, e.off+int64(len(e.b)))
	}
	return end
}

func (d *fakeData) WriteAt(ctx context.Context, ref burstbuffer.FileRef, p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fileLocked(ref)
	f.exts = append(f.exts, fakeExtent{off: off, b: append([]byte(nil), p...)})
	return nil
}

func (d *fakeData) ReadAt(ctx context.Context, ref burstbuffer.FileRef, backing *os.File, p []byte, off int64) (int, error) {
	st, err := backing.Stat()
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fileLocked(ref)
	size := max(st.Size(), f.end())
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	clear(p[:n])
	if _, err := backing.ReadAt(p[:n], off); err != nil && err != io.EOF {
		return 0, err
	}
	for _, e := range f.exts {
		lo, hi := max(off, e.off), min(off+int64(n), e.off+int64(len(e.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], e.b[lo-e.off:hi-e.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *fakeData) Size(ref burstbuffer.FileRef, backingSize int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.files[ref.ID]; f != nil {
		return max(backingSize, f.end())
	}
	return backingSize
}

func (d *fakeData) Sync(ctx context.Context, ref burstbuffer.FileRef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fileLocked(ref).syncs++
	return nil
}

func (d *fakeData) Truncate(ctx context.Context, ref burstbuffer.FileRef, backing *os.File, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.fileLocked(ref)
	kept := f.exts[:0]
	for _, e := range f.exts {
		if e.off >= size {
			continue
		}
		if e.off+int64(len(e.b)) > size {
			e.b = e.b[:size-e.off]
		}
		kept = append(kept, e)
	}
	f.exts = kept
	return backing.Truncate(size)
}

// syncs returns how often Sync was called for ref.
func (d *fakeData) syncs(ref burstbuffer.FileRef) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.files[ref.ID]; f != nil {
		return f.syncs
	}
	return 0
}

// buffered returns how many bytes were written for ref, counting
// overwrites.
func (d *fakeData) buffered(ref burstbuffer.FileRef) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	if f := d.files[ref.ID]; f != nil {
		for _, e := range f.exts {
			n += len(e.b)
		}
	}
	return n
}
