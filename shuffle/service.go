package shuffle

import (
	"bufio"
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Locator maps a job id and an output id to the output's data and index
// files. The ids it receives have been validated: the job id passes
// ValidJobID and the output id Validate. An error that wraps fs.ErrNotExist
// or ErrMapOutputNotFound is reported to the client as "not found".
type Locator func(job string, id OutputID) (dataPath, indexPath string, err error)

// DirLocator locates outputs under root/<job>/, with the file names
// Mapper.Map and MergeOutputs are given (OutputDataName, OutputIndexName).
func DirLocator(root string) Locator {
	return func(job string, id OutputID) (string, string, error) {
		dir := filepath.Join(root, job)
		return filepath.Join(dir, OutputDataName(id)), filepath.Join(dir, OutputIndexName(id)), nil
	}
}

const (
	// serverIdleTimeout closes a connection that sends no request for this
	// long. Clients keep idle connections for less (Fetcher.IdleTimeout).
	serverIdleTimeout = 2 * time.Minute
	// serverWriteTimeout closes a connection whose client accepts no bytes
	// for this long. A reduce may leave one input unread for a long time
	// while the merge consumes the others; it then resumes from the bytes
	// it has on a new connection.
	serverWriteTimeout = 2 * time.Minute
	// sendChunk is the most bytes handed to one sendfile call.
	sendChunk = 4 << 20
	// indexCacheBytes bounds the memory of the parsed index files kept: an
	// index costs 24 bytes per partition (2.4 MB at 100,000 partitions),
	// and a reduce's segment-info request reads one entry of every output
	// on the node, so the cache should hold all of a job's outputs there.
	indexCacheBytes = 256 << 20
	// indexEntryOverhead is what one cached index costs besides its
	// segments.
	indexEntryOverhead = 256
)

// Bytes of segment data the server has sent with sendfile (zero-copy) and
// by copying through user space (only where sendfile is refused). Tests
// read them to check that serving is zero-copy.
var (
	sentZeroCopy atomic.Int64
	sentCopied   atomic.Int64
)

// Server is a shuffle service: it serves the segments of the map outputs
// stored on its node to reduce tasks anywhere, by (job, map task,
// partition), with the protocol described in protocol.go. Segment bytes go
// from the data file to the socket with sendfile, without passing through
// user space, and every connection is a goroutine parked on Go's netpoller,
// so the server keeps serving while the node's CPUs are busy with tasks.
// A Server is safe for concurrent use.
type Server struct {
	locate  Locator
	log     *slog.Logger
	indexes indexCache
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	// requests counts the requests decoded, for tests.
	requests atomic.Int64

	mu struct {
		sync.Mutex
		closed    bool
		listeners map[net.Listener]struct{}
		conns     map[net.Conn]struct{}
	}
}

// NewServer returns a server that finds map outputs with locate. A nil log
// discards the server's messages.
func NewServer(locate Locator, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{locate: locate, log: log, done: make(chan struct{})}
	s.indexes.init(indexCacheBytes)
	s.mu.listeners = map[net.Listener]struct{}{}
	s.mu.conns = map[net.Conn]struct{}{}
	return s
}

// Serve accepts connections on ln and serves each on a goroutine of its own
// until Close is called; it then returns nil. It closes ln when it returns.
// Serve may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.mu.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("shuffle: serve %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: wait and try again.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("shuffle: accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-s.done:
				return nil
			}
			continue
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// track registers a new connection and its goroutine, unless the server is
// closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.mu.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Close stops the server: it closes the listeners and every connection,
// idle or in the middle of a response (the client resumes that segment
// elsewhere or fails), and waits for the server's goroutines and Serve calls
// to return.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.mu.closed = true
	close(s.done)
	var err error
	for ln := range s.mu.listeners {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = fmt.Errorf("shuffle: close listener %s: %w", ln.Addr(), cerr)
		}
	}
	for c := range s.mu.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// serveConn answers the requests of one connection until the client closes
// it, a frame cannot be parsed, a response fails or the server closes.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReaderSize(c, 512)
	var buf, out []byte
	for {
		c.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		req, err := readRequest(br, &buf)
		var rerr *requestError
		switch {
		case errors.As(err, &rerr):
			s.requests.Add(1)
			s.log.Warn("shuffle: refused a request", "remote", c.RemoteAddr().String(), "err", err)
			out = appendError(out[:0], statusBadRequest, err.Error())
			if s.write(c, out) != nil || rerr.frame {
				return
			}
			continue
		case err != nil:
			return // the client left, or the server is closing
		}
		s.requests.Add(1)
		if req.op == opSegmentInfos {
			out = s.segmentInfos(req, out[:0])
			if s.write(c, out) != nil {
				return
			}
			continue
		}
		if !s.serveRequest(c, req, &out) {
			return
		}
	}
}

// write sends a response head.
func (s *Server) write(c net.Conn, b []byte) error {
	c.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
	_, err := c.Write(b)
	return err
}

