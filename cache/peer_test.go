package cache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testCA is a throwaway cluster CA: it issues node certificates for
// 127.0.0.1, good for both ends of a mutual-TLS connection.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var testSerial atomic.Int64

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(testSerial.Add(1)),
		Subject:               pkix.Name{CommonName: "test cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a node certificate (server and client) for 127.0.0.1.
func (ca *testCA) issue(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(testSerial.Add(1)),
		Subject:      pkix.Name{CommonName: name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// clientTLS is what a node gives its edge as Config.PeerTLS.
func (ca *testCA) clientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}

// serverTLS is what a node's internal port asks of a connection: a client
// certificate of the cluster CA.
func (ca *testCA) serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{peerALPN}, MinVersion: tls.VersionTLS13}
}

// peerListener stands in for a node's internal port: it completes each
// connection's mutual-TLS handshake and hands over only those with a
// verified client certificate that chose ALPN "engine-edge".
type peerListener struct {
	net.Listener
	cfg      *tls.Config
	refused  atomic.Int64 // handshakes that failed
	accepted atomic.Int64
}

func listenPeer(t testing.TB, ca *testCA, cert tls.Certificate) *peerListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &peerListener{Listener: ln, cfg: ca.serverTLS(cert)}
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, l.cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = tc.HandshakeContext(ctx)
		cancel()
		if err != nil || tc.ConnectionState().NegotiatedProtocol != peerALPN {
			l.refused.Add(1)
			tc.Close()
			continue
		}
		l.accepted.Add(1)
		return tc, nil
	}
}

// peerEdge is a test edge with a peer listener.
type peerEdge struct {
	*testEdge
	Peer string // its peer address: Self
	ln   *peerListener
}

// startPeerEdges starts n edges of one cluster CA that list each other
// (plus extra peer addresses) as the ring, sharing origin.
func startPeerEdges(t *testing.T, ca *testCA, origin string, n int, extra ...string) []*peerEdge {
	t.Helper()
	var es []*peerEdge
	var addrs []string
	for i := range n {
		ln := listenPeer(t, ca, ca.issue(t, "edge"+string(rune('a'+i))))
		es = append(es, &peerEdge{Peer: ln.Addr().String(), ln: ln})
		addrs = append(addrs, ln.Addr().String())
	}
	addrs = append(addrs, extra...)
	for _, e := range es {
		cfg := edgeConfig(origin)
		cfg.Self, cfg.Peers = e.Peer, func() []string { return addrs }
		cfg.PeerListener, cfg.PeerTLS = e.ln, ca.clientTLS(ca.issue(t, "client"))
		e.testEdge = startEdge(t, cfg)
	}
	return es
}

// peerClient is a client of a peer port presenting cert (none: nil).
func peerClient(t *testing.T, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: roots, NextProtos: []string{peerALPN}}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestPeerPortNeedsCertificate: the peer port serves only clients with a
// certificate of the cluster CA; without one (or with another CA's) a
// peer fill or a purge gets nothing.
func TestPeerPortNeedsCertificate(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body of " + r.URL.Path)) })
	ca := newTestCA(t)
	es := startPeerEdges(t, ca, o.URL(), 1)
	e := es[0]
	other := newTestCA(t)
	foreign := other.issue(t, "intruder")
	good := ca.issue(t, "node")
	for _, tc := range []struct {
		what string
		c    *http.Client
	}{
		{"no certificate", peerClient(t, ca.pool, nil)},
		{"another CA's certificate", peerClient(t, ca.pool, &foreign)},
	} {
		for _, req := range []struct{ method, path string }{{"GET", "/obj"}, {"POST", "/_edge/purge?prefix=/"}} {
			r, _ := http.NewRequest(req.method, "https://"+e.Peer+req.path, nil)
			resp, err := tc.c.Do(r)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Errorf("%s: %s %s on the peer port answered %d %q", tc.what, req.method, req.path, resp.StatusCode, body)
			}
		}
	}
	if n := o.requests(); n != 0 {
		t.Errorf("the origin was asked %d times by refused peers", n)
	}
	if e.ln.accepted.Load() != 0 || e.ln.refused.Load() == 0 {
		t.Errorf("peer listener accepted %d, refused %d", e.ln.accepted.Load(), e.ln.refused.Load())
	}
	// With the cluster's certificate, the same request is a peer fill.
	resp, err := peerClient(t, ca.pool, &good).Get("https://" + e.Peer + "/obj")
	if err != nil {
		t.Fatalf("a peer with a cluster certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "body of /obj" {
		t.Errorf("a peer with a cluster certificate: %d %q", resp.StatusCode, body)
	}
}

