package hostinfo

import (
	"os"
	"strings"
	"testing"
)

func TestMountOf(t *testing.T) {
	dev, fstype, mnt := MountOf(os.TempDir())
	if dev == "" || fstype == "" || mnt == "" {
		t.Fatalf("MountOf(%s) = %q %q %q: want the mount it is on", os.TempDir(), dev, fstype, mnt)
	}
	if _, _, root := MountOf("/"); root != "/" {
		t.Fatalf("MountOf(/) is on %q, want /", root)
	}
}

func TestKernel(t *testing.T) {
	if k := Kernel(); k == "" || strings.ContainsAny(k, " \x00\n") {
		t.Errorf("Kernel() = %q", k)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\011y\134z`: "/x\ty\\z", `/bad\9`: `/bad\9`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
