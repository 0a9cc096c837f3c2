package cache

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"engine/cache/tier"
)

// stats are the edge's counters, since it started.
type stats struct {
	hits, misses, stale, revalidated, bypass, errors atomic.Int64
	staleRevalidating                                atomic.Int64
	coalesced, stored, compressions                  atomic.Int64
	originFetches, peerFetches, peerFills            atomic.Int64
	bytesSent, requests                              atomic.Int64
	purged, fillsRelayed                             atomic.Int64
}

// Stats is a snapshot of an edge's counters (GET /_edge/stats).
type Stats struct {
	Requests    int64 `json:"requests"`
	Hits        int64 `json:"hits"`        // served from the cache without asking anyone
	Misses      int64 `json:"misses"`      // not in the cache: filled from a peer or the origin
	Stale       int64 `json:"stale"`       // served stale because the origin failed (stale-if-error)
	Revalidated int64 `json:"revalidated"` // stale entries the origin confirmed (304)
	// StaleRevalidating counts stale entries served while they were
	// revalidated in the background (stale-while-revalidate).
	StaleRevalidating int64       `json:"stale_while_revalidate"`
	Bypass            int64       `json:"bypass"`         // requests with credentials, relayed and never stored
	Errors            int64       `json:"errors"`         // answered 5xx/4xx by the edge itself
	Coalesced         int64       `json:"coalesced"`      // misses that joined a fill already running
	Stored            int64       `json:"stored"`         // fills stored
	Compressions      int64       `json:"compressions"`   // gzip/br variants made
	OriginFetches     int64       `json:"origin_fetches"` // requests sent to origins
	PeerFetches       int64       `json:"peer_fetches"`   // fills asked of the owner edge
	PeerFills         int64       `json:"peer_fills"`     // fills the owner edge answered
	BytesSent         int64       `json:"bytes_sent"`     // response bytes written to clients
	Purged            int64       `json:"purged"`
	FillsRelayed      int64       `json:"fills_relayed"` // fills relayed, not stored: no room in the fill budget
	FillBytes         int64       `json:"fill_bytes"`    // body bytes fills hold in memory now
	Fills             int64       `json:"fills"`         // fills running now
	OriginsUp         []string    `json:"origins_up"`
	OriginsDown       []string    `json:"origins_down"`
	Self              string      `json:"self,omitempty"` // this edge's peer address (Config.Self)
	Ring              []string    `json:"ring"`           // the peer addresses of the ring's edges
	Memory            tier.Stats  `json:"memory"`
	Disk              *tier.Stats `json:"disk,omitempty"`
}

// Stats returns the edge's counters.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.stats.requests.Load(), Hits: s.stats.hits.Load(), Misses: s.stats.misses.Load(), Stale: s.stats.stale.Load(),
		Revalidated: s.stats.revalidated.Load(), StaleRevalidating: s.stats.staleRevalidating.Load(), Bypass: s.stats.bypass.Load(), Errors: s.stats.errors.Load(),
		Coalesced: s.stats.coalesced.Load(), Stored: s.stats.stored.Load(), Compressions: s.stats.compressions.Load(),
		OriginFetches: s.stats.originFetches.Load(), PeerFetches: s.stats.peerFetches.Load(), PeerFills: s.stats.peerFills.Load(),
		BytesSent: s.stats.bytesSent.Load(), Purged: s.stats.purged.Load(), FillsRelayed: s.stats.fillsRelayed.Load(), Memory: s.mem.Stats()}
	st.FillBytes, st.Fills = s.budget.inFlight()
	st.Self = s.cfg.Self
	if s.cfg.Peers != nil {
		s.ring.set(s.cfg.Peers())
		st.Ring = s.ring.members()
	}
	for _, o := range s.origins.list() {
		if o.up.Load() {
			st.OriginsUp = append(st.OriginsUp, o.url.String())
		} else {
			st.OriginsDown = append(st.OriginsDown, o.url.String())
		}
	}
	if s.disk != nil {
		d := s.disk.Stats()
		st.Disk = &d
	}
	return st
}

// metrics exports the counters in the Prometheus format.
type metrics struct {
	handler fasthttp.RequestHandler
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	counter := func(name, help string, v *atomic.Int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "engine_edge_" + name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	counter("requests_total", "Requests served.", &s.stats.requests)
	counter("hits_total", "Requests served from the cache without asking anyone.", &s.stats.hits)
	counter("misses_total", "Requests not in the cache.", &s.stats.misses)
	counter("stale_total", "Requests served stale because the origin failed.", &s.stats.stale)
	counter("revalidated_total", "Stale entries the origin confirmed with a 304.", &s.stats.revalidated)
	counter("stale_while_revalidate_total", "Stale entries served while revalidated in the background.", &s.stats.staleRevalidating)
	counter("bypass_total", "Requests with credentials, relayed and never stored.", &s.stats.bypass)
	counter("errors_total", "Requests the edge answered with an error of its own.", &s.stats.errors)
	counter("coalesced_total", "Misses that joined a running fill.", &s.stats.coalesced)
	counter("origin_fetches_total", "Requests sent to origins.", &s.stats.originFetches)
	counter("peer_fetches_total", "Fills asked of the owner edge.", &s.stats.peerFetches)
	counter("bytes_sent_total", "Response bytes written to clients.", &s.stats.bytesSent)
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "engine_edge_" + name, Help: help}, f))
	}
	gauge("memory_bytes", "Bytes in the memory tier.", func() float64 { return float64(s.mem.Stats().Bytes) })
	if s.disk != nil {
		gauge("disk_bytes", "Bytes in the disk tier.", func() float64 { return float64(s.disk.Stats().Bytes) })
	}
	return &metrics{handler: fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))}
}

