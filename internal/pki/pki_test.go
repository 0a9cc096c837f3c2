package pki

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A saved identity loads back whole; secrets are 0600.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	id, certPEM, keyPEM, err := Bootstrap("n1", []string{"127.0.0.1", "node1.example"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, id, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls/ca.key", "tls/node.key", JoinTokenFile, TokenFile, GossipKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", f, fi.Mode().Perm())
		}
	}
	got, err := Load(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if got.JoinToken() != id.JoinToken() || got.ClientToken != id.ClientToken || string(got.GossipKey) != string(id.GossipKey) {
		t.Fatal("loaded secrets differ")
	}
	if _, err := Load(dir, "n2"); err == nil {
		t.Fatal("loaded n1's identity as n2")
	}
}

// Peers of one cluster complete mutual TLS; a peer of another cluster, or
// without a certificate, does not; a joining node pins the CA.
func TestMutualTLS(t *testing.T) {
	a, _, _, err := Bootstrap("a", []string{"127.0.0.1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, pub, _ := NewKey()
	certPEM, err := a.Issue("b", pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(a.Secrets, "b", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _, _ := Bootstrap("a", []string{"127.0.0.1"}, "")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", a.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte{1})
				}
			}()
		}
	}()
	try := func(cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := try(b.ClientConfig()); err != nil {
		t.Fatalf("a cluster peer: %v", err)
	}
	if err := try(other.ClientConfig()); err == nil {
		t.Fatal("a peer of another cluster was served")
	}
	if err := try(&tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Fatal("a peer without a certificate was served")
	}
	// Pinning (no client certificate: the server wants one, so this only
	// checks the client's verdict on the server).
	if err := try(PinnedConfig(other.CAHash())); err == nil || err.Error() == "" {
		t.Fatal("a joining node trusted a server of another CA")
	}
}

func TestParseJoinToken(t *testing.T) {
	s, _ := NewSecrets("")
	h, sec, err := ParseJoinToken(s.JoinToken() + "\n")
	if err != nil || h != s.CAHash() || sec != s.JoinSecret {
		t.Fatalf("ParseJoinToken: %q %q %v", h, sec, err)
	}
	for _, bad := range []string{"", "engine1.abc.def", "engine2." + s.CAHash() + ".x", "engine1." + s.CAHash() + ".", s.JoinSecret} {
		if _, _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("ParseJoinToken(%q) accepted", bad)
		}
	}
	if CheckToken("short") == nil || CheckToken("has space 0123456789") == nil {
		t.Error("CheckToken accepted a bad token")
	}
}

// A certificate near its end is renewed with the same key; others are not.
func TestRenewIfDue(t *testing.T) {
	dir := t.TempDir()
	id, certPEM, keyPEM, err := Bootstrap("n1", []string{"127.0.0.1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, id, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	end := id.Certificate().Leaf.NotAfter
	oldSerial := id.Certificate().Leaf.SerialNumber
	if ok, err := id.RenewIfDue(dir, time.Now()); ok || err != nil {
		t.Fatalf("renewed a new certificate: %v %v", ok, err)
	}
	if ok, err := id.RenewIfDue(dir, end.Add(-24*time.Hour)); !ok || err != nil {
		t.Fatalf("did not renew a certificate a day from its end: %v %v", ok, err)
	}
	got, err := Load(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Certificate().Leaf.SerialNumber; s.Cmp(id.Certificate().Leaf.SerialNumber) != 0 || s.Cmp(oldSerial) == 0 {
		t.Fatalf("the saved certificate is not the renewed one")
	}
}
