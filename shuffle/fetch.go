package shuffle

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"time"
)

// FetchError reports an output segment that could not be fetched from a
// shuffle service after retries: the node is gone, the output is missing,
// or its bytes are corrupt (Err then wraps ErrCorruptSegment; a missing
// output wraps ErrMapOutputNotFound). The coordinator should mark that
// output lost and run the task that wrote it (Output) again. Addr is empty
// when the output is on the caller's own node (Server.Segments).
type FetchError struct {
	Job    string
	Output OutputID
	Addr   string
	Err    error
}

func (e *FetchError) Error() string {
	if e.Addr == "" {
		return fmt.Sprintf("read %s of job %s on this node: %v", e.Output, e.Job, e.Err)
	}
	return fmt.Sprintf("fetch %s of job %s from %s: %v", e.Output, e.Job, e.Addr, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// Fetcher fetches map output segments from shuffle services (Server),
// keeping idle connections per address for the next fetch. Zero fields take
// defaults. A Fetcher is safe for concurrent use; its fields must not change
// once it is in use.
type Fetcher struct {
	// MaxIdlePerAddr caps the idle connections kept per address; more are
	// closed when their fetch ends. Default 16.
	MaxIdlePerAddr int
	// IdleTimeout is how long an idle connection may be reused. Default 30s,
	// below the server's 2 minutes.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to a server. Default 10s.
	DialTimeout time.Duration
	// ReadTimeout fails an attempt that receives nothing for this long (the
	// time the merge takes to free a block does not count). Default 60s.
	ReadTimeout time.Duration
	// RetryBackoff is the wait before the first re-fetch after a failed
	// attempt, doubled for each next one. Default 100ms.
	RetryBackoff time.Duration
	// TLS, if set, dials servers over TLS with this configuration (the
	// cluster's mutual TLS; it should offer the "engine-shuffle" ALPN
	// protocol when the server's port carries several).
	TLS *tls.Config

	mu struct {
		sync.Mutex
		idle      map[string][]*fetchConn // most recently used last
		lastPrune time.Time
	}
}

// DefaultFetcher is the Fetcher a ReduceTask without one uses.
var DefaultFetcher = &Fetcher{}

// fetchAttempts is the number of attempts in a row that receive no segment
// bytes after which a fetch fails.
const fetchAttempts = 3

func (f *Fetcher) maxIdle() int               { return orDefault(f.MaxIdlePerAddr, 16) }
func (f *Fetcher) idleTimeout() time.Duration { return orDefault(f.IdleTimeout, 30*time.Second) }
func (f *Fetcher) dialTimeout() time.Duration { return orDefault(f.DialTimeout, 10*time.Second) }
func (f *Fetcher) readTimeout() time.Duration { return orDefault(f.ReadTimeout, 60*time.Second) }
func (f *Fetcher) retryBackoff() time.Duration {
	return orDefault(f.RetryBackoff, 100*time.Millisecond)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// fetchConn is a connection to a shuffle service.
type fetchConn struct {
	c    net.Conn
	br   *bufio.Reader
	used time.Time // when it went idle
}

// get returns an idle connection to addr, or dials one.
func (f *Fetcher) get(ctx context.Context, addr string) (fc *fetchConn, reused bool, err error) {
	f.mu.Lock()
	idle := f.mu.idle[addr]
	for len(idle) > 0 {
		fc = idle[len(idle)-1]
		idle = idle[:len(idle)-1]
		if time.Since(fc.used) < f.idleTimeout() {
			break
		}
		fc.c.Close()
		fc = nil
	}
	if f.mu.idle != nil {
		f.mu.idle[addr] = idle
	}
	f.mu.Unlock()
	if fc != nil {
		return fc, true, nil
	}
	var c net.Conn
	if f.TLS != nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: f.dialTimeout()}, Config: f.TLS}
		c, err = d.DialContext(ctx, "tcp", addr)
	} else {
		d := net.Dialer{Timeout: f.dialTimeout()}
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, false, err
	}
	return &fetchConn{c: c, br: bufio.NewReaderSize(c, 4096)}, false, nil
}

// put keeps a connection whose response was read to the end for reuse.
func (f *Fetcher) put(addr string, fc *fetchConn) {
	if fc.br.Buffered() > 0 { // bytes nobody asked for: out of step
		fc.c.Close()
		return
	}
	fc.c.SetDeadline(time.Time{})
	fc.used = time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.idle == nil {
		f.mu.idle = map[string][]*fetchConn{}
	}
	if fc.used.Sub(f.mu.lastPrune) > f.idleTimeout() {
		f.pruneLocked(fc.used)
	}
	if len(f.mu.idle[addr]) >= f.maxIdle() {
		fc.c.Close()
		return
	}
	f.mu.idle[addr] = append(f.mu.idle[addr], fc)
}

