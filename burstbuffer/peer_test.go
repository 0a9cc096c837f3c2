package burstbuffer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
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
