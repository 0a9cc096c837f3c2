package shuffle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a Server on 127.0.0.1 that counts the connections it
// accepts.
type testServer struct {
	*Server
	addr     string
	accepted atomic.Int64
	served   chan error
	stopOnce sync.Once
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func startServer(t testing.TB, locate Locator) *testServer {
	t.Helper()
	return startServerOn(t, locate, func(ln net.Listener) net.Listener { return ln })
}

// startTLSServer is startServer behind a TLS listener.
func startTLSServer(t testing.TB, locate Locator, cfg *tls.Config) *testServer {
	t.Helper()
	return startServerOn(t, locate, func(ln net.Listener) net.Listener { return tls.NewListener(ln, cfg) })
}

func startServerOn(t testing.TB, locate Locator, wrap func(net.Listener) net.Listener) *testServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		Server: NewServer(locate, slog.New(slog.NewTextHandler(t.Output(), nil))),
		addr:   ln.Addr().String(),
		served: make(chan error, 1),
	}
	go func() { ts.served <- ts.Serve(wrap(countingListener{ln, &ts.accepted})) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server and checks that Serve returned nil.
func (ts *testServer) stop(t testing.TB) {
	ts.stopOnce.Do(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-ts.served; err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
	})
}

func testFetcher(t testing.TB) *Fetcher {
	f := &Fetcher{RetryBackoff: time.Millisecond, ReadTimeout: 10 * time.Second}
	t.Cleanup(f.CloseIdleConnections)
	return f
}

// writeMaps maps data in `maps` splits into parts partitions under
// root/job, where DirLocator(root) finds them.
func writeMaps(t testing.TB, root, job string, data []byte, maps, parts int) []*MapOutput {
	t.Helper()
	dir := filepath.Join(root, job)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var samples [][]byte
	for i := 0; i+RecordSize <= len(data); i += 37 * RecordSize {
		samples = append(samples, data[i:])
	}
	p, err := NewPartitioner(samples, parts)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMapper(MapperConfig{SortBuffer: 1000 * RecordSize})
	defer m.Close()
	n := len(data) / RecordSize
	var outs []*MapOutput
	for i := range maps {
		lo, hi := n*i/maps, n*(i+1)/maps
		out, err := m.Map(context.Background(), MapTask{ID: i, Attempt: 1, Input: bytes.NewReader(data[lo*RecordSize : hi*RecordSize]), Partitioner: p, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	return outs
}

// readSource drains a block source and closes it.
func readSource(src blockSource) ([]byte, error) {
	defer src.close()
	var all []byte
	for {
		b, err := src.next()
		if err == io.EOF {
			return all, nil
		}
		if err != nil {
			return all, err
		}
		all = append(all, b...)
	}
}

func fetchSegment(ctx context.Context, f *Fetcher, addr, job string, mapID, part int, want SegmentInfo, block int) ([]byte, error) {
	return readSource(openRemoteSegment(ctx, f, ReduceInput{Output: MapOutputID(mapID, 1), Addr: addr, Job: job, Segment: want}, part, block))
}

func fileBytes(t testing.TB, path string, seg SegmentInfo) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[seg.Offset : seg.Offset+seg.Length]
}

// Every segment fetched over loopback equals the local bytes, every byte is
// sent with sendfile, and one kept-alive connection carries all requests.
func TestServeSegmentsOverLoopback(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 11))
	outs := writeMaps(t, root, "job-1", randomRecords(rng, 3000, true), 3, 5)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	zc, cp := sentZeroCopy.Load(), sentCopied.Load()
	var total int64
	for _, o := range outs {
		for part, seg := range o.Index.Segments {
			// With the segment known, and unknown (the server's index
			// decides); with blocks of 7 records and of 1 MiB.
			for _, c := range []struct {
				want  SegmentInfo
				block int
			}{{seg, 7 * RecordSize}, {SegmentInfo{}, 1 << 20}} {
				got, err := fetchSegment(context.Background(), f, ts.addr, "job-1", o.ID.Index, part, c.want, c.block)
				if err != nil {
					t.Fatalf("map %d partition %d: %v", o.ID.Index, part, err)
				}
				if want := fileBytes(t, o.DataPath, seg); !bytes.Equal(got, want) {
					t.Fatalf("map %d partition %d: fetched %d bytes that differ from the %d local ones", o.ID.Index, part, len(got), len(want))
				}
				total += seg.Length
			}
		}
	}
	if total == 0 {
		t.Fatal("nothing fetched")
	}
	// The server counts a chunk after sendfile returns, which can be
	// after the client has read it: wait for the count to settle.
	for deadline := time.Now().Add(5 * time.Second); sentZeroCopy.Load()-zc < total && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if d := sentZeroCopy.Load() - zc; d != total {
		t.Errorf("%d bytes sent with sendfile, want all %d", d, total)
	}
	if d := sentCopied.Load() - cp; d != 0 {
		t.Errorf("%d bytes copied through user space, want 0", d)
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("%d connections accepted for sequential fetches, want 1 kept alive", n)
	}
}

