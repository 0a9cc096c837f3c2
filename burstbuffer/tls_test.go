package burstbuffer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testCA makes a CA and issues certificates for tests of mutual TLS.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestHTTPTransportMutualTLS: NewHTTPTransportTLS reaches a peer handler
// that requires a client certificate of the cluster CA; a transport
// without a certificate, or with one of another CA, gets nothing.
func TestHTTPTransportMutualTLS(t *testing.T) {
	tc := newTestCluster(t, 1, 2, 1)
	s := tc.svc("n0")
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "stranger")
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "n0")}, ClientCAs: ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	resolve := func(string) (string, error) { return addr, nil }
	ctx := context.Background()

	good := NewHTTPTransportTLS(resolve, &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "n1")}, RootCAs: ca.pool})
	if _, err := good.Dump(ctx, "n0"); err != nil {
		t.Fatalf("dump with the cluster's certificate: %v", err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":           {RootCAs: ca.pool},
		"another CA's certificate": {Certificates: []tls.Certificate{other.issue(t, "n9")}, RootCAs: ca.pool},
	} {
		tr := NewHTTPTransportTLS(resolve, cfg)
		if _, err := tr.Dump(ctx, "n0"); err == nil {
			t.Errorf("%s: dump answered", name)
		}
	}
	if _, err := NewHTTPTransport(resolve).Dump(ctx, "n0"); err == nil {
		t.Error("plain http: dump answered")
	}
}