// pruneLocked closes the connections idle for longer than IdleTimeout at
// now, so that addresses no longer fetched from do not hold them forever.
func (f *Fetcher) pruneLocked(now time.Time) {
	f.mu.lastPrune = now
	for addr, idle := range f.mu.idle {
		keep := idle[:0]
		for _, fc := range idle {
			if now.Sub(fc.used) < f.idleTimeout() {
				keep = append(keep, fc)
			} else {
				fc.c.Close()
			}
		}
		clear(idle[len(keep):])
		if len(keep) == 0 {
			delete(f.mu.idle, addr)
		} else {
			f.mu.idle[addr] = keep
		}
	}
}

// CloseIdleConnections closes the connections kept for reuse.
func (f *Fetcher) CloseIdleConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, idle := range f.mu.idle {
		for _, fc := range idle {
			fc.c.Close()
		}
		delete(f.mu.idle, addr)
	}
}

// remoteError is an error response from the server that retrying will not
// change.
type remoteError struct{ err error }

func (e *remoteError) Error() string { return e.err.Error() }
func (e *remoteError) Unwrap() error { return e.err }

// send writes req on an idle or new connection to addr and waits for the
// first byte of the response. A failure on a reused connection before any
// response byte arrived (the server had closed it while it was idle) is
// retried at once on another one.
func (f *Fetcher) send(ctx context.Context, addr string, req request) (*fetchConn, error) {
	for {
		fc, reused, err := f.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		fc.c.SetDeadline(time.Now().Add(f.readTimeout()))
		stop := context.AfterFunc(ctx, func() { fc.c.Close() })
		_, err = fc.c.Write(appendRequest(nil, req))
		if err == nil {
			_, err = fc.br.Peek(1)
		}
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			fc.c.Close()
			if reused && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		return fc, nil
	}
}

// roundTrip sends a segment request and reads the head of the response.
func (f *Fetcher) roundTrip(ctx context.Context, addr string, req request) (*fetchConn, SegmentInfo, error) {
	var hdr [13]byte
	fc, err := f.send(ctx, addr, req)
	if err != nil {
		return nil, SegmentInfo{}, err
	}
	stop := context.AfterFunc(ctx, func() { fc.c.Close() })
	hdr[0], _ = fc.br.ReadByte() // Peeked by send
	seg, err := readResponseHead(fc.br, hdr[0], hdr[1:])
	if !stop() {
		err = ctx.Err()
	}
	var rerr *remoteError
	switch {
	case err == nil:
		return fc, seg, nil
	case errors.As(err, &rerr) && hdr[0] != statusBadRequest:
		f.put(addr, fc) // the response was read to its end
	default:
		fc.c.Close()
	}
	return nil, SegmentInfo{}, err
}

