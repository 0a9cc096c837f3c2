package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "engined.conf")
	os.WriteFile(cfg, []byte("# node settings\ndata = /srv/engine\napi = 0.0.0.0:7070  # all interfaces\nmemory = \"8GB\"\n\n"), 0o644)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	data := fs.String("data", "", "")
	api := fs.String("api", "127.0.0.1:7070", "")
	memory := fs.String("memory", "", "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--api", "127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(fs, cfg); err != nil {
		t.Fatal(err)
	}
	if *data != "/srv/engine" || *memory != "8GB" {
		t.Errorf("data %q memory %q: config not applied", *data, *memory)
	}
	if *api != "127.0.0.1:9" {
		t.Errorf("api %q: the command line must win over the config file", *api)
	}
	for _, bad := range []struct{ text, want string }{
		{"colour = blue\n", `unknown setting "colour"`},
		{"data /x\n", "want name = value"},
		{"config = other\n", `unknown setting "config"`},
	} {
		os.WriteFile(cfg, []byte(bad.text), 0o644)
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.String("data", "", "")
		fs.String("config", "", "")
		if err := applyConfig(fs, cfg); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), cfg+":1") {
			t.Errorf("config %q: err %v, want %q with file:line", bad.text, err, bad.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(nil, &stderr); code != 2 || !strings.Contains(stderr.String(), "no data directory") {
		t.Errorf("no --data: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"--data", t.TempDir(), "--memory", "lots"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "--memory") {
		t.Errorf("bad --memory: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"--help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "name = value") {
		t.Errorf("--help: exit %d, %q", code, stderr.String())
	}
}
