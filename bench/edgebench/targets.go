package edgebench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"engine/bench/internal/benchrun"
	"engine/bench/internal/proc"
)

// Bounded waits.
const (
	enginedStart = 2 * time.Minute  // engined's edge line
	edgeLineLate = 5 * time.Second  // the edge line after ENGINE_ADDR
	readyLimit   = 30 * time.Second // a cache's first answer
	warmLimit    = 2 * time.Minute  // one warm-up
	requestLimit = 10 * time.Second // one warm-up request
)

// target is a running cache and the client that warms it.
type target struct {
	name   string
	info   TargetInfo
	addr   string // HOST:PORT it serves HTTP on
	proc   *proc.Server
	client *http.Client
	tr     *http.Transport
}

func (t *target) alive() bool { return t.proc == nil || !t.proc.Exited() }

// setup starts target name and waits until it answers. A target returned
// with Skipped set is not measured; with an error it failed to start.
func (b *bench) setup(ctx context.Context, name string) (*target, error) {
	t := &target{name: name, info: TargetInfo{Name: name, LogFile: filepath.Join(b.Work, name+".log")}}
	var err error
	switch name {
	case Ours:
		err = b.startOurs(ctx, t)
	case Varnish:
		err = b.startVarnish(ctx, t)
	}
	if err == nil && t.info.Skipped == "" {
		t.tr = &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true, ResponseHeaderTimeout: requestLimit}
		t.client = &http.Client{Transport: t.tr, Timeout: requestLimit}
		if err = waitReady(ctx, t, readyLimit); err != nil && ctx.Err() == nil {
			err = fmt.Errorf("edgebench: %s at %s: %w; its log: %s", name, t.info.Endpoint, err, t.proc.LogTail())
		}
	}
	if err != nil || t.info.Skipped != "" {
		t.proc.Stop()
		if t.tr != nil {
			t.tr.CloseIdleConnections()
		}
		if err != nil {
			if ctx.Err() != nil {
				return t, ctx.Err()
			}
			t.info.Skipped = "failed to start: " + err.Error()
		}
		return t, err
	}
	b.log.Info(name+" ready", "endpoint", t.info.Endpoint)
	return t, nil
}

// stopAll stops every running cache.
func (b *bench) stopAll() {
	for _, t := range slices.Backward(b.targets) {
		if t.tr != nil {
			t.tr.CloseIdleConnections()
		}
		if err := t.proc.Stop(); err != nil {
			b.Fail(fmt.Errorf("edgebench: stop %s: %w", t.name, err))
		}
	}
}

// VCL is Varnish's configuration for an origin on 127.0.0.1:port.
func VCL(port int) string {
	return fmt.Sprintf(`vcl 4.1;

# edgebench: the configuration equivalent to our edge's. One backend, the
# origin; everything else is Varnish's built-in VCL, which caches what the
# origin's Cache-Control allows for as long as it says (max-age) and
# answers If-None-Match from the cached object's ETag with 304. Nothing
# else: no vcl_recv, vcl_backend_response or vcl_deliver of our own, no
# TTL, grace or header changes. Storage: varnishd -s malloc,256m, the
# memory ours gets (--cache-memory 256MiB).
backend origin {
    .host = "127.0.0.1";
    .port = "%d";
}
`, port)
}

// startVarnish writes the VCL and starts varnishd in the foreground.
func (b *bench) startVarnish(ctx context.Context, t *target) error {
	bin := b.cfg.Varnishd
	t.info.Binary = bin
	if out, _ := proc.Probe(ctx, bin, "-V"); out != "" {
		t.info.Version = strings.TrimSpace(firstLine(out))
	}
	vcl := filepath.Join(b.Work, "default.vcl")
	if err := os.WriteFile(vcl, []byte(VCL(b.origin.port())), 0o644); err != nil {
		return fmt.Errorf("edgebench: %w", err)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return fmt.Errorf("edgebench: %w", err)
	}
	// -j none: as root, varnishd's default jail (unix) runs the VCL
	// compiler and the cache as the users varnish and vcache, which
	// cannot read the VCL in the work directory (mode 0700: "Cannot read
	// -f file ... Permission denied", varnishd 7.1.1). Without a jail
	// everything runs as this user; it changes nothing the cache does.
	// -T: the management port on 127.0.0.1 too (any free port).
	args := []string{bin, "-F", "-j", "none", "-n", filepath.Join(b.Work, "varnish"), "-a", addr,
		"-T", "127.0.0.1:0", "-f", vcl, "-s", fmt.Sprintf("malloc,%dm", CacheMemory>>20)}
	t.addr, t.info.Endpoint, t.info.Config = addr, "http://"+addr, vcl
	t.info.Command = strings.Join(args, " ")
	b.log.Info("starting varnish", "command", t.info.Command)
	if t.proc, err = proc.Start(args, os.Environ(), t.info.LogFile, nil); err != nil {
		return fmt.Errorf("edgebench: %w", err)
	}
	return nil
}

// undefinedFlag is the flag package's complaint about a flag engined
// does not have.
var undefinedFlag = regexp.MustCompile(`flag provided but not defined: -+([A-Za-z0-9._-]+)`)