// TestPublicPeerHeaderIgnored: on the public port, X-Engine-Edge-Peer is a
// client's header like any other. It used to make the edge take the
// request for a peer's: skip the owner and go to the origin, and not
// forward a purge to the other edges.
func TestPublicPeerHeaderIgnored(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body of " + r.URL.Path)) })
	ca := newTestCA(t)
	es := startPeerEdges(t, ca, o.URL(), 2)
	a, b := es[0], es[1]
	c := newClient(t)
	key := keyOwnedBy(t, []string{a.Peer, b.Peer}, b.Peer, "/hdr/obj")
	wantBody(t, "a public request with the peer header", get(t, c, a.URL+key, peerHeader, b.Peer), []byte("body of "+key))
	if st := a.Stats(); st.PeerFetches != 1 || st.PeerFills != 1 || st.OriginFetches != 0 {
		t.Errorf("the non-owner: peer fetches %d, peer fills %d, origin fetches %d; want 1, 1, 0 (the header ignored)", st.PeerFetches, st.PeerFills, st.OriginFetches)
	}
	waitFills(t, a.testEdge)
	waitFills(t, b.testEdge)

	// The header does not stand in for the admin token...
	if r := adminDo(t, c, http.MethodPost, a.URL+"/_edge/purge?key="+key, ""); r.status != http.StatusUnauthorized {
		t.Errorf("a purge with no token: %d, want 401", r.status)
	}
	// ...nor stop a purge's forwarding.
	r := do(t, c, http.MethodPost, a.URL+"/_edge/purge?key="+key, "Authorization", "Bearer s3cret", peerHeader, b.Peer)
	var pr PurgeResult
	if err := json.Unmarshal(r.body, &pr); err != nil || pr.Peers[b.Peer] != "ok 1" {
		t.Errorf("a purge with the peer header: %d %s; want it forwarded to %s", r.status, r.body, b.Peer)
	}
}

// TestPurgeForwardCarriesNoToken: a forwarded purge reaches the peers over
// the peer channel without the admin token (it used to carry it, to any
// address gossip put in the ring).
func TestPurgeForwardCarriesNoToken(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	ca := newTestCA(t)
	// A peer of the cluster that records what it is sent.
	var mu sync.Mutex
	var got []http.Header
	rec := listenPeer(t, ca, ca.issue(t, "recorder"))
	// (fasthttp: net/http drops a connection whose ALPN protocol it does
	// not know.)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := http.Header{}
		ctx.Request.Header.VisitAll(func(k, v []byte) { h.Add(string(k), string(v)) })
		mu.Lock()
		got = append(got, h)
		mu.Unlock()
		ctx.SetBodyString(`{"purged":0}`)
	}}
	go srv.Serve(rec)
	t.Cleanup(func() { srv.Shutdown() })

	es := startPeerEdges(t, ca, o.URL(), 1, rec.Addr().String())
	c := newClient(t)
	r := adminDo(t, c, http.MethodPost, es[0].URL+"/_edge/purge?prefix=/", "s3cret")
	var pr PurgeResult
	if err := json.Unmarshal(r.body, &pr); err != nil || pr.Peers[rec.Addr().String()] != "ok 0" {
		t.Fatalf("purge: %d %s; want it forwarded to the recorder", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the peer got %d requests, want 1", len(got))
	}
	for k, v := range got[0] {
		if strings.Contains(strings.Join(v, " "), "s3cret") || strings.EqualFold(k, "Authorization") {
			t.Errorf("the forwarded purge carried %s: %q", k, v)
		}
	}
}

// TestRoguePeerNotTrusted: a peer in the ring that has no certificate of
// the cluster CA (gossip announced it) is not believed: its bytes are
// never served or stored; the edge fills from the origin. (Peers were
// dialed with InsecureSkipVerify.)
func TestRoguePeerNotTrusted(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body of " + r.URL.Path)) })
	ca := newTestCA(t)
	rogueCA := newTestCA(t)
	var asked atomic.Int64
	rln := listenPeer(t, rogueCA, rogueCA.issue(t, "rogue"))
	rln.cfg.ClientAuth = tls.NoClientCert
	rogue := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		asked.Add(1)
		ctx.SetBodyString("poisoned")
	}}
	go rogue.Serve(rln)
	t.Cleanup(func() { rogue.Shutdown() })

	es := startPeerEdges(t, ca, o.URL(), 1, rln.Addr().String())
	a := es[0]
	c := newClient(t)
	key := keyOwnedBy(t, []string{a.Peer, rln.Addr().String()}, rln.Addr().String(), "/rogue/obj")
	wantBody(t, "a key the rogue owns", get(t, c, a.URL+key), []byte("body of "+key))
	waitFills(t, a.testEdge)
	wantBody(t, "the stored entry", get(t, c, a.URL+key), []byte("body of "+key))
	if n := asked.Load(); n != 0 {
		t.Errorf("the rogue peer was sent %d requests past the TLS handshake", n)
	}
	if st := a.Stats(); st.PeerFills != 0 || st.OriginFetches != 1 {
		t.Errorf("peer fills %d, origin fetches %d; want 0, 1", st.PeerFills, st.OriginFetches)
	}
}

// TestNoPeerTLSNoPeerTraffic: without PeerTLS an edge sends nothing to
// the peers its ring lists: it fills from the origin and purges only
// itself.
func TestNoPeerTLSNoPeerTraffic(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body of " + r.URL.Path)) })
	var asked atomic.Int64
	peer := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { asked.Add(1); w.Write([]byte("poisoned")) })
	cfg := edgeConfig(o.URL())
	cfg.Self, cfg.Peers = "127.0.0.1:1", func() []string { return []string{"127.0.0.1:1", peer.addr} }
	e := startEdge(t, cfg)
	c := newClient(t)
	key := keyOwnedBy(t, []string{"127.0.0.1:1", peer.addr}, peer.addr, "/lone/obj")
	wantBody(t, "a key another edge owns", get(t, c, e.URL+key), []byte("body of "+key))
	r := adminDo(t, c, http.MethodPost, e.URL+"/_edge/purge?prefix=/", "s3cret")
	var pr PurgeResult
	if err := json.Unmarshal(r.body, &pr); err != nil || len(pr.Peers) != 0 {
		t.Errorf("purge: %s; want no peers asked", r.body)
	}
	if asked.Load() != 0 {
		t.Errorf("the peer was asked %d times", asked.Load())
	}
}
