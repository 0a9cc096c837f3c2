package mem

import (
	"testing"
	"unsafe"
)

func TestAllocAlignedZeroedAndReusable(t *testing.T) {
	for _, n := range []int{1, 4095, 4096, 3 << 20, 10_000_000} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		if uintptr(unsafe.Pointer(&b[0]))%Align != 0 {
			t.Fatalf("Alloc(%d) is not %d-aligned", n, Align)
		}
		for i := 0; i < n; i += 997 {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d)[%d] = %d, want 0", n, i, b[i])
			}
			b[i] = 1
		}
		Free(b)
	}
	p := Pool{Size: 1 << 20, Max: 1}
	a, b := p.Get(), p.Get()
	a[0] = 42
	p.Put(a)
	p.Put(b) // over Max: freed
	if c := p.Get(); &c[0] != &a[0] || c[0] != 42 {
		t.Fatal("pool did not reuse the buffer it kept")
	}
	p.Drain()
}
