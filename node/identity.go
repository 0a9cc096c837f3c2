package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"engine/coordinator"
	"engine/internal/pki"
	"engine/shuffle"
)

// setupIdentity loads the node's cluster identity from its data directory,
// or makes it: a new cluster's CA and secrets on a bootstrapping node, a
// certificate from the cluster (asked with the join token) on a joining one.
func (n *Node) setupIdentity(ctx context.Context) error {
	if pki.Exists(n.cfg.DataDir) {
		id, err := pki.Load(n.cfg.DataDir, n.id)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		if renewed, err := id.RenewIfDue(n.cfg.DataDir, time.Now()); err != nil {
			return fmt.Errorf("node: renew this node's certificate: %w", err)
		} else if renewed {
			n.log.Info("renewed this node's certificate", "until", id.Certificate().Leaf.NotAfter)
		}
		if n.cfg.ClientToken != "" && n.cfg.ClientToken != id.ClientToken {
			return fmt.Errorf("node: --client-token differs from the cluster's client token in %s; the token is chosen once, when the cluster is made", filepath.Join(n.cfg.DataDir, pki.TokenFile))
		}
		n.ident = id
		return nil
	}
	hosts := n.certHosts()
	if n.cfg.Join == "" {
		id, certPEM, keyPEM, err := pki.Bootstrap(n.id, hosts, n.cfg.ClientToken)
		if err != nil {
			return fmt.Errorf("node: make the cluster identity: %w", err)
		}
		if err := pki.Save(n.cfg.DataDir, id, certPEM, keyPEM); err != nil {
			return err
		}
		n.ident = id
		n.log.Info("made a new cluster identity", "ca", filepath.Join(n.cfg.DataDir, pki.Dir, "ca.crt"),
			"join_token_file", filepath.Join(n.cfg.DataDir, pki.JoinTokenFile), "client_token_file", filepath.Join(n.cfg.DataDir, pki.TokenFile))
		return nil
	}
	if n.cfg.JoinToken == "" {
		return fmt.Errorf("node: --join %s needs --token FILE: the join token of the cluster (its first node's DATA/%s)", n.cfg.Join, pki.JoinTokenFile)
	}
	caHash, secret, err := pki.ParseJoinToken(n.cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("node: --token: %w", err)
	}
	keyPEM, pub, err := pki.NewKey()
	if err != nil {
		return err
	}
	pubPEM, err := pki.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	req := CertRequest{Node: n.id, PublicKey: string(pubPEM), Hosts: hosts, Secret: secret, GossipAddr: n.cfg.GossipAddr}
	resp, err := requestCertificate(ctx, n.cfg.Join, caHash, req)
	if err != nil {
		return fmt.Errorf("node: get a certificate from the cluster through %s: %w", n.cfg.Join, err)
	}
	id, err := pki.New(resp.Secrets, n.id, []byte(resp.Certificate), keyPEM)
	if err != nil {
		return fmt.Errorf("node: the certificate %s sent: %w", n.cfg.Join, err)
	}
	if id.CAHash() != caHash {
		return errors.New("node: the cluster sent a CA other than the one the join token names")
	}
	if err := pki.Save(n.cfg.DataDir, id, []byte(resp.Certificate), keyPEM); err != nil {
		return err
	}
	n.ident = id
	return nil
}

// requestCertificate asks the member at addr (its API) for a certificate,
// over TLS pinned to the join token's CA. It retries while the member does
// not answer (it may be starting) and ctx lasts; a wrong cluster or a
// refusal ends it at once.
func requestCertificate(ctx context.Context, addr, caHash string, req CertRequest) (CertResponse, error) {
	c := &Client{Addr: "https://" + strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"),
		HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.PinnedConfig(caHash)}}}
	var out CertResponse
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		err := c.roundTrip(ctx, http.MethodPost, "/v1/cluster/certificate", req, &out)
		var te *transportError
		if !errors.As(err, &te) || errors.Is(err, pki.ErrWrongCluster) {
			return out, err
		}
		select { // not up yet, or not reachable: try again while ctx lasts
		case <-ctx.Done():
			return out, fmt.Errorf("%s did not answer: %w", addr, unwrapURL(te.err))
		case <-time.After(backoff):
		}
	}
}

