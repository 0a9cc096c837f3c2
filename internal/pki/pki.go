// Package pki is the cluster's identity: a certificate authority made by the
// first node, node certificates it signs, and the secrets that let a new
// node in (the join token), let clients in (the client token) and encrypt
// gossip (the gossip key).
//
// Every node keeps the whole Bundle in its data directory, in files only
// root can read, so that any node — whichever leads — can admit the next
// one. Nodes authenticate each other by mutual TLS under the CA: a peer is
// trusted if its certificate chains to the cluster CA; its common name is
// its node id.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"engine/internal/fsutil"
)

// Validity of certificates: the CA for 10 years, node certificates for 1.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 365 * 24 * time.Hour
)

// Files in a node's data directory.
const (
	Dir           = "tls"        // DATA/tls: ca.crt, ca.key, node.crt, node.key
	JoinTokenFile = "join-token" // DATA/join-token: what --token FILE of a joining node holds
	TokenFile     = "token"      // DATA/token: the client API's bearer token
	GossipKeyFile = "gossip.key" // DATA/gossip.key
)

// Secrets is what every node holds besides its own certificate: the CA's
// key (to admit nodes), the join secret, the client token and the gossip
// key. A new node receives them, over TLS, when it joins.
type Secrets struct {
	CACert      []byte `json:"ca_cert"` // PEM
	CAKey       []byte `json:"ca_key"`  // PEM
	JoinSecret  string `json:"join_secret"`
	ClientToken string `json:"client_token"`
	GossipKey   []byte `json:"gossip_key"` // 32 bytes: AES-256 for memberlist
}

// Identity is a node's view of the cluster identity: the CA, the secrets
// and this node's certificate.
type Identity struct {
	Secrets
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	cert   tls.Certificate
	NodeID string
}

// ErrWrongCluster is a joining node's verdict on a server whose CA is not
// the one its join token names.
var ErrWrongCluster = errors.New("pki: the node's CA is not the one the join token names: wrong cluster, or someone in between")

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewSecrets makes a new cluster: a CA and fresh secrets. clientToken, if
// not empty, is used as the client token (an operator-provided one).
func NewSecrets(clientToken string) (*Secrets, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "engine cluster CA " + randHex(4)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if clientToken == "" {
		clientToken = randHex(24)
	}
	if err := CheckToken(clientToken); err != nil {
		return nil, err
	}
	gk := make([]byte, 32)
	rand.Read(gk)
	return &Secrets{
		CACert:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		CAKey:       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		JoinSecret:  randHex(24),
		ClientToken: clientToken,
		GossipKey:   gk,
	}, nil
}

// CheckToken refuses a client token too short to be a secret.
func CheckToken(tok string) error {
	if len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("pki: a client token must be at least 16 characters without white space (such as: openssl rand -hex 24); this one has %d", len(tok))
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// parse fills the parsed fields from Secrets.
func (id *Identity) parse() error {
	b, _ := pem.Decode(id.CACert)
	if b == nil {
		return errors.New("pki: the CA certificate is not PEM")
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("pki: CA certificate: %w", err)
	}
	k, _ := pem.Decode(id.CAKey)
	if k == nil {
		return errors.New("pki: the CA key is not PEM")
	}
	key, err := x509.ParseECPrivateKey(k.Bytes)
	if err != nil {
		return fmt.Errorf("pki: CA key: %w", err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return errors.New("pki: the CA key does not belong to the CA certificate")
	}
	if len(id.GossipKey) != 32 {
		return fmt.Errorf("pki: the gossip key is %d bytes, not 32", len(id.GossipKey))
	}
	if id.JoinSecret == "" {
		return errors.New("pki: no join secret")
	}
	if err := CheckToken(id.ClientToken); err != nil {
		return err
	}
	id.ca, id.caKey = ca, key
	id.pool = x509.NewCertPool()
	id.pool.AddCert(ca)
	return nil
}

// CAHash is the SHA-256 of the CA certificate, in hex: the join token pins
// it, so a joining node knows it talks to this cluster.
func (s *Secrets) CAHash() string {
	b, _ := pem.Decode(s.CACert)
	if b == nil {
		return ""
	}
	h := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(h[:])
}

// JoinToken is what a new node needs to join: "engine1.CAHASH.SECRET".
func (s *Secrets) JoinToken() string { return "engine1." + s.CAHash() + "." + s.JoinSecret }

// ParseJoinToken splits a join token into the CA hash it pins and the secret.
func ParseJoinToken(tok string) (caHash, secret string, err error) {
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 || parts[0] != "engine1" || len(parts[1]) != 64 || parts[2] == "" {
		return "", "", errors.New("pki: not a join token: expected engine1.CAHASH.SECRET, as in the first node's DATA/join-token")
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return "", "", errors.New("pki: join token: the CA hash is not hex")
	}
	return parts[1], parts[2], nil
}

// CheckJoinSecret compares a presented join secret in constant time.
func (s *Secrets) CheckJoinSecret(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(secret), []byte(s.JoinSecret)) == 1
}

// CheckClientToken compares a presented client token in constant time.
func (s *Secrets) CheckClientToken(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.ClientToken)) == 1
}