// startOurs starts engined with the edge in front of the origin and
// waits for its edge line. An engined without the edge's flags is
// skipped ("not measured"), not a failure.
func (b *bench) startOurs(ctx context.Context, t *target) error {
	bin, err := proc.FindEngined(b.cfg.Engined)
	if err != nil {
		return fmt.Errorf("edgebench: %w", err)
	}
	t.info.Binary = bin
	t.info.Version = proc.BinaryVersion(bin)
	args := append([]string{bin}, expandArgs(b.cfg.EnginedArgs, b.Work, b.origin.url())...)
	for i, a := range args[:len(args)-1] {
		if a == "--data" || a == "--cache-dir" {
			if err := os.MkdirAll(args[i+1], 0o755); err != nil {
				return fmt.Errorf("edgebench: %w", err)
			}
		}
	}
	t.info.Command = strings.Join(args, " ")
	edge := make(chan string, 1)
	ready := make(chan struct{}, 1)
	watch := func(line string) {
		if _, a, ok := strings.Cut(line, EdgeEndpointLine); ok {
			select {
			case edge <- strings.TrimSpace(a):
			default:
			}
		}
		if strings.Contains(line, "ENGINE_ADDR=") {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}
	b.log.Info("starting ours", "command", t.info.Command)
	if t.proc, err = proc.Start(args, childEnv(), t.info.LogFile, watch); err != nil {
		return fmt.Errorf("edgebench: %w", err)
	}
	timer := time.NewTimer(enginedStart)
	defer timer.Stop()
	var late <-chan time.Time
	for {
		select {
		case a := <-edge:
			t.addr, t.info.Endpoint = a, "http://"+a
			return nil
		case <-ready:
			// The node is up; the edge line should be out already.
			late = time.After(edgeLineLate)
		case <-late:
			return fmt.Errorf("edgebench: engined printed no %q line: %s", EdgeEndpointLine+"HOST:PORT", t.proc.LogTail())
		case <-t.proc.Done():
			log := t.proc.Log()
			if m := undefinedFlag.FindStringSubmatch(log); m != nil {
				t.info.Skipped = fmt.Sprintf("not measured (engined has no --%s)", m[1])
				b.Note("ours: %s: %s", t.info.Skipped, bin)
				return nil
			}
			return fmt.Errorf("edgebench: engined exited before its edge was up: %v: %s", t.proc.Err(), proc.Tail(log, 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("edgebench: engined printed no %q line in %v: %s", EdgeEndpointLine+"HOST:PORT", enginedStart, t.proc.LogTail())
		}
	}
}

// expandArgs replaces {work} and {origin} in args.
func expandArgs(args []string, work, origin string) []string {
	r := strings.NewReplacer("{work}", work, "{origin}", origin)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

// findTool finds a Debian-packaged tool: bin if given, else name in PATH,
// else at fallback (/usr/sbin is not in every user's PATH).
func findTool(bin, name, fallback, pkg string) (string, error) {
	if bin != "" {
		if !proc.IsExecutable(bin) {
			return "", fmt.Errorf("edgebench: %s %s: not an executable file", name, bin)
		}
		return filepath.Abs(bin)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	if proc.IsExecutable(fallback) {
		return fallback, nil
	}
	return "", fmt.Errorf("edgebench: %s is not in PATH or at %s: install the Debian package %s (apt-get install %s)", name, fallback, pkg, pkg)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// childEnv is this process' environment without ENGINE_ADDR.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "ENGINE_ADDR=") })
}

// waitReady waits until t answers an HTTP request (for the origin's
// ReadyPath, whatever the status).
func waitReady(ctx context.Context, t *target, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := get(cctx, t.client, "http://"+t.addr+ReadyPath)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case t.proc.Exited():
			return fmt.Errorf("exited: %v", t.proc.Err())
		case time.Now().After(deadline):
			return fmt.Errorf("not answering HTTP after %v: %w", limit, err)
		}
		if !benchrun.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// warm asks t once for each of s's objects, untimed, and checks the
// answers: for hits, 200 and the object's bytes; for revalidations, a
// plain GET as for a hit, then a GET with If-None-Match (its ETag) that
// must be a 304 without a body.
func warm(ctx context.Context, c *http.Client, addr string, s Scenario, objs []*object) error {
	ctx, cancel := context.WithTimeout(ctx, warmLimit)
	defer cancel()
	for _, o := range objs {
		if err := fetch(ctx, c, addr, o, "", http.StatusOK, o.Body); err != nil {
			return err
		}
		if s.Kind == Revalidate {
			if err := fetch(ctx, c, addr, o, o.ETag, http.StatusNotModified, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetch GETs o through the cache at addr (with If-None-Match inm unless
// empty) and checks the status and the body.
func fetch(ctx context.Context, c *http.Client, addr string, o *object, inm string, status int, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+o.Path, nil)
	if err != nil {
		return err
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", o.Path, err)
	}
	got, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(o.Body))+1))
	resp.Body.Close()
	what := "GET " + o.Path
	if inm != "" {
		what += " (If-None-Match " + inm + ")"
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case resp.StatusCode != status:
		return fmt.Errorf("%s: %s, want %d", what, resp.Status, status)
	case !bytes.Equal(got, body):
		return fmt.Errorf("%s: %d bytes that are not the object's %d", what, len(got), len(body))
	case inm == "" && resp.Header.Get("ETag") != o.ETag:
		return fmt.Errorf("%s: ETag %q, want the origin's %s", what, resp.Header.Get("ETag"), o.ETag)
	}
	return nil
}
