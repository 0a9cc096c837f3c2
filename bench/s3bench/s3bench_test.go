package s3bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"engine/bench/internal/benchfmt"
	"engine/bench/internal/benchrun"
)

// made-up figures: ours and the peer at one op, size and concurrency.
func pair(op string, size int64, conc int, ours, peer []float64) []Result {
	mk := func(target string, rates []float64) Result {
		r := Result{Target: target, Op: op, Size: size, Concurrency: conc}
		var v []float64
		for i, x := range rates {
			s := Sample{Round: i + 1, OpsPerSec: x, MBps: x * float64(size) / 1e6}
			if x > 0 {
				s.Ops = int64(x * 10)
				v = append(v, x)
			}
			r.Rounds = append(r.Rounds, s)
		}
		r.OpsPerSec = benchrun.Median(v)
		return r
	}
	return []Result{mk(Ours, ours), mk(Versitygw, peer)}
}

func TestVerdictAtTheTarget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ours, peer float64
		want       string
	}{
		{"equal", 1000, 1000, Pass},
		{"just above", 1000.1, 1000, Pass},
		{"just below", 999.9, 1000, Fail},
		{"well below", 500, 1000, Fail},
		{"well above", 3000, 1000, Pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Sizes: []int64{64 << 10}, Concurrency: []int{16}}
			r.Results = append(r.Results, pair(Put, 64<<10, 16, []float64{tc.ours}, []float64{tc.peer})...)
			r.Results = append(r.Results, pair(Get, 64<<10, 16, []float64{tc.peer}, []float64{tc.peer})...)
			r.judge()
			if len(r.Comparisons) != 2 || len(r.Goals) != 2 {
				t.Fatalf("%d comparisons, %d goals; want 2 each", len(r.Comparisons), len(r.Goals))
			}
			c := r.Comparisons[0]
			if c.Op != Put || c.Size != 64<<10 || c.Concurrency != 16 {
				t.Fatalf("first comparison is %s %d ×%d, want PUT 64 KiB ×16", c.Op, c.Size, c.Concurrency)
			}
			if want := tc.ours / tc.peer; math.Abs(c.Ratio-want) > 1e-12 {
				t.Errorf("ratio %v, want %v", c.Ratio, want)
			}
			if c.Verdict != tc.want || r.Goals[0].Verdict != tc.want {
				t.Errorf("verdict %s, goal %s; want %s (ours %v, peer %v)", c.Verdict, r.Goals[0].Verdict, tc.want, tc.ours, tc.peer)
			}
			if r.Comparisons[1].Verdict != Pass {
				t.Errorf("GET at 1.00×: %s, want PASS", r.Comparisons[1].Verdict)
			}
			if g := r.Goals[0]; g.Name != "PUT 64 KiB, 16 clients" || !strings.Contains(g.Want, "1.00×") {
				t.Errorf("goal %q wants %q", g.Name, g.Want)
			}
		})
	}
}

func TestVerdictEdgeCases(t *testing.T) {
	r := &Report{Sizes: []int64{1 << 20}, Concurrency: []int{1, 16, 64}}
	// 1 client: ours faster but with errors: FAIL.
	res := pair(Put, 1<<20, 1, []float64{200}, []float64{100})
	res[0].Errors = 3
	r.Results = append(r.Results, res...)
	// 16 clients: no peer: n/a.
	r.Results = append(r.Results, pair(Put, 1<<20, 16, []float64{200}, nil)[0])
	// 64 clients: ours completed nothing: FAIL; the peer nothing: n/a.
	r.Results = append(r.Results, pair(Put, 1<<20, 64, []float64{0}, []float64{100})...)
	r.Results = append(r.Results, pair(Get, 1<<20, 64, []float64{100}, []float64{0})...)
	r.judge()
	want := map[[2]any]string{
		{Put, 1}: Fail, {Put, 16}: NA, {Put, 64}: Fail,
		{Get, 1}: NA, {Get, 16}: NA, {Get, 64}: NA,
	}
	for _, c := range r.Comparisons {
		if w := want[[2]any{c.Op, c.Concurrency}]; c.Verdict != w {
			t.Errorf("%s ×%d: %s (%s), want %s", c.Op, c.Concurrency, c.Verdict, c.Why, w)
		}
	}
	if c := r.Comparisons[0]; !strings.Contains(c.Why, "3 errors") {
		t.Errorf("ours with errors: why %q", c.Why)
	}
}

