package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"engine/bench/fiobench"
)

const benchFioUsage = `Usage: enginectl bench fio [flags]

Runs fio (Debian package fio) in one invocation against the backing
directory directly, a plain go-fuse loopback mount of it, and our mount
(enginectl mount): 4 KiB random writes (O_DIRECT, iodepth 32), 4 KiB
random writes with fsync after each, 1 MiB sequential writes, 4 KiB random
reads, and file creates per second; then drains our mount and reports the
drain rate against the backing file system's sequential write rate and the
sizes of the writes the drain sent to it. Jobs alternate between targets,
so the machine's noise hits all three alike. Needs root (FUSE mounts).

Flags:
`

func benchFio(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enginectl bench fio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "/var/tmp", "work `DIR` (on the disk to measure, not tmpfs)")
	size := fs.String("size", "256MiB", "bytes per fio job file")
	runtime := fs.Duration("runtime", 20*time.Second, "run time of each fio job")
	rounds := fs.Int("rounds", 1, "rounds; each runs every job on every target")
	creates := fs.Int("creates", 5000, "files created in the creates job")
	targets := fs.String("targets", "direct,loopback,ours", "targets: a comma-separated subset of direct, loopback, ours")
	flashSize := fs.String("flash-size", "8GiB", "our mount's --flash-size")
	quick := fs.Bool("quick", false, "a smoke run: 16 MiB files, 2 s jobs, 500 creates")
	jsonOut := fs.String("json", "", "also write the report as JSON to `FILE`")
	enginectl := fs.String("enginectl", "", "the enginectl binary to mount with (default: this one)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchFioUsage)
		fs.PrintDefaults()
	}
	if err := parseBench(fs, args); err != nil {
		return err
	}
	cfg := fiobench.Config{Dir: *dir, Runtime: *runtime, Rounds: *rounds, Creates: *creates, Quick: *quick,
		Out: stdout, Logger: slogger(stderr), MountArgs: []string{"--flash-size", *flashSize}, Enginectl: *enginectl}
	if !*quick {
		n, err := bytesFlag("--size", *size)
		if err != nil {
			return err
		}
		cfg.Size = n
	} else {
		cfg.Runtime, cfg.Creates = 0, 0
	}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case fiobench.Direct, fiobench.Loopback, fiobench.Ours:
			cfg.Targets = append(cfg.Targets, t)
		default:
			return usageError{fmt.Sprintf("--targets: unknown target %q: use direct, loopback, ours", t)}
		}
	}
	if cfg.Enginectl == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Enginectl = self
	}
	return runBench("bench fio", "the work directory was removed", stderr, func(ctx context.Context) error {
		rep, err := fiobench.Run(ctx, cfg)
		if rep != nil && *jsonOut != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*jsonOut, b, 0o644)
			}
			if jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	})
}