// Issue signs a node certificate for nodeID with the public key pub, valid
// for the given host names and addresses.
func (id *Identity) Issue(nodeID string, pub any, hosts []string) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: nodeID},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(nodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.ca, pub, id.caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %s's certificate: %w", nodeID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// NewKey makes a node key, PEM-encoded, and its public key.
func NewKey() (keyPEM []byte, pub any, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), &key.PublicKey, nil
}

// ParsePublicKey reads a PKIX public key in PEM.
func ParsePublicKey(p []byte) (any, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("pki: public key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: public key: %w", err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("pki: public key: only ECDSA keys are accepted")
	}
	return pub, nil
}

// MarshalPublicKey writes a public key as PKIX PEM.
func MarshalPublicKey(pub any) ([]byte, error) {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b}), nil
}

// New makes an identity from the secrets and this node's certificate and
// key (PEM).
func New(s Secrets, nodeID string, certPEM, keyPEM []byte) (*Identity, error) {
	id := &Identity{Secrets: s, NodeID: nodeID}
	if err := id.parse(); err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: id.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("pki: the node certificate is not signed by this cluster's CA: %w", err)
	}
	if leaf.Subject.CommonName != nodeID {
		return nil, fmt.Errorf("pki: the node certificate is for %q, not this node (%q)", leaf.Subject.CommonName, nodeID)
	}
	cert.Leaf = leaf
	cert.Certificate = append(cert.Certificate, id.ca.Raw)
	id.cert = cert
	return id, nil
}

// Bootstrap makes a new cluster identity for the first node.
func Bootstrap(nodeID string, hosts []string, clientToken string) (*Identity, []byte, []byte, error) {
	s, err := NewSecrets(clientToken)
	if err != nil {
		return nil, nil, nil, err
	}
	tmp := &Identity{Secrets: *s}
	if err := tmp.parse(); err != nil {
		return nil, nil, nil, err
	}
	keyPEM, pub, err := NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, err := tmp.Issue(nodeID, pub, hosts)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := New(*s, nodeID, certPEM, keyPEM)
	return id, certPEM, keyPEM, err
}

// Pool is the cluster CA as a cert pool.
func (id *Identity) Pool() *x509.CertPool { return id.pool }

// Certificate is this node's certificate (with the CA in its chain).
func (id *Identity) Certificate() tls.Certificate { return id.cert }

// verifyPeer checks a peer's chain against the CA (by hand: peers are
// known by certificate, not by the address they are dialed at).
func (id *Identity) verifyPeer(rawCerts [][]byte, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("pki: the peer sent no certificate")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("pki: peer certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, r := range rawCerts[1:] {
		if c, err := x509.ParseCertificate(r); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: id.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("pki: peer certificate %q is not of this cluster: %w", leaf.Subject.CommonName, err)
	}
	return leaf, nil
}

// ServerConfig is the TLS configuration of a port that only cluster nodes
// may use: it requires a client certificate signed by the cluster CA.
func (id *Identity) ServerConfig(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.pool,
		NextProtos:   protos,
	}
}

// ClientConfig is the TLS configuration to dial another node: it presents
// this node's certificate and accepts a server whose certificate chains to
// the cluster CA (whatever address it was dialed at).
func (id *Identity) ClientConfig(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.cert},
		InsecureSkipVerify: true, // verified below, against the cluster CA only
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := id.verifyPeer(raw, x509.ExtKeyUsageServerAuth)
			return err
		},
		NextProtos: protos,
	}
}

