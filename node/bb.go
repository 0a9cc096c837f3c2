package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"engine/burstbuffer"
	bbfuse "engine/burstbuffer/fuse"
	"engine/coordinator"
	"engine/internal/units"
)

// BurstBuffer configures the node's part of the burst buffer. A node
// without a flash directory does not run it.
type BurstBuffer struct {
	FlashDir   string // --flash: the fast tier
	BackingDir string // --backing: the file system the drainer writes to (shared by all nodes)
	K, M       int    // --ec 4+2
	FlashLimit int64  // --flash-size: bytes before writers wait for the drainer
	ShardSize  int
	DrainChunk int // --drain-chunk: the backing file system's stripe
}

// bbCluster is the burst buffer's view of the members: those gossip sees
// alive, with their API addresses from the replicated state.
type bbCluster struct{ n *Node }

func (c bbCluster) Live() []string {
	alive := map[string]bool{}
	if c.n.ml != nil {
		for _, m := range c.n.ml.Members() {
			alive[m.Name] = true
		}
	}
	alive[c.n.id] = true
	var out []string
	c.n.fsm.Read(func(s *coordinator.State) {
		for id, m := range s.Members {
			if alive[id] && m.APIAddr != "" {
				out = append(out, id)
			}
		}
	})
	found := false
	for _, id := range out {
		found = found || id == c.n.id
	}
	if !found {
		out = append(out, c.n.id) // before this node is registered
	}
	sort.Strings(out)
	return out
}

var _ burstbuffer.Membership = bbCluster{}

// Members is the burst buffer's Membership: every member of the
// replicated state, live or not, settled once this node is a member and
// has caught up with the state (a node that restarts sees only itself
// before that: nothing may be judged lost from that view).
func (c bbCluster) Members() ([]string, bool) {
	var out []string
	c.n.fsm.Read(func(s *coordinator.State) {
		for id := range s.Members {
			out = append(out, id)
		}
	})
	sort.Strings(out)
	return out, c.n.caughtUp()
}

// resolveInternal returns a member's internal address (its peer API).
func (n *Node) resolveInternal(id string) (string, error) {
	if id == n.id {
		return n.shuffleLn.Addr().String(), nil
	}
	var addr string
	n.fsm.Read(func(s *coordinator.State) {
		if m := s.Members[id]; m != nil {
			addr = m.ShuffleAddr
		}
	})
	if addr == "" {
		return "", fmt.Errorf("node: no member %q known", id)
	}
	return addr, nil
}

// startBurstBuffer opens the node's burst buffer service.
func (n *Node) startBurstBuffer() error {
	c := n.cfg.BurstBuffer
	if c == nil || c.FlashDir == "" {
		return nil
	}
	svc, err := burstbuffer.Open(burstbuffer.Config{
		Node: n.id, FlashDir: c.FlashDir, BackingDir: c.BackingDir, K: c.K, M: c.M,
		FlashLimit: c.FlashLimit, ShardSize: c.ShardSize, DrainChunk: c.DrainChunk,
		Cluster: bbCluster{n}, Transport: n.bbTransport(), Log: n.log,
	})
	if err != nil {
		return err
	}
	n.bbMu.Lock()
	n.bb = svc
	n.bbMu.Unlock()
	return nil
}

// bbTransport is the burst buffer's peer transport: the peer API, over
// mutual TLS.
func (n *Node) bbTransport() *burstbuffer.HTTPTransport {
	return burstbuffer.NewHTTPTransportTLS(n.resolveInternal, n.ident.ClientConfig(protoHTTP))
}

// bbPeerHandlers adds the burst buffer's node-to-node routes to the peer
// API's mux.
func (n *Node) bbPeerHandlers(mux *http.ServeMux) {
	mux.HandleFunc(burstbuffer.PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		bb := n.BurstBuffer()
		if bb == nil {
			w.Header().Set(burstbuffer.NoServiceHeader, "1") // nothing to publish or drop here
			writeJSON(w, http.StatusServiceUnavailable, apiError{errNoBB.Error()})
			return
		}
		bb.Handler().ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /v1/internal/bb-status", func(w http.ResponseWriter, r *http.Request) {
		bb := n.BurstBuffer()
		if bb == nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{errNoBB.Error()})
			return
		}
		writeJSON(w, http.StatusOK, bb.Status())
	})
}