// A reduce whose inputs are a mix of local files and remote map outputs
// (with and without the segment known) gives the stable sort, including
// with multi-pass merges.
func TestReduceLocalAndRemote(t *testing.T) {
	root := t.TempDir()
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	for trial := range 8 {
		seed := uint64(trial)*104729 + 7
		rng := rand.New(rand.NewPCG(seed, 1))
		job := fmt.Sprintf("job-%d", seed)
		cfg := shuffleConfig{
			records: rng.IntN(2500),
			maps:    1 + rng.IntN(7),
			parts:   1 + rng.IntN(5),
			sortBuf: (1 + rng.IntN(800)) * RecordSize,
			fanIn:   2 + rng.IntN(4),
			block:   (1 + rng.IntN(40)) * RecordSize,
			dup:     rng.IntN(3) == 0,
			fetcher: f,
		}
		cfg.input = func(o *MapOutput, part int) ReduceInput {
			in := ReduceInput{Output: o.ID, Path: o.DataPath, Segment: o.Index.Segments[part]}
			switch (o.ID.Index + part) % 3 {
			case 1:
				in = ReduceInput{Output: o.ID, Addr: ts.addr, Job: job, Segment: in.Segment}
			case 2:
				in = ReduceInput{Output: o.ID, Addr: ts.addr, Job: job}
			}
			return in
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			data := randomRecords(rng, cfg.records, cfg.dup)
			var samples [][]byte
			for i := 0; i < min(cfg.records, 50); i++ {
				j := rng.IntN(cfg.records)
				samples = append(samples, data[j*RecordSize:])
			}
			dir := filepath.Join(root, job)
			os.MkdirAll(dir, 0o755)
			got := runShuffle(t, dir, data, cfg, samples)
			if want := reference(data); !bytes.Equal(got, want) {
				t.Fatalf("config %+v: output differs from the stable sort of the input (%d vs %d bytes)", cfg, len(got), len(want))
			}
		})
	}
}

// cutProxy forwards connections to a shuffle server, records the requests,
// and cuts connection i's response stream after cut(i) bytes (never if
// negative).
type cutProxy struct {
	ln     net.Listener
	target string
	cut    func(conn int) int64

	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		conns []net.Conn
		reqs  []request
		n     int
	}
}

func startProxy(t *testing.T, target string, cut func(int) int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cut: cut}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			i := p.mu.n
			p.mu.n++
			p.mu.Unlock()
			p.wg.Add(1)
			go p.forward(c, i)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.mu.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.mu.reqs...)
}

func (p *cutProxy) forward(c net.Conn, i int) {
	defer p.wg.Done()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.mu.conns = append(p.mu.conns, c, s)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer c.Close()
		defer s.Close()
		br := bufio.NewReader(c)
		var buf []byte
		for {
			req, err := readRequest(br, &buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.mu.reqs = append(p.mu.reqs, req)
			p.mu.Unlock()
			if _, err := s.Write(appendRequest(nil, req)); err != nil {
				return
			}
		}
	}()
	if n := p.cut(i); n >= 0 {
		io.CopyN(c, s, n)
	} else {
		io.Copy(c, s)
	}
	c.Close()
	s.Close()
}

// Connections cut in the middle of segments are resumed from the bytes
// already received, and the reduce output is still the stable sort.
func TestFetchResumesAfterCuts(t *testing.T) {
	for _, c := range []struct {
		name string
		cut  func(int) int64
	}{
		// The first three connections are cut mid-record, the rest not.
		{"first-three", func(i int) int64 {
			if i < 3 {
				return 13 + 2550
			}
			return -1
		}},
		// Every connection is cut: each attempt makes progress, so the
		// fetch keeps going.
		{"every", func(int) int64 { return 13 + 1234 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			ts := startServer(t, DirLocator(root))
			px := startProxy(t, ts.addr, c.cut)
			rng := rand.New(rand.NewPCG(21, 21))
			data := randomRecords(rng, 2000, false)
			var samples [][]byte
			for i := 0; i < 2000; i += 41 {
				samples = append(samples, data[i*RecordSize:])
			}
			cfg := shuffleConfig{maps: 3, parts: 2, sortBuf: 300 * RecordSize, fanIn: 512, block: 9 * RecordSize, fetcher: testFetcher(t)}
			cfg.input = func(o *MapOutput, part int) ReduceInput {
				return ReduceInput{Output: o.ID, Addr: px.addr(), Job: "job-r", Segment: o.Index.Segments[part]}
			}
			dir := filepath.Join(root, "job-r")
			os.MkdirAll(dir, 0o755)
			if got := runShuffle(t, dir, data, cfg, samples); !bytes.Equal(got, reference(data)) {
				t.Fatal("output differs from the stable sort of the input")
			}
			resumed := 0
			for _, r := range px.requests() {
				if r.offset > 0 {
					resumed++
					if r.offset%RecordSize == 0 {
						t.Errorf("resumed at offset %d: the cut was mid-record, so the resume should be too", r.offset)
					}
				}
			}
			if resumed == 0 {
				t.Fatalf("no request resumed at an offset: %+v", px.requests())
			}
		})
	}
}

