package tier

import "sync"

// memObject is an immutable cached object: meta and body share one
// allocation.
type memObject struct {
	meta, body []byte
}

// Memory is the memory tier: whole objects as byte slices, bounded by the
// bytes of their keys, metas and bodies. It is safe for concurrent use; Get
// takes no lock.
type Memory struct {
	mu struct {
		sync.Mutex
		p       *policy[memObject]
		evicted []*entry[memObject] // scratch
	}
	maxObject int64
	hits      counter
	misses    counter
	refused   counter
}

// NewMemory returns an empty memory tier holding at most limit bytes. Objects
// larger than its small queue (limit/10) are not admitted.
func NewMemory(limit int64) *Memory {
	m := &Memory{}
	m.mu.p = newPolicy[memObject](max(1, limit))
	m.maxObject = m.mu.p.smallLimit
	return m
}

func memSize(key string, meta, body []byte) int64 {
	return int64(len(key) + len(meta) + len(body))
}

// Get returns key's meta and body. A hit bumps the key's frequency. The
// slices are shared with other callers and must not be modified.
func (m *Memory) Get(key string) (meta, body []byte, ok bool) {
	e := m.mu.p.lookup(key)
	if e == nil {
		m.misses.add(1)
		return nil, nil, false
	}
	e.touch()
	o := e.val.Load()
	m.hits.addAt(e.stripe, 1)
	return o.meta, o.body, true
}

// Put stores a copy of meta and body under key, replacing any previous
// object, and reports whether it was admitted: an object whose key, meta and
// body exceed the small queue (a tenth of the limit) is refused, and any
// previous object under key is removed.
func (m *Memory) Put(key string, meta, body []byte) bool {
	size := memSize(key, meta, body)
	if size > m.maxObject {
		m.refused.add(1)
		m.Delete(key)
		return false
	}
	buf := make([]byte, len(meta)+len(body))
	copy(buf, meta)
	copy(buf[len(meta):], body)
	o := &memObject{meta: buf[:len(meta):len(meta)], body: buf[len(meta):]}
	m.mu.Lock()
	_, ev := m.mu.p.add(key, size, o, m.mu.evicted[:0])
	clear(ev)
	m.mu.evicted = ev
	m.mu.Unlock()
	return true
}

// UpdateMeta replaces key's meta (a copy of meta), keeping its body and its
// place in the queues, and reports whether it did. If is non-nil, the
// current meta must satisfy it (say, be of the version the new meta
// revalidated): an entry replaced since is left alone.
func (m *Memory) UpdateMeta(key string, meta []byte, is func(current []byte) bool) bool {
	meta = append([]byte(nil), meta...)
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.mu.p
	e := p.lookup(key)
	if e == nil {
		return false
	}
	old := e.val.Load()
	if is != nil && !is(old.meta) {
		return false
	}
	e.val.Store(&memObject{meta: meta, body: old.body})
	p.resize(e, memSize(key, meta, old.body), nil)
	return true
}

// Delete removes key and reports whether it was present.
func (m *Memory) Delete(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.p.remove(key) != nil
}

// DeletePrefix removes every key that starts with prefix and returns how
// many it removed. It walks all entries.
func (m *Memory) DeletePrefix(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mu.p.removePrefix(prefix, nil))
}

// Stats returns a snapshot of the tier's counters.
func (m *Memory) Stats() Stats {
	var s Stats
	m.mu.Lock()
	m.mu.p.stats(&s)
	m.mu.Unlock()
	s.Hits = m.hits.load()
	s.Misses = m.misses.load()
	s.Refused = m.refused.load()
	return s
}
