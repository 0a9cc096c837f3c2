package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchCoordinator(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "coordinator", "--size=10GB", "--nodes=4", "--dir", t.TempDir()}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"commands applied", "peak state", "snapshot", "reconcile/tick", "100 TB job wall", "node loss"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{
		{"--size=0"},
		{"--nodes=0"},
		{"--stragglers=2"},
		{"--nodes=1"},
		{"--rate=fast"},
		{"extra"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(append([]string{"bench", "coordinator"}, args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), "enginectl:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}
