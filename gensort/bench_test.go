package gensort

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func benchFill(b *testing.B, opts Options) {
	buf := make([]byte, chunkRecs*RecordSize)
	g := NewGenerator(0, opts)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for b.Loop() {
		g.Fill(buf)
	}
}

func BenchmarkFillBinary(b *testing.B)     { benchFill(b, Options{}) }
func BenchmarkFillBinarySkew(b *testing.B) { benchFill(b, Options{Skew: true}) }
func BenchmarkFillASCII(b *testing.B)      { benchFill(b, Options{ASCII: true}) }
func BenchmarkFillASCIISkew(b *testing.B)  { benchFill(b, Options{ASCII: true, Skew: true}) }

func BenchmarkSumRecords(b *testing.B) {
	buf := genRecords(0, chunkRecs, Options{})
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		SumRecords(buf)
	}
}

func BenchmarkValidator(b *testing.B) {
	buf := sortRecords(genRecords(0, chunkRecs, Options{}))
	v := NewValidator()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		v.Write(buf)
	}
}

// BenchmarkGenerateParallel measures multi-goroutine generation (no I/O).
func BenchmarkGenerateParallel(b *testing.B) {
	const n = 8 * chunkRecs
	b.SetBytes(n * RecordSize)
	for b.Loop() {
		generate(context.Background(), 0, n, Options{}, workersFor(n), false, func([]byte) error { return nil })
	}
}

// BenchmarkValidateFile measures parallel validation of a cached file.
func BenchmarkValidateFile(b *testing.B) {
	p := filepath.Join(b.TempDir(), "v.dat")
	data := genRecords(0, 8*chunkRecs, Options{})
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ValidateFile(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
}
