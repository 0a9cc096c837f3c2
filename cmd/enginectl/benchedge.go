package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"engine/bench/edgebench"
)

// benchEdge runs "enginectl bench edge": our edge cache against Varnish.
func benchEdge(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	build := edgebench.Flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), edgebench.Usage)
		fs.PrintDefaults()
	}
	if err := parseBench(fs, args); err != nil {
		var ue usageError
		if errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
			return err
		}
		return usageError{"bench edge: " + err.Error()} // a bad flag or value: exit 2
	}
	cfg, err := build()
	if err != nil {
		return usageError{"bench edge: " + err.Error()}
	}
	cfg.Out, cfg.Log = stdout, slogger(stderr)
	interrupted := "the origin and both caches were stopped and the work directory removed"
	if cfg.Keep {
		interrupted = "the origin and both caches were stopped; the work directory was kept (--keep)"
	}
	return runBench("bench edge", interrupted, stderr, func(ctx context.Context) error {
		_, err := edgebench.Run(ctx, cfg)
		return err
	})
}
