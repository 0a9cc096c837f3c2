package tier

import (
	"bytes"
	"testing"
)

func encodeFile(key string, meta, body []byte, bodyCRC uint32) []byte {
	b := make([]byte, headerSize)
	encodeHeader(b, key, meta, int64(len(body)), bodyCRC)
	return append(append(append(b, key...), meta...), body...)
}

func TestHeaderRoundTrip(t *testing.T) {
	file := encodeFile("k\x00/ey", []byte("meta"), []byte("body"), 42)
	h, err := parseHeader(file, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	key, meta, err := h.checkKeyMeta(file, file[headerSize:h.bodyOffset()])
	if err != nil || key != "k\x00/ey" || string(meta) != "meta" || h.bodyCRC != 42 || h.bodyLen != 4 {
		t.Fatalf("parsed %+v %q %q %v", h, key, meta, err)
	}
	if _, err := parseHeader(file, int64(len(file))-1); err == nil {
		t.Fatal("a short file parsed")
	}
	for i := range h.bodyOffset() {
		bad := bytes.Clone(file)
		bad[i] ^= 0x10
		h, err := parseHeader(bad, int64(len(bad)))
		if err != nil {
			continue
		}
		if _, _, err := h.checkKeyMeta(bad, bad[headerSize:h.bodyOffset()]); err == nil {
			t.Fatalf("a flipped bit at byte %d went unnoticed", i)
		}
	}
}

// FuzzParseHeader: parsing any file's bytes never panics, and whatever
// parses and checks re-encodes to the same header.
func FuzzParseHeader(f *testing.F) {
	f.Add(encodeFile("key", []byte("meta"), []byte("body"), 1))
	f.Add(encodeFile("", nil, nil, 0))
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b, int64(len(b)))
		if err != nil {
			return
		}
		key, meta, err := h.checkKeyMeta(b, b[headerSize:h.bodyOffset()])
		if err != nil {
			return
		}
		re := make([]byte, headerSize)
		encodeHeader(re, key, meta, h.bodyLen, h.bodyCRC)
		if !bytes.Equal(re, b[:headerSize]) {
			t.Fatalf("re-encoded header %x, parsed from %x", re, b[:headerSize])
		}
	})
}