// Segments returns, for one job and partition, the SegmentInfo of each of
// the outputs ids held by the shuffle service at addr, in one round trip
// per MaxSegmentInfos ids, from the server's index cache. A reduce uses it to
// learn which segments are empty (and need no fetch) and the length and
// CRC32C of the others.
//
// A failed connection is retried like a segment fetch (fetchAttempts
// attempts with backoff). An output the server does not have, or whose
// index is damaged, fails the call with a *FetchError naming that output
// (wrapping ErrMapOutputNotFound or ErrCorruptSegment); when the whole
// request fails the *FetchError names the first output asked for.
func (f *Fetcher) Segments(ctx context.Context, addr, job string, partition int, ids []OutputID) ([]SegmentInfo, error) {
	fail := func(id OutputID, err error) error {
		return &FetchError{Job: job, Output: id, Addr: addr, Err: err}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := ValidJobID(job); err != nil {
		return nil, fail(ids[0], err)
	}
	if partition < 0 || partition >= maxPartitions {
		return nil, fail(ids[0], fmt.Errorf("shuffle: partition %d out of range 0..%d", partition, maxPartitions-1))
	}
	for _, id := range ids {
		if err := id.Validate(); err != nil {
			return nil, fail(id, err)
		}
	}
	out := make([]SegmentInfo, 0, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), MaxSegmentInfos)]
		ids = ids[len(batch):]
		req := request{op: opSegmentInfos, job: job, partition: partition, ids: batch}
		var statuses []byte
		var infos []SegmentInfo
		var err error
		for failures := 1; ; failures++ {
			infos, statuses, err = f.segmentInfos(ctx, addr, req)
			var rerr *remoteError
			if err == nil || ctx.Err() != nil || errors.As(err, &rerr) || failures >= fetchAttempts {
				break
			}
			t := time.NewTimer(f.retryBackoff() << (failures - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("segment infos of job %s partition %d from %s: %w", job, partition, addr, ctx.Err())
		case err != nil:
			var rerr *remoteError
			if errors.As(err, &rerr) {
				err = rerr.err
			}
			return nil, fail(batch[0], fmt.Errorf("segment infos of %d outputs: %w", len(batch), err))
		}
		for i, st := range statuses {
			switch st {
			case statusOK:
			case statusNotFound:
				return nil, fail(batch[i], fmt.Errorf("%w: partition %d: the server has no such output", ErrMapOutputNotFound, partition))
			case statusCorrupt:
				return nil, fail(batch[i], fmt.Errorf("%w: partition %d: the server's index is damaged", ErrCorruptSegment, partition))
			case statusBadRequest:
				return nil, fail(batch[i], fmt.Errorf("partition %d: out of the output's range", partition))
			default:
				return nil, fail(batch[i], fmt.Errorf("partition %d: the server failed to read the index (status %d)", partition, st))
			}
		}
		out = append(out, infos...)
	}
	return out, nil
}

// segmentInfos makes one segment-info request and reads its response.
func (f *Fetcher) segmentInfos(ctx context.Context, addr string, req request) ([]SegmentInfo, []byte, error) {
	fc, err := f.send(ctx, addr, req)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { fc.c.Close() })
	infos, statuses, reusable, err := readInfos(fc.br, len(req.ids))
	if !stop() {
		err = ctx.Err()
		reusable = false
	}
	if reusable {
		f.put(addr, fc)
	} else {
		fc.c.Close()
	}
	return infos, statuses, err
}

// readInfos reads a response to a segment-info request for n outputs, and
// whether the connection may carry the next request.
func readInfos(br *bufio.Reader, n int) (infos []SegmentInfo, statuses []byte, reusable bool, err error) {
	var buf [infoEntrySize]byte
	if _, err := io.ReadFull(br, buf[:1]); err != nil {
		return nil, nil, false, noEOF(err)
	}
	if buf[0] != statusOK {
		_, err := readResponseHead(br, buf[0], buf[1:])
		var rerr *remoteError
		return nil, nil, errors.As(err, &rerr) && buf[0] != statusBadRequest, err
	}
	if _, err := io.ReadFull(br, buf[:2]); err != nil {
		return nil, nil, false, noEOF(err)
	}
	if got := int(binary.BigEndian.Uint16(buf[:])); got != n {
		return nil, nil, false, &remoteError{fmt.Errorf("the server answered %d segment infos for %d outputs", got, n)}
	}
	infos, statuses = make([]SegmentInfo, n), make([]byte, n)
	for i := range n {
		if _, err := io.ReadFull(br, buf[:]); err != nil {
			return nil, nil, false, noEOF(err)
		}
		statuses[i] = buf[0]
		s := SegmentInfo{Offset: int64(binary.BigEndian.Uint64(buf[1:])), Length: int64(binary.BigEndian.Uint64(buf[9:])), CRC: binary.BigEndian.Uint32(buf[17:])}
		if s.Offset < 0 || s.Length < 0 || s.Length%RecordSize != 0 || s.Offset+s.Length < s.Offset || (s.Length == 0 && s.CRC != 0) {
			return nil, nil, false, &remoteError{fmt.Errorf("%w: the server says output %d's segment is at %d+%d with CRC32C %08x", ErrCorruptSegment, i, s.Offset, s.Length, s.CRC)}
		}
		infos[i] = s
	}
	return infos, statuses, true, nil
}

