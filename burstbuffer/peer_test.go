package burstbuffer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"engine/erasure"
)

// peerServer serves s's peer API on 127.0.0.1 for the test.
func peerServer(t *testing.T, s *Service) *httptest.Server {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func postJSON(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// evilMeta is a publish body for one stripe of file ref, edited by edit.
func evilMeta(ref FileRef, edit func(m map[string]any)) []byte {
	m := map[string]any{
		"id": 0x1234567, "w": "evil", "k": 2, "m": 1, "ss": 4096, "dl": 4096,
		"st": []any{map[string]any{"n": "n0", "s": 0}, map[string]any{"n": "n0", "s": 1}, map[string]any{"n": "n0", "s": 2}},
		"f":  []any{map[string]any{"ID": ref.ID, "Type": ref.Type, "Handle": ref.Handle}},
		"wr": []any{map[string]any{"File": ref.ID, "Off": 0, "Len": 4096, "Pos": 0, "Version": time.Now().UnixNano()}},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal([]any{m})
	if err != nil {
		panic(err)
	}
	return b
}

// TestPublishMalformedMeta: a peer's publish of a stripe with "ss":0 (and
// other malformed metas) is refused with 400, and the node's drain keeps
// working. Before the check, "ss":0 was applied and the next drain divided
// by zero in a drain worker, killing the process.
func TestPublishMalformedMeta(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	srv := peerServer(t, s)
	f, ref := tc.file("victim")
	other, oref := tc.file("other")
	_ = other
	write := func(key string, v any) func(map[string]any) {
		return func(m map[string]any) { m["wr"].([]any)[0].(map[string]any)[key] = v }
	}
	cases := map[string]func(map[string]any){
		"ss 0":                func(m map[string]any) { m["ss"] = 0 },
		"ss negative":         func(m map[string]any) { m["ss"] = -4096 },
		"ss huge":             func(m map[string]any) { m["ss"] = 1 << 40 },
		"k 0":                 func(m map[string]any) { m["k"] = 0 },
		"k huge":              func(m map[string]any) { m["k"] = 1000; m["dl"] = 1 },
		"m negative":          func(m map[string]any) { m["m"] = -1 },
		"too few stores":      func(m map[string]any) { m["st"] = m["st"].([]any)[:2] },
		"negative store":      func(m map[string]any) { m["st"].([]any)[1] = map[string]any{"n": "n0", "s": -1} },
		"no store node":       func(m map[string]any) { m["st"].([]any)[1] = map[string]any{"n": "", "s": 1} },
		"data past stripe":    func(m map[string]any) { m["dl"] = 3 * 4096 },
		"negative data":       func(m map[string]any) { m["dl"] = -1 },
		"write past data":     write("Pos", 1),
		"empty write":         write("Len", 0),
		"write offset wraps":  write("Off", uint64(1<<64-1)),
		"write past int64":    write("Off", uint64(1<<63-100)),
		"unknown file":        write("File", 42),
		"zero version":        write("Version", 0),
		"version past int64":  write("Version", uint64(1<<63)),
		"version past 2^62":   write("Version", uint64(1<<62+1)),
		"file id not handle":  func(m map[string]any) { m["f"].([]any)[0].(map[string]any)["Handle"] = oref.Handle },
		"handle too long":     func(m map[string]any) { m["f"].([]any)[0].(map[string]any)["Handle"] = make([]byte, 200) },
		"negative generation": func(m map[string]any) { m["g"] = -1 },
		"writes overlap": func(m map[string]any) {
			m["wr"] = []any{
				map[string]any{"File": ref.ID, "Off": 0, "Len": 2048, "Pos": 0, "Version": 1},
				map[string]any{"File": ref.ID, "Off": 8192, "Len": 2048, "Pos": 1024, "Version": 2},
			}
		},
	}
	for name, edit := range cases {
		code, msg := postJSON(t, srv.URL+PathPrefix+"publish", evilMeta(ref, edit))
		if code != http.StatusBadRequest {
			t.Errorf("%s: publish answered %d %q, want 400", name, code, msg)
			continue
		}
		if !strings.Contains(msg, "burstbuffer:") {
			t.Errorf("%s: error %q does not name the package", name, msg)
		}
		t.Logf("%s: %s", name, msg)
	}
	if n := len(s.mu.metas); n != 0 {
		t.Fatalf("%d malformed stripes were applied", n)
	}
	// The well-formed meta is accepted (the cases above differ from it by one field).
	// The node still drains: write, sync and drain real bytes.
	ctx := context.Background()
	want := bytes.Repeat([]byte("drain keeps working "), 1000)
	if err := s.WriteAt(ctx, ref, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	s.drainPass(ctx, true)
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("backing file after the drain: %d bytes, %v; want the %d written", len(got), err, len(want))
	}
}

// TestPublishZeroShardSizeDrain is the attack as it was: "ss":0 published
// through the peer API, then a drain. It must be refused before the drain.
func TestPublishZeroShardSizeDrain(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	srv := peerServer(t, s)
	_, ref := tc.file("victim")
	code, msg := postJSON(t, srv.URL+PathPrefix+"publish", evilMeta(ref, func(m map[string]any) { m["ss"] = 0 }))
	s.drainPass(context.Background(), true) // panicked (divide by zero) in a drain worker before the fix
	if code != http.StatusBadRequest {
		t.Fatalf("publish of ss 0 answered %d %q, want 400", code, msg)
	}
	fmt.Fprintln(io.Discard, msg)
}

// TestDrainWorkerPanicRecovered: a panic in a drain worker fails that
// file's drain (its bytes stay buffered), is logged and counted, and the
// next pass drains the file; the process lives on.
func TestDrainWorkerPanicRecovered(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	f, ref := tc.file("a")
	ctx := context.Background()
	want := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	if err := s.WriteAt(ctx, ref, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	s.hooks.drainWindow = func(file, off uint64) {
		if calls.Add(1) == 1 {
			panic("injected drain worker panic")
		}
	}
	if err := s.drainFile(ctx, ref.ID); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("drain with a panicking worker: %v, want a panicked error", err)
	}
	if s.index.LiveBytes() == 0 {
		t.Fatal("a failed drain dropped the buffered bytes")
	}
	if p := s.Status().Panics; p != 1 {
		t.Fatalf("status counts %d recovered panics, want 1", p)
	}
	s.drainPass(ctx, true)
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("backing file after the next drain: %d bytes, %v; want the %d written", len(got), err, len(want))
	}
	if lb := s.index.LiveBytes(); lb != 0 {
		t.Fatalf("%d bytes still buffered", lb)
	}
}

// TestFileModes: the flash tier's directories are 0700 and its segment
// files 0600; a drain writes into the backing file without loosening its
// mode.
func TestFileModes(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	f, ref := tc.file("private")
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.WriteAt(ctx, ref, bytes.Repeat([]byte("x"), 100000), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	s.drainPass(ctx, true)
	if fi, err := f.Stat(); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 100000 {
		t.Fatalf("backing file after the drain: %v, %v; want 0600 and 100000 bytes", fi.Mode(), err)
	}
	flashDir := filepath.Join(tc.root, "n0")
	n := 0
	err := filepath.WalkDir(flashDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(flashDir, p)
		if strings.HasPrefix(rel, "index") {
			return nil // Pebble's files: tombstones, no user data; under the 0700 flash directory
		}
		fi, err := d.Info()
		if err != nil {
			return nil // a spare segment renamed meanwhile
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			n++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %#o, want %#o", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no flash files found")
	}
}

// TestHTTPTransportTLS: with Scheme "https" and a TLS client the transport
// speaks to a node's peer handler over TLS: shards of a real stripe go
// there and back, range reads and syncs work, and a shard whose payload
// does not match its place is refused.
func TestHTTPTransportTLS(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	srv := httptest.NewTLSServer(s.Handler())
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	tr := NewHTTPTransport(func(string) (string, error) { return addr, nil })
	ctx := context.Background()
	if err := tr.SyncStores(ctx, "n0", []int{0}); err == nil {
		t.Fatal("plain http to a TLS port succeeded")
	}
	tr.Client, tr.Scheme = srv.Client(), "https"

	_, ref := tc.file("a")
	if err := s.WriteAt(ctx, ref, bytes.Repeat([]byte("tls "), 5000), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	var meta *Meta
	s.mu.Lock()
	for _, m := range s.mu.metas {
		meta = m
	}
	s.mu.Unlock()
	if meta == nil {
		t.Fatal("no stripe")
	}
	st := meta.Stores[0]
	payload, err := tr.GetShard(ctx, "n0", st.Store, meta.Stripe, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.PutShard(ctx, "n0", st.Store, meta.Stripe, 0, payload, true); err != nil {
		t.Fatalf("put of a real shard over TLS: %v", err)
	}
	if err := tr.PutShard(ctx, "n0", st.Store, meta.Stripe, 1, payload, true); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("put of shard 0's payload as shard 1: %v, want 400", err)
	}
	if err := tr.PutShard(ctx, "n0", st.Store, meta.Stripe+2, 0, payload, true); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("put of a shard as another stripe's: %v, want 400", err)
	}
	b, err := tr.ReadShard(ctx, "n0", st.Store, meta.Stripe, 0, meta.K, meta.M, meta.ShardSize, 0, 16)
	if err != nil || !bytes.Equal(b, []byte("tls tls tls tls ")) {
		t.Fatalf("range read over TLS: %q, %v", b, err)
	}
	if err := tr.SyncStores(ctx, "n0", []int{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if d, err := tr.Dump(ctx, "n0"); err != nil || len(d.Metas) == 0 {
		t.Fatalf("dump over TLS: %v", err)
	}
}

// TestPeerArgumentsRefused: range, shard, sync, drop and truncate calls
// with arguments outside what this node has are refused with 400 (or 409
// for a truncate of a file with nothing buffered here), not acted on.
func TestPeerArgumentsRefused(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	srv := peerServer(t, s)
	ctx := context.Background()
	_, ref := tc.file("a")
	if err := s.WriteAt(ctx, ref, bytes.Repeat([]byte("z"), 6000), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx, ref); err != nil {
		t.Fatal(err)
	}
	var meta *Meta
	s.mu.Lock()
	for _, m := range s.mu.metas {
		meta = m
	}
	s.mu.Unlock()
	get := func(q string) (int, string) {
		resp, err := http.Get(srv.URL + PathPrefix + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	stripe := fmt.Sprintf("%x", meta.Stripe)
	for _, q := range []string{
		"range?store=0&stripe=" + stripe + "&idx=0&k=2&m=1&ss=4096&off=9223372036854775807&n=1", // off+n wraps
		"range?store=0&stripe=" + stripe + "&idx=0&k=2&m=1&ss=0&off=0&n=0",
		"range?store=0&stripe=" + stripe + "&idx=0&k=100000&m=1&ss=4096&off=0&n=1",
		"range?store=0&stripe=" + stripe + "&idx=5&k=2&m=1&ss=4096&off=0&n=1",
		"range?store=0&stripe=" + stripe + "&idx=0&k=2&m=1&ss=4096&off=-1&n=1",
		"range?store=0&stripe=" + stripe + "&idx=0&k=2&m=1&ss=1099511627776&off=0&n=1",
		"shard?store=-1&stripe=" + stripe + "&idx=0",
		"shard?store=0&stripe=" + stripe + "&idx=-1",
	} {
		if code, msg := get(q); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %q, want 400", q, code, msg)
		}
	}
	for _, c := range []struct{ op, body string }{
		{"sync", `[-1]`},
		{"sync", `[0,1,2,0,1,2]`},
		{"sync", `[99]`},
		{"drop", `[{"Stripe":1,"File":1,"Off":10,"End":5}]`},
		{"drop", `[{"Stripe":1,"File":1,"Off":0,"End":18446744073709551615}]`},
		{"drop", fmt.Sprintf(`[{"Stripe":%d,"File":%d,"Off":0,"End":7000}]`, meta.Stripe, ref.ID)},   // past the stripe's write
		{"drop", fmt.Sprintf(`[{"Stripe":%d,"File":%d,"Off":0,"End":6000}]`, meta.Stripe, ref.ID^1)}, // another file
		{"truncate", `{"type":1,"handle":"AAAA","size":-1}`},
		{"truncate", `{"type":1,"handle":"","size":0}`},
		{"publish", `[null]`},
		// A drained version newer than the write it drained would cut
		// writes it never drained.
		{"drop", fmt.Sprintf(`[{"Stripe":%d,"File":%d,"Off":0,"End":100,"Version":%d}]`, meta.Stripe, ref.ID, meta.Writes[0].Version+1)},
	} {
		if code, msg := postJSON(t, srv.URL+PathPrefix+c.op, []byte(c.body)); code != http.StatusBadRequest {
			t.Errorf("POST %s %s: %d %q, want 400", c.op, c.body, code, msg)
		}
	}
	if lb := s.index.LiveBytes(); lb != 6000 {
		t.Fatalf("%d bytes buffered after refused drops, want 6000", lb)
	}
	// A resync asked for a node that is no member is refused, and holds
	// no read.
	if code, msg := postJSON(t, srv.URL+PathPrefix+"call?op=resync&path=nosuchnode", nil); code != http.StatusBadRequest {
		t.Errorf("resync with a node that is no member: %d %q, want 400", code, msg)
	}
	if n := s.wantResync.Load(); n != 0 {
		t.Errorf("%d resyncs wanted after a refused resync call", n)
	}
	// A drop of what the stripe holds is taken.
	if code, msg := postJSON(t, srv.URL+PathPrefix+"drop", fmt.Appendf(nil, `[{"Stripe":%d,"File":%d,"Off":0,"End":100}]`, meta.Stripe, ref.ID)); code != http.StatusNoContent {
		t.Fatalf("drop of a written piece: %d %q", code, msg)
	}
	if lb := s.index.LiveBytes(); lb != 5900 {
		t.Fatalf("%d bytes buffered after dropping 100, want 5900", lb)
	}
}

// TestTruncateOfUnbufferedFileRefused: a peer's truncate by the handle of
// a backing file this node holds no buffered bytes of (here: one never
// written through the buffer) is answered 409 and leaves the file alone;
// before, the node truncated any file by handle as root.
func TestTruncateOfUnbufferedFileRefused(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	srv := peerServer(t, s)
	f, ref := tc.file("victim")
	if _, err := f.WriteAt([]byte("precious bytes"), 0); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(truncateReq{Type: ref.Type, Handle: ref.Handle, Size: 0})
	code, msg := postJSON(t, srv.URL+PathPrefix+"truncate", body)
	if fi, _ := f.Stat(); fi.Size() != 14 {
		t.Fatalf("a peer's truncate cut an unbuffered file to %d bytes (answer %d %q)", fi.Size(), code, msg)
	}
	if code != http.StatusConflict {
		t.Fatalf("truncate of an unbuffered file: %d %q, want 409", code, msg)
	}
	// The client side takes 409 as "truncate it here".
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr := NewHTTPTransport(func(string) (string, error) { return addr, nil })
	if err := tr.Truncate(context.Background(), "n0", ref, 0); !errors.Is(err, errNotBuffered) {
		t.Fatalf("client: %v, want errNotBuffered", err)
	}
}

// TestRestartSkipsShardWithBadMeta: shards whose embedded meta is
// malformed ("ss":0), stored before the peer API checked them, are
// skipped when the stores are scanned at start; the node starts and
// drains.
func TestRestartSkipsShardWithBadMeta(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	_, ref := tc.file("victim")
	code, _ := erasure.New(2, 1)
	es, err := code.Encode(make([]byte, 8192), 4096)
	if err != nil {
		t.Fatal(err)
	}
	const stripe = 0xbad1
	es.ID = stripe
	var m []map[string]any
	json.Unmarshal(evilMeta(ref, func(m map[string]any) { m["id"] = stripe; m["ss"] = 0 }), &m)
	mj, _ := json.Marshal(m[0])
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		h := code.ShardHeader(es, i)
		p, err := encodePayload(mj, &h, es.Shards[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := checkShardPayload(p, stripe, i); err == nil {
			t.Fatal("checkShardPayload accepts a shard whose meta has ss 0")
		}
		if err := s.putLocal(ctx, i, stripe, i, p, true); err != nil {
			t.Fatal(err)
		}
	}
	tc.stop("n0")
	s = tc.start("n0")
	if s.meta(stripe) != nil {
		t.Fatal("a stripe with a malformed meta was applied at start")
	}
	s.drainPass(ctx, true) // divided by zero before the check
}