// TestRoundRatios: the ratio is the median of the per-round ratios,
// not the ratio of the medians.
func TestRoundRatios(t *testing.T) {
	r := &Report{Sizes: []int64{64 << 10}, Concurrency: []int{64}}
	r.Results = pair(Get, 64<<10, 64, []float64{100, 300, 90}, []float64{100, 100, 100})
	r.judge()
	c := r.Comparisons[1] // PUT ×64 (no figures), then GET ×64
	if c.Op != Get {
		t.Fatalf("comparisons: %+v", r.Comparisons)
	}
	if !slices.Equal(c.RoundRatios, []float64{1, 3, 0.9}) {
		t.Fatalf("round ratios %v, want [1 3 0.9]", c.RoundRatios)
	}
	if c.Ratio != 1 || c.Verdict != Pass {
		t.Errorf("ratio %v %s, want 1 PASS (the median round)", c.Ratio, c.Verdict)
	}
	// A failed round of the peer leaves that round out.
	r.Results = pair(Get, 64<<10, 64, []float64{100, 300, 90}, []float64{100, 0, 100})
	r.judge()
	for _, c := range r.Comparisons {
		if c.Op == Get && !slices.Equal(c.RoundRatios, []float64{1, 0.9}) {
			t.Errorf("round ratios %v with the peer's round 2 failed, want [1 0.9]", c.RoundRatios)
		}
	}
}

func TestSummarize(t *testing.T) {
	ss := []Sample{
		{Round: 1, Ops: 100, OpsPerSec: 10, MBps: 1, P50Ms: 1, P99Ms: 5, Load: 1},
		{Round: 2, Ops: 0, Errors: 4, Load: 3},
		{Round: 3, Ops: 300, OpsPerSec: 30, MBps: 3, P50Ms: 3, P99Ms: 9, Errors: 1, Load: 2},
	}
	r := summarize(Ours, Put, 1<<20, 16, ss)
	if r.OpsPerSec != 20 || r.MBps != 2 || r.P50Ms != 2 || r.P99Ms != 7 {
		t.Errorf("medians %v ops/s %v MB/s p50 %v p99 %v; want 20, 2, 2, 7 (the failed round left out)", r.OpsPerSec, r.MBps, r.P50Ms, r.P99Ms)
	}
	if r.Errors != 5 || r.Load != 2 {
		t.Errorf("errors %d load %v, want 5 and 2", r.Errors, r.Load)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(101-i)*time.Millisecond)
	}
	if p := percentile(lat, 50); p != 50 {
		t.Errorf("p50 %v ms, want 50", p)
	}
	if p := percentile(lat, 99); p != 99 {
		t.Errorf("p99 %v ms, want 99", p)
	}
	if p := percentile(lat[:1], 99); p != 100 {
		t.Errorf("p99 of one %v ms, want 100", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("p50 of none %v, want 0", p)
	}
}

