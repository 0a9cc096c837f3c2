package edgebench

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func parseFlags(args ...string) (Config, error) {
	fs := flag.NewFlagSet("bench edge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return build()
}

func TestFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != 10*time.Second || cfg.Rounds != 1 || cfg.Objects != 100 || cfg.Connections != 64 || cfg.Threads != 2 ||
		cfg.Dir != "/var/tmp" || cfg.Keep || cfg.Engined != "" || cfg.Settle != DefaultSettle || cfg.JSON != "" ||
		cfg.CheckDuration != 2*time.Second {
		t.Errorf("defaults: %+v", cfg)
	}
	if !slices.Equal(cfg.Sizes, []int64{1 << 10, 64 << 10}) || !slices.Equal(cfg.Targets, []string{Ours, Varnish}) {
		t.Errorf("sizes %v, targets %v", cfg.Sizes, cfg.Targets)
	}
	if err := cfg.ensureDefaults(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestFlags(t *testing.T) {
	cfg, err := parseFlags("--duration", "3s", "--rounds", "2", "--objects", "7", "--sizes", "4KiB, 1MiB ,512B",
		"--connections", "8", "--threads", "4", "--targets", " Varnish ", "--dir", "/tmp", "--keep", "--engined", "/bin/true",
		"--settle", "0", "--json", "out.json", "--check-duration", "5s")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Duration: 3 * time.Second, Rounds: 2, Objects: 7, Sizes: []int64{4 << 10, 1 << 20, 512}, Connections: 8,
		Threads: 4, Targets: []string{Varnish}, Dir: "/tmp", Keep: true, Engined: "/bin/true", Settle: time.Millisecond, JSON: "out.json"}
	if cfg.Duration != want.Duration || cfg.Rounds != want.Rounds || cfg.Objects != want.Objects || !slices.Equal(cfg.Sizes, want.Sizes) ||
		cfg.Connections != want.Connections || cfg.Threads != want.Threads || !slices.Equal(cfg.Targets, want.Targets) ||
		cfg.Dir != want.Dir || cfg.Keep != want.Keep || cfg.Engined != want.Engined || cfg.Settle != want.Settle || cfg.JSON != want.JSON ||
		cfg.CheckDuration != 5*time.Second {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

// TestFlagErrors: every bad value is refused with the flag's name.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "500ms"}, "--duration"},
		{[]string{"--duration", "1500ms"}, "whole seconds"},
		{[]string{"--duration", "-1s"}, "--duration"},
		{[]string{"--check-duration", "0s"}, "--check-duration"},
		{[]string{"--check-duration", "2500ms"}, "--check-duration 2.5s: give whole seconds"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--objects", "0"}, "--objects"},
		{[]string{"--objects", "100001"}, "--objects"},
		{[]string{"--sizes", ""}, "--sizes"},
		{[]string{"--sizes", "1024"}, "has no unit"},
		{[]string{"--sizes", "1KiB,1KiB"}, "given twice"},
		{[]string{"--sizes", "32MiB"}, "--sizes"},
		{[]string{"--sizes", "big"}, "--sizes"},
		{[]string{"--threads", "0"}, "--threads"},
		{[]string{"--connections", "1"}, "--connections"},
		{[]string{"--connections", "100000"}, "--connections"},
		{[]string{"--targets", "nginx"}, `--targets: unknown target "nginx"`},
		{[]string{"--targets", "ours,ours"}, "--targets"},
		{[]string{"--targets", ","}, "--targets"},
		{[]string{"--settle", "-1s"}, "--settle"},
		{[]string{"--dir", " "}, "--dir"},
	} {
		_, err := parseFlags(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one with %q", tc.args, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Duration: 1500 * time.Millisecond}, "whole seconds"},
		{Config{CheckDuration: 500 * time.Millisecond}, "CheckDuration"},
		{Config{Targets: []string{}}, "no targets"},
		{Config{Targets: []string{"squid"}}, "unknown target"},
		{Config{Targets: []string{Ours, Ours}}, "twice"},
		{Config{Sizes: []int64{0}}, "object size"},
		{Config{Sizes: []int64{1024, 1024}}, "twice"},
		{Config{Objects: -1}, "Objects"},
		{Config{Threads: 4, Connections: 2}, "Connections"},
		{Config{Rounds: -1}, "Rounds"},
		{Config{Settle: -time.Second}, "Settle"},
	} {
		if err := tc.cfg.ensureDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one with %q", tc.cfg, err, tc.want)
		}
	}
}

// TestMissingTool: a missing wrk or varnishd names the Debian package.
func TestMissingTool(t *testing.T) {
	_, err := findTool("", "edgebench-no-such-tool", "/nonexistent/varnishd", "varnish")
	if err == nil || !strings.Contains(err.Error(), "install the Debian package varnish") {
		t.Errorf("error %v, want one naming the package", err)
	}
	if _, err := findTool("/nonexistent/wrk", "wrk", "/usr/bin/wrk", "wrk"); err == nil || !strings.Contains(err.Error(), "/nonexistent/wrk") {
		t.Errorf("a given path that is not there: %v", err)
	}
}