// Attempts that receive nothing end the fetch after fetchAttempts, with a
// *FetchError and no output.
func TestFetchGivesUpWithoutProgress(t *testing.T) {
	root := t.TempDir()
	outs := writeMaps(t, root, "job-g", randomRecords(rand.New(rand.NewPCG(1, 2)), 500, false), 1, 1)
	ts := startServer(t, DirLocator(root))
	px := startProxy(t, ts.addr, func(int) int64 { return 5 }) // inside the response head
	out := filepath.Join(root, "part-0")
	_, err := Reduce(context.Background(), ReduceTask{
		Inputs:  []ReduceInput{{Output: MapOutputID(0, 1), Addr: px.addr(), Job: "job-g", Segment: outs[0].Index.Segments[0]}},
		Output:  out,
		Fetcher: testFetcher(t),
	})
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Output != MapOutputID(0, 1) || fe.Job != "job-g" || fe.Addr != px.addr() {
		t.Fatalf("err = %v, want a *FetchError for map 0 of job-g at %s", err, px.addr())
	}
	if n := len(px.requests()); n != fetchAttempts {
		t.Errorf("%d requests, want %d attempts", n, fetchAttempts)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("output left after a failed fetch: %v", serr)
	}
	// A server that is not there at all fails the same way.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := ln.Addr().String()
	ln.Close()
	_, err = fetchSegment(context.Background(), testFetcher(t), gone, "job-g", 0, 0, SegmentInfo{}, 1<<20)
	if !errors.As(err, &fe) || fe.Addr != gone || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("err = %v, want a *FetchError after 3 attempts", err)
	}
}

// Corrupt or short data on the server fails the reduce with a *FetchError
// wrapping ErrCorruptSegment, after one whole-segment retry when no block
// had reached the merge.
func TestFetchCorruptSegment(t *testing.T) {
	root := t.TempDir()
	data := randomRecords(rand.New(rand.NewPCG(4, 4)), 1000, false)
	outs := writeMaps(t, root, "job-c", data, 1, 1)
	seg := outs[0].Index.Segments[0]
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	out := filepath.Join(root, "part-0")
	reduce := func(block int, want SegmentInfo) error {
		_, err := Reduce(context.Background(), ReduceTask{
			Inputs:    []ReduceInput{{Output: MapOutputID(0, 1), Addr: ts.addr, Job: "job-c", Segment: want}},
			Output:    out,
			BlockSize: block,
			Fetcher:   f,
		})
		if _, serr := os.Stat(out); !os.IsNotExist(serr) {
			t.Errorf("output left after a failed reduce: %v", serr)
		}
		return err
	}
	check := func(err error, contains string) {
		t.Helper()
		var fe *FetchError
		if !errors.As(err, &fe) || !errors.Is(err, ErrCorruptSegment) || fe.Output != MapOutputID(0, 1) || fe.Job != "job-c" || fe.Addr != ts.addr {
			t.Fatalf("err = %v, want a *FetchError wrapping ErrCorruptSegment", err)
		}
		if !strings.Contains(err.Error(), contains) {
			t.Fatalf("err = %v, want it to mention %q", err, contains)
		}
	}

	b, _ := os.ReadFile(outs[0].DataPath)
	fd, _ := os.OpenFile(outs[0].DataPath, os.O_RDWR, 0)
	fd.WriteAt([]byte{^b[777]}, 777)
	fd.Close()
	// The segment fits one block: nothing reached the merge, so it is
	// fetched once more before failing.
	n0 := ts.requests.Load()
	check(reduce(1<<20, seg), "CRC32C")
	if n := ts.requests.Load() - n0; n != 2 {
		t.Errorf("%d requests for a corrupt one-block segment, want 2", n)
	}
	// In blocks of 10 records, blocks reached the merge: no retry. With
	// the segment unknown, the reduce asks for it first.
	n0 = ts.requests.Load()
	check(reduce(10*RecordSize, seg), "CRC32C")
	if n := ts.requests.Load() - n0; n != 1 {
		t.Errorf("%d requests for a corrupt segment partly merged, want 1", n)
	}
	n0 = ts.requests.Load()
	check(reduce(10*RecordSize, SegmentInfo{}), "CRC32C")
	if n := ts.requests.Load() - n0; n != 2 {
		t.Errorf("%d requests for a corrupt segment partly merged, want a segment-info request and one fetch", n)
	}
	// The coordinator's segment differs from the server's index.
	bad := seg
	bad.CRC ^= 1
	check(reduce(1<<20, bad), "the reduce task says")
	// The data file is shorter than the index says: the server refuses.
	os.Truncate(outs[0].DataPath, seg.Length/2)
	check(reduce(1<<20, seg), fmt.Sprintf("is %d bytes", seg.Length/2))
}

