package edgebench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"engine/bench/internal/proc"
)

// fakeEnv makes this test binary a fake engined: "edge" is a naive cache
// behind the edge flags engined will have (DefaultEnginedArgs, the edge
// line on stderr); "noedge" is today's engined, without them.
const fakeEnv = "EDGEBENCH_FAKE_ENGINED"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeEnv) {
	case "edge":
		os.Exit(fakeEngined(os.Args[1:], true))
	case "noedge":
		os.Exit(fakeEngined(os.Args[1:], false))
	}
	os.Exit(m.Run())
}

// fakeEngined parses engined's flags (the edge's only if edge) and serves
// an in-memory cache of the origin's 200s that answers If-None-Match.
func fakeEngined(args []string, edge bool) int {
	fs := flag.NewFlagSet("engined", flag.ContinueOnError)
	fs.String("data", "", "")
	fs.String("api", "", "")
	var addr, origin *string
	if edge {
		addr, origin = fs.String("edge", "", ""), fs.String("origin", "", "")
		fs.String("cache-dir", "", "")
		fs.String("cache-memory", "", "")
	}
	if err := fs.Parse(args); err != nil {
		return 2 // the flag package said why, on stderr
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engined:", err)
		return 1
	}
	type entry struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	cache := map[string]*entry{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		e := cache[r.URL.Path]
		mu.Unlock()
		if e == nil {
			resp, err := http.Get(*origin + r.URL.Path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e = &entry{resp.Header, body}
			if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
				w.WriteHeader(resp.StatusCode)
				w.Write(body)
				return
			}
			mu.Lock()
			cache[r.URL.Path] = e
			mu.Unlock()
		}
		for _, k := range []string{"Etag", "Last-Modified", "Cache-Control", "Content-Type"} {
			w.Header()[k] = e.header[k]
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, e.header.Get("ETag")) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(e.body)
	})
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "engined: edge endpoint http://%s\n", ln.Addr())
	fmt.Fprintf(os.Stderr, "engined: node fake serving on 127.0.0.1:1 (ENGINE_ADDR=127.0.0.1:1)\n")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	srv.Close()
	return 0
}

// TestOursWithoutEdge: today's engined is reported as not measured, and
// Varnish (when installed) is measured anyway.
func TestOursWithoutEdge(t *testing.T) {
	t.Setenv(fakeEnv, "noedge")
	targets := []string{Ours}
	withVarnish := haveTools()
	if withVarnish {
		targets = append(targets, Varnish)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Dir: t.TempDir(), Engined: os.Args[0], Targets: targets, Sizes: []int64{1 << 10},
		Objects: 3, Duration: time.Second, Settle: time.Millisecond, Out: &out})
	t.Logf("report:\n%s", out.String())
	if rep == nil {
		t.Fatal(err)
	}
	if withVarnish && err != nil {
		t.Errorf("with Varnish measured: %v", err)
	}
	if !withVarnish && (err == nil || !strings.Contains(err.Error(), "no target could be started")) {
		t.Errorf("with nothing measured: error %v", err)
	}
	if ti := rep.Targets[0]; ti.Name != Ours || ti.Skipped != "not measured (engined has no --edge)" {
		t.Errorf("ours: %+v", ti)
	}
	if !strings.Contains(out.String(), "ours: not measured (engined has no --edge)") {
		t.Error("the report does not say ours was not measured")
	}
}

func haveTools() bool {
	for _, p := range []string{"/usr/bin/wrk", "/usr/sbin/varnishd"} {
		if !proc.IsExecutable(p) {
			return false
		}
	}
	return true
}

// TestOursWithFakeEdge runs the whole harness on ours, a fake engined
// with the edge flags, and Varnish: ratios, goals and fetch counts.
func TestOursWithFakeEdge(t *testing.T) {
	needTools(t)
	t.Setenv(fakeEnv, "edge")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Dir: t.TempDir(), Engined: os.Args[0], Objects: 5, Duration: time.Second,
		Settle: time.Millisecond, Connections: 8, Out: &out})
	t.Logf("report:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 6 {
		t.Fatalf("%d results, want 6", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.ReqPerSec <= 0 || r.Errors != 0 || r.Fetches != 0 {
			t.Errorf("%s %s: %v req/s, %d errors, %d origin fetches while timed", r.Target, r.Scenario, r.ReqPerSec, r.Errors, r.Fetches)
		}
	}
	for _, c := range rep.Comparisons {
		if c.Ratio <= 0 || (c.HasGoal && c.Verdict == NA) || (!c.HasGoal && c.Verdict != NA) {
			t.Errorf("%s: ratio %v, verdict %s (%s)", c.Scenario, c.Ratio, c.Verdict, c.Why)
		}
	}
	if ti := rep.Targets[0]; ti.Name != Ours || ti.Skipped != "" || !strings.Contains(ti.Command, "--edge 127.0.0.1:0 --origin http://127.0.0.1:") {
		t.Errorf("ours: %+v", ti)
	}
}
