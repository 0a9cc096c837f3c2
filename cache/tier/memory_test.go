package tier

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func TestMemory(t *testing.T) {
	m := NewMemory(10000) // objects up to 1000 bytes
	key := "a/b\x00c"
	meta, body := []byte("m1"), []byte("body one")
	if !m.Put(key, meta, body) {
		t.Fatal("Put refused a small object")
	}
	body[0] = 'X' // Put copied
	gm, gb, ok := m.Get(key)
	if !ok || string(gm) != "m1" || string(gb) != "body one" {
		t.Fatalf("Get = %q %q %v", gm, gb, ok)
	}
	m.Put(key, []byte("m2"), []byte("body two!"))
	if gm, gb, _ := m.Get(key); string(gm) != "m2" || string(gb) != "body two!" {
		t.Fatalf("after replace Get = %q %q", gm, gb)
	}
	if m.UpdateMeta(key, []byte("m3"), func(cur []byte) bool { return string(cur) == "m1" }) {
		t.Fatal("UpdateMeta of another version than the one present returned true")
	}
	if !m.UpdateMeta(key, []byte("m3"), func(cur []byte) bool { return string(cur) == "m2" }) {
		t.Fatal("UpdateMeta of a present key returned false")
	}
	if gm, gb, _ := m.Get(key); string(gm) != "m3" || string(gb) != "body two!" {
		t.Fatalf("after UpdateMeta Get = %q %q", gm, gb)
	}
	if m.UpdateMeta("nope", nil, nil) {
		t.Fatal("UpdateMeta of a missing key returned true")
	}
	s := m.Stats()
	if want := int64(len(key) + 2 + 9); s.Entries != 1 || s.Bytes != want || s.Limit != 10000 || s.Hits != 3 || s.Admissions != 2 {
		t.Fatalf("stats %+v, want 1 entry of %d bytes, 3 hits, 2 admissions", s, want)
	}
	if !m.Delete(key) || m.Delete(key) {
		t.Fatal("Delete: want true then false")
	}
	if _, _, ok := m.Get(key); ok {
		t.Fatal("Get after Delete hit")
	}
	if s := m.Stats(); s.Entries != 0 || s.Bytes != 0 || s.Misses != 1 {
		t.Fatalf("stats after delete %+v", s)
	}
}

func TestMemoryDeletePrefix(t *testing.T) {
	m := NewMemory(1 << 20)
	for _, k := range []string{"/a/1", "/a/2", "/a", "/b/1", "/ab"} {
		m.Put(k, nil, []byte(k))
	}
	if n := m.DeletePrefix("/a/"); n != 2 {
		t.Fatalf("DeletePrefix removed %d, want 2", n)
	}
	for k, want := range map[string]bool{"/a/1": false, "/a/2": false, "/a": true, "/b/1": true, "/ab": true} {
		if _, _, ok := m.Get(k); ok != want {
			t.Errorf("Get(%q) = %v, want %v", k, ok, want)
		}
	}
	if n := m.DeletePrefix(""); n != 3 {
		t.Fatalf("DeletePrefix(\"\") removed %d, want 3", n)
	}
}

func TestMemoryOversized(t *testing.T) {
	m := NewMemory(10000)
	m.Put("k", nil, []byte("small"))
	if m.Put("k", nil, make([]byte, 1000)) {
		t.Fatal("admitted an object larger than the small queue")
	}
	if _, _, ok := m.Get("k"); ok {
		t.Fatal("a refused replacement left the old object visible")
	}
	if s := m.Stats(); s.Refused != 1 || s.Bytes != 0 {
		t.Fatalf("stats %+v", s)
	}
	if !m.Put("k", nil, make([]byte, 999)) {
		t.Fatal("refused an object of exactly the small queue's size")
	}
}

func TestMemoryLimit(t *testing.T) {
	m := NewMemory(5000)
	for i := range 2000 {
		m.Put(strconv.Itoa(i%300), nil, make([]byte, i%400))
		if i%7 == 0 {
			m.Get(strconv.Itoa(i % 50))
		}
		if s := m.Stats(); s.Bytes > s.Limit {
			t.Fatalf("op %d: %d bytes over limit %d", i, s.Bytes, s.Limit)
		}
	}
}

// TestMemoryConcurrent runs Get, Put, UpdateMeta and deletes in parallel;
// every read must see the meta and body of one Put (or an updated meta).
func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(64 << 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := strconv.Itoa((g*7 + i) % 100)
				switch i % 10 {
				case 0, 1:
					v := byte(i)
					m.Put(k, []byte{v}, bytes.Repeat([]byte{v}, 1+i%500))
				case 2:
					m.Delete(k)
				case 3:
					m.UpdateMeta(k, []byte("updated"), nil)
				case 4:
					if i%500 == 4 {
						m.DeletePrefix("1")
					}
				default:
					meta, body, ok := m.Get(k)
					if ok && string(meta) != "updated" && (len(meta) != 1 || bytes.Count(body, meta) != len(body)) {
						t.Errorf("key %s: meta %v inconsistent with a body of %d bytes", k, meta, len(body))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if s := m.Stats(); s.Bytes > s.Limit {
		t.Fatalf("%d bytes over limit %d", s.Bytes, s.Limit)
	}
}

func BenchmarkMemoryGet(b *testing.B) {
	m := NewMemory(256 << 20)
	const n = 10000
	keys := make([]string, n)
	body := make([]byte, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("/bucket/object-%d", i)
		m.Put(keys[i], []byte("meta"), body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, ok := m.Get(keys[i%n]); !ok {
				b.Error("miss")
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