// Unknown jobs, maps and partitions give a *FetchError with the server's
// message; an invalid job id is refused before sending.
func TestFetchMissingMapOutput(t *testing.T) {
	root := t.TempDir()
	writeMaps(t, root, "job-m", randomRecords(rand.New(rand.NewPCG(6, 6)), 100, false), 1, 2)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	out := filepath.Join(root, "part-0")
	_, err := Reduce(context.Background(), ReduceTask{Inputs: []ReduceInput{{Output: MapOutputID(0, 1), Addr: ts.addr, Job: "nosuch"}}, Output: out, Fetcher: f})
	var fe *FetchError
	if !errors.As(err, &fe) || !errors.Is(err, ErrMapOutputNotFound) || fe.Output != MapOutputID(0, 1) || !strings.Contains(err.Error(), "fetch map 0 attempt 1 of job nosuch") {
		t.Fatalf("unknown job: err = %v, want a *FetchError for map 0 attempt 1 wrapping ErrMapOutputNotFound", err)
	}
	for _, c := range []struct {
		job      string
		mapID    int
		part     int
		notFound bool
		msg      string
	}{
		{"job-m", 99, 0, true, "job job-m map 99 attempt 1: no such output"},
		{"job-m", 0, 2, false, "partition 2 out of range: the output has 2 partitions"},
		{"../job-m", 0, 0, false, "job id \"../job-m\" starts with '.'"},
		{"job/m", 0, 0, false, "character '/'"},
	} {
		n0 := ts.requests.Load()
		_, err := fetchSegment(context.Background(), f, ts.addr, c.job, c.mapID, c.part, SegmentInfo{}, 1<<20)
		if !errors.As(err, &fe) || errors.Is(err, ErrMapOutputNotFound) != c.notFound || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("job %q map %d partition %d: err = %v, want a *FetchError with %q", c.job, c.mapID, c.part, err, c.msg)
		}
		if n := ts.requests.Load() - n0; n > 1 {
			t.Errorf("job %q map %d partition %d: %d requests, want no retry", c.job, c.mapID, c.part, n)
		}
	}
}

// rawResponse reads one response.
func rawResponse(t *testing.T, br *bufio.Reader) (status byte, msg string, body []byte) {
	t.Helper()
	status, err := br.ReadByte()
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	if status == statusOK {
		var h [12]byte
		io.ReadFull(br, h[:])
		return status, "", h[:]
	}
	var n [2]byte
	io.ReadFull(br, n[:])
	m := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(br, m); err != nil {
		t.Fatalf("read message: %v", err)
	}
	return status, string(m), nil
}