// BurstBuffer returns the node's burst buffer service (nil without one).
func (n *Node) BurstBuffer() *burstbuffer.Service {
	n.bbMu.Lock()
	defer n.bbMu.Unlock()
	return n.bb
}

// BBStatusResponse is GET /v1/bb/status: every live node's status.
type BBStatusResponse struct {
	Nodes  []burstbuffer.Status `json:"nodes"`
	Errors []string             `json:"errors,omitempty"`
}

// BBRequest is the body of POST /v1/bb/{sync,purge,prestage}.
type BBRequest struct {
	Path string `json:"path"`
}

// BBResponse answers a staging request.
type BBResponse struct {
	Path    string  `json:"path"`
	Op      string  `json:"op"`
	Bytes   int64   `json:"bytes,omitempty"`
	Seconds float64 `json:"seconds"`
}

var errNoBB = errors.New("node: this node runs no burst buffer (start it with --flash DIR --backing DIR)")

// bbHandlers adds the burst buffer's routes to mux.
//
//	GET  /v1/bb/status           every live node's burst buffer status
//	POST /v1/bb/sync             drain PATH now and wait (BBRequest)
//	POST /v1/bb/purge            drain PATH and drop its buffered copies
//	POST /v1/bb/prestage         pull PATH from the backing file system into flash
func (n *Node) bbHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/bb/status", func(w http.ResponseWriter, r *http.Request) {
		bb := n.BurstBuffer()
		if bb == nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{errNoBB.Error()})
			return
		}
		var resp BBStatusResponse
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, id := range (bbCluster{n}).Live() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st burstbuffer.Status
				var err error
				if id == n.id {
					st = bb.Status()
				} else {
					var addr string
					if addr, err = n.resolveInternal(id); err == nil {
						ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
						err = n.peerClient(addr).do(ctx, http.MethodGet, "/v1/internal/bb-status", nil, &st)
						cancel()
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					resp.Errors = append(resp.Errors, fmt.Sprintf("%s: %v", id, err))
					return
				}
				resp.Nodes = append(resp.Nodes, st)
			}()
		}
		wg.Wait()
		sort.Slice(resp.Nodes, func(i, j int) bool { return resp.Nodes[i].Node < resp.Nodes[j].Node })
		writeJSON(w, http.StatusOK, resp)
	})
	for _, op := range []string{"sync", "purge", "prestage"} {
		mux.HandleFunc("POST /v1/bb/"+op, func(w http.ResponseWriter, r *http.Request) {
			bb := n.BurstBuffer()
			if bb == nil {
				writeJSON(w, http.StatusServiceUnavailable, apiError{errNoBB.Error()})
				return
			}
			var req BBRequest
			if !readJSON(w, r, &req) {
				return
			}
			if req.Path == "" {
				writeJSON(w, http.StatusBadRequest, apiError{"no path given: name a file or directory of the namespace (\"/\" for all)"})
				return
			}
			start := time.Now()
			resp := BBResponse{Path: req.Path, Op: op}
			var err error
			switch op {
			case "sync":
				err = bb.SyncPath(r.Context(), req.Path)
			case "purge":
				err = bb.Purge(r.Context(), req.Path)
			case "prestage":
				resp.Bytes, err = bb.Prestage(r.Context(), req.Path)
			}
			resp.Seconds = time.Since(start).Seconds()
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, resp)
		})
	}
}

// BBStatus asks a node for every live node's burst buffer status.
func (c *Client) BBStatus(ctx context.Context) (BBStatusResponse, error) {
	var resp BBStatusResponse
	err := c.do(ctx, http.MethodGet, "/v1/bb/status", nil, &resp)
	return resp, err
}

// BB runs a staging operation (sync, purge, prestage) on path.
func (c *Client) BB(ctx context.Context, op, path string) (BBResponse, error) {
	var resp BBResponse
	err := c.do(ctx, http.MethodPost, "/v1/bb/"+op, BBRequest{Path: path}, &resp)
	return resp, err
}

