package burstbuffer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"engine/burstbuffer/flash"
	"engine/erasure"
)

// PathPrefix is where Handler expects to be mounted on a node's HTTP server.
const PathPrefix = "/v1/internal/bb/"

// NoServiceHeader, on a 503 answer to a peer call, says the node runs no
// burst buffer (a member started without --flash, or one stopping).
const NoServiceHeader = "Engine-No-Burst-Buffer"

// ErrNoService: the node called runs no burst buffer. It holds no buffered
// bytes and serves none, so a publish or a drop has nothing to tell it.
var ErrNoService = errors.New("burstbuffer: the node runs no burst buffer")

// maxShardPayload bounds a shard payload a peer may send.
const maxShardPayload = 64 << 20

// Bounds on a peer's answers: a dump (every meta it knows), anything else
// but shards (an error message).
const (
	maxDump   = 1 << 30
	maxAnswer = 1 << 20
)

// Handler serves the peer calls of HTTPTransport for this node.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+PathPrefix+"shard", func(w http.ResponseWriter, r *http.Request) {
		store, stripe, idx, ok := shardArgs(w, r)
		if !ok {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxShardPayload+1))
		if err != nil {
			http.Error(w, "burstbuffer: read shard: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxShardPayload {
			http.Error(w, "burstbuffer: shard payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := checkShardPayload(body, stripe, idx); err != nil {
			http.Error(w, fmt.Sprintf("%v (shard refused)", err), http.StatusBadRequest)
			return
		}
		if err := s.waitSpace(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := s.putLocal(r.Context(), store, stripe, idx, body, r.URL.Query().Get("durable") != "0"); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.flashUsed()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+PathPrefix+"range", func(w http.ResponseWriter, r *http.Request) {
		store, stripe, idx, ok := shardArgs(w, r)
		if !ok {
			return
		}
		var a [5]int
		for i, name := range []string{"k", "m", "ss", "off", "n"} {
			v, err := strconv.Atoi(r.URL.Query().Get(name))
			if err != nil {
				http.Error(w, "burstbuffer: bad range argument "+name, http.StatusBadRequest)
				return
			}
			a[i] = v
		}
		if err := checkShardRange(idx, a[0], a[1], a[2], a[3], a[4]); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := s.readLocalRange(store, stripe, idx, a[0], a[1], a[2], a[3], a[4])
		writeBytes(w, b, err)
	})
	mux.HandleFunc("GET "+PathPrefix+"shard", func(w http.ResponseWriter, r *http.Request) {
		store, stripe, idx, ok := shardArgs(w, r)
		if !ok {
			return
		}
		p, err := s.getLocal(store, stripe, idx)
		writeBytes(w, p, err)
	})
	mux.HandleFunc("POST "+PathPrefix+"sync", func(w http.ResponseWriter, r *http.Request) {
		var stores []int
		if !decodeBody(w, r, &stores) {
			return
		}
		if err := s.checkStores(stores); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.syncLocal(r.Context(), stores); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+PathPrefix+"publish", func(w http.ResponseWriter, r *http.Request) {
		var metas []*Meta
		if !decodeBody(w, r, &metas) {
			return
		}
		for _, m := range metas {
			if err := m.Validate(); err != nil {
				http.Error(w, fmt.Sprintf("%v (publish refused)", err), http.StatusBadRequest)
				return
			}
		}
		for _, m := range metas {
			if err := s.applyMeta(m); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+PathPrefix+"drop", func(w http.ResponseWriter, r *http.Request) {
		var ps []Piece
		if !decodeBody(w, r, &ps) {
			return
		}
		if err := s.checkDrop(ps); err != nil {
			http.Error(w, fmt.Sprintf("%v (drop refused)", err), http.StatusBadRequest)
			return
		}
		if err := s.applyDrop(ps); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+PathPrefix+"dump", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.dump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	mux.HandleFunc("POST "+PathPrefix+"truncate", func(w http.ResponseWriter, r *http.Request) {
		var req truncateReq
		if !decodeBody(w, r, &req) {
			return
		}
		ref := MakeRef(req.Type, req.Handle)
		if err := checkTruncate(ref, req.Size); err != nil {
			http.Error(w, fmt.Sprintf("%v (truncate refused)", err), http.StatusBadRequest)
			return
		}
		if err := s.truncatePeer(r.Context(), ref, req.Size); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errNotBuffered) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+PathPrefix+"call", func(w http.ResponseWriter, r *http.Request) {
		op, path := r.URL.Query().Get("op"), r.URL.Query().Get("path")
		var err error
		switch op {
		case "drain":
			err = s.drainOwned(r.Context(), path)
		case "resync": // path: the node that failed to tell this one something
			if path == "" || len(path) > maxName {
				http.Error(w, "burstbuffer: resync: need the name of the node to resync with", http.StatusBadRequest)
				return
			}
			if !s.isMember(path) {
				http.Error(w, "burstbuffer: resync: "+strconv.Quote(path)+" is not a member of the cluster", http.StatusBadRequest)
				return
			}
			s.RequestResync(path)
		default:
			http.Error(w, "burstbuffer: unknown operation "+strconv.Quote(op), http.StatusBadRequest)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.isClosed() {
			// Stopping: it serves no more reads, and resyncs with every
			// node when it starts again.
			w.Header().Set(NoServiceHeader, "1")
			http.Error(w, "burstbuffer: node "+s.cfg.Node+" is stopping", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// writeBytes answers with b, or with err: 404 for a shard the store does
// not have, 500 otherwise.
func writeBytes(w http.ResponseWriter, b []byte, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, flash.ErrNotFound) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(b)
}

func shardArgs(w http.ResponseWriter, r *http.Request) (store int, stripe uint64, idx int, ok bool) {
	q := r.URL.Query()
	var err error
	if store, err = strconv.Atoi(q.Get("store")); err == nil {
		if stripe, err = strconv.ParseUint(q.Get("stripe"), 16, 64); err == nil {
			idx, err = strconv.Atoi(q.Get("idx"))
		}
	}
	if err == nil && (store < 0 || store >= erasure.MaxShards || idx < 0 || idx >= erasure.MaxShards) {
		err = fmt.Errorf("store %d, shard %d: each must be 0..%d", store, idx, erasure.MaxShards-1)
	}
	if err != nil {
		http.Error(w, "burstbuffer: bad shard arguments: "+err.Error(), http.StatusBadRequest)
		return 0, 0, 0, false
	}
	return store, stripe, idx, true
}

// checkStores checks a peer's SyncStores list: stores of this node, at
// most one entry per store.
func (s *Service) checkStores(stores []int) error {
	if len(stores) > len(s.stores) {
		return fmt.Errorf("burstbuffer: sync of %d stores: %s has %d", len(stores), s.cfg.Node, len(s.stores))
	}
	for _, i := range stores {
		if i < 0 || i >= len(s.stores) {
			return fmt.Errorf("burstbuffer: sync of store %d: %s has stores 0..%d", i, s.cfg.Node, len(s.stores)-1)
		}
	}
	return nil
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<20)).Decode(v); err != nil {
		http.Error(w, "burstbuffer: bad body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// HTTPTransport is the Transport over the nodes' peer ports.
type HTTPTransport struct {
	// Resolve returns node's peer address (host:port).
	Resolve func(node string) (string, error)
	// Client makes the calls: for mutual TLS, one whose Transport has
	// the node's certificate and the cluster CA in its TLSClientConfig.
	Client *http.Client
	// Scheme is "http" (the default, when empty) or "https".
	Scheme string
}

// NewHTTPTransport returns a transport with a pooled client, over plain
// HTTP.
func NewHTTPTransport(resolve func(string) (string, error)) *HTTPTransport {
	return &HTTPTransport{Resolve: resolve, Client: &http.Client{Transport: pooled(nil)}}
}

// NewHTTPTransportTLS returns a transport over HTTPS with the same pooled
// client, whose TLS configuration is cfg: for the peer port, cfg has the
// node's certificate (Certificates or GetClientCertificate) and the
// cluster CA (RootCAs), so both ends verify each other.
func NewHTTPTransportTLS(resolve func(string) (string, error), cfg *tls.Config) *HTTPTransport {
	return &HTTPTransport{Resolve: resolve, Client: &http.Client{Transport: pooled(cfg)}, Scheme: "https"}
}

func pooled(cfg *tls.Config) *http.Transport {
	return &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true, TLSClientConfig: cfg}
}

func (t *HTTPTransport) do(ctx context.Context, node, method, op string, q url.Values, body []byte) ([]byte, error) {
	addr, err := t.Resolve(node)
	if err != nil {
		return nil, err
	}
	scheme := t.Scheme
	if scheme == "" {
		scheme = "http"
	}
	u := scheme + "://" + addr + PathPrefix + op
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %s %s on %s: %w", method, op, node, err)
	}
	defer resp.Body.Close()
	limit := int64(maxAnswer)
	switch op {
	case "shard", "range":
		limit = maxShardPayload
	case "dump":
		limit = maxDump
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %s %s on %s: %w", method, op, node, err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("burstbuffer: %s %s on %s: answer longer than %d bytes", method, op, node, limit)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && (op == "shard" || op == "range"):
		return nil, fmt.Errorf("%s: %w", bytes.TrimSpace(out), flash.ErrNotFound)
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(NoServiceHeader) != "":
		return nil, fmt.Errorf("burstbuffer: %s %s on %s: %w", method, op, node, ErrNoService)
	case resp.StatusCode == http.StatusConflict && op == "truncate":
		return nil, fmt.Errorf("%s: %w", bytes.TrimSpace(out), errNotBuffered)
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("burstbuffer: %s %s on %s: %s: %s", method, op, node, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

func shardQuery(store int, stripe uint64, idx int) url.Values {
	return url.Values{"store": {strconv.Itoa(store)}, "stripe": {strconv.FormatUint(stripe, 16)}, "idx": {strconv.Itoa(idx)}}
}

func (t *HTTPTransport) PutShard(ctx context.Context, node string, store int, stripe uint64, idx int, payload []byte, durable bool) error {
	q := shardQuery(store, stripe, idx)
	if !durable {
		q.Set("durable", "0")
	}
	_, err := t.do(ctx, node, http.MethodPut, "shard", q, payload)
	return err
}

func (t *HTTPTransport) ReadShard(ctx context.Context, node string, store int, stripe uint64, idx, k, m, shardSize, off, n int) ([]byte, error) {
	q := shardQuery(store, stripe, idx)
	for name, v := range map[string]int{"k": k, "m": m, "ss": shardSize, "off": off, "n": n} {
		q.Set(name, strconv.Itoa(v))
	}
	b, err := t.do(ctx, node, http.MethodGet, "range", q, nil)
	if err == nil && len(b) != n {
		err = fmt.Errorf("burstbuffer: range read on %s returned %d bytes, want %d", node, len(b), n)
	}
	return b, err
}

func (t *HTTPTransport) SyncStores(ctx context.Context, node string, stores []int) error {
	b, err := json.Marshal(stores)
	if err != nil {
		return err
	}
	_, err = t.do(ctx, node, http.MethodPost, "sync", nil, b)
	return err
}

func (t *HTTPTransport) GetShard(ctx context.Context, node string, store int, stripe uint64, idx int) ([]byte, error) {
	return t.do(ctx, node, http.MethodGet, "shard", shardQuery(store, stripe, idx), nil)
}

func (t *HTTPTransport) Publish(ctx context.Context, node string, metas []*Meta) error {
	b, err := json.Marshal(metas)
	if err != nil {
		return err
	}
	_, err = t.do(ctx, node, http.MethodPost, "publish", nil, b)
	return err
}

func (t *HTTPTransport) Drop(ctx context.Context, node string, ps []Piece) error {
	b, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	_, err = t.do(ctx, node, http.MethodPost, "drop", nil, b)
	return err
}

func (t *HTTPTransport) Dump(ctx context.Context, node string) (*Dump, error) {
	b, err := t.do(ctx, node, http.MethodGet, "dump", nil, nil)
	if err != nil {
		return nil, err
	}
	var d Dump
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("burstbuffer: dump from %s: %w", node, err)
	}
	return &d, nil
}

type truncateReq struct {
	Type   int32  `json:"type"`
	Handle []byte `json:"handle"`
	Size   int64  `json:"size"`
}

func (t *HTTPTransport) Truncate(ctx context.Context, node string, ref FileRef, size int64) error {
	b, err := json.Marshal(truncateReq{Type: ref.Type, Handle: ref.Handle, Size: size})
	if err != nil {
		return err
	}
	_, err = t.do(ctx, node, http.MethodPost, "truncate", nil, b)
	return err
}

func (t *HTTPTransport) Call(ctx context.Context, node, op, path string) error {
	_, err := t.do(ctx, node, http.MethodPost, "call", url.Values{"op": {op}, "path": {path}}, []byte{})
	return err
}
