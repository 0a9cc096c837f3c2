package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health checking: an origin that fails fall checks in a row is taken out
// of rotation; one that is out comes back after rise passes in a row.
const (
	fall = 3
	rise = 2
)

// origin is one upstream, in priority order among the pool's.
type origin struct {
	url   *url.URL
	up    atomic.Bool
	fails int // consecutive failed checks (checker goroutine only)
	oks   int // consecutive passed checks while down
}

// originPool sends the edge's fills to the first origin that is up, the
// next on a connection error or a 5xx, and checks their health.
type originPool struct {
	origins  []*origin
	dynamic  func() []string // origins from membership, when none were configured
	client   *http.Client
	log      *slog.Logger
	interval time.Duration
	path     string
	mu       sync.Mutex // dynamic origins' list
	stop     chan struct{}
	wg       sync.WaitGroup
	fetches  atomic.Int64
	failures atomic.Int64
}

func newOriginPool(urls []string, dynamic func() []string, interval time.Duration, path string, connectTimeout, headerTimeout time.Duration, log *slog.Logger) (*originPool, error) {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		DisableCompression:    true, // the edge negotiates encodings itself
	}
	p := &originPool{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		dynamic: dynamic, log: log, interval: interval, path: path, stop: make(chan struct{})}
	for _, u := range urls {
		o, err := newOrigin(u)
		if err != nil {
			return nil, err
		}
		p.origins = append(p.origins, o)
	}
	if len(p.origins) == 0 && dynamic == nil {
		return nil, errors.New("cache: no origin: give --origin URL (repeat it for failover, in priority order)")
	}
	return p, nil
}

func newOrigin(raw string) (*origin, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cache: origin %q: give an http:// or https:// URL with a host", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	o := &origin{url: u}
	o.up.Store(true) // innocent until checks say otherwise
	return o, nil
}

// list returns the origins in priority order.
func (p *originPool) list() []*origin {
	if p.dynamic == nil {
		return p.origins
	}
	urls := p.dynamic()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Keep the health of origins seen before.
	known := map[string]*origin{}
	for _, o := range p.origins {
		known[o.url.String()] = o
	}
	var out []*origin
	for _, u := range urls {
		o := known[strings.TrimSuffix(u, "/")]
		if o == nil {
			var err error
			if o, err = newOrigin(u); err != nil {
				continue
			}
		}
		out = append(out, o)
	}
	p.origins = out
	return out
}

// anyUp reports whether some origin is in rotation.
func (p *originPool) anyUp() bool {
	for _, o := range p.list() {
		if o.up.Load() {
			return true
		}
	}
	return false
}

// errNoOrigin: every origin is out of rotation.
var errNoOrigin = errors.New("no origin is up")

// do sends req (whose URL holds only the path and query) to the first
// origin up, failing over to the next on a connection error or a 5xx. The
// caller closes the response body. A timeout is reported as such (504).
func (p *originPool) do(ctx context.Context, method, pathQuery string, hdr http.Header) (*http.Response, error) {
	var up []*origin
	for _, o := range p.list() {
		if o.up.Load() {
			up = append(up, o)
		}
	}
	if len(up) == 0 {
		return nil, errNoOrigin
	}
	var last error
	for i, o := range up {
		req, err := http.NewRequestWithContext(ctx, method, o.url.Scheme+"://"+o.url.Host+o.url.Path+pathQuery, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if h := hdr.Get("Host"); h != "" {
			req.Host = h
			req.Header.Del("Host")
		}
		p.fetches.Add(1)
		resp, err := p.client.Do(req)
		if err == nil && (resp.StatusCode < 500 || i == len(up)-1) {
			return resp, nil // the last origin's 5xx is the answer
		}
		p.failures.Add(1)
		if err == nil {
			resp.Body.Close()
		} else {
			last = fmt.Errorf("origin %s: %w", o.url.Host, err)
		}
		if ctx.Err() != nil {
			if last == nil {
				last = fmt.Errorf("origin %s: %w", o.url.Host, ctx.Err())
			}
			break
		}
	}
	return nil, last
}

// isTimeout reports whether err is a timeout (a 504) rather than a refusal
// (a 502).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// start runs the health checks until close.
func (p *originPool) start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			var wg sync.WaitGroup
			for _, o := range p.list() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.check(o)
				}()
			}
			wg.Wait()
		}
	}()
}

// check probes o once: any answer below 500 within the interval passes.
func (p *originPool) check(o *origin) {
	ctx, cancel := context.WithTimeout(context.Background(), min(p.interval, 5*time.Second))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, o.url.Scheme+"://"+o.url.Host+o.url.Path+p.path, nil)
	resp, err := p.client.Do(req)
	ok := err == nil && resp.StatusCode < 500
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if ok {
		o.fails = 0
		if !o.up.Load() {
			o.oks++
			if o.oks >= rise {
				o.up.Store(true)
				o.oks = 0
				p.log.Info("cache: origin back in rotation", "origin", o.url.String())
			}
		}
		return
	}
	o.oks = 0
	o.fails++
	if o.up.Load() && o.fails >= fall {
		o.up.Store(false)
		why := "5xx"
		if err != nil {
			why = err.Error()
		} else {
			why = resp.Status
		}
		p.log.Warn("cache: origin out of rotation after failed health checks", "origin", o.url.String(), "checks", o.fails, "last", why)
	}
}

func (p *originPool) close() {
	close(p.stop)
	p.wg.Wait()
	p.client.CloseIdleConnections()
}
