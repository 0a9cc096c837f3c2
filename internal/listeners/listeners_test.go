package listeners

import (
	"net"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Add(a) {
		t.Fatal("Add before Close refused")
	}
	s.Close()
	if _, err := a.Accept(); err == nil {
		t.Error("a listener added before Close still accepts")
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Add(b) {
		t.Error("Add after Close accepted")
	}
	if c, err := net.Dial("tcp", b.Addr().String()); err == nil {
		c.Close()
		t.Error("a listener added after Close still accepts connections")
	}
}