// Requests with bad fields get an error response and leave the connection
// usable; unparseable frames get one and the connection is closed; the
// server serves on.
func TestServerRejectsBadRequests(t *testing.T) {
	root := t.TempDir()
	outs := writeMaps(t, root, "job-b", randomRecords(rand.New(rand.NewPCG(8, 8)), 300, false), 1, 2)
	seg := outs[0].Index.Segments[1]
	ts := startServer(t, DirLocator(root))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	m0 := MapOutputID(0, 1)
	good := request{op: opSegment, job: "job-b", id: m0, partition: 1, offset: 100}
	for _, tc := range []struct {
		req request
		msg string
	}{
		{request{op: opSegment, job: "a/b", id: m0}, "character '/'"},
		{request{op: opSegment, job: "..", id: m0}, "starts with '.'"},
		{request{op: opSegment, job: "a\x00b", id: m0}, "character '\\x00'"},
		{request{op: opSegment, job: "a\\b", id: m0}, "character '\\\\'"},
		{request{op: opSegment, job: "job-b", id: MapOutputID(-1, 1)}, "index 4294967295 out of range 0..2147483647"},
		{request{op: opSegment, job: "job-b", id: MapOutputID(1<<31, 1)}, "index 2147483648 out of range"},
		{request{op: opSegment, job: "job-b", id: MapOutputID(0, 0)}, "attempt 0 out of range 1..65535"},
		{request{op: opSegment, job: "job-b", id: OutputID{Kind: 0, Attempt: 1}}, "unknown output kind 0"},
		{request{op: opSegment, job: "job-b", id: OutputID{Kind: 7, Attempt: 1}}, "unknown output kind 7"},
		{request{op: opSegment, job: "job-b", id: MapOutputID(1, 1)}, "job job-b map 1 attempt 1: no such output"},
		{request{op: opSegment, job: "job-b", id: MapOutputID(0, 2)}, "job job-b map 0 attempt 2: no such output"},
		{request{op: opSegment, job: "job-b", id: MergeOutputID(0, 1)}, "job job-b merge 0 attempt 1: no such output"},
		{request{op: opSegment, job: "job-b", id: m0, partition: 1 << 24}, "partition 16777216 out of range"},
		{request{op: opSegment, job: "job-b", id: m0, partition: 1 << 30}, "partition 1073741824 out of range"},
		{request{op: opSegment, job: "job-b", id: m0, offset: -1}, "negative offset -1"},
		{request{op: opSegment, job: "job-b", id: m0, partition: 1, offset: seg.Length + 1}, "past the segment's end"},
		{request{op: opSegment, job: "job-b", id: m0, partition: 2}, "partition 2 out of range: the output has 2 partitions"},
		{request{op: opSegmentInfos, job: "job-b", ids: []OutputID{m0, MapOutputID(0, 0)}}, "output 1 of 2 (map 0 attempt 0): attempt 0 out of range"},
	} {
		wantStatus := statusBadRequest
		if strings.Contains(tc.msg, "no such output") {
			wantStatus = statusNotFound
		}
		c.Write(appendRequest(nil, tc.req))
		if st, msg, _ := rawResponse(t, br); st != wantStatus || !strings.Contains(msg, tc.msg) {
			t.Errorf("request %+v: status %d %q, want %d with %q", tc.req, st, msg, wantStatus, tc.msg)
		}
		// The same connection still serves a good request.
		c.Write(appendRequest(nil, good))
		st, msg, head := rawResponse(t, br)
		if st != statusOK {
			t.Fatalf("good request after %+v: status %d %q", tc.req, st, msg)
		}
		if l := int64(binary.BigEndian.Uint64(head)); l != seg.Length {
			t.Fatalf("length %d, want %d", l, seg.Length)
		}
		body := make([]byte, seg.Length-good.offset)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, fileBytes(t, outs[0].DataPath, seg)[good.offset:]) {
			t.Fatal("body differs from the file from the offset on")
		}
	}
	long := appendRequest(nil, request{op: opSegment, job: strings.Repeat("j", 200), id: m0})
	long[5] = 200
	badOp := appendRequest(nil, good)
	badOp[4] = 3
	noIDs := appendRequest(nil, request{op: opSegmentInfos, job: "job-b"})
	// Only the head: the server closes without reading the list, and
	// unread bytes would reset the connection.
	tooMany := appendRequest(nil, request{op: opSegmentInfos, job: "job-b", ids: make([]OutputID, MaxSegmentInfos+1)})[:reqHeadSize+5+4+2]
	for _, frame := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		append([]byte("SHF1"), 1, 1, 2, 3),
		append([]byte(protoMagic), opSegment, 0, 1, 2, 3),
		long,
		badOp,
		noIDs,
		tooMany,
	} {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(frame)
		br := bufio.NewReader(c)
		if st, msg, _ := rawResponse(t, br); st != statusBadRequest || !strings.Contains(msg, "bad request") {
			t.Errorf("frame %.40q: status %d %q, want a bad request", frame, st, msg)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("frame %.40q: the connection stays open (%v), want it closed", frame, err)
		}
		c.Close()
	}
	if _, err := fetchSegment(context.Background(), testFetcher(t), ts.addr, "job-b", 0, 1, seg, 1<<20); err != nil {
		t.Fatalf("the server stopped serving: %v", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(appendRequest(nil, request{op: opSegment, job: "20240101-120000-abcdef", id: MapOutputID(3, 2), partition: 7, offset: 1234}))
	f.Add(appendRequest(nil, request{op: opSegment, job: "../etc", id: MapOutputID(-1, 0)}))
	f.Add(appendRequest(nil, request{op: opSegmentInfos, job: "j", partition: 3, ids: []OutputID{MapOutputID(1, 1), MergeOutputID(2, 3)}}))
	f.Add(appendRequest(nil, request{op: opSegmentInfos, job: "j", ids: []OutputID{{Kind: 9}}}))
	f.Add([]byte(protoMagic + "\x01\x00"))
	f.Add([]byte(protoMagic + "\x02\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf []byte
		req, err := readRequest(bytes.NewReader(b), &buf)
		if err != nil {
			var rerr *requestError
			if !errors.As(err, &rerr) && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if ValidJobID(req.job) != nil || req.partition < 0 || req.partition >= maxPartitions || req.offset < 0 {
			t.Fatalf("accepted invalid request %+v", req)
		}
		switch req.op {
		case opSegment:
			if req.id.Validate() != nil || req.ids != nil {
				t.Fatalf("accepted invalid request %+v", req)
			}
		case opSegmentInfos:
			if len(req.ids) == 0 || len(req.ids) > MaxSegmentInfos || req.offset != 0 {
				t.Fatalf("accepted invalid request %+v", req)
			}
			for _, id := range req.ids {
				if id.Validate() != nil {
					t.Fatalf("accepted invalid output id %+v in %+v", id, req)
				}
			}
		default:
			t.Fatalf("accepted op %d", req.op)
		}
		if strings.ContainsAny(req.job, "/\\\x00") || req.job == "." || req.job == ".." {
			t.Fatalf("accepted a job id with path characters: %q", req.job)
		}
		enc := appendRequest(nil, req)
		if !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("re-encoding %+v gives %x, the input began %x", req, enc, b[:len(enc)])
		}
	})
}

// writeRawOutput writes a map output of one segment of size bytes (not
// sorted: for fetching only) as map id under dir.
func writeRawOutput(t testing.TB, dir string, id int, size int64) SegmentInfo {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	chunk := make([]byte, min(size, 1<<20))
	rng := rand.New(rand.NewPCG(uint64(id), uint64(size)))
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	f, err := os.Create(filepath.Join(dir, OutputDataName(MapOutputID(id, 1))))
	if err != nil {
		t.Fatal(err)
	}
	var crc uint32
	for left := size; left > 0; {
		n := min(left, int64(len(chunk)))
		f.Write(chunk[:n])
		crc = crc32.Update(crc, castagnoli, chunk[:n])
		chunk[0]++ // not every MiB alike
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	seg := SegmentInfo{Length: size, CRC: crc}
	if err := writeIndex(filepath.Join(dir, OutputIndexName(MapOutputID(id, 1))), &Index{Segments: []SegmentInfo{seg}}); err != nil {
		t.Fatal(err)
	}
	return seg
}

// Close returns promptly with clients connected (idle, mid-response with a
// client that reads nothing, or connected without a request) and leaves no
// goroutine behind.
func TestServerCloseWithClientsConnected(t *testing.T) {
	before := runtime.NumGoroutine()
	root := t.TempDir()
	dir := filepath.Join(root, "job-x")
	big := writeRawOutput(t, dir, 0, 320_000*RecordSize)
	writeRawOutput(t, dir, 1, 10*RecordSize)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)

	// Kept alive in f2's pool.
	f2 := testFetcher(t)
	if _, err := fetchSegment(context.Background(), f2, ts.addr, "job-x", 1, 0, SegmentInfo{}, 1<<20); err != nil {
		t.Fatal(err)
	}
	// Asks for 32 MB and reads none of it.
	stalled, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Write(appendRequest(nil, request{op: opSegment, job: "job-x", id: MapOutputID(0, 1)}))
	// Connected, silent.
	silent, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A fetch whose merge takes one block and then nothing.
	r := openRemoteSegment(context.Background(), f, ReduceInput{Output: MapOutputID(0, 1), Addr: ts.addr, Job: "job-x", Segment: big}, 0, 1<<20)
	if _, err := r.next(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ts.requests.Load() < 3 || ts.accepted.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d requests on %d connections, want 3 on 4", ts.requests.Load(), ts.accepted.Load())
		}
		time.Sleep(time.Millisecond)
	}

	start := time.Now()
	ts.stop(t)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with clients connected", d)
	}
	r.close()
	stalled.Close()
	silent.Close()
	f.CloseIdleConnections()
	f2.CloseIdleConnections()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Cancelling the reduce's context stops a fetch blocked on a server that