// certHosts are the names and addresses the node's certificate is for.
func (n *Node) certHosts() []string {
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	out := []string{"localhost", "127.0.0.1", "::1"}
	for _, a := range []string{n.cfg.API, n.cfg.RaftAddr, n.cfg.GossipAddr, n.cfg.ShuffleAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// CertRequest is the body of POST /v1/cluster/certificate: a new node asks
// for its certificate, proving it holds the join token.
type CertRequest struct {
	Node       string   `json:"node"`
	PublicKey  string   `json:"public_key"` // PKIX PEM, ECDSA
	Hosts      []string `json:"hosts"`
	Secret     string   `json:"secret"` // the join token's secret
	GossipAddr string   `json:"gossip_addr"`
}

// CertResponse carries the node's certificate and the cluster's secrets.
type CertResponse struct {
	Certificate string      `json:"certificate"` // PEM
	Secrets     pki.Secrets `json:"secrets"`
}

// maxCertHosts bounds the names a certificate request may ask for, and
// maxCertRequest the request's bytes.
const (
	maxCertHosts   = 16
	maxCertRequest = 16 << 10
)

// issueCertificate serves POST /v1/cluster/certificate (TLS only).
func (n *Node) issueCertificate(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		writeJSON(w, http.StatusForbidden, apiError{"a certificate is only issued over TLS: the joining node dials with --token, which pins the cluster CA"})
		return
	}
	var req CertRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxCertRequest) // before the secret is checked: anyone may send it
	if !readJSON(w, r, &req) {
		return
	}
	if !n.ident.CheckJoinSecret(req.Secret) {
		// A guesser waits, and the log says so once a minute at most.
		if last := n.certRefused.Load(); time.Since(time.Unix(0, last)) > time.Minute && n.certRefused.CompareAndSwap(last, time.Now().UnixNano()) {
			n.log.Warn("refused a certificate request with a wrong join token (logged once a minute)", "remote", r.RemoteAddr, "node", req.Node)
		}
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		writeJSON(w, http.StatusUnauthorized, apiError{"wrong join token: use the cluster's, as in its first node's DATA/" + pki.JoinTokenFile})
		return
	}
	if err := shuffle.ValidJobID(req.Node); err != nil || len(req.Hosts) > maxCertHosts {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("bad node name %q or more than %d hosts: names are letters, digits, '.', '_' and '-'", req.Node, maxCertHosts)})
		return
	}
	for _, h := range req.Hosts {
		if len(h) > 253 || strings.ContainsAny(h, "/ \t\r\n") {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("bad host name %q", h)})
			return
		}
	}
	if err := n.nameInUse(coordinator.Member{ID: req.Node, GossipAddr: req.GossipAddr}); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	pub, err := pki.ParsePublicKey([]byte(req.PublicKey))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	cert, err := n.ident.Issue(req.Node, pub, req.Hosts)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	n.log.Info("issued a node certificate", "node", req.Node, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, CertResponse{Certificate: string(cert), Secrets: n.ident.Secrets})
}

// peerClient returns a client of another node's peer API, at its internal
// address, over mutual TLS.
func (n *Node) peerClient(internalAddr string) *Client {
	return &Client{Addr: "https://" + internalAddr, HTTP: n.peerHTTP}
}

// newPeerHTTP is the HTTP client of the peer API.
func newPeerHTTP(cfg *tls.Config, timeout time.Duration) *http.Client {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{protoHTTP}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true, ForceAttemptHTTP2: false,
	}}
}

// ClientToken is the token the node's client API wants.
func (n *Node) ClientToken() string { return n.ident.ClientToken }

// authorize guards the client API: a bearer token (the cluster's client
// token), and no request a browser page could have made on a user's
// behalf (a foreign Origin, a Host that is not this node, a form post).
func (n *Node) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := n.sameSite(r); err != nil {
			writeJSON(w, http.StatusForbidden, apiError{err.Error()})
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/v1/cluster/certificate" {
			n.issueCertificate(w, r) // authorized by the join token in its body
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !n.ident.CheckClientToken(strings.TrimSpace(tok)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="engine"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"no valid client token: give it with --token FILE or ENGINE_TOKEN (the cluster's token is in DATA/" + pki.TokenFile + " on its nodes)"})
			return
		}
		if r.Method == http.MethodPost {
			// A form a web page posts names its type even when empty.
			if ct := r.Header.Get("Content-Type"); (ct != "" || r.ContentLength != 0) && !strings.HasPrefix(ct, "application/json") {
				writeJSON(w, http.StatusUnsupportedMediaType, apiError{fmt.Sprintf("Content-Type %q: the API takes application/json", ct)})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sameSite refuses what a browser would send from another site: an Origin
// that is not this API, or a Host that is not a name of this node (DNS
// rebinding).
func (n *Node) sameSite(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !n.hostAllowed(host) {
		return fmt.Errorf("Host %q is not a name of this node; use its address (or add the name with --api-name)", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("requests from web pages of other origins (%q) are refused", o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errors.New("cross-site requests are refused")
	}
	return nil
}

// hostAllowed: IP literals, localhost, the API's host and --api-name.
func (n *Node) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return true
	}
	if h, _, err := net.SplitHostPort(n.cfg.API); err == nil && strings.EqualFold(h, host) {
		return true
	}
	for _, name := range n.cfg.APINames {
		if strings.EqualFold(name, host) {
			return true
		}
	}
	if hn, err := os.Hostname(); err == nil && strings.EqualFold(hn, host) {
		return true
	}
	return false
}
