package cache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for name and its key as PEM
// files in dir.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestServeTLS(t *testing.T) {
	const name = "cdn.example.test"
	body := randomBytes(20, 50<<10)
	o := startOrigin(t, serveObjects(nil, map[string]*object{"/tls": {body: body, contentType: "application/octet-stream"}}))
	certFile, keyFile, cert := selfSigned(t, t.TempDir(), name)

	s, err := New(edgeConfig(o.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeTLS(ln, certFile, keyFile) }()
	e := &testEdge{Server: s, URL: "https://" + name, served: served}
	t.Cleanup(func() { e.close(t) })

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != name+":443" {
				t.Errorf("dialing %s, want %s:443", addr, name)
			}
			return dialer.DialContext(ctx, network, ln.Addr().String())
		},
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	for i := range 2 {
		resp, err := c.Get(e.URL + "/tls")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := response{status: resp.StatusCode, header: resp.Header, body: got}
		wantBody(t, "over HTTPS", r, body)
		if resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != name {
			t.Fatalf("no TLS connection state, or another certificate")
		}
		if i == 1 {
			wantHit(t, "the second GET over HTTPS", r)
		} else {
			waitFills(t, e)
		}
	}
	// Plain HTTP on the TLS listener is refused.
	plain := newClient(t)
	plain.Timeout = 3 * time.Second
	if resp, err := plain.Get("http://" + ln.Addr().String() + "/tls"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS listener got a 200")
		}
	}
}

func TestServeTLSBadCertificate(t *testing.T) {
	s, err := New(edgeConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	err = s.ServeTLS(ln, missing, missing)
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("ServeTLS with a missing certificate: %v, want an error naming the file", err)
	}
	s.Close()
}