// never answers, with the context's error rather than a *FetchError.
func TestFetchCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			held = append(held, c)
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	out := filepath.Join(t.TempDir(), "part-0")
	_, err = Reduce(ctx, ReduceTask{Inputs: []ReduceInput{{Output: MapOutputID(0, 1), Addr: ln.Addr().String(), Job: "j"}, {Output: MapOutputID(1, 1), Addr: ln.Addr().String(), Job: "j"}}, Output: out, Fetcher: testFetcher(t)})
	var fe *FetchError
	if !errors.Is(err, context.Canceled) || errors.As(err, &fe) {
		t.Fatalf("err = %v, want context.Canceled and no *FetchError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v to stop the fetch", d)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("output left after a cancelled reduce: %v", serr)
	}
}

// A map output written again (a re-run map task) is served from its new
// index, and the index cache stays within its memory budget.
func TestServerIndexCache(t *testing.T) {
	root := t.TempDir()
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	for round := range 2 {
		outs := writeMaps(t, root, "job-i", randomRecords(rand.New(rand.NewPCG(uint64(round), 0)), 200+round*50, false), 1, 1)
		got, err := fetchSegment(context.Background(), f, ts.addr, "job-i", 0, 0, SegmentInfo{}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, fileBytes(t, outs[0].DataPath, outs[0].Index.Segments[0])) {
			t.Fatalf("round %d: fetched bytes differ from the map output on disk", round)
		}
	}
	// Room for 10 one-partition indexes.
	one := (&cachedIndex{path: filepath.Join(root, "job-i", OutputIndexName(MapOutputID(10, 1))), idx: &Index{Segments: make([]SegmentInfo, 1)}}).cost()
	ts.indexes.mu.Lock()
	ts.indexes.maxBytes = 10 * one
	ts.indexes.mu.Unlock()
	for i := range 20 {
		seg := writeRawOutput(t, filepath.Join(root, "job-i"), i+1, RecordSize)
		if _, err := fetchSegment(context.Background(), f, ts.addr, "job-i", i+1, 0, seg, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	ts.indexes.mu.Lock()
	n, m, b := ts.indexes.lru.Len(), len(ts.indexes.entries), ts.indexes.bytes
	ts.indexes.mu.Unlock()
	if n != 10 || m != 10 || b != 10*one {
		t.Errorf("index cache holds %d (%d in the map) of %d bytes, want 10 of %d", n, m, b, 10*one)
	}
}

// The pool keeps at most MaxIdlePerAddr idle connections and does not reuse
// one idle for longer than IdleTimeout.
func TestFetcherPool(t *testing.T) {
	root := t.TempDir()
	seg := writeRawOutput(t, filepath.Join(root, "job-p"), 0, 100*RecordSize)
	ts := startServer(t, DirLocator(root))
	f := &Fetcher{MaxIdlePerAddr: 2}
	defer f.CloseIdleConnections()
	// Four fetches at once, each holding its connection: blocks of 10
	// records, of which the reader holds two.
	var rs []*netSegmentReader
	for range 4 {
		r := openRemoteSegment(context.Background(), f, ReduceInput{Output: MapOutputID(0, 1), Addr: ts.addr, Job: "job-p", Segment: seg}, 0, 10*RecordSize)
		if _, err := r.next(); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		if _, err := readSource(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := ts.accepted.Load(); n != 4 {
		t.Fatalf("%d connections for 4 concurrent fetches, want 4", n)
	}
	f.mu.Lock()
	idle := len(f.mu.idle[ts.addr])
	f.mu.Unlock()
	if idle != 2 {
		t.Errorf("%d idle connections kept, want MaxIdlePerAddr = 2", idle)
	}

	short := &Fetcher{IdleTimeout: time.Millisecond}
	defer short.CloseIdleConnections()
	for range 2 {
		if _, err := fetchSegment(context.Background(), short, ts.addr, "job-p", 0, 0, seg, 1<<20); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := ts.accepted.Load(); n != 6 {
		t.Errorf("%d connections, want 6: an expired idle connection is not reused", n)
	}
}

// Segments returns the servers' index entries for many outputs in one
// request (batches of MaxSegmentInfos), and names the output it cannot
// find.
func TestFetcherSegments(t *testing.T) {
	root := t.TempDir()
	outs := writeMaps(t, root, "job-s", randomRecords(rand.New(rand.NewPCG(3, 33)), 2000, true), 5, 4)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	var ids []OutputID
	for _, o := range outs {
		ids = append(ids, o.ID)
	}
	for p := range 4 {
		n0 := ts.requests.Load()
		segs, err := f.Segments(context.Background(), ts.addr, "job-s", p, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if segs[i] != o.Index.Segments[p] {
				t.Fatalf("partition %d %s: %+v, the index says %+v", p, o.ID, segs[i], o.Index.Segments[p])
			}
		}
		if n := ts.requests.Load() - n0; n != 1 {
			t.Errorf("%d requests for %d outputs, want 1", n, len(ids))
		}
	}
	// More than MaxSegmentInfos: in batches.
	many := make([]OutputID, MaxSegmentInfos+1)
	for i := range many {
		many[i] = ids[i%len(ids)]
	}
	n0 := ts.requests.Load()
	segs, err := f.Segments(context.Background(), ts.addr, "job-s", 1, many)
	if err != nil || len(segs) != len(many) {
		t.Fatalf("%d outputs: %d infos, %v", len(many), len(segs), err)
	}
	for i := range many {
		if segs[i] != outs[i%len(outs)].Index.Segments[1] {
			t.Fatalf("output %d of %d: %+v, want %+v", i, len(many), segs[i], outs[i%len(outs)].Index.Segments[1])
		}
	}
	if n := ts.requests.Load() - n0; n != 2 {
		t.Errorf("%d requests for %d outputs, want 2", n, len(many))
	}
	for _, c := range []struct {
		ids      []OutputID
		part     int
		bad      OutputID
		notFound bool
		msg      string
		requests int64
	}{
		{[]OutputID{ids[0], MapOutputID(9, 1), ids[1]}, 0, MapOutputID(9, 1), true, "no such output", 1},
		{[]OutputID{ids[0], MapOutputID(1, 2)}, 0, MapOutputID(1, 2), true, "no such output", 1},
		{[]OutputID{ids[0], ids[1]}, 4, ids[0], false, "out of the output's range", 1},
		{[]OutputID{ids[0], MapOutputID(1, 0)}, 0, MapOutputID(1, 0), false, "attempt 0 out of range", 0},
		{[]OutputID{ids[0]}, 1 << 24, ids[0], false, "partition 16777216 out of range", 0},
	} {
		n0 := ts.requests.Load()
		_, err := f.Segments(context.Background(), ts.addr, "job-s", c.part, c.ids)
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Output != c.bad || errors.Is(err, ErrMapOutputNotFound) != c.notFound || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v partition %d: err = %v, want a *FetchError for %s with %q", c.ids, c.part, err, c.bad, c.msg)
		}
		if n := ts.requests.Load() - n0; n != c.requests {
			t.Errorf("%v partition %d: %d requests, want %d", c.ids, c.part, n, c.requests)
		}
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 kept alive through errors", n)
	}
}

// A reduce whose remote segments are unknown asks each server once for
// them and fetches only the non-empty ones.
func TestReduceSkipsEmptyRemoteSegments(t *testing.T) {
	root := t.TempDir()
	data := randomRecords(rand.New(rand.NewPCG(4, 44)), 600, true) // 7 distinct keys
	const maps, parts = 6, 12
	outs := writeMaps(t, root, "job-e", data, maps, parts)
	ts := startServer(t, DirLocator(root))
	f := testFetcher(t)
	var all []byte
	emptyTotal := 0
	for p := range parts {
		var ins []ReduceInput
		nonEmpty := 0
		for _, o := range outs {
			ins = append(ins, ReduceInput{Output: o.ID, Addr: ts.addr, Job: "job-e"})
			if o.Index.Segments[p].Length > 0 {
				nonEmpty++
			}
		}
		emptyTotal += maps - nonEmpty
		n0 := ts.requests.Load()
		out := filepath.Join(root, fmt.Sprintf("part-%d", p))
		if _, err := Reduce(context.Background(), ReduceTask{Partition: p, Inputs: ins, Output: out, Fetcher: f}); err != nil {
			t.Fatal(err)
		}
		if n := ts.requests.Load() - n0; n != int64(1+nonEmpty) {
			t.Errorf("partition %d: %d requests, want 1 segment-info request and %d fetches", p, n, nonEmpty)
		}
		b, _ := os.ReadFile(out)
		all = append(all, b...)
	}
	if emptyTotal == 0 {
		t.Fatal("no empty segment: the test checks nothing")
	}
	if !bytes.Equal(all, reference(data)) {
		t.Fatal("the partitions are not the stable sort of the input")
	}
}

// FuzzReadInfos feeds arbitrary bytes as a segment-info response: nothing
// panics, and what is accepted is whole records with a sane offset.
func FuzzReadInfos(f *testing.F) {
	ok := appendInfos(nil, []SegmentInfo{{0, 300, 5}, {300, 0, 0}}, []byte{statusOK, statusNotFound})
	f.Add(ok, uint8(2))
	f.Add(appendError(nil, statusCorrupt, "bad"), uint8(1))
	f.Add([]byte{0, 0, 1}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		infos, statuses, _, err := readInfos(bufio.NewReader(bytes.NewReader(b)), int(n))
		if err != nil {
			return
		}
		if len(infos) != int(n) || len(statuses) != int(n) {
			t.Fatalf("%d infos and %d statuses for %d outputs", len(infos), len(statuses), n)
		}
		for _, s := range infos {
			if s.Offset < 0 || s.Length < 0 || s.Length%RecordSize != 0 || (s.Length == 0 && s.CRC != 0) {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

// Server.Segments gives the local outputs' entries from the index cache,
// and names an output it cannot find or read.
func TestServerLocalSegments(t *testing.T) {
	root := t.TempDir()
	outs := writeMaps(t, root, "job-l", randomRecords(rand.New(rand.NewPCG(5, 55)), 500, false), 3, 4)
	s := NewServer(DirLocator(root), nil)
	defer s.Close()
	ids := []OutputID{outs[2].ID, outs[0].ID, outs[1].ID}
	for p := range 4 {
		segs, err := s.Segments("job-l", p, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range []*MapOutput{outs[2], outs[0], outs[1]} {
			if segs[i] != o.Index.Segments[p] {
				t.Fatalf("partition %d %s: %+v, the index says %+v", p, o.ID, segs[i], o.Index.Segments[p])
			}
		}
	}
	flipByte(t, outs[1].IndexPath, 20)
	for _, c := range []struct {
		job     string
		part    int
		ids     []OutputID
		bad     OutputID
		wantErr error
		msg     string
	}{
		{"job-l", 0, []OutputID{outs[0].ID, MapOutputID(7, 1)}, MapOutputID(7, 1), ErrMapOutputNotFound, "no such output"},
		{"job-l", 0, []OutputID{outs[0].ID, outs[1].ID}, outs[1].ID, ErrCorruptSegment, "corrupt index"},
		{"job-l", 4, []OutputID{outs[0].ID}, outs[0].ID, nil, "partition 4 out of range"},
		{"job-l", 0, []OutputID{MergeOutputID(0, 0)}, MergeOutputID(0, 0), nil, "attempt 0 out of range"},
		{"../x", 0, []OutputID{outs[0].ID}, outs[0].ID, nil, "starts with '.'"},
	} {
		_, err := s.Segments(c.job, c.part, c.ids)
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Output != c.bad || fe.Addr != "" || (c.wantErr != nil && !errors.Is(err, c.wantErr)) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s partition %d %v: err = %v, want a *FetchError for %s with %q", c.job, c.part, c.ids, err, c.bad, c.msg)
		}
	}
}