// serveRequest answers one request and reports whether the connection can
// carry the next one.
func (s *Server) serveRequest(c net.Conn, req request, out *[]byte) bool {
	fail := func(status byte, format string, args ...any) bool {
		msg := fmt.Sprintf(format, args...)
		if status != statusNotFound {
			s.log.Warn("shuffle: request failed", "remote", c.RemoteAddr().String(), "job", req.job, "output", req.id.String(), "partition", req.partition, "err", msg)
		}
		*out = appendError((*out)[:0], status, msg)
		return s.write(c, *out) == nil
	}
	what := fmt.Sprintf("job %s %s", req.job, req.id)
	dataPath, seg, status, err := s.segment(req.job, req.id, req.partition)
	if err != nil {
		return fail(status, "%s: %v", what, err)
	}
	if req.offset > seg.Length {
		return fail(statusBadRequest, "%s partition %d: offset %d is past the segment's end at %d", what, req.partition, req.offset, seg.Length)
	}
	f, err := os.Open(dataPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail(statusNotFound, "%s: no data file: %v", what, unwrapPath(err))
		}
		return fail(statusFailed, "%s: open data file %s: %v", what, dataPath, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(statusFailed, "%s: stat data file %s: %v", what, dataPath, unwrapPath(err))
	}
	// The index was checked to be contiguous and free of overflow; the data
	// file must hold the whole segment, so no request reads outside it.
	if end := seg.Offset + seg.Length; end > fi.Size() {
		return fail(statusCorrupt, "%s: data file %s is %d bytes, the index says partition %d ends at byte %d", what, dataPath, fi.Size(), req.partition, end)
	}
	*out = appendOK((*out)[:0], seg)
	if err := s.write(c, *out); err != nil {
		return false
	}
	start, n := seg.Offset+req.offset, seg.Length-req.offset
	_ = unix.Fadvise(int(f.Fd()), start, n, unix.FADV_SEQUENTIAL)
	if err := sendRange(c, f, start, n); err != nil {
		if !s.isClosed() {
			s.log.Info("shuffle: sending a segment failed", "remote", c.RemoteAddr().String(), "job", req.job, "output", req.id.String(), "partition", req.partition, "err", err)
		}
		return false
	}
	return true
}

// segment locates one output's segment of a partition through the index
// cache. On error it gives the response status and what went wrong.
func (s *Server) segment(job string, id OutputID, partition int) (string, SegmentInfo, byte, error) {
	dataPath, indexPath, err := s.locate(job, id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrMapOutputNotFound) {
			return "", SegmentInfo{}, statusNotFound, err
		}
		return "", SegmentInfo{}, statusFailed, err
	}
	idx, err := s.indexes.get(indexPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", SegmentInfo{}, statusNotFound, fmt.Errorf("no such output: %v", unwrapPath(err))
	case errors.Is(err, ErrCorruptIndex):
		return "", SegmentInfo{}, statusCorrupt, fmt.Errorf("index %s: %v", indexPath, err)
	case err != nil:
		return "", SegmentInfo{}, statusFailed, fmt.Errorf("index %s: %v", indexPath, err)
	}
	if partition >= len(idx.Segments) {
		return "", SegmentInfo{}, statusBadRequest, fmt.Errorf("partition %d out of range: the output has %d partitions", partition, len(idx.Segments))
	}
	return dataPath, idx.Segments[partition], statusOK, nil
}

// segmentInfos answers a segment-info request from the index cache: one
// entry per output, with its own status. It appends the response to out.
func (s *Server) segmentInfos(req request, out []byte) []byte {
	infos := make([]SegmentInfo, len(req.ids))
	statuses := make([]byte, len(req.ids))
	for i, id := range req.ids {
		_, seg, status, err := s.segment(req.job, id, req.partition)
		if err != nil && status != statusNotFound {
			s.log.Warn("shuffle: segment info failed", "job", req.job, "output", id.String(), "partition", req.partition, "err", err)
		}
		infos[i], statuses[i] = seg, status
	}
	return appendInfos(out, infos, statuses)
}

// Segments is Fetcher.Segments for the outputs on the server's own node: it
// returns, for one job and partition, the SegmentInfo of each output in ids,
// from the same index cache that serves remote requests (so a reduce does
// not read whole index files for its local inputs). An output it cannot
// find or read fails the call with a *FetchError naming it, with Addr
// empty.
func (s *Server) Segments(job string, partition int, ids []OutputID) ([]SegmentInfo, error) {
	infos := make([]SegmentInfo, len(ids))
	for i, id := range ids {
		if err := ValidJobID(job); err != nil {
			return nil, &FetchError{Job: job, Output: id, Err: err}
		}
		if err := id.Validate(); err != nil {
			return nil, &FetchError{Job: job, Output: id, Err: err}
		}
		if partition < 0 || partition >= maxPartitions {
			return nil, &FetchError{Job: job, Output: id, Err: fmt.Errorf("shuffle: partition %d out of range 0..%d", partition, maxPartitions-1)}
		}
		_, seg, status, err := s.segment(job, id, partition)
		switch status {
		case statusOK:
		case statusNotFound:
			err = fmt.Errorf("%w: %v", ErrMapOutputNotFound, err)
		case statusCorrupt:
			err = fmt.Errorf("%w: %v", ErrCorruptSegment, err)
		}
		if err != nil {
			return nil, &FetchError{Job: job, Output: id, Err: fmt.Errorf("partition %d: %w", partition, err)}
		}
		infos[i] = seg
	}
	return infos, nil
}