// readResponseHead reads the rest of a response head after its status byte.
func readResponseHead(br *bufio.Reader, status byte, buf []byte) (SegmentInfo, error) {
	if status == statusOK {
		if _, err := io.ReadFull(br, buf[:12]); err != nil {
			return SegmentInfo{}, noEOF(err)
		}
		seg := SegmentInfo{Length: int64(binary.BigEndian.Uint64(buf)), CRC: binary.BigEndian.Uint32(buf[8:])}
		if seg.Length < 0 || seg.Length%RecordSize != 0 {
			return SegmentInfo{}, &remoteError{fmt.Errorf("%w: the server says the segment is %d bytes, not whole records", ErrCorruptSegment, seg.Length)}
		}
		return seg, nil
	}
	if _, err := io.ReadFull(br, buf[:2]); err != nil {
		return SegmentInfo{}, noEOF(err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(buf))
	if _, err := io.ReadFull(br, msg); err != nil {
		return SegmentInfo{}, noEOF(err)
	}
	switch status {
	case statusNotFound:
		return SegmentInfo{}, &remoteError{fmt.Errorf("%w: server: %s", ErrMapOutputNotFound, msg)}
	case statusCorrupt:
		return SegmentInfo{}, &remoteError{fmt.Errorf("%w: server: %s", ErrCorruptSegment, msg)}
	case statusFailed:
		return SegmentInfo{}, fmt.Errorf("server: %s", msg) // worth another attempt
	default:
		return SegmentInfo{}, &remoteError{fmt.Errorf("server: %s", msg)}
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errChecksum marks a segment that arrived whole but with a wrong CRC32C.
var errChecksum = errors.New("checksum mismatch")

// netSegmentReader is the blockSource of a segment fetched from a shuffle
// service. A goroutine of its own streams the segment into blocks of whole
// records while the merge consumes earlier ones: it holds two blocks, one
// being filled while the merge reads the other, so a reduce holds at most
// fan-in × 2 × BlockSize bytes of fetched data (plus what the kernel
// buffers in each socket). The length and CRC32C are checked at the end
// against the server's index, and against the caller's SegmentInfo when it
// gives one; the error for a bad checksum comes in place of the last block.
//
// A failed attempt (connection error, short read, server I/O error) is
// resumed from the bytes already received, the running CRC continuing,
// after a short backoff; fetchAttempts attempts in a row that receive
// nothing end the fetch. A checksum mismatch fetches the whole segment once
// more if no block was handed to the merge yet, and otherwise fails. The
// final error is a *FetchError; cancelling ctx or close stops the fetch at
// once (the connection is closed under a blocked read).
type netSegmentReader struct {
	f         *Fetcher
	addr, job string
	id        OutputID
	partition int
	want      SegmentInfo // from the caller; Length 0 means unknown
	name      string      // "partition 7", in errors inside a FetchError
	blockSize int

	blockQueue
	stop   chan struct{} // closed by close
	cancel context.CancelFunc
	done   chan struct{}

	// State of the fetch goroutine.
	seg       SegmentInfo // from the server; valid when haveSeg
	haveSeg   bool
	off       int64  // bytes received and checksummed
	crc       uint32 // CRC32C of the bytes received
	buf       []byte // the block being filled, or nil
	fill      int    // bytes of buf filled
	delivered bool   // a block went to the merge
}

// openRemoteSegment starts fetching partition of in's output.
func openRemoteSegment(ctx context.Context, f *Fetcher, in ReduceInput, partition, blockSize int) *netSegmentReader {
	if f == nil {
		f = DefaultFetcher
	}
	blockSize -= blockSize % RecordSize
	if blockSize < RecordSize {
		blockSize = RecordSize
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &netSegmentReader{
		f:          f,
		addr:       in.Addr,
		job:        in.Job,
		id:         in.Output,
		partition:  partition,
		want:       in.Segment,
		name:       fmt.Sprintf("partition %d", partition),
		blockSize:  blockSize,
		blockQueue: blockQueue{blocks: make(chan block, 1), free: make(chan []byte, 2)},
		stop:       make(chan struct{}),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go r.run(ctx)
	return r
}

func (r *netSegmentReader) run(ctx context.Context) {
	defer close(r.done)
	defer close(r.blocks)
	if err := r.fetch(ctx); err != nil {
		select {
		case r.blocks <- block{err: err}:
		case <-r.stop:
		}
	}
}

func (r *netSegmentReader) canceled(ctx context.Context) error {
	return fmt.Errorf("fetch %s of job %s from %s: %w", r.id, r.job, r.addr, ctx.Err())
}

func (r *netSegmentReader) fail(err error) error {
	return &FetchError{Job: r.job, Output: r.id, Addr: r.addr, Err: err}
}

// fetch runs attempts until the segment is in or the fetch has failed.
func (r *netSegmentReader) fetch(ctx context.Context) error {
	if err := ValidJobID(r.job); err != nil {
		return r.fail(err)
	}
	if err := r.id.Validate(); err != nil {
		return r.fail(err)
	}
	failures, wholeAgain := 0, false
	for {
		before := r.off
		err := r.attempt(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return r.canceled(ctx)
		case errors.Is(err, errChecksum):
			if r.delivered || wholeAgain {
				return r.fail(err)
			}
			wholeAgain = true
			r.off, r.crc, r.fill = 0, 0, 0
			continue
		}
		var rerr *remoteError
		if errors.As(err, &rerr) {
			return r.fail(rerr.err)
		}
		if r.off > before {
			failures = 0
		}
		failures++
		if failures >= fetchAttempts {
			return r.fail(fmt.Errorf("%d attempts failed, the last at byte %d of the segment: %w", failures, r.off, err))
		}
		t := time.NewTimer(r.f.retryBackoff() << (failures - 1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r.canceled(ctx)
		}
	}
}

// attempt requests the segment from r.off and receives it to the end.
func (r *netSegmentReader) attempt(ctx context.Context) error {
	req := request{op: opSegment, job: r.job, id: r.id, partition: r.partition, offset: r.off}
	fc, seg, err := r.f.roundTrip(ctx, r.addr, req)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { fc.c.Close() })
	complete := false
	defer func() {
		if stop() && complete {
			r.f.put(r.addr, fc)
		} else {
			fc.c.Close()
		}
	}()
	if err := r.checkHead(seg); err != nil {
		return err
	}
	for r.off < seg.Length {
		if r.buf == nil {
			select {
			case r.buf = <-r.free:
			case <-r.stop:
				return context.Canceled
			}
			r.fill = 0
		}
		need := int(min(int64(len(r.buf)), seg.Length-(r.off-int64(r.fill))))
		fc.c.SetReadDeadline(time.Now().Add(r.f.readTimeout()))
		n, err := fc.br.Read(r.buf[r.fill:need])
		r.crc = crc32.Update(r.crc, castagnoli, r.buf[r.fill:r.fill+n])
		r.fill += n
		r.off += int64(n)
		if err != nil && r.fill < need {
			if err == io.EOF {
				err = fmt.Errorf("the server closed the connection at byte %d of %d", r.off, seg.Length)
			}
			return err
		}
		if r.fill < need {
			continue
		}
		if r.off == seg.Length && r.crc != seg.CRC {
			return fmt.Errorf("%w: %w: %s: the %d bytes received have CRC32C %08x, the index says %08x", ErrCorruptSegment, errChecksum, r.name, seg.Length, r.crc, seg.CRC)
		}
		select {
		case r.blocks <- block{b: r.buf[:need]}:
			r.delivered = true
			r.buf = nil
		case <-r.stop:
			return context.Canceled
		}
	}
	if seg.Length == 0 && seg.CRC != 0 {
		return &remoteError{fmt.Errorf("%w: %s: empty segment with CRC32C %08x", ErrCorruptSegment, r.name, seg.CRC)}
	}
	complete = true
	return nil
}

// checkHead checks the server's segment length and CRC against the caller's
// and the previous attempt's, and allocates the blocks on the first one.
func (r *netSegmentReader) checkHead(seg SegmentInfo) error {
	if r.want.Length != 0 && (seg.Length != r.want.Length || seg.CRC != r.want.CRC) {
		return &remoteError{fmt.Errorf("%w: %s: the server's index says %d bytes with CRC32C %08x, the reduce task says %d bytes with CRC32C %08x",
			ErrCorruptSegment, r.name, seg.Length, seg.CRC, r.want.Length, r.want.CRC)}
	}
	if r.haveSeg {
		if seg != r.seg {
			return &remoteError{fmt.Errorf("%w: %s: the segment changed between attempts: %d bytes with CRC32C %08x, then %d bytes with CRC32C %08x",
				ErrCorruptSegment, r.name, r.seg.Length, r.seg.CRC, seg.Length, seg.CRC)}
		}
		return nil
	}
	r.seg, r.haveSeg = seg, true
	size := min(int64(r.blockSize), seg.Length)
	nbuf := 2
	if seg.Length <= int64(r.blockSize) {
		nbuf = 1
	}
	if seg.Length == 0 {
		nbuf = 0
	}
	for range nbuf {
		r.free <- make([]byte, size)
	}
	return nil
}

func (r *netSegmentReader) close() {
	r.cancel() // first, so that whoever sees stop closed sees ctx done
	close(r.stop)
	<-r.done
}
