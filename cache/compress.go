package cache

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// compression is one content-coded variant of an entry's body: made once
// per (key, ETag, coding) from the stored identity body, kept in the memory
// tier beside it, and shared by concurrent requests while it is made.
type compression struct {
	done chan struct{}
	etag []byte
	body []byte
	err  error
}

// variantKey is where key's variant in coding is kept in the memory tier.
func variantKey(key, coding string) string { return key + "\x00" + coding }

// variantETag gives a coded variant its own strong validator, as a
// different representation must have (RFC 9110 §8.8.3).
func variantETag(etag []byte, coding string) []byte {
	if len(etag) < 2 || etag[len(etag)-1] != '"' {
		return nil
	}
	out := make([]byte, 0, len(etag)+len(coding)+1)
	out = append(out, etag[:len(etag)-1]...)
	out = append(out, '-')
	out = append(out, coding...)
	out = append(out, '"')
	return out
}

// compressed returns key's body in coding (br or gzip).
func (s *Server) compressed(key string, m *entryMeta, src bodySource, coding string) (*compression, error) {
	vkey := variantKey(key, coding)
	etag := variantETag(m.ETag, coding)
	// The variant's meta names the identity body it was made from.
	sig := string(m.ETag) + " " + strconv.FormatInt(m.Size, 10) + " " + strconv.FormatInt(m.LastModified, 10)
	if meta, body, ok := s.mem.Get(vkey); ok && string(meta) == sig {
		return &compression{etag: etag, body: body}, nil
	}
	s.compMu.Lock()
	c := s.comps[vkey]
	if c != nil {
		s.compMu.Unlock()
		<-c.done
		return c, c.err
	}
	c = &compression{done: make(chan struct{}), etag: etag}
	s.comps[vkey] = c
	s.compMu.Unlock()
	defer func() {
		s.compMu.Lock()
		delete(s.comps, vkey)
		s.compMu.Unlock()
		close(c.done)
	}()
	identity, err := src.bytes(m.Size)
	if err != nil {
		c.err = err
		return c, err
	}
	switch coding {
	case "br":
		c.body = fasthttp.AppendBrotliBytesLevel(nil, identity, fasthttp.CompressBrotliDefaultCompression)
	default:
		c.body = fasthttp.AppendGzipBytesLevel(nil, identity, fasthttp.CompressDefaultCompression)
	}
	s.stats.compressions.Add(1)
	s.mem.Put(vkey, []byte(sig), c.body)
	return c, nil
}