// PinnedConfig is the TLS configuration a joining node dials with: it has
// no certificate yet and trusts the server only if the server's chain ends
// in the CA whose hash the join token holds.
func PinnedConfig(caHash string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, against the pinned CA
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("pki: the node sent no CA certificate")
			}
			ca, err := x509.ParseCertificate(raw[len(raw)-1])
			if err != nil {
				return fmt.Errorf("pki: CA certificate: %w", err)
			}
			h := sha256.Sum256(ca.Raw)
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(h[:])), []byte(caHash)) != 1 {
				return ErrWrongCluster
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// PeerName returns the node id of a verified TLS peer ("" when it sent no
// verified certificate).
func PeerName(st *tls.ConnectionState) string {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// files of a node's identity, under DATA.
func paths(data string) (caCrt, caKey, nodeCrt, nodeKey, join, token, gossip string) {
	d := filepath.Join(data, Dir)
	return filepath.Join(d, "ca.crt"), filepath.Join(d, "ca.key"), filepath.Join(d, "node.crt"), filepath.Join(d, "node.key"),
		filepath.Join(data, JoinTokenFile), filepath.Join(data, TokenFile), filepath.Join(data, GossipKeyFile)
}

// Exists reports whether DATA holds an identity.
func Exists(data string) bool {
	_, _, nc, _, _, _, _ := paths(data)
	_, err := os.Stat(nc)
	return err == nil
}

// Save writes the identity into DATA: certificates 0644, everything
// secret 0600, each file written whole and synced before it is renamed
// into place.
func Save(data string, id *Identity, certPEM, keyPEM []byte) error {
	caCrt, caKey, nodeCrt, nodeKey, join, token, gossip := paths(data)
	if err := os.MkdirAll(filepath.Join(data, Dir), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(filepath.Join(data, Dir), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	files := []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{caCrt, id.CACert, 0o644},
		{caKey, id.CAKey, 0o600},
		{nodeKey, keyPEM, 0o600},
		{join, []byte(id.JoinToken() + "\n"), 0o600},
		{token, []byte(id.ClientToken + "\n"), 0o600},
		{gossip, []byte(hex.EncodeToString(id.GossipKey) + "\n"), 0o600},
		{nodeCrt, certPEM, 0o644}, // last: its presence means the rest is there
	}
	for _, f := range files {
		if err := writeFile(f.path, f.b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, b []byte, mode os.FileMode) (err error) {
	tmp := path + ".tmp"
	os.Remove(tmp) // a leftover of a crash: the file is made anew, not through a link
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("pki: write %s: %w", path, err)
		}
	}()
	err = f.Chmod(mode) // an old temporary file may have had another mode
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(path))
	}
	return err
}

// renewBefore is how long before its end a node certificate is renewed.
const renewBefore = 30 * 24 * time.Hour

// RenewIfDue re-issues this node's certificate, with the same key and
// hosts, when it ends within 30 days, and saves it in DATA. It reports
// whether it did.
func (id *Identity) RenewIfDue(data string, now time.Time) (bool, error) {
	leaf := id.cert.Leaf
	if leaf == nil || now.Add(renewBefore).Before(leaf.NotAfter) {
		return false, nil
	}
	_, _, nodeCrt, nodeKey, _, _, _ := paths(data)
	keyPEM, err := os.ReadFile(nodeKey)
	if err != nil {
		return false, fmt.Errorf("pki: %w", err)
	}
	hosts := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	certPEM, err := id.Issue(id.NodeID, leaf.PublicKey, hosts)
	if err != nil {
		return false, err
	}
	nid, err := New(id.Secrets, id.NodeID, certPEM, keyPEM)
	if err != nil {
		return false, err
	}
	if err := writeFile(nodeCrt, certPEM, 0o644); err != nil {
		return false, err
	}
	*id = *nid
	return true, nil
}

// Load reads a node's identity from DATA.
func Load(data, nodeID string) (*Identity, error) {
	caCrt, caKey, nodeCrt, nodeKey, join, token, gossip := paths(data)
	var err error
	read := func(p string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = os.ReadFile(p)
		return b
	}
	var s Secrets
	s.CACert, s.CAKey = read(caCrt), read(caKey)
	cert, key := read(nodeCrt), read(nodeKey)
	jt, tok, gk := read(join), read(token), read(gossip)
	if err != nil {
		return nil, fmt.Errorf("pki: the node's identity in %s is incomplete: %w", data, err)
	}
	var herr error
	if _, s.JoinSecret, herr = ParseJoinToken(string(jt)); herr != nil {
		return nil, fmt.Errorf("pki: %s: %w", join, herr)
	}
	s.ClientToken = string(bytes.TrimSpace(tok))
	if s.GossipKey, herr = hex.DecodeString(string(bytes.TrimSpace(gk))); herr != nil {
		return nil, fmt.Errorf("pki: %s: %w", gossip, herr)
	}
	return New(s, nodeID, cert, key)
}