// Mount mounts the namespace (the backing directory with the burst buffer
// under its file data) at mountpoint. Close unmounts it first.
func (n *Node) Mount(ctx context.Context, mountpoint string, opts bbfuse.Options) (*bbfuse.Server, error) {
	bb := n.BurstBuffer()
	if bb == nil {
		return nil, errNoBB
	}
	if opts.Logger == nil {
		opts.Logger = n.log
	}
	// Serve only what the whole cluster knows: after a restart this node
	// learns the stripes whose shards are on other nodes from them.
	for !bb.Synced() {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node: the burst buffer has not resynced with every live node yet: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv, err := bbfuse.Mount(ctx, mountpoint, n.cfg.BurstBuffer.BackingDir, bb, opts)
	if err != nil {
		return nil, err
	}
	n.bbMu.Lock()
	n.mounts = append(n.mounts, srv)
	n.bbMu.Unlock()
	return srv, nil
}

// unmountAll unmounts the node's mounts.
func (n *Node) unmountAll() error {
	n.bbMu.Lock()
	ms := n.mounts
	n.mounts = nil
	n.bbMu.Unlock()
	var errs []error
	for _, m := range ms {
		if err := m.Unmount(); err != nil {
			errs = append(errs, fmt.Errorf("node: unmount %s: %w", m.Dir(), err))
		}
	}
	return errors.Join(errs...)
}

// ParseEC parses an erasure code given as "K+M".
func ParseEC(s string) (k, m int, err error) {
	if _, err := fmt.Sscanf(s, "%d+%d", &k, &m); err != nil || k < 1 || m < 0 || k+m > 256 || fmt.Sprintf("%d+%d", k, m) != s {
		return 0, 0, fmt.Errorf("erasure code %q: give K+M data and parity shards, such as 4+2 or 8+3", s)
	}
	return k, m, nil
}

// BBFlags adds the burst buffer's flags to fs; the returned function builds
// the configuration once fs is parsed (nil when --flash is not given).
// defaults fill in --flash and --backing when the caller has them.
func BBFlags(fs *flag.FlagSet) func(defFlash, defBacking string) (*BurstBuffer, error) {
	flash := fs.String("flash", "", "flash `DIR`: the burst buffer's fast tier (append-only shard logs and the extent index)")
	backing := fs.String("backing", "", "backing `DIR`: the file system buffered data drains to (shared by all nodes in production)")
	ec := fs.String("ec", "4+2", "erasure code `K+M` of burst-buffer stripes")
	flashSize := fs.String("flash-size", "2GiB", "flash bytes this node may fill before writers wait for the drainer")
	chunk := fs.String("drain-chunk", "1MiB", "the backing file system's stripe: drains write whole aligned chunks of this size")
	return func(defFlash, defBacking string) (*BurstBuffer, error) {
		if *flash == "" {
			*flash = defFlash
		}
		if *backing == "" && defBacking != "" {
			*backing = defBacking
			if err := os.MkdirAll(defBacking, 0o755); err != nil {
				return nil, err
			}
		}
		if *flash == "" {
			return nil, nil
		}
		if *backing == "" {
			return nil, fmt.Errorf("--flash needs --backing DIR: the file system buffered data drains to")
		}
		c := &BurstBuffer{FlashDir: *flash, BackingDir: *backing}
		var err error
		if c.K, c.M, err = ParseEC(*ec); err != nil {
			return nil, fmt.Errorf("--ec: %w", err)
		}
		if c.FlashLimit, err = units.ParseBytes(*flashSize); err != nil {
			return nil, fmt.Errorf("--flash-size: %w", err)
		}
		n, err := units.ParseBytes(*chunk)
		if err != nil || n < 4096 || n%4096 != 0 || n > 64<<20 {
			return nil, fmt.Errorf("--drain-chunk %q: give a multiple of 4KiB up to 64MiB, such as 1MiB", *chunk)
		}
		c.DrainChunk = int(n)
		fi, err := os.Stat(c.BackingDir)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--backing %s: not a directory (create it, or mount the shared file system there)", c.BackingDir)
		}
		return c, nil
	}
}