// admin serves /_edge/: health (open), purge, stats and metrics (admin
// token).
func (s *Server) admin(ctx *fasthttp.RequestCtx, path string) {
	if path == "/_edge/health" {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	}
	if !s.adminAuth(ctx) {
		return
	}
	switch path {
	case "/_edge/purge":
		s.purge(ctx, false)
	case "/_edge/stats":
		b, _ := json.MarshalIndent(s.Stats(), "", "  ")
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n'))
	case "/_edge/metrics":
		s.metrics.handler(ctx)
	default:
		s.adminError(ctx, fasthttp.StatusNotFound, "no such admin endpoint: /_edge/ has health, purge, stats and metrics")
	}
}

// peerAdmin serves /_edge/ to an authenticated peer: health, and purges
// it forwards (the certificate is the credential; no token travels).
func (s *Server) peerAdmin(ctx *fasthttp.RequestCtx, path string) {
	switch path {
	case "/_edge/health":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
	case "/_edge/purge":
		s.purge(ctx, true)
	default:
		s.adminError(ctx, fasthttp.StatusNotFound, "no such peer endpoint: peers get health and purge")
	}
}

func (s *Server) adminError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBodyString(s.cfg.Name + ": " + msg + "\n")
}

// adminAuth checks Authorization: Bearer TOKEN.
func (s *Server) adminAuth(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.AdminToken == "" {
		s.adminError(ctx, fasthttp.StatusForbidden, "the admin API is off: start the edge with an admin token (--edge-admin-token FILE)")
		return false
	}
	got, ok := bytes.CutPrefix(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), []byte("Bearer "))
	if !ok || subtle.ConstantTimeCompare(bytes.TrimSpace(got), []byte(s.cfg.AdminToken)) != 1 {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="engine-edge admin"`)
		s.adminError(ctx, fasthttp.StatusUnauthorized, "the admin API needs Authorization: Bearer TOKEN with the edge's admin token")
		return false
	}
	return true
}

// PurgeResult is the answer of /_edge/purge.
type PurgeResult struct {
	Purged int               `json:"purged"`          // entries removed on this edge
	Peers  map[string]string `json:"peers,omitempty"` // peer edge → "ok N" or the error
}

// purge removes entries by key (?key=/bucket/object) or by prefix
// (?prefix=/bucket/dir/), on this edge and, unless a peer forwarded it
// (fromPeer), on every other edge of the ring.
func (s *Server) purge(ctx *fasthttp.RequestCtx, fromPeer bool) {
	m := string(ctx.Method())
	if m != fasthttp.MethodPost && m != fasthttp.MethodDelete {
		ctx.Response.Header.Set("Allow", "POST, DELETE")
		s.adminError(ctx, fasthttp.StatusMethodNotAllowed, "purge with POST (or DELETE) /_edge/purge?key=/PATH or ?prefix=/PATH")
		return
	}
	key, prefix := string(ctx.QueryArgs().Peek("key")), string(ctx.QueryArgs().Peek("prefix"))
	if (key == "") == (prefix == "") || (key != "" && key[0] != '/') || (prefix != "" && prefix[0] != '/') {
		s.adminError(ctx, fasthttp.StatusBadRequest, "give exactly one of key=/PATH (one object, its path and query as clients request it) or prefix=/PATH (every object whose path begins so)")
		return
	}
	var res PurgeResult
	if key != "" {
		res.Purged = s.purgeKey(s.keys.key(key))
	} else {
		res.Purged = s.purgePrefix(prefix)
	}
	s.stats.purged.Add(int64(res.Purged))
	if !fromPeer && s.cfg.Peers != nil && s.peers != nil {
		res.Peers = s.purgePeers(ctx.QueryArgs().String())
	}
	b, _ := json.Marshal(res)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// purgeFills marks the running fills that match so they store nothing.
func (s *Server) purgeFills(match func(string) bool) {
	s.fillsMu.Lock()
	for k, f := range s.fills {
		if match(k) {
			f.purged.Store(true)
			delete(s.fills, k) // requests after the purge start a fill of their own
		}
	}
	s.fillsMu.Unlock()
}

func (s *Server) purgeKey(key string) int {
	s.purgeFills(func(k string) bool { return k == key })
	n := 0
	if s.mem.Delete(key) {
		n++
	}
	s.mem.DeletePrefix(key + "\x00") // its coded variants
	if s.disk != nil && s.disk.Delete(key) {
		n = 1
	}
	return n
}

func (s *Server) purgePrefix(prefix string) int {
	s.purgeFills(func(k string) bool { return strings.HasPrefix(k, prefix) })
	n := s.mem.DeletePrefix(prefix)
	if s.disk != nil {
		n = max(n, s.disk.DeletePrefix(prefix))
	}
	return n
}

// purgePeers sends the purge to every other edge, over the peer channel:
// the certificate authenticates it, the admin token stays here.
func (s *Server) purgePeers(query string) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range s.cfg.Peers() {
		if p == s.cfg.Self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r := "ok"
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p+"/_edge/purge?"+query, nil)
			var resp *http.Response
			if err == nil {
				resp, err = s.peers.Do(req)
			}
			if err != nil {
				r = err.Error()
			} else {
				var pr PurgeResult
				if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&pr) != nil {
					r = "answered " + resp.Status
				} else {
					r = fmt.Sprintf("ok %d", pr.Purged)
				}
				resp.Body.Close()
			}
			mu.Lock()
			out[p] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
