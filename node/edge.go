package node

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"engine/cache"
	"engine/coordinator"
	"engine/internal/units"
)

// Edge configures the node's edge cache: a CDN node in front of origins
// (the cluster's own S3 endpoints unless --origin names others).
type Edge struct {
	Addr           string   // --edge HOST:PORT
	Origins        []string // --origin URL, repeated, in priority order
	CacheDir       string   // --cache-dir (default DATA/edge-cache)
	MemoryLimit    int64    // --cache-memory
	DiskLimit      int64    // --cache-disk
	AdminToken     string   // read from --edge-admin-token FILE
	TLSCert        string   // --edge-tls-cert
	TLSKey         string   // --edge-tls-key
	AccessLog      string   // --edge-access-log FILE, or - for stderr
	HealthInterval time.Duration
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// EdgeFlags adds the edge cache's flags to fs; the returned function builds
// the configuration once fs is parsed (nil without --edge).
func EdgeFlags(fs *flag.FlagSet) func() (*Edge, error) {
	addr := fs.String("edge", "", "serve the edge cache on `HOST:PORT`")
	var origins stringList
	fs.Var(&origins, "origin", "edge origin `URL`; repeat it for failover, in priority order (default: the cluster's S3 endpoints, this node's first)")
	dir := fs.String("cache-dir", "", "edge cache disk tier `DIR` (default DATA/edge-cache)")
	mem := fs.String("cache-memory", "256MiB", "edge cache memory tier size")
	disk := fs.String("cache-disk", "10GiB", "edge cache disk tier size")
	token := fs.String("edge-admin-token", "", "`FILE` holding the token the edge's admin API (purge, stats, metrics) wants as Authorization: Bearer TOKEN")
	cert := fs.String("edge-tls-cert", "", "serve the edge over TLS with this certificate `FILE` (PEM; with --edge-tls-key)")
	key := fs.String("edge-tls-key", "", "the TLS certificate's private key `FILE` (PEM)")
	alog := fs.String("edge-access-log", "", "write the edge's access log to `FILE` (- for stderr)")
	health := fs.Duration("edge-health-interval", 10*time.Second, "how often the edge checks each origin (3 failed checks take it out, 2 passed bring it back)")
	return func() (*Edge, error) {
		if *addr == "" {
			if len(origins) > 0 || *token != "" || *cert != "" || *alog != "" {
				return nil, errors.New("--origin, --edge-admin-token, --edge-tls-* and --edge-access-log need --edge HOST:PORT")
			}
			return nil, nil
		}
		e := &Edge{Addr: *addr, Origins: origins, CacheDir: *dir, TLSCert: *cert, TLSKey: *key, AccessLog: *alog, HealthInterval: *health}
		var err error
		if e.MemoryLimit, err = units.ParseBytes(*mem); err != nil {
			return nil, fmt.Errorf("--cache-memory: %w", err)
		}
		if e.DiskLimit, err = units.ParseBytes(*disk); err != nil {
			return nil, fmt.Errorf("--cache-disk: %w", err)
		}
		if (*cert == "") != (*key == "") {
			return nil, errors.New("--edge-tls-cert and --edge-tls-key go together: give both PEM files")
		}
		if *token != "" {
			b, err := os.ReadFile(*token)
			if err != nil {
				return nil, fmt.Errorf("--edge-admin-token: %w", err)
			}
			if e.AdminToken = strings.TrimSpace(string(b)); len(e.AdminToken) < 16 {
				return nil, fmt.Errorf("--edge-admin-token: the token in %s is %d characters; use at least 16 (e.g. openssl rand -hex 16)", *token, len(e.AdminToken))
			}
		}
		if *health <= 0 {
			return nil, fmt.Errorf("--edge-health-interval %v: give a positive duration", *health)
		}
		return e, nil
	}
}

// gossipMeta is what a node tells the others about itself through
// memberlist: its public endpoints.
type gossipMeta struct {
	S3   string `json:"s3,omitempty"`   // S3 endpoint base URL
	Edge string `json:"edge,omitempty"` // edge base URL
}

// nodeDelegate hands memberlist the node's gossipMeta.
type nodeDelegate struct{ n *Node }

func (d nodeDelegate) NodeMeta(limit int) []byte {
	m := d.n.meta.Load()
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	if len(b) > limit {
		return nil
	}
	return b
}
func (nodeDelegate) NotifyMsg([]byte)                           {}
func (nodeDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (nodeDelegate) LocalState(join bool) []byte                { return nil }
func (nodeDelegate) MergeRemoteState(buf []byte, join bool)     {}

// publishMeta gossips the node's endpoints.
func (n *Node) publishMeta() {
	m := &gossipMeta{}
	if a := n.S3Addr(); a != "" {
		m.S3 = "http://" + a
	}
	if n.edge != nil {
		m.Edge = n.edgeURL
	}
	n.meta.Store(m)
	if n.ml != nil {
		if err := n.ml.UpdateNode(2 * time.Second); err != nil {
			n.log.Warn("gossip: announcing this node's endpoints", "err", err)
		}
	}
}

// members' gossiped endpoints: this node's first, the others by name.
// Gossip is believed only for members of the replicated state, at the
// gossip address the state records for them.
func (n *Node) endpoints(pick func(*gossipMeta) string) []string {
	var out []string
	if m := n.meta.Load(); m != nil && pick(m) != "" {
		out = append(out, pick(m))
	}
	known := map[string]string{}
	n.fsm.Read(func(s *coordinator.State) {
		for id, m := range s.Members {
			known[id] = m.GossipAddr
		}
	})
	members := n.ml.Members()
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	for _, mem := range members {
		if mem.Name == n.id || len(mem.Meta) == 0 {
			continue
		}
		if g, ok := known[mem.Name]; !ok || g != mem.FullAddress().Addr {
			continue
		}
		var m gossipMeta
		if json.Unmarshal(mem.Meta, &m) == nil && pick(&m) != "" {
			out = append(out, pick(&m))
		}
	}
	return out
}

// edgePeers is the edge ring: the internal addresses of the members that
// run an edge (gossip says which; it is believed only for members of the
// replicated state), this node's included.
func (n *Node) edgePeers() []string {
	out := []string{n.shuffleLn.Addr().String()}
	type mem struct{ gossip, internal string }
	known := map[string]mem{}
	n.fsm.Read(func(s *coordinator.State) {
		for id, m := range s.Members {
			known[id] = mem{m.GossipAddr, m.ShuffleAddr}
		}
	})
	for _, g := range n.ml.Members() {
		k, ok := known[g.Name]
		if g.Name == n.id || !ok || k.gossip != g.FullAddress().Addr || k.internal == "" || len(g.Meta) == 0 {
			continue
		}
		var m gossipMeta
		if json.Unmarshal(g.Meta, &m) == nil && m.Edge != "" {
			out = append(out, k.internal)
		}
	}
	sort.Strings(out[1:])
	return out
}

// startEdge starts the edge cache.
func (n *Node) startEdge() error {
	c := n.cfg.Edge
	if c == nil {
		return nil
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("node: edge listen on %s: %w", c.Addr, err)
	}
	scheme := "http://"
	if c.TLSCert != "" {
		scheme = "https://"
	}
	n.edgeURL = scheme + ln.Addr().String()
	dir := c.CacheDir
	if dir == "" {
		dir = filepath.Join(n.cfg.DataDir, "edge-cache")
	}
	// Edges reach each other on the internal port (mutual TLS, ALPN
	// engine-edge): the ring is of internal addresses.
	cfg := cache.Config{Self: n.shuffleLn.Addr().String(), Origins: c.Origins, MemoryLimit: c.MemoryLimit, DiskDir: dir, DiskLimit: c.DiskLimit,
		AdminToken: c.AdminToken, HealthInterval: c.HealthInterval, Log: n.log,
		Peers: n.edgePeers, PeerListener: n.peerMux.listener(protoEdge), PeerTLS: n.ident.ClientConfig()}
	if len(c.Origins) == 0 {
		cfg.DynamicOrigins = func() []string { return n.endpoints(func(m *gossipMeta) string { return m.S3 }) }
	}
	switch c.AccessLog {
	case "":
	case "-":
		cfg.AccessLog = os.Stderr
	default:
		f, err := cache.OpenAccessLog(c.AccessLog)
		if err != nil {
			ln.Close()
			return fmt.Errorf("node: --edge-access-log: %w", err)
		}
		n.edgeLog = f
		cfg.AccessLog = f
	}
	srv, err := cache.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	n.edge, n.edgeLn = srv, ln
	n.goFunc(func() {
		var err error
		if c.TLSCert != "" {
			err = srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil {
			n.log.Error("edge server", "err", err)
		}
	})
	return nil
}

// EdgeURL is the edge cache's base URL, "" without one.
func (n *Node) EdgeURL() string { return n.edgeURL }

func (n *Node) closeEdge() error {
	if n.edge == nil {
		return nil
	}
	err := n.edge.Close()
	if n.edgeLog != nil {
		n.edgeLog.Close()
	}
	return err
}