// TestPrint prints a made-up report and looks for its parts.
func TestPrint(t *testing.T) {
	r := &Report{Sizes: []int64{64 << 10, 1 << 20}, Concurrency: []int{1, 16}, Rounds: 2, Objects: 256,
		DurationSeconds: 10, MaxOps: DefaultMaxOps, MaxPutBytes: 8 << 30, Payload: Streaming, PayloadHeader: payloadHeader[Streaming],
		Client: "minio-go", Host: Host{CPUs: 2, Load: 1.5}}
	r.Targets = []TargetInfo{
		{Name: Ours, Endpoint: "http://127.0.0.1:1", Command: "/bin/engined --s3 127.0.0.1:1", Durability: "fsynced"},
		{Name: Versitygw, Endpoint: "http://127.0.0.1:2", Command: "ROOT_ACCESS_KEY_ID=AK versitygw --port 127.0.0.1:2 --keep-alive posix /x", Durability: "not fsynced"},
	}
	for _, size := range r.Sizes {
		for _, conc := range r.Concurrency {
			r.Results = append(r.Results, pair(Put, size, conc, []float64{80, 90}, []float64{100, 100})...)
			r.Results = append(r.Results, pair(Get, size, conc, []float64{150, 170}, []float64{100, 100})...)
		}
	}
	r.judge()
	var out bytes.Buffer
	r.print(&out)
	s := out.String()
	t.Logf("\n%s", s)
	for _, want := range []string{
		"/bin/engined --s3 127.0.0.1:1",
		"ROOT_ACCESS_KEY_ID=AK versitygw --port 127.0.0.1:2 --keep-alive posix /x",
		"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"PUT 64 KiB objects", "GET 1 MiB objects",
		"0.85×  FAIL (≥ 1.00×)", "1.60×  PASS (≥ 1.00×)",
		"goals: 4 of 8 met",
		"FAIL  PUT 1 MiB, 16 clients: want ours ≥ 1.00× versitygw's ops/s",
		"80.0, 90.0", // the rounds
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("the report does not marshal: %v", err)
	}
}

func parseFlags(args ...string) (Config, error) {
	fs := flag.NewFlagSet("bench s3", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return build()
}

func TestFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != 10*time.Second || cfg.Rounds != 1 || cfg.Objects != 256 || cfg.Payload != Streaming || cfg.Dir != "/var/tmp" {
		t.Errorf("defaults: %+v", cfg)
	}
	if !slices.Equal(cfg.Sizes, []int64{64 << 10, 1 << 20}) || !slices.Equal(cfg.Concurrency, []int{1, 16, 64}) ||
		!slices.Equal(cfg.Targets, []string{Ours, Versitygw}) {
		t.Errorf("default sizes %v, concurrency %v, targets %v", cfg.Sizes, cfg.Concurrency, cfg.Targets)
	}
	cfg.Out, cfg.Log = nil, nil
	if err := cfg.ensureDefaults(); err != nil {
		t.Errorf("the flags' defaults do not validate: %v", err)
	}
}

