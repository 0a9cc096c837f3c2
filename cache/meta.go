package cache

import (
	"encoding/binary"
	"errors"
	"time"
)

// entryMeta is what the edge keeps of an origin response besides its body:
// the headers it replays and what freshness needs. It is stored in the
// tiers in a compact binary form (encode/decodeMeta), decoded on every hit
// without allocating.
type entryMeta struct {
	Size     int64 // body bytes
	ReqTime  int64 // unix nanoseconds: when the fill's request was sent (RFC 9111 request_time)
	RespTime int64 // unix nanoseconds: when its response arrived (response_time)
	Date     int64 // the response's Date, unix seconds (0: none)
	AgeHdr   int64 // the response's Age, seconds
	// Lifetime is the freshness lifetime in nanoseconds; forever: the
	// origin said nothing about freshness, so the object is immutable.
	Lifetime     int64
	StaleIfError int64 // nanoseconds the entry may be served stale when the origin fails
	// StaleWhileRevalidate is how many nanoseconds past its freshness the
	// entry may be served while it is revalidated in the background
	// (RFC 5861 §3; 0: not at all).
	StaleWhileRevalidate int64
	LastModified         int64  // unix seconds (0: none)
	Flags                uint32 // flag*
	ETag                 []byte
	ContentType          []byte
	Encoding             []byte // Content-Encoding of the stored body ("" identity)
	CacheControl         []byte
	Expires              []byte
	Extra                []byte // other headers replayed, "Name: value\r\n" lines
	LastModText          []byte // LastModified as an HTTP-date
}

const (
	flagMustRevalidate = 1 << iota // must-revalidate, proxy-revalidate: never served stale
	flagNoCache                    // no-cache: revalidated before every use
	flagCompressible               // identity body of a compressible type: served gzip/br on request
	flagVaryEncoding               // the origin sent Vary: Accept-Encoding
)

// forever is the Lifetime of objects the origin gave no freshness for.
const forever = int64(1<<63 - 1)

// metaVersion is the encoding written; version 2, the same without
// StaleWhileRevalidate, is still read.
const metaVersion = 3

var errMeta = errors.New("cache: stored meta is corrupt")

func (m *entryMeta) encode() []byte {
	b := make([]byte, 0, 96+len(m.ETag)+len(m.ContentType)+len(m.Encoding)+len(m.CacheControl)+len(m.Expires)+len(m.Extra))
	b = append(b, metaVersion)
	for _, v := range []int64{m.Size, m.ReqTime, m.RespTime, m.Date, m.AgeHdr, m.Lifetime, m.StaleIfError, m.LastModified} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(m.Flags))
	for _, s := range [][]byte{m.ETag, m.ContentType, m.Encoding, m.CacheControl, m.Expires, m.Extra, m.LastModText} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return binary.AppendVarint(b, m.StaleWhileRevalidate)
}

// decodeMeta fills m from b; m's byte fields alias b.
func decodeMeta(b []byte, m *entryMeta) error {
	if len(b) == 0 || (b[0] != metaVersion && b[0] != 2) {
		return errMeta
	}
	version := b[0]
	b = b[1:]
	for _, p := range []*int64{&m.Size, &m.ReqTime, &m.RespTime, &m.Date, &m.AgeHdr, &m.Lifetime, &m.StaleIfError, &m.LastModified} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return errMeta
		}
		*p, b = v, b[n:]
	}
	f, n := binary.Uvarint(b)
	if n <= 0 {
		return errMeta
	}
	m.Flags, b = uint32(f), b[n:]
	for _, p := range []*[]byte{&m.ETag, &m.ContentType, &m.Encoding, &m.CacheControl, &m.Expires, &m.Extra, &m.LastModText} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return errMeta
		}
		*p, b = b[n:n+int(l)], b[n+int(l):]
	}
	m.StaleWhileRevalidate = 0
	if version >= 3 {
		v, n := binary.Varint(b)
		if n <= 0 || v < 0 || n != len(b) {
			return errMeta
		}
		m.StaleWhileRevalidate = v
	}
	if m.Size < 0 {
		return errMeta
	}
	return nil
}

// age is the entry's current age (RFC 9111 §4.2.3).
func (m *entryMeta) age(now time.Time) time.Duration {
	apparent := time.Duration(0)
	if m.Date > 0 {
		apparent = max(0, time.Duration(m.RespTime-m.Date*int64(time.Second)))
	}
	delay := time.Duration(m.RespTime - m.ReqTime)
	corrected := time.Duration(m.AgeHdr)*time.Second + delay
	initial := max(apparent, corrected)
	return initial + time.Duration(now.UnixNano()-m.RespTime)
}

// ttl is how long the entry stays fresh from now (negative: stale since).
func (m *entryMeta) ttl(now time.Time) time.Duration {
	if m.Lifetime == forever {
		return time.Duration(forever)
	}
	return time.Duration(m.Lifetime) - m.age(now)
}

// fresh reports whether the entry may be served without asking the origin.
func (m *entryMeta) fresh(now time.Time) bool {
	return m.Flags&flagNoCache == 0 && m.ttl(now) > 0
}

// sameResponse reports whether stored meta b is of the same origin
// response as m (the version m revalidates), not of one stored since.
func (m *entryMeta) sameResponse(b []byte) bool {
	var cur entryMeta
	return decodeMeta(b, &cur) == nil && cur.RespTime == m.RespTime && cur.Size == m.Size && string(cur.ETag) == string(m.ETag)
}

// revalidateBehind reports whether a stale entry may be served as it is
// while it is revalidated in the background (stale-while-revalidate,
// never with no-cache or must-revalidate).
func (m *entryMeta) revalidateBehind(now time.Time) bool {
	if m.Flags&(flagNoCache|flagMustRevalidate) != 0 || m.StaleWhileRevalidate <= 0 {
		return false
	}
	return -m.ttl(now) <= time.Duration(m.StaleWhileRevalidate)
}

// staleUsable reports whether a stale entry may be served because the
// origin failed (stale-if-error).
func (m *entryMeta) staleUsable(now time.Time) bool {
	if m.Flags&flagMustRevalidate != 0 {
		return false
	}
	return -m.ttl(now) <= time.Duration(m.StaleIfError)
}
