// Package mem allocates large buffers outside the Go heap: page-aligned (as
// O_DIRECT needs), backed by transparent huge pages where the kernel allows
// (first-touch page faults dominate the cost of a fresh buffer on
// virtualised machines), and returned to the OS as soon as they are freed
// instead of when the garbage collector gets to them.
package mem

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Align is the alignment of every buffer Alloc returns.
const Align = 4096

const hugePage = 2 << 20

// Alloc returns a zeroed, page-aligned buffer of n bytes. It must be
// released with Free. If the kernel refuses the mapping, Alloc falls back to
// an aligned slice of the Go heap.
func Alloc(n int) []byte {
	if n <= 0 {
		return nil
	}
	size := (n + Align - 1) &^ (Align - 1)
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		h := make([]byte, n+Align)
		off := int(Align - uintptr(unsafe.Pointer(&h[0]))%Align)
		if off == Align {
			off = 0
		}
		return h[off : off+n : off+n]
	}
	if size >= hugePage {
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
	return b[:n:n]
}

// Free releases a buffer from Alloc. Heap fallbacks are left to the GC.
func Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	size := (cap(b) + Align - 1) &^ (Align - 1)
	full := unsafe.Slice(&b[:1][0], size)
	_ = unix.Munmap(full) // EINVAL for heap fallbacks: nothing to do
}

// Pool keeps freed buffers of one size for reuse, so that tasks that run
// one after another do not pay for fresh pages each time. At most Max idle
// buffers are kept; the rest are freed.
type Pool struct {
	Size int
	Max  int
	mu   sync.Mutex
	free [][]byte
}

// Get returns a buffer of p.Size bytes (contents undefined).
func (p *Pool) Get() []byte {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return Alloc(p.Size)
}

// Put returns a buffer obtained from Get.
func (p *Pool) Put(b []byte) {
	b = b[:cap(b)]
	p.mu.Lock()
	if len(p.free) < p.Max && len(b) == p.Size {
		p.free = append(p.free, b)
		b = nil
	}
	p.mu.Unlock()
	if b != nil {
		Free(b)
	}
}

// Drain frees every idle buffer.
func (p *Pool) Drain() {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, b := range free {
		Free(b)
	}
}