func TestFlags(t *testing.T) {
	cfg, err := parseFlags("--duration", "3s", "--rounds", "2", "--sizes", "4KiB, 1MiB ,16MiB", "--concurrency", "2,8",
		"--targets", "versitygw", "--payload", "unsigned", "--json", "/tmp/x.json", "--keep", "--versitygw", "/x/vgw",
		"--engined", "/x/engined", "--ops", "500", "--objects", "32", "--dir", "/srv", "--no-build", "--settle", "0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != 3*time.Second || cfg.Rounds != 2 || cfg.Ops != 500 || cfg.Objects != 32 || cfg.Payload != Unsigned ||
		cfg.JSON != "/tmp/x.json" || !cfg.Keep || cfg.Versitygw != "/x/vgw" || cfg.Engined != "/x/engined" ||
		cfg.Dir != "/srv" || !cfg.NoBuild || cfg.Settle <= 0 || cfg.Settle > time.Millisecond {
		t.Errorf("parsed: %+v", cfg)
	}
	if !slices.Equal(cfg.Sizes, []int64{4 << 10, 1 << 20, 16 << 20}) || !slices.Equal(cfg.Concurrency, []int{2, 8}) ||
		!slices.Equal(cfg.Targets, []string{Versitygw}) {
		t.Errorf("sizes %v, concurrency %v, targets %v", cfg.Sizes, cfg.Concurrency, cfg.Targets)
	}
	if cfg, err := parseFlags("--duration", "0", "--ops", "100"); err != nil || cfg.Duration != 0 || cfg.Ops != 100 {
		t.Errorf("--duration 0 --ops 100: %+v, %v", cfg, err)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--sizes", "64XB"}, "--sizes: \"64XB\""},
		{[]string{"--sizes", "65536"}, "--sizes: \"65536\" has no unit"},
		{[]string{"--sizes", "32MiB"}, "--sizes: \"32MiB\" is over 16 MiB"},
		{[]string{"--sizes", "0B"}, "--sizes: \"0B\""},
		{[]string{"--sizes", "1MiB,1MiB"}, "--sizes: \"1MiB\" given twice"},
		{[]string{"--sizes", ","}, "--sizes: no sizes"},
		{[]string{"--concurrency", "1,x"}, "--concurrency: \"x\" is not a number"},
		{[]string{"--concurrency", "0"}, "--concurrency: 0: give 1 to 1024"},
		{[]string{"--concurrency", "2000"}, "--concurrency: 2000"},
		{[]string{"--concurrency", "4,4"}, "--concurrency: 4 given twice"},
		{[]string{"--targets", "ours,minio"}, "--targets: unknown target \"minio\""},
		{[]string{"--targets", ""}, "--targets: no targets"},
		{[]string{"--payload", "signed"}, "--payload \"signed\""},
		{[]string{"--rounds", "0"}, "--rounds 0"},
		{[]string{"--duration", "-1s"}, "--duration -1s"},
		{[]string{"--duration", "0"}, "--duration 0 needs --ops"},
		{[]string{"--duration", "1ms"}, "--duration 1ms"},
		{[]string{"--ops", "-5"}, "--ops -5"},
		{[]string{"--objects", "0"}, "--objects 0"},
		{[]string{"--settle", "-1s"}, "--settle -1s"},
		{[]string{"--dir", " "}, "--dir is empty"},
		{[]string{"--duration", "ten"}, "invalid value \"ten\" for flag -duration"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
	} {
		_, err := parseFlags(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Targets: []string{"minio"}},
		{Targets: []string{Ours, Ours}},
		{Targets: []string{}},
		{Sizes: []int64{0}},
		{Sizes: []int64{MaxSize + 1}},
		{Concurrency: []int{0}},
		{Payload: "chunked"},
		{Rounds: -1},
		{Duration: -time.Second},
	} {
		if err := cfg.ensureDefaults(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestPayload(t *testing.T) {
	p := newPayload(64 << 10)
	q := newPayload(64 << 10)
	if !bytes.Equal(p.buf, q.buf) {
		t.Fatal("two payloads of one size differ: both targets must get the same bytes")
	}
	seen := map[string]bool{}
	for v := range variants {
		b := p.variant(v)
		if int64(len(b)) != p.size {
			t.Fatalf("variant %d: %d bytes", v, len(b))
		}
		if md5hex(b) != p.etags[v] {
			t.Fatalf("variant %d: etag %s, MD5 %s", v, p.etags[v], md5hex(b))
		}
		seen[p.etags[v]] = true
	}
	if len(seen) != variants {
		t.Errorf("%d distinct variants of %d", len(seen), variants)
	}
	if r := newPayload(1 << 20); bytes.Equal(r.buf[:64<<10], p.buf[:64<<10]) {
		t.Error("payloads of two sizes begin alike")
	}
}

func TestSizeNames(t *testing.T) {
	for n, want := range map[int64][2]string{
		64 << 10: {"64KiB", "64 KiB"}, 1 << 20: {"1MiB", "1 MiB"}, 1000: {"1000B", "1000 B"}, 1536: {"1536B", "1.5 KiB"},
	} {
		if benchfmt.SizeLabel(n) != want[0] || benchfmt.Bytes(n) != want[1] {
			t.Errorf("%d: %q %q, want %q %q", n, benchfmt.SizeLabel(n), benchfmt.Bytes(n), want[0], want[1])
		}
	}
}

// TestLoadAgainstFake runs the load generator against the fake server:
// every PUT and GET counted, nothing wrong, and PUT's keys deleted.
func TestLoadAgainstFake(t *testing.T) {
	p := newPayload(8 << 10)
	f, tg := fakeTarget(t, p, 16)
	for _, mode := range []string{Streaming, Unsigned} {
		spec := loadSpec{op: Put, pay: p, conc: 4, duration: 300 * time.Millisecond, maxOps: DefaultMaxOps, objects: 16,
			prefix: "put/" + mode, payload: mode, seed: 1}
		s, attempts := runLoad(t.Context(), tg.client, spec)
		if s.Ops == 0 || s.Errors != 0 || s.Stop != "time" {
			t.Fatalf("PUT %s: %d ops, %d errors (%s), stopped by %q", mode, s.Ops, s.Errors, s.FirstError, s.Stop)
		}
		var sum int64
		for _, n := range attempts {
			sum += n
		}
		if sum != s.Ops {
			t.Errorf("PUT %s: %d attempts, %d ops", mode, sum, s.Ops)
		}
		if s.OpsPerSec <= 0 || s.MBps <= 0 || s.P50Ms <= 0 || s.P99Ms < s.P50Ms || s.Bytes != s.Ops*p.size {
			t.Errorf("PUT %s figures: %+v", mode, s)
		}
		if err := deleteKeys(t.Context(), tg.client, spec.prefix, attempts); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	left := len(f.objects)
	f.mu.Unlock()
	if left != 16 {
		t.Errorf("%d objects left after deleting the PUT runs', want the 16 filled", left)
	}

	spec := loadSpec{op: Get, pay: p, conc: 3, duration: time.Minute, maxOps: 200, objects: 16, seed: 2}
	s, _ := runLoad(t.Context(), tg.client, spec)
	if s.Ops != 200 || s.Errors != 0 || s.Stop != "ops" {
		t.Errorf("GET: %d ops (want 200), %d errors (%s), stopped by %q", s.Ops, s.Errors, s.FirstError, s.Stop)
	}

	// Corrupt bytes are errors, and a client gives up after 10 in a row.
	f.mu.Lock()
	f.corrupt = true
	f.mu.Unlock()
	spec.maxOps = DefaultMaxOps
	s, _ = runLoad(t.Context(), tg.client, spec)
	if s.Ops != 0 || s.Errors != 3*maxConsecutiveErrors || s.Stop != "errors" || !strings.Contains(s.FirstError, "differ") {
		t.Errorf("corrupt GET: %d ops, %d errors, stop %q, first %q", s.Ops, s.Errors, s.Stop, s.FirstError)
	}
}

// BenchmarkLoadGenerator is the load generator's own cost per operation
// against an in-memory fake server in this process (both sides' CPU):
// a ceiling no real server can beat on this machine.
func BenchmarkLoadGenerator(b *testing.B) {
	for _, bc := range []struct {
		op   string
		size int64
		mode string
	}{
		{Put, 64 << 10, Streaming}, {Put, 64 << 10, Unsigned}, {Get, 64 << 10, Streaming},
		{Put, 1 << 20, Streaming}, {Put, 1 << 20, Unsigned}, {Get, 1 << 20, Streaming},
	} {
		name := bc.op + "-" + benchfmt.SizeLabel(bc.size)
		if bc.op == Put {
			name += "-" + bc.mode
		}
		b.Run(name, func(b *testing.B) {
			p := newPayload(bc.size)
			f, tg := fakeTarget(b, p, 8)
			f.discard = "bench/" // keep memory flat: b.N distinct keys
			b.SetBytes(bc.size)
			b.ResetTimer()
			s, _ := runLoad(b.Context(), tg.client, loadSpec{op: bc.op, pay: p, conc: 4, duration: time.Minute,
				maxOps: int64(b.N), objects: 8, prefix: "bench", payload: bc.mode})
			if s.Errors > 0 {
				b.Fatalf("%d errors: %s", s.Errors, s.FirstError)
			}
		})
	}
}
