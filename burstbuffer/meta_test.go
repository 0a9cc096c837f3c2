package burstbuffer

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"

	"engine/erasure"
)

// TestShardRangeChecksBlocks: a range read checks exactly the 4 KiB blocks
// it reads, so damage in one block fails reads that touch it and no others.
func TestShardRangeChecksBlocks(t *testing.T) {
	code, _ := erasure.New(4, 2)
	data := make([]byte, 4*10000)
	rand.New(rand.NewSource(1)).Read(data)
	es, err := code.Encode(data, 10000)
	if err != nil {
		t.Fatal(err)
	}
	es.ID = 77
	h := code.ShardHeader(es, 1)
	payload, err := encodePayload([]byte(`{"id":77}`), &h, es.Shards[1])
	if err != nil {
		t.Fatal(err)
	}
	read := func(p []byte) rangeReader {
		return func(b []byte, off int64) (int, error) {
			if off+int64(len(b)) > int64(len(p)) {
				return 0, io.EOF
			}
			return copy(b, p[off:]), nil
		}
	}
	for _, r := range [][2]int{{0, 1}, {0, 10000}, {4095, 2}, {8192, 1808}, {9999, 1}} {
		got, _, err := readShardRange(read(payload), 77, 1, 4, 2, 10000, r[0], r[1])
		if err != nil || !bytes.Equal(got, es.Shards[1][r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v: %v", r, err)
		}
	}
	// Damage block 1 (bytes 4096..8191 of the shard).
	bad := append([]byte(nil), payload...)
	bad[len(bad)-10000+5000] ^= 1
	if _, _, err := readShardRange(read(bad), 77, 1, 4, 2, 10000, 0, 4096); err != nil {
		t.Fatalf("block 0 is intact: %v", err)
	}
	if _, _, err := readShardRange(read(bad), 77, 1, 4, 2, 10000, 4000, 200); !errors.Is(err, erasure.ErrDamaged) {
		t.Fatalf("a read across the damaged block: %v, want ErrDamaged", err)
	}
	if _, _, err := readShardRange(read(payload), 78, 1, 4, 2, 10000, 0, 10); err == nil {
		t.Fatal("a shard of another stripe was accepted")
	}
	// The whole-shard parse still finds the shard after the block sums.
	_, ph, shard, err := parsePayload(payload, false)
	if err != nil || ph.CheckPayload(shard) != nil {
		t.Fatalf("parse: %v", err)
	}
}

func FuzzParsePayload(f *testing.F) {
	code, _ := erasure.New(2, 1)
	es, _ := code.Encode([]byte("hello, shards"), 0)
	h := code.ShardHeader(es, 0)
	p, _ := encodePayload([]byte(`{"id":1}`), &h, es.Shards[0])
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePayload(b, true)
		readShardRange(func(q []byte, off int64) (int, error) {
			if off < 0 || off+int64(len(q)) > int64(len(b)) {
				return 0, io.EOF
			}
			return copy(q, b[off:]), nil
		}, 0, 0, 2, 1, 7, 0, 7)
	})
}

func TestBackingPath(t *testing.T) {
	s := &Service{cfg: Config{BackingDir: "/data/backing"}}
	for in, want := range map[string]string{
		".":                    "/data/backing",
		"/":                    "/data/backing",
		"dir/f":                "/data/backing/dir/f",
		"/dir/f":               "/data/backing/dir/f",
		"/data/backing/dir/f":  "/data/backing/dir/f",
		"/data/backing":        "/data/backing",
		"../../etc/passwd":     "",
		"/data/backing/../etc": "/data/backing/data/etc",
	} {
		got, err := s.backingPath(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q: got %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}