// errNoSendfile reports that sendfile is refused for this file or socket
// before any byte was sent.
var errNoSendfile = errors.New("sendfile not supported")

// sendRange sends n bytes of f from off to c, with sendfile when c is a
// socket, otherwise (or when the kernel refuses) by copying.
func sendRange(c net.Conn, f *os.File, off, n int64) error {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			err := sendfile(c, rc, f, off, n)
			if !errors.Is(err, errNoSendfile) {
				return err
			}
		}
	}
	return copyRange(c, f, off, n)
}

// sendfile sends n bytes of f from off with sendfile(2), waiting for the
// socket on Go's netpoller when its buffer is full. The write deadline is
// renewed for every chunk, so it bounds the time without progress.
func sendfile(c net.Conn, rc syscall.RawConn, f *os.File, off, n int64) error {
	src := int(f.Fd())
	pos, end := off, off+n
	for pos < end {
		c.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		chunk := int(min(end-pos, sendChunk))
		var sent int
		var serr error
		// The kernel advances pos by the bytes it sent.
		err := rc.Write(func(fd uintptr) bool {
			for {
				sent, serr = unix.Sendfile(int(fd), src, &pos, chunk)
				if serr != unix.EINTR {
					return serr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return err
		}
		switch {
		case serr == unix.EINVAL || serr == unix.ENOSYS || serr == unix.EOPNOTSUPP:
			if pos == off {
				return errNoSendfile
			}
			return serr
		case serr != nil:
			return serr
		case sent == 0:
			return fmt.Errorf("data file ends at byte %d, before the segment's end at %d", pos, end)
		}
		sentZeroCopy.Add(int64(sent))
	}
	return nil
}

// copyRange is sendfile's fallback: read and write through a buffer.
func copyRange(c net.Conn, f *os.File, off, n int64) error {
	buf := make([]byte, min(n, 256<<10))
	for n > 0 {
		k, err := f.ReadAt(buf[:min(n, int64(len(buf)))], off)
		if k == 0 && err != nil {
			if err == io.EOF {
				return fmt.Errorf("data file ends at byte %d, before the segment's end at %d", off, off+n)
			}
			return err
		}
		c.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		if _, err := c.Write(buf[:k]); err != nil {
			return err
		}
		sentCopied.Add(int64(k))
		off += int64(k)
		n -= int64(k)
	}
	return nil
}

// indexCache keeps the most recently used parsed index files, up to a
// memory budget, keyed by path and checked against the file's inode, size
// and modification time, so an output written again is read again.
type indexCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64      // cost of the entries held
	lru      *list.List // of *cachedIndex, most recent first
	entries  map[string]*list.Element
}

type cachedIndex struct {
	path  string
	ino   uint64
	size  int64
	mtime time.Time
	idx   *Index
}

// cost is the memory a cached index is counted for.
func (ci *cachedIndex) cost() int64 {
	return indexEntryOverhead + int64(len(ci.path)) + int64(len(ci.idx.Segments))*int64(unsafe.Sizeof(SegmentInfo{}))
}

func (c *indexCache) init(maxBytes int64) {
	c.maxBytes = maxBytes
	c.lru = list.New()
	c.entries = map[string]*list.Element{}
}

// get returns the parsed index at path.
func (c *indexCache) get(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	key := cachedIndex{path: path, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = st.Ino
	}
	c.mu.Lock()
	if e, ok := c.entries[path]; ok {
		ci := e.Value.(*cachedIndex)
		if ci.ino == key.ino && ci.size == key.size && ci.mtime.Equal(key.mtime) {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return ci.idx, nil
		}
	}
	c.mu.Unlock()

	// Read from the file just stat'ed, so the key matches the contents.
	b, err := io.ReadAll(io.LimitReader(f, indexHeaderSize+maxPartitions*indexEntrySize+4+1))
	if err != nil {
		return nil, err
	}
	var x Index
	if err := x.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	key.idx = &x
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[path]; ok {
		c.remove(e)
	}
	c.entries[path] = c.lru.PushFront(&key)
	c.bytes += key.cost()
	for c.bytes > c.maxBytes && c.lru.Len() > 1 {
		c.remove(c.lru.Back())
	}
	return &x, nil
}

func (c *indexCache) remove(e *list.Element) {
	ci := e.Value.(*cachedIndex)
	c.lru.Remove(e)
	delete(c.entries, ci.path)
	c.bytes -= ci.cost()
}
